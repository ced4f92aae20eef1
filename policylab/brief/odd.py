"""The brief's methodology in ODD form (Overview, Design concepts, Details), generated from
the results folder's ``scenario.json`` and the model's own documentation.

Tables (venues and their rules, trader populations, shocks, market and venue-choice
parameters) come from the scenario as it was run; each parameter's meaning and unit are
its field's metadata (:func:`policylab.inputs.values.setting`). Process, behaviour and
submodel descriptions are the docstrings of :mod:`policylab.model`,
:mod:`policylab.populations.base`, :mod:`policylab.engine.market`,
:mod:`policylab.engine.liquidation`, :mod:`policylab.engine.apply_rules` and
:mod:`policylab.engine.choice` and of the agent
classes, read from their source files without importing them (the brief reads results
folders, not models), so the brief describes the code that produced it. The ODD prose
around them lives in the ``partials/methods.html`` template.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import policylab
from policylab.brief.findings import usd
from policylab.inputs.market import MarketParams
from policylab.inputs.scenario import ClassSpec, VenueChoice
from policylab.venues import VenueRules

_ROLE = re.compile(r":\w+:`~?([^`]+)`")
_ITEM = re.compile(r"^(\d+\.|-)\s+")
_FILE = r"(?:MODEL\.md|README(?:\.md)?|docs/[\w./-]+\.md)"  # the project's own files
_FILE_ASIDE = re.compile(rf"\s*\([^()]*\b{_FILE}[^()]*\)")
_FILE_MENTION = re.compile(rf"\b(?:the\s+)?{_FILE}")


def public(text: str) -> str:
    """``text`` without pointers to the project's own files (MODEL.md, the README,
    docs/*.md), which a reader of the brief does not have: a parenthesis naming one is
    dropped; a bare mention ("with its range, in docs/calibration.md") names the project's
    documentation instead."""
    return _FILE_MENTION.sub("the project's documentation", _FILE_ASIDE.sub("", str(text)))
_PLAIN_UNITS = ("name", "text", "yes/no", "kind", "archetype", "ranking", "price", "parameters")


@dataclass
class Table:
    """A table for the template: header row, body rows (all text) and notes per row;
    ``common`` holds (parameter, value, note) rows that are the same in every column."""

    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)  # meaning of each row's parameter ("" if none)
    common: list[tuple[str, str, str]] = field(default_factory=list)


def field_notes(cls) -> dict[str, str]:
    """Field name -> its meaning, with its unit where the meaning does not say it (field metadata)."""
    out = {}
    for f in dataclasses.fields(cls):
        meaning, unit = f.metadata.get("meaning", ""), f.metadata.get("unit", "")
        plain = not unit or unit in _PLAIN_UNITS or unit in meaning
        out[f.name] = public(meaning if plain else f"{meaning} ({unit})")
    return out


def _parsed(module: str) -> ast.Module:
    """The parsed source of ``module`` (a dotted name inside policylab), found from the
    package's folder so that neither it nor its parent packages are imported."""
    path = Path(policylab.__file__).parent.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return ast.parse(path.read_text(encoding="utf-8"))


def module_doc(module: str) -> str | None:
    """A module's docstring, read without importing it."""
    return ast.get_docstring(_parsed(module))


def class_doc(module: str, name: str) -> str | None:
    """The docstring of class ``name`` in ``module``, read without importing it."""
    return next(ast.get_docstring(n) for n in _parsed(module).body if isinstance(n, ast.ClassDef) and n.name == name)


def registry_classes(module: str, variable: str) -> list[tuple[str, str]]:
    """(module, class name) of each class registered in ``variable`` in ``module`` (a dict
    literal, or a dict comprehension over a literal tuple of classes), in order, following
    the module's ``from X import Name`` lines."""
    tree = _parsed(module)
    origin = {a.asname or a.name: n.module for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    registry = next(n.value for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                    and variable in [t.id for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                                     if isinstance(t, ast.Name)])
    if isinstance(registry, ast.DictComp) and isinstance(registry.generators[0].iter, (ast.Tuple, ast.List)):
        classes = registry.generators[0].iter.elts
    elif isinstance(registry, ast.Dict):
        classes = registry.values
    else:
        raise TypeError(f"{module}.{variable}: expected a dict literal or a comprehension over a tuple of classes")
    return [(origin.get(v.id, module), v.id) for v in classes]


def blocks(doc: str | None) -> list[dict]:
    """A docstring as paragraphs (``{"text": ...}``) and lists (``{"items": [...]}``),
    with reST markup removed; literal blocks (``::``) are kept as ``{"code": ...}``."""
    doc = _ROLE.sub(r"\1", inspect.cleandoc(doc or "")).replace("``", "")
    out: list[dict] = []
    code_next = False
    for chunk in re.split(r"\n\s*\n", doc):
        lines = chunk.splitlines()
        if not lines:
            continue
        if code_next or lines[0].startswith("    "):
            out.append({"code": inspect.cleandoc(chunk)})
            code_next = False
            continue
        text = chunk
        if text.rstrip().endswith("::"):
            text, code_next = text.rstrip()[:-1], True
        if _ITEM.match(lines[0]):
            items: list[str] = []
            for line in text.splitlines():
                if _ITEM.match(line):
                    items.append(_ITEM.sub("", line).strip())
                else:
                    items[-1] += " " + line.strip()
            out.append({"items": [public(i) for i in items]})
        else:
            out.append({"text": public(" ".join(line.strip() for line in text.splitlines()))})
    return out


def value(name: str, v) -> str:
    """A scenario parameter for people: money abbreviated, tiers spelled out, infinity as none."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v in ("inf", "-inf") or (isinstance(v, float) and math.isinf(v)):
        return "none (never)" if "_usd" in name else "unlimited"
    if name in ("kind", "adl_ranking", "mark_price") and isinstance(v, str):
        return v.replace("_", " ")  # words, so a narrow column wraps between them
    if name == "tiers":
        steps = [f"{t['max_leverage']:g}x" + (f" from {usd(t['from_notional'])}" if t["from_notional"] else "")
                 for t in v]
        return "; ".join(steps) if len(steps) <= 3 else f"{steps[0]}; {len(steps)} tiers down to {steps[-1]}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {value(name, x)}" for k, x in v.items()) or "none"
    if isinstance(v, list):
        return ", ".join(value(name, x) for x in v) or "none"
    if isinstance(v, (int, float)):
        if "_usd" in name:
            return usd(v)
        return f"{v:,.6g}"
    return str(v)


def _transposed(items: dict[str, dict], notes: dict[str, str], skip: tuple[str, ...], first: str) -> Table:
    """Parameters as rows and the members of ``items`` as columns; a parameter with the
    same value in every column goes to ``common`` instead."""
    names = list(items)
    table = Table([first, *names], [])
    for f in dict.fromkeys(k for d in items.values() for k in d):
        if f in skip:
            continue
        values = [value(f, items[n].get(f)) for n in names]
        if len(names) > 1 and len(set(values)) == 1:
            table.common.append((f.replace("_", " "), values[0], notes.get(f, "")))
        else:
            table.rows.append([f.replace("_", " "), *values])
            table.notes.append(notes.get(f, ""))
    return table


def venues_table(sc: dict, labels: dict[str, str] | None = None) -> Table:
    """Every venue rule of every venue (fields as rows, venues as columns headed by
    ``labels``: venue name -> how the brief names it)."""
    venues = {v["name"]: v for v in sc.get("venues", [])}
    oi = sc.get("open_interest", {})
    archetypes = any((labels or {}).get(n, n) != n for n in venues)  # the header names archetypes, not firms
    table = _transposed(venues, field_notes(VenueRules), ("name", "sources", *(("label",) if archetypes else ())),
                        "rule")
    table.header = [table.header[0], *((labels or {}).get(n, n) for n in venues)]
    table.rows.insert(0, ["open interest at the start"] + [usd(oi.get(n, 0.0)) for n in venues])
    table.notes.insert(0, "long open interest before traders settle on venues (USD)")
    return table


def populations_table(sc: dict) -> Table:
    """Each trader population's parameters (fields as rows, populations as columns)."""
    return _transposed(sc.get("classes", {}), field_notes(ClassSpec), (), "parameter")


def shocks_table(sc: dict) -> Table:
    """The exogenous shocks: kind, window and what each does."""
    rows = []
    for s in sc.get("shocks", []):
        on = ", ".join(s.get("venues") or []) or "all venues"
        start, end = s["start_minute"], s["start_minute"] + s["duration_minutes"]
        what = {
            "price": lambda: f"fundamental log move {s.get('size', 0):+.3f} spread over the window",
            "liquidity": lambda: (f"depth x{s.get('depth_multiplier', 1):g} on {on}, recovering with a "
                                  f"{s.get('recovery_half_life_minutes', 0):g} min half-life"),
            "collateral": lambda: f"stablecoin collateral worth ${s.get('price', 1):g} on {on}",
            "volatility": lambda: f"fundamental volatility x{s.get('multiplier', 1):g}",
        }.get(s["kind"], lambda: "")()
        rows.append([s["kind"], f"{_clock(start)} to {_clock(end)}", what])
    return Table(["kind", "window (h:mm from start)", "effect"], rows)


def _clock(minute: float) -> str:
    return f"{int(minute // 60)}:{int(minute % 60):02d}"


def params_table(values: dict, cls) -> Table:
    """A parameter dataclass as rows: name, value, meaning."""
    notes = field_notes(cls)
    return Table(["parameter", "value", "meaning"],
                 [[k.replace("_", " "), value(k, v), notes.get(k, "")] for k, v in values.items()])


def scales(sc: dict, manifest: dict) -> list[tuple[str, str]]:
    """Scales of the runs: time, price, population, seeds."""
    traders = manifest.get("traders") or sc.get("traders")
    nan = float("nan")
    return [
        ("market time", f"{sc['duration_minutes']:,} minutes in steps of {sc['step_minutes']} min "
                        f"({sc['duration_minutes'] // sc['step_minutes']:,} steps)"),
        ("starting price", usd(sc["start_price"])),
        ("fundamental volatility", f"{100 * sc.get('sigma_daily', nan):.1f}% per day (GARCH(1,1), "
                                   f"alpha {sc.get('garch_alpha', nan):g}, beta {sc.get('garch_beta', nan):g}, "
                                   + (f"Student-t innovations, {sc['innovation_df']:g} degrees of freedom)"
                                      if sc.get("innovation_df") else "normal innovations)")),
        ("population", f"{traders:,} simulated accounts standing for {sc.get('real_accounts', 0):,.0f} real accounts "
                       f"({sc.get('real_accounts', 0) / traders:,.0f} each)"),
        ("jurisdictions", ", ".join(f"{k} {100 * v:.0f}%" for k, v in sc.get("jurisdictions", {}).items())),
        ("willing to verify identity (KYC)", f"{100 * sc.get('kyc_share', nan):.0f}% of accounts"),
        ("seeds", f"{len(manifest.get('seeds', []))} per rule set, the same for every rule set"),
    ]


def behaviours() -> list[tuple[str, list[dict]]]:
    """Each agent type with its documented behaviour: the trader populations (in the
    order of their registry), then the venues' own agents."""
    agents = registry_classes("policylab.populations", "POPULATIONS") + [
        ("policylab.engine.venue_agents", name) for name in ("MarketMakers", "Arbitrageurs", "Venue")]
    return [(name, blocks(class_doc(module, name))) for module, name in agents]


def methodology(sc: dict, manifest: dict, labels: dict[str, str] | None = None) -> dict:
    """Everything the ODD template needs, by name; venues named by ``labels`` (name -> label)."""
    return {
        "scenario_description": sc.get("description", ""),
        "scales": scales(sc, manifest),
        "process": blocks(module_doc("policylab.model")),
        "agents": blocks(module_doc("policylab.populations.base")),
        "behaviours": behaviours(),
        "market": blocks(module_doc("policylab.engine.market")),
        "liquidation": blocks(module_doc("policylab.engine.liquidation")),
        "choice": blocks(module_doc("policylab.engine.apply_rules")) + blocks(module_doc("policylab.engine.choice")),
        "venues": venues_table(sc, labels),
        "populations": populations_table(sc),
        "shocks": shocks_table(sc),
        "market_params": params_table(sc.get("market", {}), MarketParams),
        "choice_params": params_table(sc.get("venue_choice", {}), VenueChoice),
    }

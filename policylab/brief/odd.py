"""The brief's methodology in ODD form (Overview, Design concepts, Details), generated from
the results folder's ``scenario.json`` and the model's own documentation.

Tables (venues and their rules, trader populations, shocks, market and venue-choice
parameters) come from the scenario as it was run; each parameter's meaning is the
comment beside its field in the model's dataclasses. Process, behaviour and submodel
descriptions are the docstrings of :mod:`policylab.model`, :mod:`policylab.populations.base`,
:mod:`policylab.engine.market`, :mod:`policylab.engine.liquidation`, :mod:`policylab.engine.apply_rules`
and :mod:`policylab.engine.choice`, so the brief describes the code that produced it. The
ODD prose around them lives in the ``partials/methods.html`` template.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field

from policylab import populations
from policylab.engine import venue_agents
from policylab.populations import base as population_base
from policylab.engine import apply_rules, choice
from policylab.engine import liquidation
from policylab.engine import market
from policylab import model
from policylab.brief.findings import usd
from policylab.engine.market import MarketParams
from policylab.inputs.scenario import ClassSpec, VenueChoice
from policylab.venues import VenueRules

_FIELD_COMMENT = re.compile(r"^\s+(\w+):[^=#]*=[^#]*#\s*(.+)$")
_ROLE = re.compile(r":\w+:`~?([^`]+)`")
_ITEM = re.compile(r"^(\d+\.|-)\s+")


@dataclass
class Table:
    """A table for the template: header row, body rows (all text) and notes per row;
    ``common`` holds (parameter, value, note) rows that are the same in every column."""

    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)  # meaning of each row's parameter ("" if none)
    common: list[tuple[str, str, str]] = field(default_factory=list)


def field_notes(cls) -> dict[str, str]:
    """Field name -> the comment written beside it in ``cls``'s source."""
    out = {}
    for line in inspect.getsource(cls).splitlines():
        m = _FIELD_COMMENT.match(line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


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
            out.append({"items": items})
        else:
            out.append({"text": " ".join(line.strip() for line in text.splitlines())})
    return out


def value(name: str, v) -> str:
    """A scenario parameter for people: money abbreviated, tiers spelled out, infinity as none."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v in ("inf", "-inf") or (isinstance(v, float) and math.isinf(v)):
        return "none (never)" if "_usd" in name else "unlimited"
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


def venues_table(sc: dict) -> Table:
    """Every venue rule of every venue (fields as rows, venues as columns)."""
    venues = {v["name"]: v for v in sc.get("venues", [])}
    oi = sc.get("open_interest", {})
    table = _transposed(venues, field_notes(VenueRules), ("name", "sources"), "rule")
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
    """Each agent type with its documented behaviour."""
    classes = (*populations.POPULATIONS.values(), venue_agents.MarketMakers, venue_agents.Arbitrageurs,
               venue_agents.Venue)
    return [(c.__name__, blocks(c.__doc__)) for c in classes]


def methodology(sc: dict, manifest: dict) -> dict:
    """Everything the ODD template needs, by name."""
    return {
        "scenario_description": sc.get("description", ""),
        "scales": scales(sc, manifest),
        "process": blocks(model.__doc__),
        "agents": blocks(population_base.__doc__),
        "behaviours": behaviours(),
        "market": blocks(market.__doc__),
        "liquidation": blocks(liquidation.__doc__),
        "choice": blocks(apply_rules.__doc__) + blocks(choice.__doc__),
        "venues": venues_table(sc),
        "populations": populations_table(sc),
        "shocks": shocks_table(sc),
        "market_params": params_table(sc.get("market", {}), MarketParams),
        "choice_params": params_table(sc.get("venue_choice", {}), VenueChoice),
    }

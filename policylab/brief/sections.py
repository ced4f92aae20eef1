"""The brief's sections: the registry :data:`SECTIONS` and the context each one needs.

A section is one :class:`Section`: its name (also the ``{% block %}`` name a custom
``brief.html`` may override), its template partial and the function building the
context keys it adds from the results folder. ``templates/brief.html`` renders the
sections in registry order. Every section also sees the keys of :func:`shared` (title,
scenario, baseline, rule set order, titles and colours, seeds, run counts, dates).

To add a section: write a function ``Results -> dict`` of new keys, a partial under
``templates/partials/`` and one line in :data:`SECTIONS`; the smoke test in
tests/test_brief_registries.py renders it from a small results folder.

The context handed to the templates is plain data only (str, int, float, bool, None,
lists, tuples and dicts of them; see :func:`plain`), so a sandboxed template reaches no
object with methods that touch files or processes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import statistics
import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from policylab import __version__
from policylab.brief import figures
from policylab.brief import findings
from policylab.brief import odd
from policylab.brief.odd import public
from policylab.brief import summary
from policylab.brief.results import Results
from policylab.errors import InputError
from policylab.validation import calibration, record

PAPERS = {"a4": "A4", "letter": "letter"}
COLUMNS_PER_TABLE = 5  # rule sets per block of the side-by-side table, baseline included
COLUMNS_PER_APPENDIX = 10  # the same for one-line cells (the appendix; the side-by-side table on paper)


@dataclass(frozen=True)
class Section:
    """One registry entry: the section's name, its partial template and its context builder."""

    name: str  # an identifier; the block a custom brief.html extending "default/brief.html" may override
    partial: str  # template path, e.g. "partials/cover.html"
    build: Callable[[Results], dict]  # the context keys this section adds


# ------------------------------------------------------------------------ shared context
def paper_size(paper: str) -> str:
    """The CSS page size of ``--paper``; raises InputError for anything but a4 or letter."""
    if paper not in PAPERS:
        raise InputError(f"--paper: got {paper!r}; allowed: {', '.join(PAPERS)}")
    return PAPERS[paper]


def in_sentence(title: str) -> str:
    """A title inside a sentence: a leading "The " in lower case ("instead of the 2025 world")."""
    return "the " + title[4:] if title.startswith("The ") else title


def _date(stamp) -> str:
    try:
        return dt.datetime.fromisoformat(str(stamp)).strftime("%-d %B %Y")
    except ValueError:
        return str(stamp or "not recorded")


def _failed_runs(res: Results) -> list[dict]:
    return [{"rule_set": r["rule_set"], "seed": int(r["seed"]),
             "error": (str(r["error"]).strip().splitlines() or [""])[-1]}
            for _, r in res.failed.iterrows()]


def shared(res: Results, title: str | None = None, paper: str = "a4") -> dict:
    """The keys every section may use."""
    sc, m = res.scenario, res.manifest
    seeds = len(m.get("seeds", []))
    titles = res.titles
    return {
        "title": title or f"Impact brief: {sc.get('title', sc.get('name'))}",
        "paper": paper_size(paper),
        "version": __version__,
        "scenario": {"name": sc.get("name"), "title": sc.get("title"), "description": sc.get("description", "")},
        "baseline": res.baseline,
        "baseline_title": titles[res.baseline],
        "baseline_in_text": in_sentence(titles[res.baseline]),
        "order": res.order,
        "colours": figures.palette(res.order, res.baseline),
        "titles": titles,
        "seeds": seeds,
        "traders": m.get("traders"),
        "run_date": _date(m.get("finished") or m.get("started")),
        "rendered": dt.date.today().strftime("%-d %B %Y"),
        "config_hash": "".join(c for c in str(m.get("config_hash") or "") if c in string.hexdigits)[:12],
        "complete": m.get("complete", True),
        "failed_runs": _failed_runs(res),
        "total_runs": m.get("runs", len(res.order) * seeds),
        "paged": False,  # true in the HTML the PDF is made from: screen-only parts are left out
    }


# ------------------------------------------------------------------------ cover
def cover(res: Results) -> dict:
    """Page 1: the matrix of core outcomes, the bottom line, the statistics note, the
    validation line (no matrix when no run finished)."""
    v = summary.View.of(res)
    done = bool(res.finished)
    return {"matrix": summary.matrix(v) if done else {"columns": [], "rows": []},
            "bottom_line": summary.bottom_line(v) if done else [],
            "statistics_note": summary.statistics_note(v.seeds),
            "validation": summary.validation_line(res, calibration_check(res), record.summary(record.read()))}


def findings_section(res: Results) -> dict:
    """One finding per rule set from the core outcomes, with its mechanism; flagged arms flagged."""
    return {"arm_findings": summary.arm_findings(summary.View.of(res)) if res.finished else []}


def affected(res: Results) -> dict:
    """Who is affected: per national rule set, where its targeted jurisdiction's traders went
    (with the flow figure); per global rule set, one row per jurisdiction; both, liquidations
    and losses by leverage group."""
    arms = summary.affected(summary.View.of(res)) if res.finished else []
    breakdown = any(t["columns"] or t["unchanged"] for a in arms for t in a["targeted"]) or any(
        a["by_jurisdiction"]["rows"] or a["leverage"]["rows"] for a in arms)
    return {"affected": arms, "affected_breakdown": breakdown, "affected_figures": numbered_figures(res, "affected")}


GLOSSARY = (
    ("ADL (auto-deleveraging)", "when a venue's insurance fund cannot absorb a bankrupt position, the venue closes "
     "positions of traders on the winning side against it, at the bankruptcy price."),
    ("amplification", "how far the price falls in the model relative to the exogenous shock alone: 1.5 means "
     "liquidations and thin books made the fall half as large again."),
    ("basis", "the gap between a derivatives venue's price and the index (spot) price, in % of the index."),
    ("cascade round", "one pass of the liquidation engine within a step: liquidations move the price, which "
     "liquidates more accounts in the next round."),
    ("leakage", "the share of traders a rule targets who still reach the venues it closes to them (for example "
     "through other entities or VPNs)."),
    ("mark price", "the price a venue values positions at to decide liquidations: the index, or the venue's own "
     "last price, depending on the venue."),
    ("pp (percentage points)", "the difference between two percentages: from 40% to 45% is +5 pp (and +12.5%)."),
    ("paired interval", "the 90% bootstrap interval of the mean difference from the baseline over seeds both "
     "rule sets ran, each seed giving both the same shocks and traders."),
    ("offshore", "venues outside the jurisdictions whose rules are modelled (offshore exchanges, DEXs, pools)."),
)


def glossary(res: Results) -> dict:
    """The terms a decision-maker may not know, in alphabetical order."""
    return {"glossary": sorted(GLOSSARY, key=lambda t: t[0].lower())}


# ------------------------------------------------------------------------ side-by-side table and appendix
def _cell(row) -> dict:
    """One rule set's numbers for one metric, formatted as the table shows them."""
    unit = row["unit"]
    status = row["improvement"] if row["improvement"] in findings.SIGNIFICANT else ""
    lo, hi, dlo, dhi = row["p05"], row["p95"], row["diff_lo"], row["diff_hi"]
    spread = findings.fmt_range(lo, hi, unit).replace(" to ", " to " if lo < 0 else "\u2013")
    diff_range = "[" + findings.fmt_range(dlo, dhi, unit, diff=True).replace(" to ", ", ") + "]"
    return {"value": findings.fmt_value(row["mean"], unit),
            "spread": "" if math.isnan(lo) or math.isnan(hi) else spread,
            "diff": findings.fmt_diff(row["diff_mean"], unit),
            "diff_range": "" if math.isnan(dlo) or math.isnan(dhi) else diff_range,
            "status": status}


EMPTY_CELL = {"value": "n/a", "spread": "", "diff": "n/a", "diff_range": "", "status": ""}


UNIT_TEXT = {"USD": "US dollars", "fraction": "%, changes in pp", "annualised log-return sd": "% a year",
             "ratio": "ratio"}  # one unit style: how each summary.csv unit is named in the tables


def _rows(cells: dict[str, dict[str, dict]], info: pd.DataFrame, metrics_: list[tuple[str, str]],
          order: list[str]) -> list[dict]:
    rows = []
    for name, text in metrics_:
        first = info.loc[name]
        rows.append({"metric": name, "label": text, "unit": UNIT_TEXT.get(first["unit"], first["unit"]),
                     "description": first["description"],
                     "direction": first["direction"].replace("_", " "),
                     "cells": {rs: cells[name].get(rs, EMPTY_CELL) for rs in order}})
    return rows


def side_by_side(summary: pd.DataFrame, order: list[str]) -> tuple[list[dict], list[dict]]:
    """(headline sections, appendix sections): each ``{"title", "rows"}``, a row holding
    the metric's label, unit, description and one cell per rule set of ``order``. The
    headline holds the metrics of ``findings.SECTIONS``; the appendix every other
    market-wide metric. Per-venue, per-class and per-side metrics (``stem.kind.member``)
    are left to the figures and ``summary.csv``."""
    present = list(dict.fromkeys(summary["metric"]))
    available = set(present)
    info = summary.drop_duplicates("metric").set_index("metric")
    cells: dict[str, dict[str, dict]] = {}
    for row in summary.to_dict("records"):
        cells.setdefault(row["metric"], {})[row["rule_set"]] = _cell(row)
    head = []
    for title, rows in findings.SECTIONS:
        chosen = [(m, text) for m, text in rows if m in available]
        if chosen:
            head.append({"title": title, "rows": _rows(cells, info, chosen, order)})
    other = [(m, info.loc[m, "description"]) for m in present if "." not in m and m not in findings.LABELS]
    return head, ([{"title": "Other metrics", "rows": _rows(cells, info, other, order)}] if other else [])


def column_blocks(order: list[str], baseline: str, per: int = COLUMNS_PER_TABLE) -> list[list[str]]:
    """Rule sets split into blocks of table columns, each block led by the baseline."""
    others = [r for r in order if r != baseline]
    n = max(per - 1, 1)
    return [[baseline, *others[i:i + n]] for i in range(0, len(others), n)] or [[baseline]]


def table(res: Results) -> dict:
    """The headline metrics, side by side, in blocks of columns: ``blocks`` for the full
    cells on screen, ``print_blocks`` for the one-line cells on paper."""
    return {"sections": side_by_side(res.summary, res.order)[0], "blocks": column_blocks(res.order, res.baseline),
            "print_blocks": column_blocks(res.order, res.baseline, COLUMNS_PER_APPENDIX)}


def appendix(res: Results) -> dict:
    """Every other market-wide metric, in wider blocks of one-line cells."""
    return {"appendix": side_by_side(res.summary, res.order)[1],
            "appendix_blocks": column_blocks(res.order, res.baseline, COLUMNS_PER_APPENDIX)}


# ------------------------------------------------------------------------ figures
def numbered_figures(res: Results, section: str) -> list[dict]:
    """The figures of ``figures.FIGURES`` that ``section`` shows (anchor id, number, title,
    caption, source, PNG data URI and the CSV of its data beside the brief), numbered in
    reading order: by the position of their section in :data:`SECTIONS`, then the registry's.
    A figure naming a section that is not registered is shown with the other figures."""
    rank = {s.name: i for i, s in enumerate(SECTIONS)}
    where = {f.id: f.section if f.section in rank else "figures" for f in figures.draw_all(res)}
    drawn = sorted(figures.draw_all(res), key=lambda f: rank.get(where[f.id], len(rank)))  # stable: registry order
    return [{"id": f.id, "number": n, "title": f.title, "caption": f.caption, "source": f.source, "uri": f.uri,
             "csv": figures.csv_name(f.id)} for n, f in enumerate(drawn, 1) if where[f.id] == section]


def figure_list(res: Results) -> dict:
    """The figures the figure section shows (see :func:`numbered_figures`)."""
    return {"figures": numbered_figures(res, "figures")}


def robust(res: Results) -> dict:
    """The "How robust" section: the tornado figure (sensitivity.csv), the size of its runs,
    the rule sets it covers and those it does not, and whether the ranking of rule sets
    holds on a second scenario (ranking.csv: one row per rule set, one column per core
    outcome); what is absent is said."""
    from policylab.inputs.assumptions import ASSUMPTIONS, UNRANGED

    arms = [r for r in res.order if r != res.baseline]
    sens = res.sensitivity if res.sensitivity is not None and not res.sensitivity.empty else None
    varied = set(sens["assumption"]) if sens is not None else set()
    covered = set(sens["rule_set"]) if sens is not None else set()
    rank = res.ranking if res.ranking is not None and not res.ranking.empty else None
    outcomes, rows = [], []
    if rank is not None:
        metrics = list(dict.fromkeys(rank["metric"]))
        outcomes = [figures.outcome_label(m) for m in metrics]
        cells = {(r.rule_set, r.metric): r for r in rank.itertuples()}
        for arm in [a for a in arms if any((a, m) in cells for m in metrics)]:
            row = []
            for m in metrics:
                r = cells.get((arm, m))
                row.append({"text": f"{int(r.rank) or '-'} \u2192 {int(r.second_rank) or '-'}", "holds": bool(r.holds)}
                           if r is not None else {"text": "-", "holds": False})
            rows.append({"arm": arm, "cells": row})
    return {"robust": {
        "figures": numbered_figures(res, "robust"),
        "size": _size(sens), "comparison_seeds": len(res.manifest["seeds"]),
        "assumptions": [f"{a.label} ({a.span})" for a in ASSUMPTIONS if a.name in varied],
        "unranged": list(UNRANGED),
        "varied_for": [a for a in arms if a in covered], "not_varied_for": [a for a in arms if a not in covered],
        "outcomes": outcomes, "ranking": rows, "ranking_size": _size(rank),
        "second_scenario": str(rank["second_scenario"].iloc[0]) if rank is not None else "",
        "held": sum(c["holds"] for r in rows for c in r["cells"]), "cases": sum(len(r["cells"]) for r in rows)}}


def _size(table: pd.DataFrame | None) -> str:
    """'N seeds of T traders' from the seeds and traders columns of sensitivity.csv or ranking.csv."""
    if table is None:
        return ""
    seeds, traders = int(table["seeds"].iloc[0]), int(table["traders"].iloc[0])
    return f"{seeds} seed{'s' if seeds != 1 else ''} of {traders:,} traders"


# ------------------------------------------------------------------------ rule sets
def _safe_url(url) -> str | None:
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def _module_name(m: dict) -> str:
    """A module as the rule-set texts name it: its title, with its id when it has one."""
    title = m.get("title") or m.get("module", "")
    return f"{title} ({m['id']})" if m.get("id") else title


def rule_set_view(name: str, info: dict, warnings: list[str], colour: str, runs: int, failed: int,
                  catalogue: dict | None = None) -> dict:
    """A rule set for the template: its description, the modules it adds (those it inherits
    from its base are named in ``inherited``, those it repeals in ``removed``, looked up in
    ``catalogue``: rule_sets.json by name), sources (links only for http(s))."""
    parts = info.get("composed_of") or [info]
    modules = [{"module": m.get("module", ""), "title": m.get("title", ""), "source": public(m.get("source", "")),
                "params": {k: odd.value(k, v) for k, v in (m.get("params") or {}).items()},
                "given": m.get("given", []),
                "target": "; ".join(f"{k.replace('_', ' ')}: {odd.value(k, v)}"
                                    for k, v in (m.get("target") or {}).items()) or "every venue and trader"}
               for p in parts for m in summary.own_modules(p)]
    own = {id(m) for p in parts for m in summary.own_modules(p)}
    inherited, removed = [], []
    for p in parts:
        base_info = (catalogue or {}).get(p.get("base") or "") or {}
        kept = [m for m in p.get("modules") or [] if isinstance(m, dict) and id(m) not in own]
        if kept:
            inherited.append({"base": p.get("base") or kept[0].get("from", ""),
                              "modules": [_module_name(m) for m in kept]})
        by_id = {m.get("id"): m for m in base_info.get("modules") or [] if isinstance(m, dict)}
        if p.get("repealed"):
            removed.append({"base": p.get("base", ""),
                            "modules": [_module_name(by_id[i]) if i in by_id else str(i) for i in p["repealed"]]})
    sources = [{"citation": public(s.get("citation", "")), "url": _safe_url(s.get("url"))}
               for p in parts for s in p.get("sources") or []]
    return {"name": name, "title": info.get("title", name), "description": public(info.get("description", "")),
            "jurisdiction": info.get("jurisdiction", ""), "effective_date": str(info.get("effective_date", "")),
            "composed_of": [p.get("name", "") for p in info.get("composed_of") or []],
            "params": {k: odd.value(k, v) for k, v in (info.get("params") or {}).items()},
            "modules": modules, "inherited": inherited, "removed": removed, "sources": sources,
            "warnings": warnings, "colour": colour, "runs": runs, "failed": failed}


def rule_sets(res: Results) -> dict:
    """Each rule set: description, modules and parameters, sources, runs finished and failed."""
    colours = figures.palette(res.order, res.baseline)
    counts = res.runs.drop_duplicates(["rule_set", "seed"]).groupby("rule_set").size()
    failed_counts = res.failed.groupby("rule_set").size()
    warnings = res.manifest.get("warnings") or {}
    return {"rule_sets": [rule_set_view(r, res.rule_sets[r], warnings.get(r, []), colours[r], int(counts.get(r, 0)),
                                        int(failed_counts.get(r, 0)), res.rule_sets) for r in res.order]}


# ------------------------------------------------------------------------ methodology, limitations
def methods(res: Results) -> dict:
    """The ODD methodology tables and texts for the scenario that was run."""
    return {"odd": odd.methodology(res.scenario, res.manifest, res.labels)}


def limitations(res: Results) -> dict:
    """Fixed text; it uses only the shared seeds and traders."""
    return {}


# ------------------------------------------------------------------------ reproducibility
def _seed_text(seeds: list[int]) -> str:
    """Seeds as ranges: ``0–29`` or ``1, 3, 5–7``."""
    out, run = [], []
    for s in sorted(seeds):
        if run and s == run[-1] + 1:
            run.append(s)
            continue
        if run:
            out.append(f"{run[0]}\u2013{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
        run = [s]
    if run:
        out.append(f"{run[0]}\u2013{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
    return ", ".join(out)


def reproducibility(res: Results) -> dict:
    """What reproduces the results, as label-value pairs from the manifest."""
    m = res.manifest
    per_run = [r["seconds"] for r in m.get("run_seconds", []) if isinstance(r, dict) and "seconds" in r]
    rows = [
        ("command", m.get("command") or "not recorded (Python API)"),
        ("package version", f"{m.get('package', 'policylab')} {m.get('version', 'not recorded')}"),
        ("git revision", m.get("git_revision") or "none (not run from a git checkout)"),
        ("configuration hash", m.get("config_hash") or "not recorded"),
        ("scenario", f"{res.scenario.get('name')} ({res.scenario.get('title')})"),
        ("baseline", res.baseline),
        ("seeds", f"{_seed_text(m.get('seeds', []))} ({len(m.get('seeds', []))} per rule set)"),
        ("simulated traders per run", f"{m['traders']:,}" if isinstance(m.get("traders"), int) else "not recorded"),
        ("backend", f"{m.get('backend', 'not recorded')}, {m.get('workers', '?')} worker(s)"),
        ("started", str(m.get("started", "not recorded"))),
        ("finished", str(m.get("finished", "not recorded"))),
        ("wall time", f"{m['wall_seconds']:,.1f} s" if isinstance(m.get("wall_seconds"), (int, float))
         else "not recorded"),
    ]
    if per_run:
        rows.append(("time per run", f"median {statistics.median(per_run):,.2f} s, total {sum(per_run):,.1f} s "
                                     f"over {len(per_run)} runs"))
    rows += [("platform", f"{m.get('platform', 'not recorded')}, Python {m.get('python', '?')}"),
             ("runs", f"{m.get('finished_runs', len(res.runs[['rule_set', 'seed']].drop_duplicates()))} finished of "
                      f"{m.get('runs', '?')}, {len(res.failed)} failed"),
             ("results folder", str(res.folder.resolve()))]
    return {"reproducibility": rows}


# ------------------------------------------------------------------------ calibration
def _target_value(x: float, unit: str) -> str:
    """A calibration number in its target's style: fractions in %, money in $, ratios as x."""
    if x is None or math.isnan(x):
        return "n/a"
    if unit == "fraction":
        return f"{100 * x:.1f}%"
    if unit == "USD":
        return findings.usd(x)
    if unit == "ratio":
        return f"{x:.2f}x"
    return f"{x:.3g}"


def _target_range(t: dict) -> str:
    """A target's range in the same style as the model's numbers (yes/no targets as yes or no)."""
    text = str(t["range"])
    if t["unit"] == "yes/no":
        return text
    lo, hi = t.get("lo"), t.get("hi")
    if lo is None and hi is None:
        return text
    if lo is not None and hi is not None:
        return f"{_target_value(lo, t['unit'])} to {_target_value(hi, t['unit'])}"
    return f"at least {_target_value(lo, t['unit'])}" if lo is not None else f"at most {_target_value(hi, t['unit'])}"


def calibration_check(res: Results) -> list[dict]:
    """The scenario's calibration targets on the baseline's runs, when the baseline is the
    2025 status quo the targets describe (empty otherwise); every number formatted in its
    target's unit, yes/no targets as yes/no (with the share of runs where it holds)."""
    name = res.scenario.get("name")
    if res.baseline != "status-quo-2025" or name not in calibration.TARGETS:
        return []
    base = res.runs[res.runs["rule_set"] == res.baseline]
    if base.empty:
        return []
    wide = base.pivot_table(index="seed", columns="metric", values="value", aggfunc="first")
    bounds = {t.name: (t.lo, t.hi) for t in calibration.TARGETS[name]}
    rows = []
    for t in calibration.evaluate(name, wide).to_dict("records"):
        t["lo"], t["hi"] = bounds.get(t["target"], (None, None))
        t["range_text"] = _target_range(t)
        if t["unit"] == "yes/no":
            values = [calibration_value(name, t["target"], row) for _, row in wide.iterrows()]
            share = sum(1 for x in values if x == 1) / len(values) if values else float("nan")
            t["model"] = "yes" if t["median"] >= 0.5 else "no"
            t["band"] = f"yes in {100 * share:.0f}% of runs"
        else:
            t["model"] = _target_value(t["median"], t["unit"])
            t["band"] = f"{_target_value(t['band_lo'], t['unit'])} to {_target_value(t['band_hi'], t['unit'])}"
        rows.append(t)
    return rows


def calibration_value(scenario: str, target: str, row: pd.Series) -> float:
    """One target's value on one run's metrics row."""
    return float(next(t for t in calibration.TARGETS[scenario] if t.name == target).value(row))


def calibration_section(res: Results) -> dict:
    """This comparison's baseline against its scenario's targets, and the validation record
    of every historical scenario (policylab.validation.record)."""
    return {"calibration": calibration_check(res), "validation_record": record.summary(record.read())}


SECTIONS: tuple[Section, ...] = (
    Section("cover", "partials/cover.html", cover),
    Section("findings", "partials/findings.html", findings_section),
    Section("affected", "partials/affected.html", affected),
    Section("table", "partials/table.html", table),
    Section("figures", "partials/figures.html", figure_list),
    Section("robust", "partials/robust.html", robust),
    Section("rule_sets", "partials/rule_sets.html", rule_sets),
    Section("limitations", "partials/limitations.html", limitations),
    Section("glossary", "partials/glossary.html", glossary),
    Section("reproducibility", "partials/reproducibility.html", reproducibility),
    Section("appendix", "partials/appendix.html", appendix),
    Section("calibration", "partials/calibration.html", calibration_section),
    Section("methods", "partials/methods.html", methods),
)


def register(section: Section) -> None:
    """Add ``section`` at the end of :data:`SECTIONS` at run time (what one more line in the
    tuple does in the package); a name already registered is a ValueError."""
    global SECTIONS
    if any(s.name == section.name for s in SECTIONS):
        raise ValueError(f"brief section {section.name!r} is already registered; allowed: a new name")
    SECTIONS = (*SECTIONS, section)


# ------------------------------------------------------------------------ the whole context
def plain(value, path: str = "context"):
    """``value`` as plain data for a sandboxed template: dataclasses become dicts, NumPy
    scalars Python numbers; anything else that is not str, int, float, bool, None, list,
    tuple or dict (with str keys) raises TypeError naming where it sits."""
    if value is None or isinstance(value, (str, bool, int, float)) and not isinstance(value, np.generic):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{path}: key {bad[0]!r} is not a string")
        return {k: plain(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v, f"{path}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"{path}: {type(value).__name__} is not plain data; a template context holds only str, int, "
                    "float, bool, None, lists, tuples and dicts")


def context(res: Results, title: str | None = None, paper: str = "a4") -> dict:
    """Everything the templates use, by name, with every number already formatted: the
    shared keys, ``brief_sections`` (name and partial of each section, for ``brief.html``'s
    loop), then each section's keys in registry order; a section may not reuse a key."""
    ctx = shared(res, title, paper)
    ctx["brief_sections"] = [{"name": s.name, "partial": s.partial} for s in SECTIONS]
    for section in SECTIONS:
        part = section.build(res)
        clash = sorted(ctx.keys() & part.keys())
        if clash:
            raise ValueError(f"brief section {section.name!r} sets {', '.join(clash)}, already in the context")
        ctx.update(part)
    return plain(ctx)

"""Page 1 and the findings: the core outcomes of every rule set, read neutrally.

The core outcomes (:data:`policylab.metrics.headlines.CORE_OUTCOMES`) are the columns of page 1's matrix, in a fixed
order that every sentence follows too (never "improvements first"): liquidated notional,
index drawdown, retail losses, accounts that quit, moved or were blocked, the offshore
share of the targeted jurisdiction's activity and voluntary volume. A column whose
preferred metric is not in ``summary.csv`` falls back to the nearest one there and says
so in its label (``volume_usd.voluntary`` -> ``volume_usd``, "total, forced included";
``offshore_volume_share.jurisdiction.<J>`` -> ``offshore_volume_share``, "all traders").

Family members (per jurisdiction, per leverage group, per venue) are found from the
metric names present, ``<stem>.<over>.<member>`` with ``over`` a value of
:data:`policylab.metrics.api.OVER` (its label), ordered as :mod:`policylab.names`
declares them when it does; nothing here lists them.

An arm is *flagged* (:func:`flags`) when a run of it failed, when ``summary.csv`` counts
``flagged_runs`` for it or when ``runs.parquet`` records ``invariant_violations`` for it;
a flagged arm is named as such and never becomes a finding. A *repeal* arm
(:func:`is_repeal`) is read the other way round: its numbers are what the rule it
removes does, baseline minus repeal, and every sentence says the sign was flipped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from policylab import names
from policylab.brief import findings as words
from policylab.brief.results import Results
from policylab.metrics.headlines import CORE_OUTCOMES, resolve

RELIABLE_SEEDS = 10  # below this many seeds, paired intervals are called unreliable
JURISDICTIONS = tuple(j for j in names.JURISDICTIONS if j != "other")  # what a rule set can target


# ------------------------------------------------------------------------ arms
def is_repeal(info: dict | None) -> bool:
    """Whether a rule set (its ``rule_sets.json`` entry) is marked as a repeal: a true
    ``repeal`` field (``true``, ``"yes"``, ``"true"`` or the name of what it repeals) on
    the rule set or on any rule set it is composed of. The one place the marker is read."""
    if not isinstance(info, dict):
        return False
    mark = info.get("repeal")
    if isinstance(mark, str):
        marked = mark.strip().lower() not in ("", "no", "false", "0")
    else:
        marked = bool(mark) if isinstance(mark, (bool, int)) else False
    return marked or any(is_repeal(p) for p in info.get("composed_of") or [] if isinstance(p, dict))


def repeals(res: Results) -> set[str]:
    """Arms marked as repeals, from rule_sets.json or the manifest's ``repeals`` list."""
    listed = res.manifest.get("repeals") or []
    return {r for r in res.order if r != res.baseline and (is_repeal(res.rule_sets.get(r)) or r in listed)}


def own_modules(info: dict) -> list[dict]:
    """The modules a rule set adds to its base: those whose ``from`` names the rule set
    itself (or is absent, in results written before modules recorded where they came
    from); the base's modules it inherits are left out."""
    name = info.get("name")
    return [m for m in info.get("modules") or [] if isinstance(m, dict) and m.get("from", name) in (name, "", None)]


def targets(info: dict, catalogue: dict | None = None) -> list[str]:
    """Jurisdictions a rule set targets, in :data:`JURISDICTIONS` order: its
    ``jurisdiction``, the target jurisdictions and blocked jurisdictions of the modules it
    adds (not of those it inherits from its base) and, for a repeal, those of the base's
    modules it removes (``repealed`` ids, looked up in ``catalogue``: rule_sets.json by
    name). Composed rule sets count every part. Empty for a global rule set."""
    found: list[str] = []
    parts = [info, *[p for p in info.get("composed_of") or [] if isinstance(p, dict)]]
    for p in parts:
        found.append(str(p.get("jurisdiction") or ""))
        base = (catalogue or {}).get(p.get("base") or "") or {}
        removed = set(p.get("repealed") or [])
        for m in [*own_modules(p), *[m for m in base.get("modules") or [] if m.get("id") in removed]]:
            found += [str(j) for j in ((m.get("target") or {}).get("jurisdictions") or [])]
            found += [str(j) for j in ((m.get("params") or {}).get("blocked") or [])]
    return [j for j in JURISDICTIONS if j in found]


def flags(res: Results) -> dict[str, str]:
    """Arm -> why it is flagged (failed runs, flagged runs, invariant violations); unflagged arms are absent."""
    why: dict[str, list[str]] = {}
    for arm, n in res.failed.groupby("rule_set").size().items():
        why.setdefault(arm, []).append(f"{n} failed run{'s' if n != 1 else ''}")
    if "flagged_runs" in res.summary.columns:
        counts = pd.to_numeric(res.summary["flagged_runs"], errors="coerce").fillna(0)
        for arm, n in counts.groupby(res.summary["rule_set"]).max().items():
            if n > 0:
                why.setdefault(arm, []).append(f"{int(n)} flagged run{'s' if n != 1 else ''}")
    runs = res.runs
    if "invariant_violations" in runs.columns:
        bad = runs[pd.to_numeric(runs["invariant_violations"], errors="coerce").fillna(0) > 0]
    else:
        bad = runs[(runs["metric"] == "invariant_violations") & (runs["value"] > 0)]
    for arm, seeds in bad.groupby("rule_set")["seed"].nunique().items():
        detail = ""
        if "invariant_detail" in bad.columns:
            first = [d for d in bad.loc[bad["rule_set"] == arm, "invariant_detail"].astype(str) if d.strip()]
            detail = f", first: {first[0].split(';')[0].strip()}" if first else ""
        why.setdefault(arm, []).append(f"invariant violations in {seeds} run{'s' if seeds != 1 else ''}{detail}")
    return {arm: ", ".join(parts) for arm, parts in why.items()}


# ------------------------------------------------------------------------ families
def _natural(text: str) -> list:
    """Sort key reading digit runs as numbers: "2-5" before "10-25" before "100+"."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t]


def members(metrics, stem: str, over: str) -> list[str]:
    """Members of the family ``<stem>.<over>.<member>`` among ``metrics``, in the order
    :mod:`policylab.names` declares them (JURISDICTIONS, LEVERAGE_GROUPS) when it does,
    else in natural order (numbers by value)."""
    pattern = re.compile(rf"{re.escape(stem)}\.{re.escape(over)}\.(.+)\Z")
    found = {m.group(1) for m in map(pattern.match, metrics) if m}
    declared = {"jurisdiction": names.JURISDICTIONS, "leverage_group": getattr(names, "LEVERAGE_GROUPS", ())}
    rank = {m: i for i, m in enumerate(declared.get(over, ()))}
    return sorted(found, key=lambda m: (rank.get(m, len(rank)), _natural(m)))


# ------------------------------------------------------------------------ paired changes
@dataclass(frozen=True)
class Change:
    """A paired change of one metric for one arm, the way a reader sees it: for a repeal,
    baseline minus repeal (``flipped``). ``clear``: the 90% interval excludes zero."""

    metric: str
    unit: str
    label: str
    before: float  # the level without the rule (baseline; for a repeal, the repeal arm)
    after: float
    diff: float
    lo: float
    hi: float
    status: str  # better, worse or "" (no clear change, or a neutral metric)
    flipped: bool

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.lo) or math.isnan(self.hi))

    @property
    def clear(self) -> bool:
        return self.has_interval and self.lo * self.hi > 0

    @property
    def relative(self) -> str:
        """The change relative to the level without the rule, for money and counts that are
        positive without the rule and not negative with it (never for a level that changes
        sign or starts at zero, such as a net profit and loss), or "" ."""
        if self.unit in ("USD", *words.COUNTS) and self.before > 0 and self.after >= 0:
            return f"{words._num(100 * self.diff / abs(self.before), 0).replace('-', words.MINUS)}%" \
                if abs(self.diff / self.before) >= 0.005 else "0%"
        return ""

    def text(self, interval: bool = True) -> str:
        """``+$1.20B (+25%; 90% interval +$0.90B to +$1.50B)``."""
        inside = [_short(self)] if self.relative else []
        if interval and self.has_interval:
            inside.append(f"90% interval {words.fmt_range(self.lo, self.hi, self.unit, diff=True)}")
        return words.fmt_diff(self.diff, self.unit) + (f" ({'; '.join(inside)})" if inside else "")


FLIP = {"better": "worse", "worse": "better"}


def change(s: pd.DataFrame, arm: str, metric: str, label: str, flipped: bool) -> Change | None:
    """The paired change of ``metric`` under ``arm`` (flipped for a repeal), or None if absent."""
    if (arm, metric) not in s.index:
        return None
    r = s.loc[(arm, metric)]
    d, lo, hi = float(r["diff_mean"]), float(r["diff_lo"]), float(r["diff_hi"])
    status = r["improvement"] if r["improvement"] in words.SIGNIFICANT else ""
    before, after = float(r["baseline"]), float(r["mean"])
    if flipped:
        d, lo, hi, status, before, after = -d, -hi, -lo, FLIP.get(status, ""), after, before
    return Change(metric, r["unit"], label, before, after, d, lo, hi, status, flipped)


@dataclass
class View:
    """Everything page 1 and the findings read, computed once from a results folder."""

    res: Results
    s: pd.DataFrame  # summary indexed by (rule_set, metric)
    available: set[str]
    arms: list[str]  # rule sets other than the baseline, comparison order
    seeds: int
    flagged: dict[str, str]
    repeal: set[str]

    @classmethod
    def of(cls, res: Results) -> View:
        summ = res.summary
        return cls(res, summ.set_index(["rule_set", "metric"]).sort_index(), set(summ["metric"]),
                   [r for r in res.order if r != res.baseline], len(res.manifest.get("seeds", [])), flags(res),
                   repeals(res))

    def targets(self, arm: str) -> list[str]:
        return targets(self.res.rule_sets.get(arm) or {}, self.res.rule_sets)

    def columns(self) -> list[dict]:
        """The columns present for at least one arm, with the label each arm's metric gives them."""
        out = []
        for col in CORE_OUTCOMES:
            per = {arm: resolve(col, self.available, self.targets(arm)) for arm in self.arms}
            if any(per.values()):
                labels = list(dict.fromkeys(v[1] for v in per.values() if v))
                out.append({"key": col.key, "label": col.label, "labels": labels, "metric": per,
                            "fallback": [lab for lab in labels if lab != col.choices[0][1].format(J="")]
                            if "{J}" not in col.choices[0][0] else
                            [lab for lab, m in ((p[1], p[0]) for p in per.values() if p) if ".jurisdiction." not in m]})
        return out

    def change(self, arm: str, metric: str, label: str) -> Change | None:
        return change(self.s, arm, metric, label, arm in self.repeal)

    def core(self, arm: str) -> list[Change]:
        """The arm's changes in the core outcomes, in column order."""
        out = []
        for col in CORE_OUTCOMES:
            found = resolve(col, self.available, self.targets(arm))
            c = self.change(arm, *found) if found else None
            if c is not None:
                out.append(c)
        return out

    def who(self, arm: str) -> str:
        """How an arm is named in a sentence (a repeal names the rule it removes)."""
        return f"the rule removed by {arm}" if arm in self.repeal else arm


def _mark(c: Change, seeds: int) -> str:
    """A direction mark: up or down when the change is clear (one seed: by its sign), ≈ otherwise."""
    if seeds >= 2 and not c.clear or c.diff == 0 or math.isnan(c.diff):
        return "\u2248"
    return "\u25b2" if c.diff > 0 else "\u25bc"


def _whose(metric: str) -> str:
    """Whose outcome a matrix cell shows when its column mixes metrics: ``EU traders`` for
    ``<stem>.jurisdiction.EU``, else ``all traders``."""
    m = re.search(r"\.jurisdiction\.([^.]+)$", metric)
    return f"{m.group(1)} traders" if m else "all traders"


def matrix(v: View) -> dict:
    """Page 1's matrix: one row per arm, one cell per core outcome present."""
    cols = v.columns()
    rows = []
    for arm in v.arms:
        cells = []
        for col in cols:
            found = col["metric"][arm]
            c = v.change(arm, *found) if found else None
            if c is None:
                cells.append({"diff": "not in this run", "interval": "", "mark": "", "status": "", "label": ""})
                continue
            interval = ([words.fmt_diff(c.lo, c.unit), words.fmt_diff(c.hi, c.unit)] if c.has_interval else [])
            cells.append({"diff": words.fmt_diff(c.diff, c.unit), "relative": _short(c) if c.relative else "",
                          "interval": interval, "mark": _mark(c, v.seeds), "status": c.status if c.clear else "",
                          "label": _whose(found[0]) if len(col["labels"]) > 1 else ""})
        rows.append({"arm": arm, "title": v.res.titles[arm], "repeal": arm in v.repeal,
                     "flag": v.flagged.get(arm, ""), "cells": cells})
    present = {c["key"] for c in cols}
    notes = [f"{c['label']}: {', '.join(dict.fromkeys(c['fallback']))}" for c in cols if c["fallback"]]
    missing = [c.label for c in CORE_OUTCOMES if c.key not in present]
    if missing:
        notes.append(f"not in this run: {_join(missing)}")
    return {"columns": [{"key": c["key"], "label": c["label"]} for c in cols], "rows": rows, "notes": notes}


# ------------------------------------------------------------------------ sentences
def _join(parts: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c`` ("" for none)."""
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _short(c: Change) -> str:
    """The size of a change in a list: relative for money and counts (``+25%``), else the difference."""
    rel = c.relative
    if rel:
        return rel if rel.startswith(words.MINUS) or rel == "0%" else "+" + rel
    return words.fmt_diff(c.diff, c.unit)


def _spread(changes: list[Change]) -> str:
    """The sizes of several changes as one range, smallest first: ``+5% to +26%`` or ``−0.4 pp``."""
    ordered = sorted(changes, key=lambda c: abs(c.diff))
    ends = list(dict.fromkeys([_short(ordered[0]), _short(ordered[-1])]))
    flipped = any(c.flipped for c in changes)
    return " to ".join(ends) + (", a repeal read as baseline minus repeal" if flipped else "")


def _clause(v: View, arm: str) -> str:
    """An arm's clear core changes in column order, named as page 1's matrix names its
    columns (``liquidated notional −23%, index drawdown −2.1 pp``; a targeted jurisdiction's
    offshore share as ``offshore share of US volume``), or "" when none is clear."""
    return ", ".join(f"{_short_label(c)} {_short(c)}" for c in v.core(arm) if c.clear)


def _short_label(c: Change) -> str:
    """A core change's column label when its metric is the column's preferred one (without
    a jurisdiction), else its own label (``offshore share of US volume``, a fallback's)."""
    col = next((col for col in CORE_OUTCOMES if col.choices[0][0] == c.metric), None)
    return col.label if col is not None else c.label


BOTTOM_LINE_GROUPS = (  # (which arms, how the sentence opens): a fixed order of kinds of rule set
    ("global", "Rule sets that apply everywhere"),
    ("national", "Rule sets that target jurisdictions"),
    ("repeal", "What the rules in force do (baseline minus each repeal, signs flipped)"),
)


def bottom_line(v: View) -> list[str]:
    """Three to six plain sentences covering every arm once, in a fixed order: one
    sentence per kind of rule set present (:data:`BOTTOM_LINE_GROUPS`: global proposals,
    proposals targeting jurisdictions, repeals read as what the rule they remove does), each
    naming its arms in comparison order with their clear core changes in column order (no
    selection, no "benefit/cost" framing); then one sentence for the rest: outcomes no arm
    clearly changes, arms that clearly change none, flagged arms."""
    ok = [a for a in v.arms if a not in v.flagged]
    if v.seeds < 2:
        out = [f"With one seed per rule set there are no intervals, so this brief states no change as clear; "
               f"the matrix shows single-run differences for {_join(ok) or 'no rule set'}.",
               "A single run mixes a rule's effect with chance: the same rule on another seed can move the other way.",
               f"Run {RELIABLE_SEEDS} or more seeds per rule set before reading any of these differences."]
        if v.flagged:
            out.append(f"Flagged and left out: {_join([f'{a} ({v.flagged[a]})' for a in v.flagged])}.")
        return out
    clauses = {a: _clause(v, a) for a in ok}
    kind = {a: "repeal" if a in v.repeal else "national" if v.targets(a) else "global" for a in ok}
    sentences = []
    for key, opening in BOTTOM_LINE_GROUPS:
        parts = [f"{v.who(a)} changes {clauses[a]}" for a in ok if kind[a] == key and clauses[a]]
        if parts:
            sentences.append(f"{opening}: " + "; ".join(parts) + ".")
    labels = {col.label: col for col in CORE_OUTCOMES}
    moved = {c.metric for a in ok for c in v.core(a) if c.clear}
    present = {col.label: [m for a in ok if (m := resolve(col, v.available, v.targets(a)))] for col in CORE_OUTCOMES}
    quiet = [label for label, found in present.items() if found and not any(m in moved for m, _ in found)]
    still = [v.who(a) for a in ok if not clauses[a]]
    rest = ["a change not named has a 90% interval that includes zero"]
    if quiet:
        rest.append(f"no rule set clearly changes {_join(quiet)}")
    if still:
        rest.append(f"{_join(still)} clearly change{'s' if len(still) == 1 else ''} none of these outcomes")
    if v.flagged:
        rest.append(f"flagged, so not read here: {_join([f'{a} ({v.flagged[a]})' for a in v.flagged])}")
    text = "; ".join(rest) + "."
    sentences.append(text[0].upper() + text[1:])
    if len(sentences) < 3:
        sentences.append(f"Changes are paired differences from {v.res.baseline} on the same {v.seeds} seeds.")
    return sentences


def statistics_note(seeds: int) -> str:
    """What the number of seeds allows (empty from RELIABLE_SEEDS up)."""
    if seeds < 2:
        return "One seed per rule set: no intervals can be computed, so no change is called clear."
    if seeds < RELIABLE_SEEDS:
        return (f"Only {seeds} seeds per rule set: the 90% intervals are unreliable below {RELIABLE_SEEDS} seeds "
                f"(too narrow or too wide); treat every verdict as provisional.")
    return ""


# ------------------------------------------------------------------------ mechanisms
def _largest(v: View, arm: str, stem: str, over: str, n: int = 1) -> list[tuple[str, Change]]:
    """The ``n`` members of ``<stem>.<over>.*`` whose changes are largest (non-zero), largest first."""
    found = [(m, v.change(arm, f"{stem}.{over}.{m}", m)) for m in members(v.available, stem, over)]
    found = [(m, c) for m, c in found if c is not None and not math.isnan(c.diff) and c.diff]
    return sorted(found, key=lambda mc: -abs(mc[1].diff))[:n]


def mechanism(v: View, arm: str) -> str:
    """One line: where the change in liquidated notional happens (venue, jurisdiction,
    leverage group) and which jurisdiction's traders leave, from the families present."""
    parts = []
    venues = _largest(v, arm, "liquidated_usd", "venue", 2)
    if venues:
        parts.append("liquidations change most on " + _join(
            [f"{v.res.venue_label(m)} ({words.fmt_diff(c.diff, c.unit)})" for m, c in venues]))
    lev = _largest(v, arm, "liquidated_usd", "leverage_group")
    if lev:
        m, c = lev[0]
        parts.append(f"by leverage chosen, most in the {m}x group ({words.fmt_diff(c.diff, c.unit)})")
    for stem, what in (("accounts_quit", "stop trading"), ("accounts_blocked", "are blocked"),
                       ("accounts_moved", "move venue")):
        j = _largest(v, arm, stem, "jurisdiction")
        if j and j[0][1].clear:
            m, c = j[0]
            parts.append(f"{words.fmt_change(c.diff, c.unit)} {'more' if c.diff > 0 else 'fewer'} {m} accounts {what}")
            break
    if not parts:
        cls = _largest(v, arm, "liquidated_usd", "class")
        if cls:
            m, c = cls[0]
            parts.append(f"liquidations change most among {m} accounts ({words.fmt_diff(c.diff, c.unit)})")
    if not parts:
        return "The run has no breakdown by venue, jurisdiction or leverage group to show where this happens."
    return "Where: " + "; ".join(parts) + "."


def arm_findings(v: View) -> list[dict]:
    """One finding per arm, in comparison order: its clear core changes in column order,
    the core outcomes it does not clearly change, and its mechanism; a flagged arm gets
    only its flag."""
    out = []
    for arm in v.arms:
        title = v.res.titles[arm]
        if arm in v.flagged:
            out.append({"arm": arm, "title": title, "flag": v.flagged[arm], "text": "", "mechanism": "",
                        "repeal": arm in v.repeal})
            continue
        core = v.core(arm)
        if v.seeds < 2:
            text = "Single-run differences (no interval): " + "; ".join(f"{c.label} {c.text(False)}" for c in core)
        else:
            clear = [f"{c.label} {c.text()}" for c in core if c.clear]
            unclear = [c.label for c in core if not c.clear]
            text = ("; ".join(clear) + "." if clear else "No core outcome changes clearly.")
            if clear and unclear:
                text += f" No clear change in {_join(unclear)}."
        if arm in v.repeal:
            text = f"What the rule does, baseline minus {arm} (signs flipped from the repeal's own run): " + text
        out.append({"arm": arm, "title": title, "flag": "", "text": text, "mechanism": mechanism(v, arm),
                    "repeal": arm in v.repeal})
    return out


# ------------------------------------------------------------------------ who is affected
AFFECTED_COLUMNS = (  # stem of a `.jurisdiction.` family, column label: a national rule set's targeted jurisdiction
    ("accounts_moved", "moved venue"), ("accounts_quit", "stopped trading"), ("accounts_blocked", "blocked"),
    ("domestic_volume_usd", "volume on domestic venues"), ("offshore_volume_usd", "volume offshore"),
    ("offshore_volume_share", "offshore share of volume"), ("liquidated_usd", "liquidated notional"),
    ("liquidated_accounts", "accounts liquidated"), ("retail_loss_usd", "retail losses"),
    ("pnl_usd", "net profit and loss"),
)
JURISDICTION_COLUMNS = (  # stem, column label: a global rule set's one row per jurisdiction
    ("accounts_moved", "moved venue"), ("accounts_quit", "stopped trading"), ("accounts_blocked", "blocked"),
    ("offshore_volume_share", "offshore share of volume"), ("liquidated_usd", "liquidated notional"),
    ("retail_loss_usd", "retail losses"), ("pnl_usd", "net profit and loss"),
)
LEVERAGE_ROWS = (("liquidated_usd", "liquidated notional"), ("retail_loss_usd", "retail losses"),
                 ("pnl_usd", "net profit and loss"))


def _cell(c: Change | None) -> dict:
    """One change as a compact table cell: the difference, its relative size, its interval (two ends)."""
    if c is None:
        return {"change": "n/a", "relative": "", "status": "", "interval": []}
    return {"change": words.fmt_diff(c.diff, c.unit), "relative": _short(c) if c.relative else "",
            "status": c.status if c.clear else "",
            "interval": [words.fmt_diff(c.lo, c.unit), words.fmt_diff(c.hi, c.unit)] if c.has_interval else []}


def unchanged(c: Change | None) -> bool:
    """No change at all: the difference is zero on every seed (or, with one seed, on the one)."""
    return c is not None and c.diff == 0 and (not c.has_interval or c.lo == c.hi == 0)


def leverage_group_label(group: str) -> str:
    """``2-5`` -> ``2-5x``, ``100+`` -> ``100x and over``."""
    return f"{group[:-1]}x and over" if group.endswith("+") else f"{group}x"


def _leverage(v: View, arm: str) -> dict:
    """All traders by the leverage they chose before any rule: one row per LEVERAGE_ROWS
    metric present, one column per leverage group, each cell the change."""
    rows = [(stem, label) for stem, label in LEVERAGE_ROWS if members(v.available, stem, "leverage_group")]
    rank = {g: i for i, g in enumerate(getattr(names, "LEVERAGE_GROUPS", ()))}
    groups = sorted({g for stem, _ in rows for g in members(v.available, stem, "leverage_group")},
                    key=lambda g: (rank.get(g, len(rank)), _natural(g)))
    return {"columns": [leverage_group_label(g) for g in groups],
            "rows": [{"label": label, "cells": [_cell(v.change(arm, f"{stem}.leverage_group.{g}", ""))
                                                for g in groups]} for stem, label in rows]}


def _targeted(v: View, arm: str, j: str) -> dict:
    """A national rule set's targeted jurisdiction ``j``: one column per AFFECTED_COLUMNS
    metric that changes, rows without the rule, with it and the change; the metrics that do
    not change at all are named with their level in ``unchanged``."""
    found = [(label, c) for stem, label in AFFECTED_COLUMNS
             if (c := v.change(arm, f"{stem}.jurisdiction.{j}", label)) is not None]
    moving = [(label, c) for label, c in found if not unchanged(c)]
    return {"jurisdiction": j, "flow": _flow(v, arm, j), "columns": [label for label, _ in moving],
            "before": [words.fmt_value(c.before, c.unit) for _, c in moving],
            "after": [words.fmt_value(c.after, c.unit) for _, c in moving],
            "changes": [_cell(c) for _, c in moving],
            "unchanged": [f"{label} ({words.fmt_value(c.before, c.unit)})" for label, c in found if unchanged(c)]}


def _by_jurisdiction(v: View, arm: str) -> dict:
    """A global rule set: one row per jurisdiction in the run, one column per
    JURISDICTION_COLUMNS metric that changes somewhere, each cell the change; the metrics
    that change nowhere are named in ``unchanged``."""
    present = [(stem, label) for stem, label in JURISDICTION_COLUMNS if members(v.available, stem, "jurisdiction")]
    rank = {j: i for i, j in enumerate(names.JURISDICTIONS)}
    juris = sorted({j for stem, _ in present for j in members(v.available, stem, "jurisdiction")},
                   key=lambda j: (rank.get(j, len(rank)), _natural(j)))
    changes = {stem: [v.change(arm, f"{stem}.jurisdiction.{j}", "") for j in juris] for stem, _ in present}
    cols = [(stem, label) for stem, label in present if not all(c is None or unchanged(c) for c in changes[stem])]
    return {"columns": [label for _, label in cols],
            "rows": [{"label": "rest of the world" if j == "other" else j,
                      "cells": [_cell(changes[stem][i]) for stem, _ in cols]} for i, j in enumerate(juris)],
            "unchanged": [label for stem, label in present if (stem, label) not in cols]}


def affected(v: View) -> list[dict]:
    """Per arm (flagged arms left out), who its rule reaches. A national rule set (one
    that targets jurisdictions, :func:`targets`): for each targeted jurisdiction, its
    traders without and with the rule and the change (the ``.jurisdiction.`` families,
    ``targeted``) and where they went (``flow``). A global rule set: one compact row per
    jurisdiction of the run (``by_jurisdiction``). Both: liquidations and losses of all
    traders by the leverage they chose (``leverage``, the ``.leverage_group.`` families).
    Tables are empty when the run has no such breakdown."""
    out = []
    for arm in v.arms:
        if arm in v.flagged:
            continue
        juris = v.targets(arm)
        out.append({"arm": arm, "title": v.res.titles[arm], "targets": juris, "repeal": arm in v.repeal,
                    "targeted": [_targeted(v, arm, j) for j in juris],
                    "by_jurisdiction": _by_jurisdiction(v, arm) if not juris else
                    {"columns": [], "rows": [], "unchanged": []},
                    "leverage": _leverage(v, arm)})
    return out


def _flow(v: View, arm: str, j: str) -> str:
    """One sentence: how many accounts ``j`` has and where they went (domestic, offshore,
    quit), without -> with the rule."""
    parts = []
    quit_ = v.change(arm, f"accounts_quit.jurisdiction.{j}", "")
    active = v.change(arm, f"accounts_active.jurisdiction.{j}", "")
    total = active.before + quit_.before if quit_ and active else float("nan")
    dom = v.change(arm, f"domestic_volume_usd.jurisdiction.{j}", "")
    off = v.change(arm, f"offshore_volume_usd.jurisdiction.{j}", "")
    if dom and off and dom.before + off.before > 0 and dom.after + off.after > 0:
        b = dom.before / (dom.before + off.before)
        a = dom.after / (dom.after + off.after)
        parts.append(f"the domestic share of their volume goes from {words.fmt_value(b, 'fraction')} to "
                     f"{words.fmt_value(a, 'fraction')} ({words.fmt_diff(a - b, 'fraction')})")
    if quit_ and total > 0:
        if quit_.before == quit_.after == 0:
            parts.append("none stops trading")
        else:
            parts.append(f"{words.fmt_value(quit_.after, quit_.unit)} stop trading "
                         f"({words.fmt_value(quit_.after / total, 'fraction')}), against "
                         f"{words.fmt_value(quit_.before, quit_.unit)} without the rule")
    if not parts:
        return ""
    lead = f"{words.fmt_value(total, 'accounts')} {j} accounts: " if total > 0 else f"{j} traders: "
    return lead + "; ".join(parts) + "."


# ------------------------------------------------------------------------ validation status
def validation_line(res: Results, calibration: list[dict], recorded: list[dict]) -> str:
    """One line: what the model reproduces, what it was fitted to, what was checked out of
    sample; ``recorded``: the validation record's scenarios (policylab.validation.record.summary)."""
    sc = res.scenario.get("title") or res.scenario.get("name")
    others = [r for r in recorded if r["scenario"] != res.scenario.get("name") and r["of"]]
    elsewhere = (f"{len(others)} other past events meet {sum(r['met'] for r in others)} of "
                 f"{sum(r['of'] for r in others)} targets of published magnitude (appendix)" if others
                 else "other past events are checked in direction and order of magnitude only")
    if calibration:
        met = sum(1 for t in calibration if t.get("met"))
        return (f"Validation: the baseline meets {met} of {len(calibration)} calibration targets of this event, "
                f"to which it was fitted (in sample); {elsewhere}; nothing was tested out of sample.")
    return (f"Validation: no calibration target applies to this comparison (scenario {sc}, baseline "
            f"{res.baseline}); the model's parameters were fitted to the 10 October 2025 event; {elsewhere}; "
            f"nothing was tested out of sample.")
    return (f"Validation: no calibration target applies to this comparison (scenario {sc}, baseline "
            f"{res.baseline}); the model's parameters were fitted to the 10 October 2025 event; nothing was "
            f"tested out of sample.")

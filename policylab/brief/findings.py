"""Numbers into words for the brief: metric labels, value formats and key findings.

Formats are shared by the side-by-side table and the findings, so a number reads the
same wherever it appears. Differences from the baseline are signed (fractions in
percentage points); a *finding* is only ever claimed for a difference whose 90%
interval excludes zero and that is material (see :func:`significant`).
"""

from __future__ import annotations

import math
import re

import pandas as pd

from policylab.metrics import headlines

MINUS = "\u2212"

# Headline metrics of the side-by-side table, by section, with their labels (policylab.metrics.headlines).
SECTIONS = headlines.grouped("brief")
LABELS = {name: label for _, rows in SECTIONS for name, label in rows}
BASELINE_FACTS = headlines.flagged("baseline")  # what the first finding states
CORE = headlines.flagged("core")  # what a decision-maker asks first: a rule set's effects on these lead its findings
MIN_FINDINGS, MAX_FINDINGS = 3, 6
COUNTS = ("accounts", "rounds", "venues")
MATERIAL_USD = 0.0005  # share of the baseline's starting open interest below which a money effect is not stated
MATERIAL_FRACTION = 0.001  # 0.1 percentage points
MATERIAL_RELATIVE = 0.01  # other units: 1% of the baseline
SIGNIFICANT = ("better", "worse")


# ------------------------------------------------------------------------ formats
def _num(v: float, digits: int = 2) -> str:
    return f"{v:,.{digits}f}".replace("-", MINUS)


def usd(v: float, sign: bool = False) -> str:
    """Dollars to three significant figures, abbreviated from a thousand up:
    ``$1.23B``, ``−$450M``, ``+$12.5K``, ``$950``."""
    a = abs(v)
    s = MINUS if v < 0 else ("+" if sign and v > 0 else "")
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        x = a / scale
        if round(x, 2) >= 1:
            digits = 0 if round(x, 1) >= 100 else 1 if round(x, 2) >= 10 else 2
            return f"{s}${x:,.{digits}f}{suffix}"
    return f"{s}${a:,.0f}"


def fmt_value(v: float, unit: str) -> str:
    """A metric value with its unit, for people (``n/a`` for NaN)."""
    if v is None or math.isnan(v):
        return "n/a"
    if unit == "USD":
        return usd(v)
    if unit in ("fraction", "annualised log-return sd"):
        return f"{_num(100 * v, 1)}%"
    if unit == "ratio":
        return f"{_num(v)}x"
    if unit in COUNTS:
        return _num(v, _count_digits(v))
    if unit == "minutes":
        return f"{_num(v, 0)} min"
    return f"{_num(v, 3)} {unit}"


def _count_digits(v: float) -> int:
    """Counts (means over seeds) below 100 keep one decimal."""
    return 0 if abs(v) >= 99.95 else 1


def fmt_diff(v: float, unit: str) -> str:
    """A signed difference in the metric's unit (fractions in percentage points); one
    that rounds to zero has no sign."""
    if v is None or math.isnan(v):
        return "n/a"
    if unit == "USD":
        text = usd(abs(v))
    elif unit in ("fraction", "annualised log-return sd"):
        text = f"{_num(100 * abs(v), 1)} pp"
    elif unit == "ratio":
        text = _num(abs(v))
    elif unit in COUNTS:
        text = _num(abs(v), _count_digits(v))
    elif unit == "minutes":
        text = f"{_num(abs(v), 0)} min"
    else:
        text = f"{_num(abs(v), 3)} {unit}"
    if not re.search(r"[1-9]", text):
        return text
    return ("+" if v > 0 else MINUS) + text


def fmt_change(v: float, unit: str) -> str:
    """The size of a difference, unsigned (fractions in percentage points)."""
    return fmt_diff(abs(v), unit).lstrip("+")


def fmt_range(lo: float, hi: float, unit: str, diff: bool = False) -> str:
    """An interval ``a to b`` in the format of values (or of differences)."""
    f = fmt_diff if diff else fmt_value
    return f"{f(lo, unit)} to {f(hi, unit)}"


def label(metric: str, description: str) -> str:
    """The metric's short label, or its description if it has none."""
    return LABELS.get(metric, description)


# ------------------------------------------------------------------------ findings
def _score(row) -> float:
    """Size of an effect relative to the larger of the two means (0 to 1)."""
    scale = max(abs(row["baseline"]), abs(row["mean"]))
    return abs(row["diff_mean"]) / scale if scale > 0 else 0.0


def _material(row, usd_scale: float) -> bool:
    """Whether a difference is large enough to state: money against the market's size,
    fractions from a tenth of a percentage point, anything else from 1% of the baseline."""
    d = abs(row["diff_mean"])
    if row["unit"] == "USD":
        return d >= MATERIAL_USD * usd_scale
    if row["unit"] == "fraction":
        return d >= MATERIAL_FRACTION
    return d >= MATERIAL_RELATIVE * abs(row["baseline"])


def materiality() -> str:
    """The materiality rule, for readers."""
    return (f"money at least {100 * MATERIAL_USD:g}% of the starting open interest, shares at least "
            f"{100 * MATERIAL_FRACTION:g} pp, anything else at least {100 * MATERIAL_RELATIVE:g}% of the baseline")


def significant(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary rows of headline metrics (SECTIONS) whose 90% difference interval excludes
    zero and whose difference is material, with ``score`` (relative size), ordered CORE
    metrics first, then by score. Money is material from MATERIAL_USD of the baseline's
    starting open interest."""
    oi = summary.loc[summary["metric"] == "open_interest_start_usd", "baseline"]
    usd_scale = float(oi.max()) if len(oi) and oi.notna().any() else 0.0
    s = summary[summary["improvement"].isin(SIGNIFICANT) & summary["metric"].isin(list(LABELS))]
    s = s[(s["diff_lo"] * s["diff_hi"] > 0)]
    s = s[s.apply(_material, axis=1, usd_scale=usd_scale)] if len(s) else s
    s = s.assign(score=s.apply(_score, axis=1) if len(s) else pd.Series(dtype=float),
                 core=~s["metric"].isin(CORE))
    return s.sort_values(["core", "score"], ascending=[True, False])


def _effect(row) -> str:
    way = "up" if row["diff_mean"] > 0 else "down"
    return (f"{label(row['metric'], row['description'])} {way} {fmt_change(row['diff_mean'], row['unit'])} "
            f"from {fmt_value(row['baseline'], row['unit'])} "
            f"(90% interval {fmt_range(row['diff_lo'], row['diff_hi'], row['unit'], diff=True)})")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def key_findings(summary: pd.DataFrame, titles: dict[str, str], baseline: str, seeds: int) -> list[str]:
    """Three to six sentences from the summary table: the baseline's outcome; per rule set
    (largest effect first) its two leading improvements and its leading cost (CORE
    metrics first, then the largest relative effects); the rule sets with no material
    difference; and, when six sentences cannot hold every rule set, where the rest are.
    ``titles``: rule set name -> title, in comparison order."""
    base = summary[summary["rule_set"] == baseline].set_index("metric")
    facts = [m for m in BASELINE_FACTS if m in base.index and not math.isnan(base.loc[m, "mean"])]
    head = []
    if facts:
        parts = []
        for m in facts:
            b = base.loc[m]
            parts.append(f"{label(m, b['description'])} of {fmt_value(b['mean'], b['unit'])} (5th to 95th percentile "
                         f"over seeds: {fmt_range(b['p05'], b['p95'], b['unit'])})")
        head.append(f"Under the baseline, {titles[baseline]}, the scenario averages {_join(parts)} over {seeds} seeds.")
    if seeds < 2:
        return head + ["With one seed per rule set this brief has no intervals, so no difference is reported as a "
                       "finding; run two or more seeds for paired intervals."]
    sig = significant(summary)  # the baseline's own rows are never significant ("n/a")
    ranked = sig.groupby("rule_set")["score"].max().sort_values(ascending=False).index.tolist() if len(sig) else []
    quiet = [n for n in titles if n != baseline and n not in set(ranked)]
    tail = []
    if quiet:
        tail.append(f"{_join([f'{titles[n]} ({n})' for n in quiet])}: no headline metric differs from the baseline "
                    f"by a material amount with a 90% interval that excludes zero.")
    room = MAX_FINDINGS - len(head) - len(tail)
    shown = ranked if len(ranked) <= room else ranked[:room - 1]
    if len(shown) < len(ranked):
        rest = ranked[len(shown):]
        tail.append(f"The effects of {_join(rest)} are in the side-by-side table.")
    body = []
    for name in shown:
        own = sig[sig["rule_set"] == name]
        better, worse = own[own["improvement"] == "better"], own[own["improvement"] == "worse"]
        who = f"Under {titles[name]} ({name}):"
        if len(better):
            sentence = f"{who} {_join([_effect(r) for _, r in better.head(2).iterrows()])}"
            if len(worse):
                sentence += f"; the cost: {_effect(worse.iloc[0])}"
            body.append(sentence + ".")
        else:
            body.append(f"{who} outcomes only worsen, {_join([_effect(r) for _, r in worse.head(2).iterrows()])}.")
    out = head + body + tail
    if len(out) < MIN_FINDINGS:
        out.append(f"Intervals are paired bootstrap 90% intervals of the mean difference over {seeds} common seeds; "
                   f"a difference whose interval includes zero is not reported as a finding.")
    return out

"""Numbers into words for the brief: metric labels and value formats.

Formats are shared by page 1, the findings (policylab.brief.summary) and the side-by-side
table, so a number reads the same wherever it appears. Differences from the baseline are
signed (fractions in percentage points).
"""

from __future__ import annotations

import math
import re

from policylab.metrics import headlines

MINUS = "\u2212"

# Headline metrics of the side-by-side table, by section, with their labels (policylab.metrics.headlines).
SECTIONS = headlines.grouped("brief")
LABELS = {name: label for _, rows in SECTIONS for name, label in rows}
COUNTS = ("accounts", "rounds", "venues")
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
    """Counts (means over seeds) below 100 keep one decimal; zero is 0."""
    return 0 if abs(v) >= 99.95 or v == 0 else 1


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


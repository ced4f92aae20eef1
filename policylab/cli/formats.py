"""How the CLI writes numbers for people, as the brief does: dollars abbreviated, shares
as percentages and differences of shares in percentage points (pp)."""

from __future__ import annotations

import math


def usd(v: float) -> str:
    """Dollars, abbreviated from a million up."""
    sign, a = ("-" if v < 0 else ""), abs(v)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if a >= scale:
            return f"{sign}${a / scale:,.2f}{suffix}"
    return f"{sign}${a:,.0f}"


def fmt(value: float | None, unit: str) -> str:
    """A metric value with its unit, for people."""
    if value is None or math.isnan(value):
        return "n/a"
    if unit == "USD":
        return usd(value)
    if unit == "fraction":
        return f"{value:.1%}"
    if unit == "ratio":
        return f"{value:.2f}x"
    if unit in ("accounts", "rounds", "venues"):
        return f"{value:,.0f}"
    if unit == "minutes":
        return f"{value:,.0f} min"
    if unit == "annualised log-return sd":
        return f"{value:.1%}"
    return f"{value:.4g} {unit}"


SHARE_UNITS = ("fraction", "annualised log-return sd")  # shown in %, their differences in pp


def fmt_diff(value: float | None, unit: str) -> str:
    """A signed difference with its unit: shares in percentage points (``+1.2 pp``), the
    rest as :func:`fmt` with a ``+`` for a rise."""
    if value is None or math.isnan(value):
        return "n/a"
    if unit in SHARE_UNITS:
        text = f"{100 * value:+.1f} pp"
        return text.replace("+0.0 ", "0.0 ").replace("-0.0 ", "0.0 ")
    return ("+" if value > 0 else "") + fmt(value, unit)

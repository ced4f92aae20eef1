"""Prices: the index's and each venue's drawdown, low and close, realised volatility and
recovery. The index is the venues' reference price (MODEL.md section 3)."""

from __future__ import annotations

import numpy as np

from policylab.metrics.api import HIGHER, LOWER, NEUTRAL, Run, Section, ratio, shared
from policylab.metrics.state import drawdown

MINUTES_PER_YEAR = 365 * 1440
SECTION = Section("prices", "Prices")


@shared
def _per_year(run: Run) -> float:
    """Steps per year."""
    return MINUTES_PER_YEAR / run.scenario.step_minutes


@SECTION.metric("index_drawdown", "fraction", "largest peak-to-trough fall of the index", LOWER)
def index_drawdown(run: Run) -> float:
    return run.index_drawdown[0]


@SECTION.family("drawdown", "venue", "fraction", "largest peak-to-trough fall of the {member} price", LOWER)
def drawdown_by_venue(run: Run) -> list[float]:
    return [drawdown(run.model.price_path[:, v])[0] for v in range(run.k)]


@SECTION.metric("index_low_usd", "USD", "lowest index price", HIGHER)
def index_low_usd(run: Run) -> float:
    return run.model.index_path.min()


@SECTION.metric("index_close_usd", "USD", "index price at the end of the run", NEUTRAL)
def index_close_usd(run: Run) -> float:
    return run.model.index_path[-1]


@SECTION.metric("index_low_return", "fraction", "lowest index price over the starting price, minus 1", HIGHER)
def index_low_return(run: Run) -> float:
    index = run.model.index_path
    return index.min() / index[0] - 1.0


@SECTION.metric("index_close_return", "fraction", "closing index price over the starting price, minus 1", NEUTRAL)
def index_close_return(run: Run) -> float:
    index = run.model.index_path
    return index[-1] / index[0] - 1.0


@SECTION.metric("index_low_vs_close", "fraction",
                "lowest index price over the closing price, minus 1 (how far the low overshot the close)", HIGHER)
def index_low_vs_close(run: Run) -> float:
    index = run.model.index_path
    return index.min() / index[-1] - 1.0


@SECTION.metric("realised_volatility", "annualised log-return sd",
                "realised volatility of the index: sqrt(mean squared step log return x steps per year)", LOWER)
@shared
def realised_volatility(run: Run) -> float:
    return np.sqrt(np.mean(np.diff(np.log(run.model.index_path)) ** 2) * _per_year(run))


@SECTION.metric("volatility_amplification", "ratio",
                "realised volatility of the index over that of the exogenous path", LOWER)
def volatility_amplification(run: Run) -> float:
    return ratio(realised_volatility(run), np.sqrt(np.mean(run.model.exo.log_return ** 2) * _per_year(run)))


@SECTION.metric("recovery_half_minutes", "minutes",
                "minutes from the index trough until half the drawdown was recovered", LOWER, nan="never")
def recovery_half_minutes(run: Run) -> float:
    index = run.model.index_path
    _, peak, trough = run.index_drawdown
    half = index[trough] + 0.5 * (index[peak] - index[trough])
    back = np.flatnonzero(index[trough:] >= half)
    return back[0] * run.scenario.step_minutes if len(back) else np.nan

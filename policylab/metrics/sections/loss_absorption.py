"""Loss absorption: who took the losses traders could not pay, in the order of the
waterfall (MODEL.md section 4): insurance funds, backstop vaults, auto-deleveraging,
and the bad debt left at the end."""

from __future__ import annotations

import numpy as np

from policylab.metrics.api import LOWER, Run, Section, ratio, shared
from policylab.names import VAULT

SECTION = Section("loss_absorption", "Loss absorption")


@shared
def _fund_path(run: Run) -> np.ndarray:
    """Insurance funds at the start and after every step, (steps + 1) x venues (USD)."""
    return np.vstack([run.start.fund, run.series["fund_usd"]])


@shared
def _fund_drawdown(run: Run) -> np.ndarray:
    """Per venue: largest fall of the insurance fund from a running peak (USD)."""
    fund = _fund_path(run)
    return np.max(np.maximum.accumulate(fund, axis=0) - fund, axis=0)


@shared
def _bad_debt(run: Run) -> np.ndarray:
    """Per venue at the end: fund below zero plus what trader and vault accounts owe,
    with equity at mark prices as the venues judge it (USD)."""
    tb, vb, traders = run.tb, run.vb, run.traders
    equity = tb.equity(np.arange(tb.n), run.model.market.marks(), vb.coin_price)
    owed = np.maximum(-equity, 0.0)
    vault = tb.cls == VAULT
    return (np.maximum(-vb.fund, 0.0)
            + np.bincount(tb.venue[traders], owed[traders], minlength=run.k)
            + np.bincount(tb.venue[vault], owed[vault], minlength=run.k))


@SECTION.metric("fund_drawdown_usd", "USD",
                "largest fall of insurance funds from a running peak, summed over venues", LOWER)
def fund_drawdown_usd(run: Run) -> float:
    return _fund_drawdown(run)[run.deriv].sum()


@SECTION.family("fund_drawdown_usd", "derivatives_venue", "USD",
                "largest fall of the {member} insurance fund from a running peak", LOWER)
def fund_drawdown_usd_by_venue(run: Run) -> np.ndarray:
    return _fund_drawdown(run)[run.deriv]


@SECTION.family("fund_drawdown_share", "derivatives_venue", "fraction",
                "largest fall of the {member} insurance fund over its starting size", LOWER, nan="no fund")
def fund_drawdown_share(run: Run) -> np.ndarray:
    return ratio(_fund_drawdown(run), run.start.fund)[run.deriv]


@SECTION.metric("funds_exhausted", "venues",
                "venues whose insurance fund (positive at the start) reached zero or below", LOWER)
def funds_exhausted(run: Run) -> float:
    return np.sum((run.start.fund > 0) & (_fund_path(run).min(axis=0) <= 0))


@SECTION.metric("bad_debt_usd", "USD",
                "at the end: funds below zero, backstop vaults below zero and negative trader balances", LOWER)
def bad_debt_usd(run: Run) -> float:
    return _bad_debt(run).sum()


@SECTION.family("bad_debt_usd", "derivatives_venue", "USD", "bad debt left on {member} at the end", LOWER)
def bad_debt_usd_by_venue(run: Run) -> np.ndarray:
    return _bad_debt(run)[run.deriv]


@SECTION.metric("adl_usd", "USD", "notional closed by auto-deleveraging (bankrupt side, at bankruptcy prices)", LOWER)
def adl_usd(run: Run) -> float:
    return run.model.engine.adl_volume.sum()


@SECTION.family("adl_usd", "derivatives_venue", "USD", "notional closed by auto-deleveraging on {member}", LOWER)
def adl_usd_by_venue(run: Run) -> np.ndarray:
    return run.model.engine.adl_volume[run.deriv]

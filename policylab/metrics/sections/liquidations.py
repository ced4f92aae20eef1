"""Liquidations: what the venues' liquidation machinery closed, stop-losses, and the
accounts hit (MODEL.md section 7). *Liquidated* counts whole and partial liquidations,
backstop takeovers and the bankrupt side of ADL (``LIQUIDATION_KINDS``)."""

from __future__ import annotations

import numpy as np

from policylab.metrics.api import LOWER, NEUTRAL, TRADER_CLASSES, Run, Section, ratio, shared
from policylab.names import CLASSES, EVENT_KINDS

WIPED_OUT_LEFT = 0.05  # an account is wiped out when it ends with at most this share of its starting wealth
SECTION = Section("liquidations", "Liquidations")


@shared
def _hit(run: Run) -> np.ndarray:
    """Accounts liquidated at least once."""
    return np.unique(run.events["account"][run.events["liquidation"]])


@shared
def _long_usd(run: Run) -> float:
    ev = run.events
    return ev["notional"][ev["liquidation"] & (ev["size"] > 0)].sum()


@SECTION.metric("liquidated_usd", "USD", "notional liquidated (whole, partial, backstop, bankrupt side of ADL)", LOWER)
@shared
def liquidated_usd(run: Run) -> float:
    return run.events["notional"][run.events["liquidation"]].sum()


@SECTION.family("liquidated_usd", "derivatives_venue", "USD", "notional liquidated on {member}", LOWER)
def liquidated_usd_by_venue(run: Run) -> np.ndarray:
    ev = run.events
    liq = ev["liquidation"]
    return np.bincount(ev["venue"][liq], ev["notional"][liq], minlength=run.k)[run.deriv]


@SECTION.family("liquidated_usd", "side", "USD", "notional of {member} positions liquidated", LOWER)
def liquidated_usd_by_side(run: Run) -> list[float]:
    ev = run.events
    return [_long_usd(run), ev["notional"][ev["liquidation"] & (ev["size"] < 0)].sum()]


@SECTION.family("liquidated_usd", "trader_class", "USD", "notional liquidated from {member} accounts", LOWER)
def liquidated_usd_by_class(run: Run) -> list[float]:
    ev = run.events
    liq = ev["liquidation"]
    by_cls = np.bincount(ev["cls"][liq], ev["notional"][liq], minlength=len(CLASSES))
    return [by_cls[CLASSES.index(c)] for c in TRADER_CLASSES]


@SECTION.metric("long_share_liquidated", "fraction", "share of liquidated notional that was long", NEUTRAL,
                nan="none liquidated")
def long_share_liquidated(run: Run) -> float:
    return ratio(_long_usd(run), liquidated_usd(run))


CASCADE_WINDOW_MINUTES = 40  # Amberdata's window: 70% of 10 Oct 2025's liquidations in the 40 minutes from 20:50 UTC


@SECTION.metric("liquidated_peak_window_share", "fraction",
                f"largest share of the run's liquidated notional within any {CASCADE_WINDOW_MINUTES} minutes "
                "(how concentrated the cascade was)", NEUTRAL, nan="none liquidated")
def liquidated_peak_window_share(run: Run) -> float:
    ev = run.events
    liq = ev["liquidation"]
    per_step = np.bincount(ev["step"][liq].astype(np.int64), ev["notional"][liq], minlength=run.model.scenario.steps)
    w = max(1, CASCADE_WINDOW_MINUTES // run.model.scenario.step_minutes)
    c = np.concatenate([[0.0], np.cumsum(per_step)])
    return ratio(float((c[w:] - c[:-w]).max()) if len(c) > w else float(c[-1]), float(c[-1]))


START_MINUTES = 240  # the first four hours, where a start-up burst would show


@SECTION.metric("liquidated_first_hours_share", "fraction",
                f"share of the run's liquidated notional in its first {START_MINUTES // 60} hours "
                "(a start-up burst shows here)", NEUTRAL, nan="none liquidated")
def liquidated_first_hours_share(run: Run) -> float:
    ev = run.events
    liq = ev["liquidation"]
    early = ev["step"][liq] < START_MINUTES // run.model.scenario.step_minutes
    return ratio(ev["notional"][liq][early].sum(), ev["notional"][liq].sum())


@SECTION.metric("liquidated_share_of_oi", "fraction", "liquidated notional over starting open interest", LOWER)
def liquidated_share_of_oi(run: Run) -> float:
    return ratio(liquidated_usd(run), run.oi0)


@SECTION.metric("forced_closed_usd", "USD", "liquidated notional plus profitable positions closed by ADL", LOWER)
@shared
def forced_closed_usd(run: Run) -> float:
    ev = run.events
    return liquidated_usd(run) + ev["notional"][ev["kind"] == EVENT_KINDS.index("adl_counterparty")].sum()


@SECTION.metric("forced_closed_share_of_oi", "fraction", "forced-closed notional over starting open interest", LOWER)
def forced_closed_share_of_oi(run: Run) -> float:
    return ratio(forced_closed_usd(run), run.oi0)


@SECTION.metric("stopped_usd", "USD", "notional closed by triggered stop-loss orders", LOWER)
def stopped_usd(run: Run) -> float:
    ev = run.events
    return ev["notional"][ev["kind"] == EVENT_KINDS.index("stop")].sum()


@SECTION.metric("liquidated_accounts", "accounts", "real accounts liquidated at least once", LOWER)
def liquidated_accounts(run: Run) -> float:
    return run.tb.weight[_hit(run)].sum()


@SECTION.family("liquidated_accounts", "trader_class", "accounts", "real {member} accounts liquidated at least once",
                LOWER)
def liquidated_accounts_by_class(run: Run) -> list[float]:
    tb, hit = run.tb, _hit(run)
    by_cls = np.bincount(tb.cls[hit], tb.weight[hit], minlength=len(CLASSES))
    return [by_cls[CLASSES.index(c)] for c in TRADER_CLASSES]


@SECTION.metric("liquidated_accounts_share", "fraction",
                "liquidated accounts over accounts holding a derivatives position at the start", LOWER)
def liquidated_accounts_share(run: Run) -> float:
    tb = run.tb
    holders = (run.start.size != 0) & run.deriv[tb.venue] & run.traders
    return ratio(tb.weight[_hit(run)].sum(), tb.weight[holders].sum())


@SECTION.metric("accounts_wiped_out", "accounts",
                f"real trader accounts ending with at most {WIPED_OUT_LEFT:.0%} of their starting wealth (money "
                "deposited during the run not counted)", LOWER)
def accounts_wiped_out(run: Run) -> float:
    w0 = run.start.wealth
    wiped = run.traders & (w0 > 0) & (w0 + run.pnl <= WIPED_OUT_LEFT * w0)
    return run.tb.weight[wiped].sum()

"""Who lost: profit and loss by account class, and retail losses. PnL is the change in
wealth over the run (fees, funding, liquidation penalties and depeg losses included)."""

from __future__ import annotations

import numpy as np

from policylab.metrics.api import LOWER, NEUTRAL, Run, Section, ratio, shared
from policylab.names import CLASSES, RETAIL

SECTION = Section("who_lost", "Who lost")


@shared
def _pnl(run: Run) -> np.ndarray:
    """Per account: wealth at the end minus wealth at the start (USD)."""
    return run.wealth_end - run.start.wealth


@SECTION.family("pnl_usd", "class", "USD", "net profit and loss of {member} accounts", NEUTRAL)
def pnl_usd(run: Run) -> np.ndarray:
    return np.bincount(run.tb.cls, _pnl(run), minlength=len(CLASSES))


@SECTION.metric("retail_loss_usd", "USD", "gross losses of the retail accounts that lost money", LOWER)
def retail_loss_usd(run: Run) -> float:
    return np.maximum(-_pnl(run)[run.tb.cls == RETAIL], 0.0).sum()


@SECTION.metric("retail_losers_share", "fraction", "share of real retail accounts that lost money", LOWER)
def retail_losers_share(run: Run) -> float:
    tb = run.tb
    retail = tb.cls == RETAIL
    return ratio(tb.weight[retail & (_pnl(run) < 0)].sum(), tb.weight[retail].sum())

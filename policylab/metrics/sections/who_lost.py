"""Who lost: profit and loss by account class, and retail losses. PnL is the change in
wealth over the run (fees, funding, liquidation penalties and depeg losses included), less
the money deposited during it (new traders refilling wiped-out accounts): new money is
not profit, and a refilled account's loss counts once it is lost again."""

from __future__ import annotations

import numpy as np

from policylab.metrics.api import LOWER, NEUTRAL, Run, Section, ratio
from policylab.names import CLASSES, RETAIL

SECTION = Section("who_lost", "Who lost")


@SECTION.family("pnl_usd", "class", "USD",
                "net profit and loss of {member} accounts (deposits during the run excluded)", NEUTRAL)
def pnl_usd(run: Run) -> np.ndarray:
    return np.bincount(run.tb.cls, run.pnl, minlength=len(CLASSES))


@SECTION.metric("retail_loss_usd", "USD",
                "gross losses of the retail accounts that lost money (net of deposits during the run)", LOWER)
def retail_loss_usd(run: Run) -> float:
    return np.maximum(-run.pnl[run.tb.cls == RETAIL], 0.0).sum()


@SECTION.metric("retail_losers_share", "fraction", "share of real retail accounts that lost money", LOWER)
def retail_losers_share(run: Run) -> float:
    tb = run.tb
    retail = tb.cls == RETAIL
    return ratio(tb.weight[retail & (run.pnl < 0)].sum(), tb.weight[retail].sum())

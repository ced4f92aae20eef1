"""Basis traders: long spot, short perpetual."""

from __future__ import annotations

from policylab.engine import kernels_decide as kd
from policylab.populations.base import EMPTY, TraderPopulation


class BasisTraders(TraderPopulation):
    """Long spot, short perpetual. When the short is closed (ADL or liquidation) the spot
    leg is left unhedged, and they sell it down over the following minutes."""

    name = "basis"

    UNWIND_PER_MINUTE = 0.2

    def decide(self):
        m, tb = self.model, self.model.tb
        idx, dq = kd.unhedged(self.rows, tb.hedge, tb.size, min(1.0, self.UNWIND_PER_MINUTE * m.scenario.step_minutes))
        if len(idx):
            m.market.trade_spot(idx, dq, forced=True)  # left unhedged by a forced close
        return EMPTY

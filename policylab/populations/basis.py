"""Basis traders: long spot, short perpetual."""

from __future__ import annotations

from policylab.engine import kernels_decide as kd
from policylab.populations.base import EMPTY, TraderPopulation


class BasisTraders(TraderPopulation):
    """Long spot, short perpetual. When the short is closed (ADL or liquidation) the spot
    leg is left unhedged, and they sell it down over the following minutes."""

    name = "basis"

    UNWIND_PER_MINUTE = 0.2

    def __init__(self, model, rows, spec, rng):
        super().__init__(model, rows, spec, rng)
        self._unwind_share = min(1.0, self.UNWIND_PER_MINUTE * self.step_minutes)  # of the excess, per step

    def decide(self):
        tb = self.model.tb
        idx, dq = kd.unhedged(self.rows, tb.hedge, tb.size, self._unwind_share)
        if len(idx):
            self.model.market.trade_spot(idx, dq, forced=True)  # left unhedged by a forced close
        return EMPTY

"""Basis traders: long spot, short perpetual."""

from __future__ import annotations

import numpy as np

from policylab.populations.base import EMPTY, TraderPopulation


class BasisTraders(TraderPopulation):
    """Long spot, short perpetual. When the short is closed (ADL or liquidation) the spot
    leg is left unhedged, and they sell it down over the following minutes."""

    name = "basis"

    UNWIND_PER_MINUTE = 0.2

    def decide(self):
        m, tb = self.model, self.model.tb
        excess = tb.hedge[self.rows] + tb.size[self.rows]  # long spot beyond the short perp
        sell = excess > 1e-9 * np.maximum(tb.hedge[self.rows], 1e-9)
        if sell.any():
            idx = self.rows[sell]
            m.market.trade_spot(idx, -excess[sell] * min(1.0, self.UNWIND_PER_MINUTE * m.scenario.step_minutes),
                                forced=True)  # left unhedged by a forced close
        return EMPTY

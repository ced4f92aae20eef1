"""Institutional spot and ETF holders."""

from __future__ import annotations

import numpy as np

from policylab.populations.base import EMPTY, TraderPopulation


class InstitutionalHolders(TraderPopulation):
    """Unleveraged spot and ETF holders: slow outflows after a large hourly fall, inflows after a rise."""

    name = "institutional"

    TRIGGER = 0.03

    def decide(self):
        r60 = self.model.index_return(60)
        if abs(r60) < self.TRIGGER or len(self.rows) == 0:
            return EMPTY
        tb = self.model.tb
        rate = self.spec.outflow_per_minute * self.model.scenario.step_minutes
        dq = tb.size[self.rows] * rate * (-1.0 if r60 < 0 else 0.5)  # inflows are slower than outflows
        keep = dq != 0
        return self.rows[keep], dq[keep]

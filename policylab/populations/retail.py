"""Leveraged retail speculators."""

from __future__ import annotations

import numpy as np

from policylab.engine import kernels_decide as kd
from policylab.populations.base import EMPTY, TraderPopulation


class RetailSpeculators(TraderPopulation):
    """Leveraged retail: panic-close on adverse moves and, in a risk-off market, close more
    often (``risk_off_close``); after a sharp move, momentum traders follow it and the others
    fade it (buy the dip); otherwise their long bias. Flat accounts open less in a risk-off
    market and after their own liquidation (``TraderPopulation.willing``)."""

    name = "retail"

    CLOSE_PROB = 0.1  # chance an active holder closes without a signal (profit taking, boredom)
    OPEN_PROB = 0.9  # chance an active flat account with cash opens a position

    def decide(self):
        m, tb = self.model, self.model.tb
        idx = self.active()
        if len(idx) == 0:
            return EMPTY
        r15 = m.index_return(15)
        u = self.stream.random(len(idx))
        close_prob = min(1.0, self.CLOSE_PROB + self.spec.risk_off_close * m.risk_off)  # de-risking when risk-off
        dq, cand, x, u_cand = kd.retail_decisions(idx, u, tb.size, tb.stop, r15, float(self.spec.panic_move),
                                                  close_prob, tb.cash, *self._reentry())  # closes clear their stops
        flat = kd.chosen(cand, u_cand, np.expm1(x), self.caution(), self.OPEN_PROB)  # u < OPEN_PROB x willing
        u_side = self.stream.random(len(flat))
        if abs(r15) > self.spec.dip_move:  # a sharp move: momentum traders follow it, the rest fade it
            return self.with_opens(idx, dq, flat, u_side, self.stream.random(len(flat)), r15)
        return self.with_opens(idx, dq, flat, u_side)

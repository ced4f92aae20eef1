"""Leveraged retail speculators."""

from __future__ import annotations

import numpy as np

from policylab.engine import kernels_decide as kd
from policylab.populations.base import EMPTY, NO_DRAWS, TraderPopulation


class RetailSpeculators(TraderPopulation):
    """Leveraged retail: panic-close on adverse moves and, in a risk-off market, close more
    often (``risk_off_close``); after a sharp move, momentum traders follow it and the others
    fade it (buy the dip); otherwise their long bias. Flat accounts open less in a risk-off
    market and after their own liquidation (``TraderPopulation.willing``)."""

    name = "retail"

    CLOSE_PROB = 0.1  # chance an active holder closes without a signal (profit taking, boredom)
    OPEN_PROB = 0.9  # chance an active flat account with cash opens a position

    def __init__(self, model, rows, spec, rng):
        super().__init__(model, rows, spec, rng)
        tb = model.tb
        # the trailing arguments of kernels_decide.retail_decisions (see TraderPopulation.__init__)
        self._decisions = (float(spec.panic_move), tb.size, tb.stop, tb.cash, *self._reentry)

    def decide(self):
        m, rng = self.model, self.stream
        idx = self.active()
        if len(idx) == 0:
            return EMPTY
        r15 = m.index_return(15)
        u = rng.random(len(idx))
        close_prob = min(1.0, self.CLOSE_PROB + self.spec.risk_off_close * m.risk_off)  # de-risking when risk-off
        dq, cand, x, u_cand = kd.retail_decisions(idx, u, r15, close_prob, self.now_s(),
                                                  *self._decisions)  # closes clear their stops
        flat = kd.chosen(cand, u_cand, np.expm1(x), self.caution(), self.OPEN_PROB)  # u < OPEN_PROB x willing
        u_side = rng.random(len(flat))
        growth = np.exp(m.vb.basis)  # the book prices' factor on the index, as Market.prices takes it
        if abs(r15) > self.spec.dip_move:  # a sharp move: momentum traders follow it, the rest fade it
            return kd.opens(idx, dq, flat, u_side, rng.random(len(flat)), r15, growth, self._opens)
        return kd.opens(idx, dq, flat, u_side, NO_DRAWS, 0.0, growth, self._opens)

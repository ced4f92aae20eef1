"""Leveraged retail speculators."""

from __future__ import annotations

import numpy as np

from policylab.engine import kernels
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

    def __init__(self, model, rows, spec, rng):
        super().__init__(model, rows, spec, rng)
        tb = model.tb
        # kernels_decide.retail_start's trailing arguments, bundled (see TraderPopulation.__init__)
        self._decisions = kernels.bundle((rng, float(spec.panic_move), tb.size, tb.stop, tb.cash, *self._reentry))

    def decide(self):
        m = self.model
        idx = self.active()
        if len(idx) == 0:
            return EMPTY
        r15 = m.index_return(15)
        close_prob = min(1.0, self.CLOSE_PROB + self.spec.risk_off_close * m.risk_off)  # de-risking when risk-off
        dq, cand, x, u_cand = kd.retail_start(idx, r15, close_prob, self.now_s(),
                                              self._decisions)  # closes clear their stops
        growth = np.exp(m.vb.basis)  # the book prices' factor on the index, as Market.prices takes it
        # u < OPEN_PROB x willing; after a sharp move momentum traders follow it, the rest fade it
        return kd.chosen_open(idx, dq, cand, u_cand, np.expm1(x), self.caution(), self.OPEN_PROB,
                              abs(r15) > self.spec.dip_move, r15, growth, self._open_args)

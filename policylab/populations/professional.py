"""Professional traders who target their leverage."""

from __future__ import annotations

import numpy as np

from policylab.engine import kernels
from policylab.engine import kernels_decide as kd
from policylab.populations.base import EMPTY, TraderPopulation


class Professionals(TraderPopulation):
    """Professional traders manage their leverage toward a target: they cut back to it when
    it exceeds ``risk_limit`` times the target and, if ``relever_below`` > 0, add back to
    it when it falls below that share of the target (after gains, or a fall in price
    for shorts). Leverage targeting both ways is what balance-sheet-managing
    intermediaries do (Adrian and Shin 2010, J. Financial Intermediation 19(3)) and
    what the funds of Thurner, Farmer and Geanakoplos (2012) do every period; it makes
    their demand procyclical: they sell into falls and buy into rises. In a risk-off market
    they target ``caution()`` of their leverage and open less (value-at-risk limits cut
    leverage after a volatility spike: Adrian and Shin 2010; Aymanns and Farmer 2015)."""

    name = "professional"

    def __init__(self, model, rows, spec, rng):
        super().__init__(model, rows, spec, rng)
        tb, vb = model.tb, model.vb
        # kernels_decide.professional_decisions's trailing arguments, bundled (see TraderPopulation.__init__)
        self._decisions = kernels.bundle((
            float(spec.risk_limit), float(spec.relever_below), model.market.lm, vb.coin_price, vb.haircut, tb.venue,
            tb.size, tb.cash, tb.coin, tb.leverage, tb.weight, tb.lev_cap, tb.pos_limit, vb.im_mult, vb.tier_floor,
            vb.tier_lev, *self._reentry))
        self._start_args = kernels.bundle((rng, self._decisions))  # kernels_decide.professional_start's

    def decide(self):
        idx = self.active()
        if len(idx) == 0:
            return EMPTY
        growth = np.exp(self.model.vb.basis)  # the book prices' factor on the index, as Market.prices takes it
        caution = self.caution()
        dq, cand, x, u_cand = kd.professional_start(idx, growth, caution, self.now_s(), self._start_args)
        return kd.chosen_open(idx, dq, cand, u_cand, np.expm1(x), caution, 1.0, False, 0.0, growth,
                              self._open_args)  # u < willing

"""Professional traders who target their leverage."""

from __future__ import annotations

import numpy as np

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

    def decide(self):
        m, tb = self.model, self.model.tb
        idx = self.active()
        if len(idx) == 0:
            return EMPTY
        vb = m.vb
        growth = np.exp(vb.basis)  # the book prices' factor on the index, as Market.prices takes it
        dq, cand, x = kd.professional_decisions(
            idx, growth, m.market.lm, vb.coin_price, vb.haircut, tb.venue, tb.size, tb.cash, tb.coin, tb.leverage,
            tb.weight, tb.lev_cap, tb.pos_limit, vb.im_mult, vb.tier_floor, vb.tier_lev, self.caution(),
            float(self.spec.risk_limit), float(self.spec.relever_below), *self._reentry())
        flat = kd.chosen(cand, self.stream.random(len(cand)), np.expm1(x), self.caution(), 1.0)  # u < willing
        return self.with_opens(idx, dq, flat, self.stream.random(len(flat)), growth=growth)

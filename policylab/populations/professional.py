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
        opening = self._opening()
        price, coin_value = opening[0], opening[1]
        dq = kd.professional_targets(idx, price, coin_value, tb.venue, tb.size, tb.cash, tb.coin, tb.leverage, tb.weight,
                                     tb.lev_cap, tb.pos_limit, m.vb.im_mult, m.vb.tier_floor, m.vb.tier_lev,
                                     self.caution(), float(self.spec.risk_limit), float(self.spec.relever_below))
        cand, expm1_x = self.open_candidates(idx)
        flat = kd.chosen(cand, self.stream.random(len(cand)), expm1_x, self.caution(), 1.0)  # u < willing
        side = np.where(self.stream.random(len(flat)) < self.spec.long_share, 1.0, -1.0)
        return kd.with_opens(idx, dq, flat, side, *opening)

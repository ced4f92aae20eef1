"""Professional traders who target their leverage."""

from __future__ import annotations

import numpy as np

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
        price = m.market.prices()
        s = tb.size[idx]
        eq = tb.equity(idx, price, m.vb.coin_value)
        notional = np.abs(s) * price[tb.venue[idx]]
        with np.errstate(divide="ignore", invalid="ignore"):
            eff = np.where(eq > 0, notional / eq, np.inf)
        target = tb.leverage[idx] * self.caution()  # a risk-off market: they target less leverage
        over = (s != 0) & (eff > self.spec.risk_limit * target)
        dq = np.zeros(len(idx))
        dq[over] = -s[over] * np.clip(1.0 - target[over] / eff[over], 0.0, 1.0)
        if self.spec.relever_below > 0:
            under = (s != 0) & (eq > 0) & (eff < self.spec.relever_below * target)
            if under.any():
                u = idx[under]
                want = eq[under] * target[under]
                want = np.minimum(eq[under] * np.minimum(target[under], m.leverage_cap(u, want)),
                                  tb.pos_limit[u] * tb.weight[u])
                dq[under] = np.sign(s[under]) * np.maximum(want - notional[under], 0.0) / price[tb.venue[u]]
        flat = (s == 0) & (tb.cash[idx] > 0) & ~tb.quit[idx]
        flat[flat] = self.stream.random(flat.sum()) < self.willing(idx[flat])
        side = np.where(self.stream.random(flat.sum()) < self.spec.long_share, 1.0, -1.0)
        dq[flat] = self.open_orders(idx[flat], side)
        keep = dq != 0
        return idx[keep], dq[keep]

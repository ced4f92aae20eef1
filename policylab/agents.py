"""Mesa agents: venues and trader populations. Each population acts on its rows of the
shared arrays in one vectorised step; no agent loops over traders.

``decide()`` returns market orders ``(accounts, BTC)``; the model nets and executes
all populations' orders together, so their order does not matter.
"""

from __future__ import annotations

import mesa
import numpy as np
from mesa.time import Schedule

from .scenario import ClassSpec
from .streams import stream

EMPTY = (np.zeros(0, dtype=np.int64), np.zeros(0))


class Venue(mesa.Agent):
    """A trading venue: funding settlement and the unwinding of its backstop vault."""

    VAULT_UNWIND_PER_MINUTE = 0.05  # share of the vault's inventory sold into the book per minute

    def __init__(self, model, v: int):
        super().__init__(model)
        self.v = v
        self.rules = model.vb.rules[v]
        self.funding_rates: list[tuple[int, float]] = []
        if self.rules.is_perpetual:
            every = max(1, self.rules.funding_interval_minutes // model.scenario.step_minutes)
            model.schedule_recurring(self.settle_funding, Schedule(interval=every, start=every))

    def settle_funding(self) -> None:
        m = self.model
        rate = m.market.settle_funding(self.v, self.rules.funding_interval_minutes)
        self.funding_rates.append((m.steps, rate))
        m.engine.refresh(np.flatnonzero((m.tb.venue == self.v) & (m.tb.size != 0)))

    def decide(self):
        row = self.model.vb.vault_row[self.v]
        if row < 0 or self.model.tb.size[row] == 0:
            return EMPTY
        share = min(1.0, self.VAULT_UNWIND_PER_MINUTE * self.model.scenario.step_minutes)
        return np.array([row]), np.array([-self.model.tb.size[row] * share])


class TraderPopulation(mesa.Agent):
    """A group of accounts (rows of the arrays) sharing one behaviour and random stream.

    Replacement of wiped-out accounts (``refill_half_life_minutes`` > 0): an account that
    is flat with less than ``WIPED_SHARE`` of its starting deposit left is, after a
    waiting time with that half-life, taken over by a new trader who deposits what the
    account started with (new money, recorded in ``deposit``). In Thurner, Farmer and
    Geanakoplos (2012) a fund whose wealth falls below a minimum is likewise replaced,
    after a delay, by a new fund with the initial wealth; without it a market that wipes
    out its leveraged traders de-levers for the rest of the run and the effect of
    leverage fades with time. The waiting times come from their own stream, one draw
    per account and step, so they are common across rule sets.
    """

    WIPED_SHARE = 0.1  # an account with less than this share of its starting deposit is wiped out

    ACTIVITY_VOL_WINDOW = 15  # minutes of realised volatility that activity responds to

    def __init__(self, model, rows: np.ndarray, spec: ClassSpec, rng: np.random.Generator):
        super().__init__(model)
        self.rows, self.spec, self.stream = rows, spec, rng
        self.stake = model.tb.deposit[rows].copy()  # each account's starting deposit (USD)
        self.refills = 0  # accounts replaced so far
        if spec.refill_half_life_minutes > 0:
            self._refill_stream = stream(model.seed, f"refill:{type(self).__name__}")

    def refill(self) -> None:
        """Replace wiped-out accounts by new traders with the starting deposit (see the class docstring)."""
        if self.spec.refill_half_life_minutes <= 0 or len(self.rows) == 0:
            return
        tb = self.model.tb
        u = self._refill_stream.random(len(self.rows))  # drawn every step: common random numbers
        p = 1.0 - 0.5 ** (self.model.scenario.step_minutes / self.spec.refill_half_life_minutes)
        wiped = ((tb.size[self.rows] == 0) & (self.stake > 0) & ~tb.quit[self.rows]
                 & (tb.cash[self.rows] < self.WIPED_SHARE * self.stake) & (u < p))
        if wiped.any():
            idx = self.rows[wiped]
            tb.cash[idx] += self.stake[wiped]
            tb.deposit[idx] += self.stake[wiped]
            self.refills += int(wiped.sum())

    def active(self) -> np.ndarray:
        """Accounts that reconsider their position this step. With an activity elasticity,
        flat accounts come to trade more often when the market moves (volume rises with
        volatility); holders keep reconsidering at the usual rate (adverse moves make
        them close, see ``decide``)."""
        tb = self.model.tb
        p = self.spec.activity_per_minute * self.model.scenario.step_minutes
        surge = 1.0
        if self.spec.activity_vol_elasticity > 0:
            surge += self.spec.activity_vol_elasticity * max(self.model.vol_ratio(self.ACTIVITY_VOL_WINDOW) - 1.0, 0.0)
        k = self.stream.binomial(len(self.rows), min(1.0, p * surge)) if len(self.rows) else 0
        idx = self.rows[np.unique(self.stream.integers(0, len(self.rows), k))] if k else self.rows[:0]
        if surge > 1.0 and len(idx):
            # holders: thinned back to the usual rate. k draws with replacement select an
            # account with probability about 1 - exp(-k / n), so keep each holder with the
            # ratio of that probability at the usual rate to the one at the surged rate
            keep = -np.expm1(-min(1.0, p)) / -np.expm1(-min(1.0, p * surge))
            idx = idx[(tb.size[idx] == 0) | (self.stream.random(len(idx)) < keep)]
        return idx

    def open_orders(self, idx: np.ndarray, side: np.ndarray):
        """Open positions with the account's cash at its chosen leverage, within the venue's
        and the rules' caps and the rules' position limit."""
        m = self.model
        prices = m.market.prices()
        price = prices[m.tb.venue[idx]]
        # margin value of a flat account: cash less the depeg haircut on its stablecoin collateral
        cash = np.maximum(m.tb.equity(idx, prices, m.vb.coin_value), 0.0)
        notional = cash * m.tb.leverage[idx]
        cap = m.leverage_cap(idx, notional)
        notional = np.minimum(cash * np.minimum(m.tb.leverage[idx], cap), m.tb.pos_limit[idx] * m.tb.weight[idx])
        dq = side * notional / price
        stop_dist = m.tb.stop_dist[idx]
        m.tb.stop[idx] = np.where(np.isnan(stop_dist), np.nan, price * (1 - side * stop_dist))
        return dq


class RetailSpeculators(TraderPopulation):
    """Leveraged retail: panic-close on adverse moves; after a sharp move, momentum
    traders follow it and the others fade it (buy the dip); otherwise their long bias."""

    CLOSE_PROB = 0.1  # chance an active holder closes without a signal (profit taking, boredom)
    OPEN_PROB = 0.9  # chance an active flat account with cash opens a position

    def decide(self):
        m, tb = self.model, self.model.tb
        idx = self.active()
        if len(idx) == 0:
            return EMPTY
        r15 = m.index_return(15)
        s = tb.size[idx]
        u = self.stream.random(len(idx))
        adverse = -np.sign(s) * r15 > self.spec.panic_move
        close = (s != 0) & (adverse | (u < self.CLOSE_PROB))
        flat = (s == 0) & (tb.cash[idx] > 0) & ~tb.quit[idx] & (u < self.OPEN_PROB)
        side = np.where(self.stream.random(flat.sum()) < self.spec.long_share, 1.0, -1.0)
        if abs(r15) > self.spec.dip_move:  # a sharp move: momentum traders follow it, the rest fade it
            follow = self.stream.random(flat.sum()) < self.spec.momentum_share
            side = np.where(follow, np.sign(r15), -np.sign(r15))
        dq = np.zeros(len(idx))
        dq[close] = -s[close]
        dq[flat] = self.open_orders(idx[flat], side)
        tb.stop[idx[close]] = np.nan
        keep = dq != 0
        return idx[keep], dq[keep]


class Professionals(TraderPopulation):
    """Professional traders manage their leverage toward a target: they cut back to it when
    it exceeds ``risk_limit`` times the target and, if ``relever_below`` > 0, add back to
    it when it falls below that share of the target (after gains, or a fall in price
    for shorts). Leverage targeting both ways is what balance-sheet-managing
    intermediaries do (Adrian and Shin 2010, J. Financial Intermediation 19(3)) and
    what the funds of Thurner, Farmer and Geanakoplos (2012) do every period; it makes
    their demand procyclical: they sell into falls and buy into rises."""

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
        target = tb.leverage[idx]
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
        side = np.where(self.stream.random(flat.sum()) < self.spec.long_share, 1.0, -1.0)
        dq[flat] = self.open_orders(idx[flat], side)
        keep = dq != 0
        return idx[keep], dq[keep]


class BasisTraders(TraderPopulation):
    """Long spot, short perpetual. When the short is closed (ADL or liquidation) the spot
    leg is left unhedged, and they sell it down over the following minutes."""

    UNWIND_PER_MINUTE = 0.2

    def decide(self):
        m, tb = self.model, self.model.tb
        excess = tb.hedge[self.rows] + tb.size[self.rows]  # long spot beyond the short perp
        sell = excess > 1e-9 * np.maximum(tb.hedge[self.rows], 1e-9)
        if sell.any():
            idx = self.rows[sell]
            m.market.trade_spot(idx, -excess[sell] * min(1.0, self.UNWIND_PER_MINUTE * m.scenario.step_minutes))
        return EMPTY


class InstitutionalHolders(TraderPopulation):
    """Unleveraged spot and ETF holders: slow outflows after a large hourly fall, inflows after a rise."""

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


class MarketMakers(mesa.Agent):
    """Quote depth on every venue: withdraw when volatility spikes (and when ADL closes
    their hedges, see the liquidation engine), return with a recovery half-life."""

    VOL_TRIGGER = 3.0  # a move of this many normal-step standard deviations starts withdrawal

    def __init__(self, model):
        super().__init__(model)
        rules = model.vb.rules
        dt = model.scenario.step_minutes
        self.recovery = np.array([1.0 - 0.5 ** (dt / r.mm_recovery_half_life_minutes) for r in rules])
        self.sensitivity = np.array([r.mm_vol_sensitivity for r in rules])
        self.normal_sigma = model.scenario.sigma_daily * np.sqrt(dt / 1440.0)

    def adjust(self, move: np.ndarray) -> None:
        """Update depth health after a step in which venue prices moved by ``move`` (log)."""
        vb = self.model.vb
        vb.health += (1.0 - vb.health) * self.recovery
        excess = np.maximum(np.abs(move) / self.normal_sigma - self.VOL_TRIGGER, 0.0)
        vb.health = np.minimum(vb.health, 1.0 / (1.0 + self.sensitivity * excess / self.VOL_TRIGGER))


class Arbitrageurs(mesa.Agent):
    """Desks that keep venue prices in line with the index, with capacity per minute."""

    def reset(self) -> None:
        m = self.model
        m.market.arb_left[:] = np.where(m.vb.arb_row >= 0, m.scenario.market.arb_capacity_usd_per_minute * m.scenario.step_minutes, 0.0)

    def act(self) -> None:
        self.model.market.arbitrage()

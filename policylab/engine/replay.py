"""Replay the vectorised margin and liquidation engine along an exogenous price path.

No trader decisions, no arbitrage, no funding: each step the fundamental moves by
the path's log return, the index's transient dislocation and the venues' basis decay
as in ``MarketModel.step``, the step's flow is reset (books refill), and cascade
rounds of the real ``LiquidationEngine`` run until nothing more triggers (the loop
of ``MarketModel._cascade`` without the arbitrage desks). ``reference.py`` runs the
same semantics one Mesa agent per account; the two are compared in the tests.
"""

from __future__ import annotations

import numpy as np

from policylab.engine.book import TraderBook, VenueBook
from policylab.engine.decay import left
from policylab.engine.liquidation import EventLog, LiquidationEngine
from policylab.engine.market import Market, MarketParams


class Replay:
    """The engine (``Market`` + ``LiquidationEngine``) on ``tb``/``vb`` (mutated in place).

    Args:
        tb, vb: accounts and venues, e.g. from ``population.build``; ``vb`` needs a spot venue.
        params: market parameters (impact, decay half-lives, band, rounds).
        start_price: index price (USD) at the start.
        log_returns: exogenous log return of the fundamental for each step.
        step_seconds: market time of one step (s), for cooldowns.
    """

    def __init__(self, tb: TraderBook, vb: VenueBook, params: MarketParams, start_price: float,
                 log_returns, step_seconds: float = 60.0):
        self.tb, self.vb, self.params = tb, vb, params
        self.returns = np.asarray(log_returns, dtype=float)
        self.step_seconds = float(step_seconds)
        self.market = Market(tb, vb, params, start_price, int(np.flatnonzero(vb.is_spot)[0]))
        self.events = EventLog()
        self.engine = LiquidationEngine(self.market, self.events)
        self.engine.refresh(np.flatnonzero(tb.size != 0))
        n, k = len(self.returns), len(vb.rules)
        self.t = 0
        self.index_path = np.empty(n + 1)
        self.price_path = np.empty((n + 1, k))
        self.rounds = np.zeros(n, dtype=np.int64)  # rounds with activity per step
        self.index_path[0] = self.market.index
        self.price_path[0] = self.market.prices()

    def step(self) -> None:
        """Apply one step's exogenous return, then cascade until nothing triggers."""
        t, mkt, prm, engine = self.t, self.market, self.params, self.engine
        dt = self.step_seconds / 60.0
        mkt.log_f += self.returns[t]
        mkt.m *= left(dt, prm.transient_half_life_minutes)
        self.vb.basis *= left(dt, prm.basis_half_life_minutes)
        mkt.flow[:] = 0.0
        mkt.volume[:] = 0.0
        time_s = t * self.step_seconds
        for rnd in range(prm.max_rounds):
            acted, waiting = engine.cascade_round(prm.band, time_s + rnd * prm.round_seconds, t, rnd)
            if acted:
                self.rounds[t] += 1
            elif not waiting or (rnd + 1) * prm.round_seconds >= self.step_seconds:
                break
        self.t += 1
        self.index_path[self.t] = mkt.index
        self.price_path[self.t] = mkt.prices()

    def run(self) -> "Replay":
        """Run the remaining steps of the path; returns self."""
        while self.t < len(self.returns):
            self.step()
        return self

    def equity(self) -> np.ndarray:
        """Every account's equity (USD) at the current venue prices."""
        return self.tb.equity(np.arange(self.tb.n), self.market.prices(), self.vb.coin_price)

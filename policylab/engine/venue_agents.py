"""The venues' own Mesa agents: each venue (funding settlement, unwinding its backstop
vault), the market makers (depth withdrawal and recovery) and the arbitrage desks."""

from __future__ import annotations

import mesa
import numpy as np
from mesa.time import Schedule

from policylab.engine import kernels, kernels_passes
from policylab.engine.book import PRO, RETAIL
from policylab.engine.streams import stream

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


class MarketMakers(mesa.Agent):
    """Quote depth on every venue: withdraw when volatility spikes (and when ADL closes
    their hedges, see the liquidation engine), return with a recovery half-life.

    On derivatives venues their balance sheet is limited (``market.mm_inventory_depths``,
    ``market.mm_margin``): the venue's book row is the market maker's account, started
    with ``market_maker_capital_usd``. Beyond its inventory limit it quotes depth x
    limit / inventory; with equity under twice its maintenance margin on the inventory
    it withdraws in proportion, and at or under it (out of margin) it quotes only
    ``mm_min_health`` of its depth. It is not liquidated: it stays the book's counterparty
    of last resort, so a loss beyond its capital is negative equity of the book row
    (money stays conserved; ``mm_health`` in the venue table shows the withdrawal). Depth
    comes back with the recovery half-life once
    inventory or losses are laid off. The spot book stands for the whole spot market
    and has no such limit.
    """

    VOL_TRIGGER = 3.0  # a move of this many normal-step standard deviations starts withdrawal
    TAKERS = (RETAIL, PRO)  # classes whose take-profit orders the market makers' skewed quotes fill

    def __init__(self, model):
        super().__init__(model)
        rules = model.vb.rules
        dt = model.scenario.step_minutes
        self.recovery = np.array([1.0 - 0.5 ** (dt / r.mm_recovery_half_life_minutes) for r in rules])
        self.sensitivity = np.array([r.mm_vol_sensitivity for r in rules])
        self.normal_sigma = model.scenario.sigma_daily * np.sqrt(dt / 1440.0)
        self.limited = ~model.vb.is_spot
        self.stream = stream(model.seed, "market_makers")
        self.takers = np.isin(model.tb.cls, self.TAKERS)  # rows that may take the skewed quotes
        self._cand = np.empty(model.tb.n, dtype=np.int64)  # the lay-off kernel's output buffer

    def adjust(self, move: np.ndarray) -> None:
        """Update depth health after a step in which venue prices moved by ``move`` (log)."""
        kernels.depth_health(self.model.vb.health, move, self.recovery, self.normal_sigma, self.VOL_TRIGGER,
                             self.sensitivity, self.limited, self.balance_sheet())

    def lay_off(self) -> None:
        """Lay off part of each derivatives book's inventory (``market.mm_layoff_half_life_minutes``):
        the market maker skews its quotes, which fills the take-profit orders of retail and
        professional traders in profit on the other side of its inventory, at the venue's
        price: each such trader closes its whole position with the chance that lays off the
        step's share in expectation. Both sides close, so open interest falls: after a crash,
        shorts in profit buy back the longs the books absorbed; the traders are then flat and
        come back as they trade again (slowly in a risk-off market)."""
        m = self.model
        hl = m.scenario.market.mm_layoff_half_life_minutes
        if hl <= 0:
            return
        tb, vb, mkt = m.tb, m.vb, m.market
        price = mkt.prices()
        n, room, inv = kernels_passes.layoff_scan(self.takers, tb.size, tb.venue, tb.entry, price, vb.mm_row,
                                                  self.limited, self._cand)
        if n == 0:
            return
        keep = 1.0 - 0.5 ** (m.scenario.step_minutes / hl)  # share of the inventory laid off per step
        closed = kernels_passes.layoff_fill(self.stream.random(n), self._cand, room, inv, keep, price, tb.venue,
                                            tb.size, tb.entry, tb.cash, tb.stop, vb.mm_row, mkt.tally,
                                            mkt.resident, mkt.traded, mkt.volume, mkt.resident_volume)
        if len(closed):
            m.engine.refresh(closed)

    def balance_sheet(self) -> np.ndarray:
        """Largest depth health each venue's market maker can quote with its inventory and equity."""
        m = self.model
        prm, tb, vb = m.scenario.market, m.tb, m.vb
        return kernels.balance_sheet(vb.mm_row, tb.size, tb.cash, m.market.prices(), vb.depth0,
                                     float(prm.mm_inventory_depths), float(prm.mm_margin), float(prm.mm_min_health))


class Arbitrageurs(mesa.Agent):
    """Desks that keep venue prices in line with the index, with capacity per minute."""

    def reset(self) -> None:
        m = self.model
        # only the desks' entries: the others stay at zero (nothing draws on them)
        np.copyto(m.market.arb_left, m.scenario.market.arb_capacity_usd_per_minute * m.scenario.step_minutes,
                  where=m.vb.arb_row >= 0)

    def act(self) -> None:
        self.model.market.arbitrage()

"""The venues' own Mesa agents: each venue (funding settlement, unwinding its backstop
vault), the market makers (depth withdrawal and recovery) and the arbitrage desks."""

from __future__ import annotations

import mesa
import numpy as np
from mesa.time import Schedule

from policylab.engine import kernels, kernels_layoff
from policylab.engine.book import PRO, RETAIL
from policylab.engine.decay import left
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
        self.vault_row = int(model.vb.vault_row[v])  # its backstop vault's account, -1: none
        self.unwind_share = min(1.0, self.VAULT_UNWIND_PER_MINUTE * model.scenario.step_minutes)  # per step
        if self.rules.is_perpetual:
            every = max(1, self.rules.funding_interval_minutes // model.scenario.step_minutes)
            model.schedule_recurring(self.settle_funding, Schedule(interval=every, start=every))

    def settle_funding(self) -> None:
        m = self.model
        rate, paid = m.market.settle_funding(self.v, self.rules.funding_interval_minutes)
        self.funding_rates.append((m.steps, rate))
        m.engine.refresh(paid)

    def decide(self):
        """The vault's unwind order: ``unwind_share`` of its position (BTC), or none."""
        row = self.vault_row
        if row < 0:
            return EMPTY
        size = self.model.tb.size[row]
        if size == 0:
            return EMPTY
        return np.array([row]), np.array([-size * self.unwind_share])


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
        self.recovery = np.array([1.0 - left(dt, r.mm_recovery_half_life_minutes) for r in rules])
        self.sensitivity = np.array([r.mm_vol_sensitivity for r in rules])
        self.normal_sigma = model.scenario.sigma_daily * np.sqrt(dt / 1440.0)
        self.limited = ~model.vb.is_spot
        self.stream = stream(model.seed, "market_makers")
        self.takers = np.isin(model.tb.cls, self.TAKERS)  # rows that may take the skewed quotes
        self.positions = TakerPositions(model.market, self.takers, self.limited)
        prm = model.scenario.market
        hl = prm.mm_layoff_half_life_minutes
        # share of the inventory laid off per step (None: no lay-off)
        self.keep = None if hl <= 0 else 1.0 - left(dt, hl)
        tb, vb, mkt, engine = model.tb, model.vb, model.market, model.engine
        # what the compiled calls read and change besides the step's prices and draws (arrays fixed for
        # the run; depth_health's and kernels_layoff.close's in one kernels.Bundle each)
        self._books = (vb.mm_row, tb.size, tb.cash)  # the books' rows, the accounts' sizes and cash
        self._sheet_args = (vb.depth0, float(prm.mm_inventory_depths), float(prm.mm_margin), float(prm.mm_min_health))
        self._depth_args = kernels.bundle((vb.health, self.recovery, self.normal_sigma, self.VOL_TRIGGER,
                                           self.sensitivity, self.limited, *self._books, *self._sheet_args))
        pos = self.positions
        accounts, venues = len(tb.size), len(rules)
        # kernels_layoff.close's scratch (a candidate is a taker: at most one per account): the draws, then the
        # closed rows; the ranks, then the rows traded (closed and books); sizes before, then notional (USD); one
        # venue's notional; marks (all False between calls); where each venue's ranks begin; the books' fills (BTC);
        # the stacks of a venue's volume sum
        self._close_scratch = (np.zeros(accounts, dtype=np.int64), np.zeros(accounts + venues, dtype=np.int64),
                               np.zeros(accounts + venues), np.zeros(accounts), np.zeros(accounts, dtype=np.bool_),
                               np.zeros(venues + 1, dtype=np.int64), np.zeros(venues), kernels.pairwise_scratch())
        self._close_args = kernels.bundle((
            pos.count, pos.where, self._close_scratch, tb.venue, tb.size, tb.entry, tb.cash, tb.stop, vb.mm_row,
            mkt.tally, mkt.resident, mkt.traded, mkt.volume, mkt.resident_volume, engine.protocol, tb.weight, tb.coin,
            tb.mm_floor, vb.coin_price, vb.haircut, vb.margin_mult, vb.tier_rate, vb.tier_ded, tb.liq_price, engine._n_changed))
        self._lay_off_args = kernels.bundle((pos._candidate_args, self._close_args, self.stream, pos.count, pos.share,
                                             np.zeros(len(rules), dtype=np.int64), engine._n_changed))

    def adjust(self, move: np.ndarray, price: np.ndarray) -> None:
        """Update depth health after a step in which venue prices moved by ``move`` (log) to
        ``price`` (``Market.prices``, USD per BTC)."""
        kernels.depth_health(move, price, self._depth_args)

    def lay_off(self, price: np.ndarray) -> None:
        """Lay off part of each derivatives book's inventory (``market.mm_layoff_half_life_minutes``):
        the market maker skews its quotes, which fills the take-profit orders of retail and
        professional traders in profit on the other side of its inventory, at the venue's
        price (``price``, ``Market.prices``, USD per BTC): each such trader closes its whole
        position with the chance (share) that lays off the step's part of the inventory in
        expectation, min(want, room) / room, want = |inventory| x (1 - 0.5^(step /
        half-life)), room = the BTC the candidates hold. Drawn
        by count: how many of a venue's candidates close ~ Binomial(candidates, share), then
        which ones uniformly without replacement (the same law as one Bernoulli(share) per
        candidate), from ``stream``: no draw when no book holds inventory or no trader is a
        candidate. Both sides close, so open interest falls: after a crash, shorts in profit
        buy back the longs the books absorbed; the traders are then flat and come back as
        they trade again (slowly in a risk-off market)."""
        if self.keep is None:
            return
        pos, engine = self.positions, self.model.engine
        pos.merge_if_due()
        need = kernels_layoff.lay_off(pos.rows, pos.key, pos.mag, pos.inc, pos.seg_lo, price, self.keep,
                                      engine._changed, self._lay_off_args)
        if need:
            engine._room(need)
            kernels_layoff.close_chosen(pos.rows, price, engine._changed, self._lay_off_args)

    def balance_sheet(self, price: np.ndarray) -> np.ndarray:
        """Largest depth health each venue's market maker can quote with its inventory and
        equity at ``price`` (``Market.prices``, USD per BTC)."""
        return kernels.balance_sheet(*self._books, price, *self._sheet_args)


class TakerPositions:
    """The takers' open positions sorted for the market makers' lay-off (see
    :mod:`policylab.engine.kernels_layoff`): per venue and side, the positions of the rows
    ``takers`` by key (entry for a long, -entry for a short; USD per BTC), ties by row, with
    the running sum of |size| (BTC) per segment; the books of the venues ``limited`` (their
    balance sheet is limited, see MarketMakers) lay off their inventory. Invariant: every
    taker row holding a position is either sorted in with its current size and entry, or
    logged as changed in ``market.changed`` (then its sorted entry, if any, is stale). The
    log is sorted in once the fresh rows checked since the last merge, summed over the
    steps, reach the number of sorted positions N (checking a fresh row costs about what
    merging a sorted position does): per step O(venues x log N + fresh rows), a merge O(N +
    fresh x log fresh). About 96 bytes per account. Sizes or entries set other than through
    the kernels must be followed by ``Market.count_longs``, which logs every row."""

    def __init__(self, market, takers: np.ndarray, limited: np.ndarray):
        venues = len(limited)
        self.market, self.takers, self.segments = market, takers, 2 * venues
        self.pos_of = np.full(len(takers), -1, dtype=np.int64)  # position of each row, -1: not sorted in
        self.rows = np.zeros(0, dtype=np.int64)
        self.seg = np.zeros(0, dtype=np.int64)
        self.key = np.zeros(0)
        self.mag = np.zeros(0)  # |size| (BTC)
        self.inc = np.zeros(0)  # running sum of mag within each segment, inclusive (BTC)
        self.seg_lo = np.zeros(self.segments + 1, dtype=np.int64)
        self.checked = 0  # fresh rows checked since the last merge
        # per log slot, the row's venue (-1: not a taker), sorted position and sorted |size| (BTC),
        # filled up to seen[0] (see kernels_layoff.candidates)
        self.slot_v = np.zeros(len(takers), dtype=np.int64)
        self.slot_q = np.zeros(len(takers), dtype=np.int64)
        self.slot_mag = np.zeros(len(takers))
        self.seen = np.zeros(1, dtype=np.int64)
        # the last candidates (kernels_layoff.candidates): per venue how many, the BTC they
        # hold, the chance each closes; where they are (lo, cut, stale_off, stale, fresh_off, fresh)
        self.count = np.zeros(venues, dtype=np.int64)
        self.room = np.zeros(venues)
        self.share = np.zeros(venues)
        self.where = (np.zeros(venues, dtype=np.int64), np.zeros(venues, dtype=np.int64),
                      np.zeros(venues + 1, dtype=np.int64), np.zeros(len(takers), dtype=np.int64),
                      np.zeros(venues + 1, dtype=np.int64), np.zeros(len(takers), dtype=np.int64))
        # kernels_layoff.candidates's scratch: each venue's inventory (BTC), each log slot's kind, where each
        # venue's next stale entry and fresh row go
        self.inventory = np.zeros(venues)
        self.slot_kind = np.zeros(len(takers), dtype=np.int8)
        self.next_slot = np.zeros(2 * venues, dtype=np.int64)
        tb = market.tb
        # what kernels_layoff.candidates reads and writes besides the sorted positions (arrays fixed for the
        # run), bundled
        self._candidate_args = kernels.bundle((
            self.pos_of, market.changes, self.slot_v, self.slot_q, self.slot_mag, self.seen, takers, tb.size, tb.venue,
            tb.entry, market.vb.mm_row, limited, self.count, self.room, self.share, self.where, self.inventory,
            self.slot_kind, self.next_slot))

    def merge(self) -> None:
        """Sort the logged rows in and clear the log."""
        mkt = self.market
        tb = mkt.tb
        (self.rows, self.seg, self.key, self.mag, self.inc, self.seg_lo) = kernels_layoff.merge(
            self.rows, self.seg, self.key, self.mag, self.segments, self.pos_of, mkt.changed, mkt.changes,
            self.takers, tb.size, tb.venue, tb.entry)
        self.checked = 0
        self.seen[0] = 0

    def merge_if_due(self) -> None:
        """:meth:`merge` once the fresh rows checked since the last merge reach the sorted positions' count."""
        self.checked += int(self.market.changes[0])
        if self.checked >= len(self.rows):
            self.merge()


class Arbitrageurs(mesa.Agent):
    """Desks that keep venue prices in line with the index, with capacity per minute."""

    def __init__(self, model):
        super().__init__(model)
        # each venue's capacity per step (USD), which Market.new_step gives them: zero on
        # venues without a desk (nothing draws on them)
        per_step = model.scenario.market.arb_capacity_usd_per_minute * model.scenario.step_minutes
        self.capacity = np.where(model.vb.arb_row >= 0, per_step, 0.0)

    def act(self) -> None:
        self.model.market.arbitrage()

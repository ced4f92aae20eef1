"""Prices and order execution: index, venue prices, square-root impact, arbitrage, funding.

log index = log fundamental + transient dislocation ``m``; log venue price = log index +
basis. Market orders on a venue are netted per round and filled against the venue's
book (its market-maker row) at the average price of a square-root impact curve:
the net flow a venue has absorbed so far in the step, F (USD), has moved its price by
``impact_y * sign(F) * sqrt(|F| / depth)``, depth being the venue's +/-1% depth.
Each round walks further along that curve, so a step's cascade is
one metaorder (the square-root law holds for the total, not for each slice), and a
round fills at the curve's average over its segment. Books refill between steps.
Flow on the spot venue moves the index (a share permanently); flow on a derivatives
venue moves its basis, which arbitrageurs carry to the index with limited capacity.
"""

from __future__ import annotations

import math

import numpy as np

from policylab.engine import kernels
from policylab.engine import kernels_cascade as kc
from policylab.engine import kernels_decide as kd
from policylab.engine.book import TraderBook, VenueBook
from policylab.inputs.market import MarketParams
from policylab.names import JURISDICTIONS, VENUE_CLASSES

__all__ = ["Market", "MarketParams"]


def _flags(flag: np.ndarray | bool, n: int) -> np.ndarray:
    """``flag`` as a boolean array of length ``n`` (one value for all, or one per order)."""
    if isinstance(flag, (bool, np.bool_)):
        return np.ones(n, dtype=bool) if flag else np.zeros(n, dtype=bool)
    return np.asarray(flag, dtype=bool)


def _clip(x: float, lo: float, hi: float) -> float:
    """``np.clip`` of one number (``x`` if NaN or within [lo, hi], the bound it crosses otherwise),
    without NumPy's call overhead (about 4 us)."""
    return min(max(x, lo), hi)


class Market:
    """Index and venue prices plus the execution of market orders against venue books."""

    def __init__(self, tb: TraderBook, vb: VenueBook, params: MarketParams, start_price: float, spot_venue: int):
        self.tb, self.vb, self.params = tb, vb, params
        # log fundamental (exogenous plus permanent impact) and transient index dislocation,
        # in one array the compiled kernels move (see log_f, m)
        self.lm = np.array([float(np.log(start_price)), 0.0])
        self.spot = spot_venue
        self.arb_left = np.zeros(len(vb.rules))  # arbitrage capacity left this step (USD)
        self.volume = np.zeros(len(vb.rules))  # traded notional this step (USD)
        self.flow = np.zeros(len(vb.rules))  # net flow absorbed by each book this step (USD)
        # who traded the volume: forced orders (liquidations, stops, backstop vaults' unwinds,
        # basis traders' unhedged spot legs) per venue this step (USD); per jurisdiction of
        # residence and venue this step (USD); per account over the run (USD)
        self.forced_volume = np.zeros(len(vb.rules))
        self.resident_volume = np.zeros((len(JURISDICTIONS), len(vb.rules)))
        self.traded = np.zeros(tb.n)
        self.resident = np.where(np.isin(tb.cls, VENUE_CLASSES), -1, tb.juris).astype(np.int8)  # -1: a venue's own row
        self.opened = np.zeros(tb.n)  # per account: position opened so far (BTC; a flip opens its new side)
        # long BTC per jurisdiction of residence and venue, and per venue (last row), kept
        # current by every size change (kernels.hold) for the per-step recording
        self.longs = np.zeros((3, len(JURISDICTIONS) + 1, len(vb.rules)))
        # the accounts whose size (so also entry) changed since the market makers' lay-off
        # last sorted its taker positions in (venue_agents.TakerPositions, which reads and
        # clears them): a flag per account, and the flagged rows in the order first changed,
        # after their count (slot 0); kernels.hold logs every size change
        self.changed = np.zeros(tb.n, dtype=np.bool_)
        self.changes = np.zeros(tb.n + 1, dtype=np.int64)
        self.count_longs()
        # the arbitrage kernel's arguments but the prices' growth, bundled once: the arrays and
        # parameters are fixed for a run (arrays changed in place, never replaced)
        self._arbitrage_args = kernels.bundle((
            float(params.impact_y), float(params.arb_min_gap), float(params.arb_gap_share), vb.depth0,
            vb.liquidity_mult, vb.health, vb.coin_price, vb.haircut, vb.arb_row, self.arb_left, vb.tier_floor,
            vb.tier_lev, vb.taker_fee, vb.liq_fee, vb.fee_to_fund, vb.mm_row, vb.fund, vb.fees, tb.venue, tb.size,
            tb.entry, tb.cash, tb.coin, tb.leverage, tb.weight, tb.hedge, tb.hedge_cash, self.flow, self.volume,
            self.resident, self.traded, self.forced_volume, self.resident_volume, self.tally, vb.basis, self.lm,
            self.spot, float(params.permanent_share)))

    @property
    def tally(self) -> tuple:
        """What the kernels that change sizes update (``kernels.count_opened``): (opened,
        venue, residence, longs, changed, changes)."""
        return self.opened, self.tb.venue, self.resident, self.longs, self.changed, self.changes

    # ---------------------------------------------------------------- prices
    @property
    def log_f(self) -> float:
        """Log fundamental: exogenous plus permanent impact."""
        return float(self.lm[0])

    @log_f.setter
    def log_f(self, value: float) -> None:
        self.lm[0] = value

    @property
    def m(self) -> float:
        """Transient log dislocation of the index from the fundamental."""
        return float(self.lm[1])

    @m.setter
    def m(self, value: float) -> None:
        self.lm[1] = value

    @property
    def index(self) -> float:
        return math.exp(self.lm[0] + self.lm[1])

    def prices(self) -> np.ndarray:
        """Each venue's own (book) price: orders fill here."""
        return self.index * np.exp(self.vb.basis)

    def marks(self) -> np.ndarray:
        """Each venue's mark price, at which margin, liquidations, stops and takeovers are
        checked: the index on venues that mark to an oracle, else the book price."""
        return self.prices_and_marks()[1]

    def prices_and_marks(self) -> tuple[np.ndarray, np.ndarray]:
        """(:meth:`prices`, :meth:`marks`) from one exponential of the basis."""
        return kc.prices(self.lm, np.exp(self.vb.basis), self.vb.mark_index)

    def _coefficients(self) -> np.ndarray:
        """The square-root impact curve's coefficient per venue: impact_y / sqrt(depth)."""
        vb = self.vb
        return kc.coefficients(float(self.params.impact_y), vb.depth0, vb.liquidity_mult, vb.health)

    # ---------------------------------------------------------------- execution
    def new_step(self, arb_capacity: np.ndarray) -> None:
        """Reset the per-step flows (volume, its forced and per-jurisdiction parts, net flow)
        and the arbitrage capacity left to ``arb_capacity`` (USD per venue, zero without a desk)."""
        kd.new_step(self.volume, self.forced_volume, self.resident_volume, self.flow, self.arb_left, arb_capacity)

    def execute(self, idx: np.ndarray, dq: np.ndarray, *, liquidation: np.ndarray | bool = False,
                forced: np.ndarray | bool = False) -> np.ndarray:
        """Fill market orders ``dq`` (BTC, signed) of unique accounts ``idx`` on their venues.

        Orders are netted per venue; the net is absorbed by the venue's book row at the
        average impact price; all orders of the batch fill at that price. Liquidation
        orders pay the venue's liquidation fee to its fund (at most the account's
        remaining equity) instead of the taker fee. ``forced``: orders no trader chose
        (liquidations, stops, unwinds of taken-over positions), recorded in
        ``forced_volume``. Returns the fill price per venue. The model's step and cascade
        execute through their own kernels (``kernels_decide.execute_voluntary``,
        ``kernels_cascade.run_round``); this is the one-call entry for scripts and tests.
        The venues' book rows take the net and cannot place orders here (raises ValueError:
        their change would be counted twice in the long positions).
        """
        tb, vb = self.tb, self.vb
        price = self.prices()
        if len(idx) == 0:
            return price
        books = np.intersect1d(idx, vb.mm_row[vb.mm_row >= 0])
        if len(books):
            raise ValueError(f"Market.execute: book rows {books.tolist()} cannot place orders (they take the net)")
        return kc.execute_orders(
            np.ascontiguousarray(idx, dtype=np.int64), np.ascontiguousarray(dq, dtype=float),
            _flags(liquidation, len(idx)), _flags(forced, len(idx)), price, self._coefficients(), vb.coin_value,
            tb.venue, tb.size, tb.entry, tb.cash, tb.coin, vb.taker_fee, vb.liq_fee, vb.fee_to_fund, vb.mm_row, vb.fund,
            vb.fees, self.flow, self.volume, self.resident, self.traded, self.forced_volume, self.resident_volume,
            self.tally, vb.basis, self.lm, self.spot, float(self.params.permanent_share))

    def count_longs(self) -> None:
        """Count the long positions (``longs``) afresh from every account, and log every
        account as changed: after sizes, entries or venues were set other than through the
        kernels (the starting book, the venue choice)."""
        n = self.tb.n
        self.longs.fill(0.0)
        kernels.hold(np.arange(n), np.zeros(n), self.tb.size, self.tally)

    def _count_opened(self, idx: np.ndarray, before: np.ndarray) -> None:
        """Add to ``opened`` what accounts ``idx`` (unique) opened since their sizes were ``before``
        (the run's invariants check that no account is closed out of more than it held), and
        keep the long positions current."""
        kernels.count_opened(idx, before, self.tb.size, self.tally)

    def transfer(self, idx: np.ndarray, dq: np.ndarray, px: np.ndarray) -> None:
        """Move ``dq`` BTC of position into accounts ``idx`` at prices ``px`` (USD per BTC):
        their cash, size and average entry change; no fees, no price impact, no volume. For
        off-book transfers: a book taking a net change, vault takeovers, ADL, hedge legs."""
        tb = self.tb
        rows = idx if len(idx) == 1 else np.unique(idx)
        before = tb.size[rows]
        kernels.trade(idx, np.asarray(dq, dtype=float), np.asarray(px, dtype=float), tb.size, tb.entry, tb.cash)
        self._count_opened(rows, before)

    # ---------------------------------------------------------------- arbitrage
    def arbitrage(self) -> None:
        """Arbitrage desks buy the cheap venue and sell spot (or the reverse), within capacity
        (kernels_cascade.arbitrage: orders, execution and spot legs in one call)."""
        kc.arbitrage(np.exp(self.vb.basis), self._arbitrage_args)

    def trade_spot(self, idx: np.ndarray, dq: np.ndarray, *, forced: bool = False) -> None:
        """Spot trades of unique accounts' hedge legs (``hedge`` BTC, ``hedge_cash`` USD)
        against the spot book; ``forced``: legs left unhedged by a forced close (see :meth:`execute`)."""
        tb, vb = self.tb, self.vb
        kc.trade_spot(np.ascontiguousarray(idx, dtype=np.int64), np.ascontiguousarray(dq, dtype=float), bool(forced),
                      self._coefficients(), tb.hedge, tb.hedge_cash, tb.size, tb.entry, tb.cash, vb.mm_row, self.flow,
                      self.volume, self.tally, self.resident, self.traded, self.forced_volume, self.resident_volume,
                      vb.basis, self.lm, self.spot, float(self.params.permanent_share))

    # ---------------------------------------------------------------- funding
    def settle_funding(self, v: int, interval_minutes: float) -> tuple[float, np.ndarray]:
        """Pay funding on venue ``v``: longs pay shorts when the average premium is positive.

        Rate per 8h: F = P + clamp(interest - P, +/-clamp); scaled to the interval; capped
        per hour. Payments are size x price x rate, so they sum to zero over the venue.
        Returns the rate applied and the accounts that paid or received it (their margin
        changed: the liquidation engine refreshes them).
        """
        tb, vb = self.tb, self.vb
        rules = vb.rules[v]
        prem = vb.premium_sum[v] / max(vb.premium_n[v], 1.0)
        vb.premium_sum[v] = vb.premium_n[v] = 0.0
        f8 = prem + _clip(rules.funding_interest_8h - prem, -rules.funding_clamp_8h, rules.funding_clamp_8h)
        rate = f8 * interval_minutes / 480.0
        cap = rules.funding_cap_1h * interval_minutes / 60.0
        rate = float(_clip(rate, -cap, cap))
        on = np.flatnonzero((tb.venue == v) & (tb.size != 0))
        price = self.prices()[v]
        tb.cash[on] -= tb.size[on] * price * rate
        return rate, on

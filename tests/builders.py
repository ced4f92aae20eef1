"""Hand-made books for mechanics tests: a few accounts on one or two venues.

    sim = build([venue("offshore_dex", tiers=[{"from_notional": 0, "max_leverage": 20}])],
                [acct(size=1.0, entry=100_000, margin=5_000)])
    sim.set_price(97_000)
    sim.round()

Rows: the given accounts first (account i is row i), then one market-maker book per
venue (holding the opposite of the accounts' positions, so sizes net to zero), then a
backstop vault per venue whose ``backstop_threshold`` is positive, then (if
``arb_capital``) an arbitrage desk per derivatives venue. A spot venue is appended
last (it carries the index). With the default ``impact_y=0`` every order fills
exactly at the venue price, so hand arithmetic needs no impact terms.
"""

from __future__ import annotations

import numpy as np

from policylab.engine.audit import Ledger
from policylab.engine.book import ARB, CLASSES, MM, VAULT, TraderBook, VenueBook
from policylab.engine.liquidation import EVENT_KINDS, EventLog, LiquidationEngine
from policylab.engine.market import Market, MarketParams
from policylab.venues import make_venue

QUIET = dict(taker_fee=0.0, liquidation_fee=0.0, partial_threshold_usd=float("inf"), backstop_threshold=0.0)


def venue(kind: str = "offshore_dex", name: str | None = None, quiet: bool = True, **overrides):
    """An archetype with overrides; ``quiet`` first zeroes fees, slicing and the backstop."""
    return make_venue(name or kind, kind, {**(QUIET if quiet else {}), **overrides})


def acct(venue: int = 0, size: float = 0.0, entry: float | None = None, margin: float = 0.0,
         cash: float | None = None, weight: float = 1.0, coin: float = 0.0, stop: float = np.nan,
         cls: str = "retail") -> dict:
    """An account opened at ``entry`` with ``margin`` USD (cash = margin - size x entry),
    unless ``cash`` is given explicitly."""
    return dict(venue=venue, size=size, entry=entry, margin=margin, cash=cash, weight=weight, coin=coin,
                stop=stop, cls=CLASSES.index(cls))


class Sim:
    """TraderBook + VenueBook + Market + LiquidationEngine; quacks like a model for the Ledger."""

    def __init__(self, venues, accounts, price=100_000.0, mm_capital=1e9, arb_capital=0.0,
                 params: MarketParams | None = None):
        rules = list(venues) + [make_venue("spot", "spot_etf")]
        vb = VenueBook(rules)
        k = len(rules)
        vaults = [v for v in range(k) if vb.backstop[v] > 0]
        desks = list(range(k - 1)) if arb_capital > 0 else []
        n = len(accounts)
        tb = TraderBook(n + k + len(vaults) + len(desks))
        for i, a in enumerate(accounts):
            entry = price if a["entry"] is None else a["entry"]
            tb.venue[i], tb.cls[i], tb.weight[i] = a["venue"], a["cls"], a["weight"]
            tb.size[i], tb.entry[i] = a["size"], entry if a["size"] else 0.0
            tb.cash[i] = a["cash"] if a["cash"] is not None else a["margin"] - a["size"] * entry
            tb.coin[i], tb.stop[i], tb.deposit[i] = a["coin"], a["stop"], a["margin"]
        for v in range(k):  # the book took the other side of every account, at their entries
            r = n + v
            on = np.flatnonzero(tb.venue[:n] == v)
            s = -tb.size[on].sum()
            tb.venue[r], tb.cls[r], tb.weight[r] = v, MM, 1.0
            tb.size[r] = s
            tb.entry[r] = (tb.size[on] * tb.entry[on]).sum() / tb.size[on].sum() if s else 0.0
            tb.cash[r] = mm_capital - s * tb.entry[r]
            vb.mm_row[v] = r
        for j, v in enumerate(vaults):
            r = n + k + j
            tb.venue[r], tb.cls[r], tb.weight[r] = v, VAULT, 1.0
            tb.cash[r] = rules[v].vault_capital_usd
            vb.vault_row[v] = r
        for j, v in enumerate(desks):  # arbitrage desks (5x, like the model's)
            r = n + k + len(vaults) + j
            tb.venue[r], tb.cls[r], tb.weight[r], tb.leverage[r] = v, ARB, 1.0, 5.0
            tb.cash[r] = arb_capital
            vb.arb_row[v] = r
        self.tb, self.vb = tb, vb
        self.market = Market(tb, vb, params or MarketParams(impact_y=0.0), price, spot_venue=k - 1)
        self.events = EventLog()
        self.engine = LiquidationEngine(self.market, self.events)
        self.accounts = np.flatnonzero(~self.engine.protocol)  # traders and desks
        self.engine.refresh(self.accounts)  # liquidation prices, as the model's population does
        self.ledger = Ledger(self)

    # ------------------------------------------------------------ driving
    def set_price(self, price: float, v: int | None = None) -> None:
        """Set every venue's price (or only venue ``v``'s, through its basis)."""
        if v is None:
            self.market.log_f, self.market.m = float(np.log(price)), 0.0
            self.vb.basis[:] = 0.0
        else:
            self.vb.basis[v] = np.log(price) - np.log(self.market.index)

    def set_coin_price(self, value: float, v: int = 0) -> None:
        """Depeg (or repeg) venue ``v``'s stablecoin; liquidation prices follow, as in the model."""
        self.vb.coin_price[v] = value
        self.engine.refresh(np.flatnonzero(self.tb.coin > 0))

    def round(self, time_s: float = 0.0, step: int = 0, rnd: int = 0) -> tuple[int, int]:
        """One liquidation round over every account; the ledger is checked after it."""
        out = self.engine.run_round(self.accounts.copy(), time_s, step, rnd)
        self.ledger.check(f"after round {rnd} at t={time_s}")
        return out

    def new_step(self) -> None:
        """Books refill (the step's cumulative flow restarts at zero); arbitrage capacity resets."""
        self.market.flow[:] = 0.0
        self.market.arb_left[:] = np.where(self.vb.arb_row >= 0, self.market.params.arb_capacity_usd_per_minute, 0.0)

    # ------------------------------------------------------------ reading
    def price(self, v: int = 0) -> float:
        return float(self.market.prices()[v])

    def equity(self, i: int) -> float:
        return float(self.tb.equity(np.array([i]), self.market.prices(), self.vb.coin_price)[0])

    def events_of(self, kind: str) -> dict[str, np.ndarray]:
        ev = self.events.arrays()
        sel = ev["kind"] == EVENT_KINDS.index(kind)
        return {key: col[sel] for key, col in ev.items()}

    def mm(self, v: int = 0) -> int:
        return int(self.vb.mm_row[v])

    def vault(self, v: int = 0) -> int:
        return int(self.vb.vault_row[v])


def build(venues, accounts, **kw) -> Sim:
    return Sim(venues, accounts, **kw)


__all__ = ["QUIET", "Sim", "acct", "build", "venue"]


def parts_since(log: EventLog, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The events of ``log``'s parts ``first`` onwards (a part: one ``EventLog.add``, one kind
    in one round): (accounts, sizes, each part's length, each part's kind). The NumPy reading
    of the log's layout that ``kernels_passes.closed_out`` does compiled: the tests' oracle."""
    a, parts = (int(log.starts[first]) if first < log.n[1] else int(log.n[0])), int(log.n[1])
    bounds = np.append(log.starts[first:parts], log.n[0])
    return (log.ints[3, a:log.n[0]].copy(), log.floats[0, a:log.n[0]].copy(), np.diff(bounds),
            log.ints[2, log.starts[first:parts]])


def split_rounds(engine) -> None:
    """Have the model's cascade run each round as ``engine.run_round(engine.near(band), ...)``,
    the two calls ``LiquidationEngine.cascade_round`` makes in one (the same round, bit for
    bit: tests/test_kernels_cascade.py), looked up at each round so a test can wrap either."""
    engine.cascade_round = lambda band, time_s, step, rnd: engine.run_round(engine.near(band), time_s, step, rnd)

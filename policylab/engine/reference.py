"""Per-trader reference of the margin and liquidation engine: one Mesa agent per account.

Each account is a ``TraderAgent`` holding its state as plain Python floats. In every
cascade round each agent checks its own margin at the round's start prices (notional
tiers, maintenance, backstop threshold, partial slice and cooldown, stop-loss) and
submits what is due; the model then executes the round's submissions together, in
the engine's order: backstop takeovers at mark, auto-deleveraging of the bankrupt
positions the insurance fund cannot cover (at their bankruptcy price, against ranked
profitable opposite positions; a counterparty that price takes below zero is made
whole by the fund), then one netted market order per venue filled at the average price
of the square-root impact curve, liquidation penalties to the fund and negative
balances covered by it. After every round a backstop vault with negative equity is
itself auto-deleveraged. Rounds repeat until nothing triggers.

Decisions are taken in one pass and executed after (orders sorted by account), so the
activation order (``shuffle_do``) cannot change results. The semantics are those of
``replay.Replay`` (the vectorised engine); only the arithmetic is per trader. A close-out
closes its fraction of the position held when the round's market orders execute.
"""

from __future__ import annotations

import math

import mesa
import numpy as np

from policylab.engine.book import PROTOCOL_CLASSES, TraderBook, VenueBook
from policylab.engine.decay import left
from policylab.engine.liquidation import EVENT_KINDS
from policylab.engine.market import MarketParams

BACKSTOP, LIQUIDATE, STOP = "backstop", "liquidate", "stop"


def _sign(x: float) -> float:
    return (x > 0) - (x < 0)


class VenueState:
    """One venue's rules and state as Python scalars, and its book and vault accounts."""

    def __init__(self, vb: VenueBook, v: int):
        r = vb.rules[v]
        self.v = v
        self.is_spot = r.is_spot
        self.adl_ranking = r.adl_ranking
        self.mark_index = r.mark_price == "index"
        self.mm_adl_withdrawal = r.mm_adl_withdrawal
        # maintenance rate per tier is maintenance_ratio / tier leverage; deductions make
        # maintenance continuous in notional (MM = notional x rate - deduction)
        self.floors = [t.from_notional for t in r.tiers]
        self.rates = [0.0 if r.is_spot else r.maintenance_ratio / t.max_leverage for t in r.tiers]
        self.deductions = [0.0]
        for k in range(1, len(self.rates)):
            self.deductions.append(self.deductions[-1] + self.floors[k] * (self.rates[k] - self.rates[k - 1]))
        for name in ("fund", "fees", "collateral_loss", "basis", "health", "liquidity_mult", "coin_price", "depth0",
                     "taker_fee", "liq_fee", "backstop", "partial_threshold", "partial_fraction", "cooldown"):
            setattr(self, name, float(getattr(vb, name)[v]))
        self.nbp = bool(vb.nbp[v])
        self.flow = 0.0  # net flow absorbed by the book this step (USD)
        self.round_price = 0.0  # mark price at the start of the current round
        self.accounts: list[TraderAgent] = []
        self.book: TraderAgent | None = None
        self.vault: TraderAgent | None = None

    def tier(self, notional_per_account: float) -> tuple[float, float]:
        """(maintenance rate, deduction) of the highest tier whose floor the notional reaches."""
        k = 0
        for j in range(1, len(self.floors)):
            if notional_per_account >= self.floors[j]:
                k = j
        return self.rates[k], self.deductions[k]

    def depth(self) -> float:
        return self.depth0 * self.liquidity_mult * self.health


class TraderAgent(mesa.Agent):
    """One account (trader, market-maker book or backstop vault) with float state."""

    def __init__(self, model: ReferenceModel, row: int, tb: TraderBook):
        super().__init__(model)
        self.row = row
        self.venue: VenueState = model.venues[int(tb.venue[row])]
        self.protocol = int(tb.cls[row]) in PROTOCOL_CLASSES
        self.weight = float(tb.weight[row])
        self.cash = float(tb.cash[row])
        self.size = float(tb.size[row])
        self.entry = float(tb.entry[row])
        self.stop = float(tb.stop[row])
        self.coin = float(tb.coin[row])
        self.last_liq = float(tb.last_liq[row])
        self.liquidated = bool(tb.liquidated[row])

    def equity(self, price: float) -> float:
        return self.cash + self.size * price - self.coin * (1.0 - self.venue.coin_price)

    def maintenance(self, price: float) -> float:
        notional = abs(self.size) * price
        rate, ded = self.venue.tier(notional / self.weight)
        return max(notional * rate - self.weight * ded, 0.0)

    def step(self) -> None:
        """Check margin and stop at the round's start price and submit what is due."""
        if self.protocol or self.size == 0.0:
            return
        m, v = self.model, self.venue
        p = v.round_price
        eq = self.equity(p)
        mm = self.maintenance(p)
        if eq < mm:
            if v.vault is not None and eq < v.backstop * mm:
                m.submit(BACKSTOP, self, 1.0)
                return
            sliced = abs(self.size) * p / self.weight * (1.0 - v.partial_fraction) > v.partial_threshold and eq > 0
            if sliced and m.time_s - self.last_liq < v.cooldown:
                m.waiting += 1
            else:
                m.submit(LIQUIDATE, self, v.partial_fraction if sliced else 1.0)
        elif (self.size > 0 and p <= self.stop) or (self.size < 0 and p >= self.stop):
            m.submit(STOP, self, 1.0)

    def trade(self, dq: float, px: float) -> None:
        """Buy ``dq`` BTC (sell if negative) at ``px``: cash, size and average entry."""
        s0, s1 = self.size, self.size + dq
        if s0 == 0 or s0 * s1 < 0:
            self.entry = px
        elif s0 * dq > 0:
            self.entry = (self.entry * s0 + dq * px) / s1
        if s1 == 0:
            self.entry = 0.0
        self.cash -= dq * px
        self.size = s1

    def realise_coin(self) -> None:
        """Sell depegged collateral at its current value (on close-out)."""
        if self.coin > 0:
            loss = self.coin * (1.0 - self.venue.coin_price)
            self.cash -= loss
            self.coin = 0.0
            self.venue.collateral_loss += loss

    def adl_score(self, price: float) -> float:
        """Auto-deleveraging priority (higher first) under the venue's ranking."""
        entry = self.entry if self.entry > 0 else price
        equity = max(self.equity(price), 1e-9)
        notional = abs(self.size) * price
        if self.venue.adl_ranking == "hyperliquid":
            ratio = price / entry if self.size > 0 else entry / price
            return ratio * notional / equity
        if self.venue.adl_ranking == "binance":
            upnl = self.size * (price - entry)
            margin = max(equity - upnl, 1e-9)
            return (upnl / margin) * (notional / equity)
        return 1.0


class ReferenceModel(mesa.Model):
    """The engine along an exogenous path of log returns, one agent per account.

    Takes the same inputs as ``replay.Replay`` and copies the book's state at creation
    (``tb`` and ``vb`` are not modified). Per step: the fundamental moves by the path's
    return, transient index dislocation and basis decay, books refill (flow resets),
    and rounds run until nothing triggers.
    """

    def __init__(self, tb: TraderBook, vb: VenueBook, params: MarketParams, start_price: float,
                 log_returns, step_seconds: float = 60.0, rng=None):
        super().__init__(rng=rng)
        self.params = params
        self.returns = [float(r) for r in log_returns]
        self.step_seconds = float(step_seconds)
        self.venues = [VenueState(vb, v) for v in range(len(vb.rules))]
        self.spot = next(v for v, venue in enumerate(self.venues) if venue.is_spot)
        self.accounts = [TraderAgent(self, i, tb) for i in range(tb.n)]
        for a in self.accounts:
            a.venue.accounts.append(a)
        for v, venue in enumerate(self.venues):
            venue.book = self.accounts[int(vb.mm_row[v])]
            venue.vault = self.accounts[int(vb.vault_row[v])] if vb.vault_row[v] >= 0 else None
        self.log_f = math.log(start_price)
        self.m = 0.0
        self.time_s = 0.0
        self.orders: list[tuple[str, TraderAgent, float]] = []
        self.waiting = 0
        self.events: list[tuple] = []  # (step, round, kind code, account, size, price, deficit)
        self.rounds: list[int] = []
        self.index_path = [self.index()]
        self.price_path = [self.prices()]

    # ------------------------------------------------------------ prices and impact
    def index(self) -> float:
        return math.exp(self.log_f + self.m)

    def prices(self) -> list[float]:
        index = self.index()
        return [index * math.exp(venue.basis) for venue in self.venues]

    def marks(self) -> list[float]:
        """Prices margin is checked at: the index on venues that mark to it, else the book's."""
        index = self.index()
        return [index if venue.mark_index else p for venue, p in zip(self.venues, self.prices())]

    def impact(self, venue: VenueState, q: float) -> tuple[float, float]:
        """(price move, average fill relative to the pre-trade price), log, for a net
        flow ``q`` (USD) walking further along the venue's square-root curve this step."""
        c = self.params.impact_y / math.sqrt(venue.depth())
        f0, f1 = venue.flow, venue.flow + q
        g0 = _sign(f0) * math.sqrt(abs(f0))
        move = c * (_sign(f1) * math.sqrt(abs(f1)) - g0)
        if q == 0:
            return move, 0.0
        return move, c * (2.0 / 3.0) * (abs(f1) ** 1.5 - abs(f0) ** 1.5) / q - c * g0

    def move(self, v: int, dlog: float) -> None:
        """Spot flow moves the index (other venues' prices stay); other flow moves basis."""
        if v == self.spot:
            share = self.params.permanent_share
            self.log_f += share * dlog
            self.m += (1.0 - share) * dlog
            for venue in self.venues:
                venue.basis -= dlog
            self.venues[v].basis = 0.0
        else:
            self.venues[v].basis += dlog

    # ------------------------------------------------------------ one step
    def submit(self, kind: str, agent: TraderAgent, frac: float) -> None:
        self.orders.append((kind, agent, frac))

    def step(self) -> None:
        t = self.steps - 1
        prm = self.params
        dt = self.step_seconds / 60.0
        self.log_f += self.returns[t]
        self.m *= left(dt, prm.transient_half_life_minutes)
        decay = left(dt, prm.basis_half_life_minutes)
        for venue in self.venues:
            venue.basis *= decay
            venue.flow = 0.0
        active = 0
        for rnd in range(prm.max_rounds):
            acted, waiting = self.run_round(t, rnd)
            if acted:
                active += 1
            elif not waiting or (rnd + 1) * prm.round_seconds >= self.step_seconds:
                break
        self.rounds.append(active)
        self.index_path.append(self.index())
        self.price_path.append(self.prices())

    def run(self) -> ReferenceModel:
        """Run the remaining steps of the path; returns self."""
        while self.steps < len(self.returns):
            self.step()
        return self

    def run_round(self, t: int, rnd: int) -> tuple[int, int]:
        """Every agent decides at the round's start prices, then the round executes.
        Returns (accounts acted on, accounts waiting for their cooldown)."""
        self.time_s = t * self.step_seconds + rnd * self.params.round_seconds
        price = self.marks()
        for venue, p in zip(self.venues, price):
            venue.round_price = p
        self.orders, self.waiting = [], 0
        self.agents.shuffle_do("step")
        orders = sorted(self.orders, key=lambda o: o[1].row)
        backstops = [a for kind, a, _ in orders if kind == BACKSTOP]
        market = [o for o in orders if o[0] != BACKSTOP]
        if backstops:
            self._backstop(backstops, price, t, rnd)
        bankrupt = self._adl_selection(market)
        if bankrupt:
            gone = set(bankrupt)
            rest = self._adl(bankrupt, price, t, rnd)
            market = [o for o in market if o[1] not in gone] + [(LIQUIDATE, a, 1.0) for a in rest]
            market = [o for o in market if o[1].size != 0]  # counterparties ADL closed entirely
        if market:
            self._execute(market, t, rnd)
        self._vault_solvency(t, rnd)
        return len(orders), self.waiting

    # ------------------------------------------------------------ mechanisms
    def _event(self, t: int, rnd: int, kind: str, a: TraderAgent, size: float, price: float, deficit: float = 0.0):
        self.events.append((t, rnd, EVENT_KINDS.index(kind), a.row, size, price, deficit))

    def _backstop(self, accounts: list[TraderAgent], price: list[float], t: int, rnd: int) -> None:
        """Each venue's vault takes the round's positions over at mark, in one netted
        trade, with all their remaining margin."""
        for v, venue in enumerate(self.venues):
            group = [a for a in accounts if a.venue is venue]
            if not group:
                continue
            px = price[v]
            sizes = [a.size for a in group]
            for a, s in zip(group, sizes):
                a.realise_coin()
                a.trade(-s, px)
            total = sum(sizes)
            if total != 0:
                venue.vault.trade(total, sum(s * px for s in sizes) / total)
            else:
                venue.vault.cash -= sum(s * px for s in sizes)
            for a, s in zip(group, sizes):
                venue.vault.cash += a.cash
                a.cash = 0.0
                a.stop = math.nan
                a.liquidated = True
                self._event(t, rnd, "backstop", a, s, px)

    def _vault_solvency(self, t: int, rnd: int) -> None:
        """A backstop vault whose equity turns negative is itself auto-deleveraged (on
        venues with an ADL ranking); what finds no counterparty stays with it."""
        price = self.marks()
        broke = [venue.vault for venue in self.venues
                 if venue.vault is not None and venue.adl_ranking != "none" and venue.vault.size != 0
                 and venue.vault.cash + venue.vault.size * price[venue.v] < 0]
        if broke:
            self._adl(broke, price, t, rnd)

    def _fill_prices(self, orders) -> list[float]:
        """Average fill price per venue for the net of ``orders`` (no state change)."""
        price = self.prices()
        net = [0.0] * len(self.venues)
        for _, a, frac in orders:
            net[a.venue.v] -= a.size * frac
        return [p * math.exp(self.impact(venue, q * p)[1]) for venue, p, q in zip(self.venues, price, net)]

    def _adl_selection(self, orders) -> list[TraderAgent]:
        """Whole liquidations to auto-deleverage: per venue that ranks and protects
        balances, the largest prospective deficits until the fund covers the rest."""
        whole = [a for kind, a, frac in orders if kind == LIQUIDATE and frac >= 1.0]
        if not whole:
            return []
        fill = self._fill_prices(orders)
        chosen = []
        for v, venue in enumerate(self.venues):
            if venue.adl_ranking == "none" or not venue.nbp:
                continue
            cand = [a for a in whole if a.venue is venue]
            deficits = [max(-(a.cash + a.size * fill[v] - a.coin * (1.0 - venue.coin_price)), 0.0) for a in cand]
            total = sum(deficits)
            fund = max(venue.fund, 0.0)
            if not cand or total <= fund:
                continue
            covered = 0.0
            for d, a in sorted(zip(deficits, cand), key=lambda x: (-x[0], x[1].row)):
                if d <= 0:
                    break
                chosen.append(a)
                covered += d
                if total - covered <= fund:
                    break
        return chosen

    def _adl(self, bankrupt: list[TraderAgent], price: list[float], t: int, rnd: int) -> list[TraderAgent]:
        """Close bankrupt positions at their bankruptcy price against the venue's most
        highly ranked profitable opposite positions. Returns the bankrupt accounts with
        a position left (no or too little counterparty), to be liquidated at market."""
        for a in bankrupt:
            a.realise_coin()
        excluded = set(bankrupt)
        left = []
        for v, venue in enumerate(self.venues):
            p = price[v]
            for sd in (1.0, -1.0):
                b = [a for a in bankrupt if a.venue is venue and _sign(a.size) == sd]
                if not b:
                    continue
                need = sum(abs(a.size) for a in b)
                cp = [a for a in venue.accounts
                      if a.size * sd < 0 and a not in excluded and a.size * (p - a.entry) > 0]
                if not cp:
                    left.extend(b)
                    continue
                if venue.adl_ranking == "pro_rata":
                    scale = min(1.0, need / sum(abs(a.size) for a in cp))
                    take = [abs(a.size) * scale for a in cp]
                else:
                    cp.sort(key=lambda a: (-a.adl_score(p), a.row))
                    take, before = [], 0.0  # size of the higher-ranked counterparties
                    for a in cp:
                        avail = abs(a.size)
                        x = min(max(need - before, 0.0), avail)
                        take.append(x if x > 1e-12 * need else 0.0)  # drop rounding residue of the need
                        before += avail
                f = min(1.0, sum(abs(a.size) for a in cp) / need)  # share of the need covered
                closed = [a.size * f for a in b]
                p_bk = [-a.cash / a.size for a in b]
                pbar = sum(c * q for c, q in zip(closed, p_bk)) / sum(closed)
                for a, c, q in zip(b, closed, p_bk):
                    a.trade(-c, q)
                    a.liquidated = True
                    self._event(t, rnd, "adl", a, c, q)
                for a, x in zip(cp, take):
                    if x > 0:
                        a.trade(sd * x, pbar)
                        self._event(t, rnd, "adl_counterparty", a, -sd * x, pbar)
                        if venue.nbp:  # the fund makes whole a counterparty the ADL price takes below zero
                            shortfall = max(-a.equity(p), 0.0)
                            a.cash += shortfall
                            venue.fund -= shortfall
                if any(a is venue.book and x > 0 for a, x in zip(cp, take)):
                    venue.health *= 1.0 - venue.mm_adl_withdrawal
                if f < 1.0:
                    left.extend(b)
        for a in bankrupt:
            if a.size == 0:
                a.stop = math.nan
        return left

    def _execute(self, orders, t: int, rnd: int) -> None:
        """Net the orders per venue, fill them at the venue's average impact price
        against its book, charge penalties or fees, and cover negative balances."""
        price = self.prices()
        k = len(self.venues)
        v_of = [a.venue.v for _, a, _ in orders]
        dq = [-(a.size * frac) for _, a, frac in orders]
        pre = [a.size for _, a, _ in orders]
        net = [0.0] * k
        for v, q in zip(v_of, dq):
            net[v] += q
        fill, moves = list(price), [0.0] * k
        for v, venue in enumerate(self.venues):
            if net[v] != 0:
                moves[v], avg = self.impact(venue, net[v] * price[v])
                fill[v] = price[v] * math.exp(avg)
            venue.flow += net[v] * price[v]
        for v in range(k):
            if net[v] != 0:
                self.move(v, moves[v])
        for (_, a, _), v, q in zip(orders, v_of, dq):
            a.trade(q, fill[v])
        for v, venue in enumerate(self.venues):
            if net[v] != 0:
                venue.book.trade(-net[v], fill[v])
        for (kind, a, frac), v, q, s in zip(orders, v_of, dq, pre):
            venue = a.venue
            notional = abs(q) * fill[v]
            if kind == LIQUIDATE:
                penalty = min(notional * venue.liq_fee, max(a.equity(fill[v]), 0.0))
                a.cash -= penalty
                venue.fund += penalty
                a.last_liq = self.time_s
                a.liquidated = True
            else:
                fee = notional * venue.taker_fee
                a.cash -= fee
                venue.fees += fee
            deficit = 0.0
            if a.size == 0:
                a.realise_coin()
                deficit = max(-a.cash, 0.0)
                if deficit > 0 and venue.nbp:
                    venue.fund -= deficit
                    a.cash = 0.0
                a.stop = math.nan
            if kind == STOP:
                self._event(t, rnd, "stop", a, s, fill[v])
            elif frac >= 1.0:
                self._event(t, rnd, "liquidation", a, s, fill[v], deficit)
            else:
                self._event(t, rnd, "partial", a, -q, fill[v])

    # ------------------------------------------------------------ results
    def equity(self) -> list[float]:
        """Every account's equity (USD) at the current venue prices, by account row."""
        price = self.prices()
        return [a.equity(price[a.venue.v]) for a in self.accounts]

    def event_arrays(self) -> dict[str, np.ndarray]:
        """Events as columns (the keys of ``EventLog.arrays`` they share)."""
        cols = ("step", "round", "kind", "account", "size", "price", "deficit")
        return {c: np.array([e[j] for e in self.events], dtype=float) for j, c in enumerate(cols)}

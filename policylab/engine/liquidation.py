"""The margin and liquidation engine, one cascade round at a time, vectorised.

In a round, every account whose equity is below maintenance margin is liquidated as
its venue does it, and every triggered stop-loss is sent to market. Margin and stops
are checked at the venue's mark price: its own book price, or the index on venues that
mark to an oracle of spot prices (Hyperliquid); orders always fill in the venue's book,
so a thin book can fill liquidations below their bankruptcy price.

1. backstop: below ``backstop_threshold`` x maintenance, the venue's vault (or pool)
   takes over the position at mark with all remaining margin;
2. partial slices: accounts that stay above ``partial_threshold_usd`` after losing
   ``partial_fraction`` of the position are sliced, at most once per
   ``cooldown_seconds``; smaller ones close whole;
3. market execution at the price the book gives (square-root impact), with the
   liquidation fee going to the fund;
4. loss absorption: a closed account with negative equity is made whole by the fund
   (negative balance protection) or keeps its debt (no protection); if the fund
   cannot cover the round's shortfall and the venue auto-deleverages, the bankrupt
   positions with the largest deficits are instead closed against the most
   profitable opposite positions (by the venue's ranking) at their bankruptcy price;
   so is a backstop vault whose equity turns negative.
"""

from __future__ import annotations

import numpy as np

from policylab.engine import kernels
from policylab.engine import kernels_cascade as kc
from policylab.names import EVENT_KINDS
from policylab.engine.book import ARB, PROTOCOL_CLASSES, TraderBook, VenueBook
from policylab.engine.margin import adl_scores, liquidation_price, maintenance
from policylab.engine.market import Market



class EventLog:
    """Liquidation, ADL and stop events, collected as arrays and turned into a table. Each
    event carries its account's jurisdiction of residence (``juris``: index in
    names.JURISDICTIONS; its venue's own rows too, see ``Market.resident`` for who has
    one) and the leverage it chose before any rule (``lev_chosen``, x).

    Events are appended to growable buffers (the compiled cascade round writes into them):
    ``ints`` rows step, round, kind, account, venue, cls, juris; ``floats`` rows size,
    price, weight, deficit, lev_chosen; ``starts`` the first event of each part (one
    :meth:`add`: one kind in one round); ``n`` = (events, parts)."""

    COLUMNS = ("step", "round", "venue", "account", "kind", "side", "size_btc", "price", "notional_usd", "accounts",
               "deficit_usd", "jurisdiction", "leverage_chosen")
    _ARRAYS = ("account", "venue", "cls", "size", "price", "weight", "deficit", "juris", "lev_chosen")
    _INTS = (("step", np.int64), ("round", np.int64), ("kind", np.int64), ("account", np.int64),
             ("venue", np.int16), ("cls", np.int8), ("juris", np.int8))
    _FLOATS = ("size", "price", "weight", "deficit", "lev_chosen")

    def __init__(self, capacity: int = 4096):
        self.ints = np.zeros((len(self._INTS), capacity), dtype=np.int64)
        self.floats = np.zeros((len(self._FLOATS), capacity))
        self.starts = np.zeros(capacity, dtype=np.int64)
        self.n = np.zeros(2, dtype=np.int64)

    def reserve(self, events: int, parts: int) -> None:
        """Make room for ``events`` more events in ``parts`` more parts."""
        need, have = int(self.n[0]) + events, self.ints.shape[1]
        if need > have:
            size = max(need, 2 * have)
            self.ints = np.concatenate([self.ints, np.zeros((self.ints.shape[0], size - have), np.int64)], axis=1)
            self.floats = np.concatenate([self.floats, np.zeros((self.floats.shape[0], size - have))], axis=1)
        need, have = int(self.n[1]) + parts, len(self.starts)
        if need > have:
            self.starts = np.concatenate([self.starts, np.zeros(max(need, 2 * have) - have, np.int64)])

    def add(self, step, rnd, kind, tb: TraderBook, idx, size, price, deficit=None):
        if len(idx) == 0:
            return
        idx = np.asarray(idx)
        m = len(idx)
        self.reserve(m, 1)
        a, p = int(self.n[0]), int(self.n[1])
        rows = slice(a, a + m)
        self.ints[0, rows], self.ints[1, rows], self.ints[2, rows] = step, rnd, EVENT_KINDS.index(kind)
        self.ints[3, rows], self.ints[4, rows], self.ints[5, rows], self.ints[6, rows] = \
            idx, tb.venue[idx], tb.cls[idx], tb.juris[idx]
        self.floats[0, rows] = np.asarray(size, dtype=float)
        self.floats[1, rows] = np.asarray(price, dtype=float)
        self.floats[2, rows] = tb.weight[idx]
        self.floats[3, rows] = 0.0 if deficit is None else np.asarray(deficit, dtype=float)
        self.floats[4, rows] = tb.lev_chosen[idx]
        self.starts[p] = a
        self.n[:] = a + m, p + 1

    def arrays(self) -> dict[str, np.ndarray]:
        n = int(self.n[0])
        if n == 0:
            empty = np.zeros(0)
            return {c: empty for c in ("step", "round", "kind", *self._ARRAYS)}
        out = {name: self.ints[j, :n].astype(dtype) for j, (name, dtype) in enumerate(self._INTS)}
        out.update({name: self.floats[j, :n].copy() for j, name in enumerate(self._FLOATS)})
        return out

    def parts_since(self, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The events of parts ``first`` onwards (a part: one :meth:`add`, one kind in one
        round): (accounts, sizes, each part's length, each part's kind)."""
        a, parts = (int(self.starts[first]) if first < self.n[1] else int(self.n[0])), int(self.n[1])
        bounds = np.append(self.starts[first:parts], self.n[0])
        return (self.ints[3, a:self.n[0]].copy(), self.floats[0, a:self.n[0]].copy(), np.diff(bounds),
                self.ints[2, self.starts[first:parts]])


class LiquidationEngine:
    def __init__(self, market: Market, events: EventLog):
        self.mkt = market
        self.tb: TraderBook = market.tb
        self.vb: VenueBook = market.vb
        self.events = events
        self.protocol = np.isin(self.tb.cls, PROTOCOL_CLASSES)
        self.always = self.tb.cls == ARB  # accounts checked every round (they trade every round)
        self.vault_rows = self.vb.vault_row[self.vb.vault_row >= 0]
        self.adl_volume = np.zeros(len(self.vb.rules))  # USD closed by ADL (both legs counted once)
        n, k = max(self.tb.n, 1), len(self.vb.rules)
        self._near_mark = np.zeros(k)  # the band set (see near): the marks it was scanned at, its band
        self._band = self._edges = None
        self._member, self._dirty = np.zeros(n, bool), np.zeros(n, bool)  # its state (kernels_cascade.band_set)
        self._members, self._over = np.zeros(n, np.int64), np.zeros(n, np.int64)
        self._alw = np.zeros(max(int(self.always.sum()), 1), np.int64)
        self._counts = np.zeros(kc.COUNTS, np.int64)
        self._lacc, self._sacc = np.zeros(n, np.int64), np.zeros(n, np.int64)
        self._lkey, self._skey = np.zeros(n), np.zeros(n)
        self._lstart, self._sstart = np.zeros(k + 1, np.int64), np.zeros(k + 1, np.int64)
        self._changed = np.zeros(max(self.tb.n, 1), dtype=np.int64)  # accounts refreshed since the band set was
        self._n_changed = np.zeros(1, dtype=np.int64)  # updated: the first _n_changed[0] (repeats allowed)
        self._ranked = np.array([r.adl_ranking != "none" for r in self.vb.rules])  # venues that auto-deleverage
        self._kinds = np.array([EVENT_KINDS.index(k) for k in ("liquidation", "partial", "stop", "backstop")],
                               dtype=np.int64)
        self._avg = np.zeros(len(self.vb.rules))  # the ADL selection's average fills (log, see run_round)
        self._no_fill = np.zeros(0)

    # ------------------------------------------------------------ helpers
    def _room(self, n: int) -> None:
        """Make room for ``n`` more changed accounts."""
        need = int(self._n_changed[0]) + n
        if need > len(self._changed):
            self._changed = np.concatenate([self._changed, np.zeros(max(need, 2 * len(self._changed)), np.int64)])

    def refresh(self, idx: np.ndarray) -> None:
        """Recompute prefilter liquidation prices of accounts whose state changed
        (repeated accounts are harmless: each gets the same value). Every change of an
        account's margin state (its stop included) must come through here, before or after
        the change and before the next cascade round, so the band set and its sorted
        triggers stay exact."""
        tb, vb = self.tb, self.vb
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        self._room(len(idx))
        kc.refresh(idx, self.protocol, tb.venue, tb.size, tb.weight, tb.cash, tb.coin, tb.mm_floor, vb.coin_value,
                   vb.margin_mult, vb.tier_rate, vb.tier_ded, tb.liq_price, self._changed, self._n_changed)

    def near(self, band: float) -> np.ndarray:
        """Accounts (ascending) that may be due at the current mark prices: of the band set
        (below), those whose liquidation or stop trigger the marks have reached (as
        :func:`kernels.due` tests it) and the ``always`` ones; ``due`` over them finds what it
        finds over the whole band set.

        A full scan keeps the accounts whose trigger is within ``band`` (log) of the marks
        at the scan, or already crossed: longs with a trigger above mark x e^-band, shorts
        with one below mark x e^band (a short below maintenance at any price has a
        non-positive liquidation price). Until the marks move more than half the band
        from those of the scan, that set plus the accounts refreshed since (filtered the
        same way) still holds every account the marks can have reached; then it is
        rescanned. Its members' triggers are kept sorted per venue and side
        (:func:`kernels_cascade.band_set`), so a round costs the accounts it reaches and
        those refreshed since the last sort, not a pass over all accounts or members."""
        tb, vb = self.tb, self.vb
        rescan = self._band is None or band != self._band
        if band != self._band:
            self._band, self._edges = band, (np.exp(-band), np.exp(band))
        return kc.band_set(rescan, np.exp(vb.basis), self.mkt.lm, vb.mark_index, self._near_mark, self._edges[0],
                           self._edges[1], band / 2, tb.size, tb.venue, tb.liq_price, tb.stop, self.always,
                           self.protocol, kc.DUE_TOL, self._changed, self._n_changed, self._member, self._dirty,
                           self._members, self._over, self._alw, self._counts, self._lacc, self._lkey, self._lstart,
                           self._sacc, self._skey, self._sstart)

    def _realise_coin(self, idx: np.ndarray) -> None:
        """A closed-out account's depegged collateral is sold at its current value."""
        tb, vb = self.tb, self.vb
        idx = idx[tb.coin[idx] > 0]
        if len(idx) == 0:
            return
        loss = tb.coin[idx] * (1.0 - vb.coin_price[tb.venue[idx]])
        tb.cash[idx] -= loss
        tb.coin[idx] = 0.0
        vb.collateral_loss += np.bincount(tb.venue[idx], weights=loss, minlength=len(vb.rules))

    # ------------------------------------------------------------ one round
    def run_round(self, near: np.ndarray, time_s: float, step: int, rnd: int) -> tuple[int, int]:
        """Liquidate and stop out what is due now. Returns (accounts acted on, accounts
        still under maintenance but waiting for their cooldown).

        The round is one compiled call (kernels_cascade.run_round; two when the ADL
        selection needs the fill prices); a round that auto-deleverages runs
        :meth:`_run_round_python` instead."""
        tb, vb, mkt = self.tb, self.vb, self.mkt
        near = np.ascontiguousarray(near, dtype=np.int64)
        self.events.reserve(len(near), 4)
        self._room(len(near))
        ev, efill = self.events, self._no_fill
        while True:
            outcome, acted, waiting = kc.run_round(
                near, np.exp(vb.basis), efill, self._avg, float(time_s), int(step), int(rnd), self._kinds,
                tb.size, tb.venue, tb.weight, tb.cash, tb.coin, tb.liq_price, tb.stop, tb.mm_floor, tb.entry,
                tb.last_liq, tb.liquidated, tb.cls, tb.juris, tb.lev_chosen, self.always, self.protocol,
                vb.coin_price, vb.haircut, vb.margin_mult, vb.tier_floor, vb.tier_rate, vb.tier_ded, self.vault_rows,
                vb.vault_row, vb.backstop, vb.partial_fraction, vb.partial_threshold, vb.cooldown, vb.nbp,
                self._ranked, vb.mark_index, vb.taker_fee, vb.liq_fee, vb.fee_to_fund, vb.mm_row, vb.fund, vb.fees,
                vb.collateral_loss, vb.depth0, vb.liquidity_mult, vb.health, float(mkt.params.impact_y), mkt.flow,
                mkt.volume, mkt.resident, mkt.traded, mkt.forced_volume, mkt.resident_volume, mkt.tally, vb.basis,
                mkt.lm, mkt.spot, float(mkt.params.permanent_share), ev.ints, ev.floats, ev.n, ev.starts,
                self._changed, self._n_changed)
            if outcome != kc.NEED_FILL:
                break
            efill = np.exp(self._avg)  # NumPy's exponential, as fill_prices takes it
        if outcome == kc.PYTHON:
            return self._run_round_python(near, time_s, step, rnd)
        if outcome == kc.VAULTS:
            self._vault_solvency(step, rnd)
        return acted, waiting

    def _run_round_python(self, near: np.ndarray, time_s: float, step: int, rnd: int) -> tuple[int, int]:
        """:meth:`run_round` with every mechanism, auto-deleveraging included."""
        tb, vb, mkt = self.tb, self.vb, self.mkt
        price = mkt.marks()  # margin is checked at mark; orders fill at the book's price
        near = kernels.due(near, tb.size, tb.venue, tb.weight, tb.cash, tb.coin, tb.liq_price, tb.stop, tb.mm_floor,
                           self.always, self.protocol, price, vb.coin_value, vb.margin_mult, vb.tier_floor,
                           vb.tier_rate, vb.tier_ded, kc.DUE_TOL)
        if len(near) == 0:
            self._vault_solvency(step, rnd)
            return 0, 0
        v = tb.venue[near]
        s = tb.size[near]
        p = price[v]
        eq = tb.equity(near, price, vb.coin_value)
        mmr = maintenance(tb, vb, near, price)
        under = eq < mmr
        stop_hit = ~under & (((s > 0) & (p <= tb.stop[near])) | ((s < 0) & (p >= tb.stop[near])))
        # 1. backstop takeover
        bs = under & (vb.vault_row[v] >= 0) & (eq < vb.backstop[v] * mmr)
        if bs.any():
            self._backstop(near[bs], price, step, rnd)
        under &= ~bs
        # 2. slices and cooldown (an account with no equity left is closed whole)
        # a slice applies only while what remains after it stays above the threshold
        per_account = np.abs(s) * p / tb.weight[near]
        big = under & (per_account * (1.0 - vb.partial_fraction[v]) > vb.partial_threshold[v]) & (eq > 0)
        waiting = big & (time_s - tb.last_liq[near] < vb.cooldown[v])
        under &= ~waiting
        liq = near[under]
        frac = np.where(big[under], vb.partial_fraction[v[under]], 1.0)
        stops = near[stop_hit]
        acted = int(bs.sum() + len(liq) + len(stops))
        if len(liq) + len(stops) == 0:
            self._vault_solvency(step, rnd)
            return acted, int(waiting.sum())
        idx = np.concatenate([liq, stops])
        share = np.concatenate([frac, np.ones(len(stops))])  # share of the position each order closes
        dq = -tb.size[idx] * share
        is_liq = np.concatenate([np.ones(len(liq), bool), np.zeros(len(stops), bool)])
        whole = share >= 1.0
        # 4a. auto-deleveraging instead of market for what the fund cannot cover
        adl_set = self._adl_selection(idx, dq, is_liq & whole)
        if len(adl_set):
            keep = ~np.isin(idx, adl_set)
            remainder = self._adl(adl_set, price, step, rnd)
            idx = np.concatenate([idx[keep], remainder])
            share = np.concatenate([share[keep], np.ones(len(remainder))])
            is_liq = np.concatenate([is_liq[keep], np.ones(len(remainder), bool)])
            whole = np.concatenate([whole[keep], np.ones(len(remainder), bool)])
            dq = -tb.size[idx] * share  # ADL may have reduced orders' positions (counterparties)
            live = dq != 0
            idx, share, is_liq, whole, dq = idx[live], share[live], is_liq[live], whole[live], dq[live]
        # 3. market execution
        pre_size = tb.size[idx].copy()
        fill = mkt.execute(idx, dq, liquidation=is_liq, forced=True)
        fv = fill[tb.venue[idx]]
        done = idx[is_liq]
        tb.last_liq[done] = time_s
        tb.liquidated[done] = True
        flat = tb.size[idx] == 0
        closed = idx[flat]
        self._realise_coin(closed)
        # 4b. negative equity after close: the fund covers it, or the trader owes it
        d_all = np.where(flat, np.maximum(-tb.cash[idx], 0.0), 0.0)
        self.cover_negative(closed)
        tb.stop[closed] = np.nan
        liq_whole = is_liq & whole
        liq_part = is_liq & ~whole
        self.events.add(step, rnd, "liquidation", tb, idx[liq_whole], pre_size[liq_whole], fv[liq_whole], d_all[liq_whole])
        self.events.add(step, rnd, "partial", tb, idx[liq_part], -dq[liq_part], fv[liq_part])
        self.events.add(step, rnd, "stop", tb, idx[~is_liq], pre_size[~is_liq], fv[~is_liq])
        self.refresh(idx)
        self._vault_solvency(step, rnd)
        return acted, int(waiting.sum())

    def cover_negative(self, idx: np.ndarray) -> None:
        """Negative balance protection: the fund makes a flat account's negative cash whole
        (on venues without it, the trader keeps the debt)."""
        tb, vb = self.tb, self.vb
        cov = idx[(tb.size[idx] == 0) & (tb.cash[idx] < 0) & vb.nbp[tb.venue[idx]] & ~self.protocol[idx]]
        if len(cov):
            amount = -tb.cash[cov]
            tb.cash[cov] = 0.0
            vb.fund -= np.bincount(tb.venue[cov], weights=amount, minlength=len(vb.rules))

    def _vault_solvency(self, step: int, rnd: int) -> None:
        """A backstop vault whose equity turns negative is itself auto-deleveraged
        (venues with an ADL ranking): its positions close against ranked profitable
        opposite accounts at its bankruptcy price."""
        tb, vb = self.tb, self.vb
        rows = self.vault_rows
        if len(rows) == 0:
            return
        price = self.mkt.marks()
        broke = kernels.under_water(rows, tb.cash, tb.size, tb.venue, price)
        if len(broke):
            broke = broke[self._ranked[tb.venue[broke]]]
        if len(broke):
            self._adl(broke, price, step, rnd)

    # ------------------------------------------------------------ mechanisms
    def _backstop(self, idx: np.ndarray, price: np.ndarray, step: int, rnd: int) -> None:
        tb, vb = self.tb, self.vb
        self._realise_coin(idx)
        v = tb.venue[idx]
        vault = vb.vault_row[v]
        size = tb.size[idx].copy()
        for row in np.unique(vault):
            sel = idx[vault == row]
            self._to_vault(sel, int(row), price[tb.venue[sel]])
            tb.cash[row] += tb.cash[sel].sum()
            tb.cash[sel] = 0.0
        tb.stop[idx] = np.nan
        tb.liquidated[idx] = True
        self.events.add(step, rnd, "backstop", tb, idx, size, price[v])
        self.refresh(idx)

    def _to_vault(self, sel: np.ndarray, row: int, px: np.ndarray) -> None:
        """Move several positions to one vault row at their marks."""
        tb = self.tb
        dq = tb.size[sel].copy()
        self.mkt.transfer(sel, -dq, px)
        total = dq.sum()
        if total != 0:
            self.mkt.transfer(np.array([row]), np.array([total]), np.array([(dq * px).sum() / total]))
        else:  # offsetting positions: only cash changes hands
            tb.cash[row] -= (dq * px).sum()

    def _adl_selection(self, idx: np.ndarray, dq: np.ndarray, whole_liq: np.ndarray) -> np.ndarray:
        """Bankrupt accounts to auto-deleverage: per venue with ADL, the largest
        prospective deficits until the fund covers the rest."""
        tb, vb = self.tb, self.vb
        cand = idx[whole_liq]
        if len(cand) == 0:
            return cand
        v = tb.venue[cand]
        venues = [u for u in np.unique(v) if vb.rules[u].adl_ranking != "none" and vb.nbp[u]]
        if not venues:
            return np.zeros(0, dtype=np.int64)
        fill = self.mkt.fill_prices(idx, dq)
        eq_after = tb.cash[cand] + tb.size[cand] * fill[v] - tb.coin[cand] * (1 - vb.coin_price[v])  # realised value
        deficit = np.maximum(-eq_after, 0.0)
        chosen = []
        for u in venues:
            sel = v == u
            d = deficit[sel]
            total = d.sum()
            if total <= max(vb.fund[u], 0.0):
                continue
            order = np.argsort(-d, kind="stable")
            remaining = total - np.cumsum(d[order])
            j = int(np.searchsorted(-remaining, -max(vb.fund[u], 0.0))) + 1  # first j with remaining <= fund
            chosen.append(cand[sel][order[:j]][d[order[:j]] > 0])
        return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)

    def _adl(self, bankrupt: np.ndarray, price: np.ndarray, step: int, rnd: int) -> np.ndarray:
        """Close bankrupt positions against ranked profitable opposite positions at the
        bankruptcy price. Returns the bankrupt accounts (or what is left of them) that
        found no counterparty and must go to market."""
        tb, vb, mkt = self.tb, self.vb, self.mkt
        self._realise_coin(bankrupt)
        leftover = []
        for u in np.unique(tb.venue[bankrupt]):
            ranking = vb.rules[u].adl_ranking
            on_venue = np.flatnonzero(tb.venue == u)
            for sd in (1.0, -1.0):
                b = bankrupt[(tb.venue[bankrupt] == u) & (np.sign(tb.size[bankrupt]) == sd)]
                if len(b) == 0:
                    continue
                need = np.abs(tb.size[b]).sum()
                cp = on_venue[(tb.size[on_venue] * sd < 0)]
                cp = cp[~np.isin(cp, bankrupt)]
                cp = cp[tb.size[cp] * (price[u] - tb.entry[cp]) > 0]
                if len(cp) == 0:
                    leftover.append(b)
                    continue
                avail = np.abs(tb.size[cp])
                if ranking == "pro_rata":
                    take = avail * min(1.0, need / avail.sum())
                else:
                    order = np.argsort(-adl_scores(tb, cp, price, vb.coin_value, ranking), kind="stable")
                    cp, avail = cp[order], avail[order]
                    before = np.concatenate([[0.0], np.cumsum(avail)[:-1]])  # sizes ranked above each
                    take = np.clip(need - before, 0.0, avail)
                    take[take <= 1e-12 * need] = 0.0  # rounding dust below the need
                f = 1.0 if take.sum() >= need * (1 - 1e-12) else take.sum() / need
                cp, take = cp[take > 0], take[take > 0]
                if len(cp) == 0:  # every counterparty's share rounds to nothing (need dwarfs them)
                    leftover.append(b)
                    continue
                closed = tb.size[b] * f
                p_bk = -tb.cash[b] / tb.size[b]
                pbar = (closed * p_bk).sum() / closed.sum()
                mkt.transfer(b, -closed, p_bk)
                mkt.transfer(cp, sd * take, np.full(len(cp), pbar))
                if vb.nbp[u]:  # a counterparty the ADL price takes below zero is made whole by the fund
                    short = np.maximum(-tb.equity(cp, price, vb.coin_value), 0.0)
                    tb.cash[cp] += short
                    vb.fund[u] -= short.sum()
                self.adl_volume[u] += np.abs(closed * p_bk).sum()
                tb.liquidated[b] = True
                if vb.mm_row[u] in cp:
                    vb.health[u] *= 1.0 - vb.rules[u].mm_adl_withdrawal
                self.events.add(step, rnd, "adl", tb, b, closed, p_bk)
                self.events.add(step, rnd, "adl_counterparty", tb, cp, -sd * take, pbar)
                self.refresh(cp)
                if f < 1.0:
                    leftover.append(b)
        tb.stop[bankrupt[tb.size[bankrupt] == 0]] = np.nan
        self.refresh(bankrupt)
        return np.concatenate(leftover) if leftover else np.zeros(0, dtype=np.int64)

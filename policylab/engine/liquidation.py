"""The margin and liquidation engine, one cascade round at a time, each one compiled call
(policylab.engine.kernels_cascade.run_round).

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
        """Append one part of ``kind`` events from Python (the model's kernels write the
        buffers themselves; this is for scripts and the tests' NumPy oracles)."""
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
        self._band = self._edges = None  # and (e^-band, e^band, half the band) (see near)
        self._member, self._dirty = np.zeros(n, bool), np.zeros(n, bool)  # its state (kernels_cascade.band_set)
        self._members, self._over = np.zeros(n, np.int64), np.zeros(n, np.int64)
        # per account its entry in _over; per entry its trigger and signed venue (kernels_cascade._note_over)
        self._slot, self._over_key, self._over_venue = np.zeros(n, np.int64), np.zeros(n), np.zeros(n, np.int64)
        self._alw = np.zeros(max(int(self.always.sum()), 1), np.int64)
        self._counts = np.zeros(kc.COUNTS, np.int64)
        self._lacc, self._sacc = np.zeros(n, np.int64), np.zeros(n, np.int64)
        self._lkey, self._skey = np.zeros(n), np.zeros(n)
        self._lstart, self._sstart = np.zeros(k + 1, np.int64), np.zeros(k + 1, np.int64)
        self._changed = np.zeros(max(self.tb.n, 1), dtype=np.int64)  # accounts refreshed since the band set was
        self._n_changed = np.zeros(1, dtype=np.int64)  # updated: the first _n_changed[0] (repeats allowed)
        # prices kept stale by set_maintenance: per venue, the lowest multiplier since all were
        # exact, and whether any is stale
        self._m_lo = self.vb.margin_mult.copy()
        self._stale, self._any_stale = np.zeros(k, bool), False
        self._rank = np.array([kc.RANKINGS.index(r.adl_ranking) for r in self.vb.rules], dtype=np.int64)
        self._withdrawal = np.array([r.mm_adl_withdrawal for r in self.vb.rules], dtype=float)
        self._kinds = np.array([EVENT_KINDS.index(kind) for kind in ("liquidation", "partial", "stop", "backstop",
                                                                     "adl", "adl_counterparty")], dtype=np.int64)
        self._parts = int(kc.parts(k))  # event parts one round can add
        self._avg = np.zeros(k)  # the ADL choice's average fills (log, see run_round)
        self._no_fill = np.zeros(0)
        self._no_accounts = np.zeros(0, dtype=np.int64)  # cascade_round's near_set on a first call
        # the band set's and the round's arguments that are the same at every call, bundled once:
        # the accounts', venues' and market's arrays and the market's parameters are fixed for a
        # run (changed in place, never replaced); the growable buffers are passed apart
        tb, vb, mkt = self.tb, self.vb, market
        self._band_args = kernels.bundle((
            mkt.lm, vb.mark_index, self._near_mark, tb.size, tb.venue, tb.liq_price, tb.stop, self.always,
            self.protocol, kc.DUE_TOL, self._n_changed, self._member, self._dirty, self._members, self._over,
            self._slot, self._over_key, self._over_venue, self._alw,
            self._counts, self._lacc, self._lkey, self._lstart, self._sacc, self._skey, self._sstart))
        self._remargin_args = kernels.bundle((
            self._m_lo, self._stale, self._member, self._dirty, self.always, self.protocol, tb.venue, tb.size,
            tb.weight, tb.cash, tb.coin, tb.mm_floor, vb.margin_mult, vb.tier_rate, vb.tier_ded, tb.liq_price, tb.stop,
            kc.DUE_TOL, self._n_changed, self._lacc, self._lkey, self._lstart, self._sacc, self._skey, self._sstart))
        self._round_args = kernels.bundle((
            self._avg, self._kinds, tb.size, tb.venue, tb.weight, tb.cash, tb.coin, tb.liq_price, tb.stop, tb.mm_floor,
            tb.entry, tb.last_liq, tb.liquidated, tb.cls, tb.juris, tb.lev_chosen, self.always, self.protocol,
            vb.coin_price, vb.haircut, vb.margin_mult, vb.tier_floor, vb.tier_rate, vb.tier_ded, self.vault_rows,
            vb.vault_row, vb.backstop, vb.partial_fraction, vb.partial_threshold, vb.cooldown, vb.nbp, self._rank,
            self._withdrawal, vb.mark_index, vb.taker_fee, vb.liq_fee, vb.fee_to_fund, vb.mm_row, vb.fund, vb.fees,
            vb.collateral_loss, self.adl_volume, vb.depth0, vb.liquidity_mult, vb.health, float(mkt.params.impact_y),
            mkt.flow, mkt.volume, mkt.resident, mkt.traded, mkt.forced_volume, mkt.resident_volume, mkt.tally,
            vb.basis, mkt.lm, mkt.spot, float(mkt.params.permanent_share), self._n_changed))
        self._settle_args = kernels.bundle((
            mkt.lm, vb.mark_index, self._near_mark, self._m_lo, self._stale, self.protocol, tb.venue, tb.size,
            tb.weight, tb.cash, tb.coin, tb.mm_floor, vb.coin_price, vb.haircut, vb.margin_mult, vb.tier_rate,
            vb.tier_ded, tb.liq_price, self._n_changed))
        self._cascade_args = kernels.bundle((self._settle_args, self._band_args, self._round_args))

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
        triggers stay exact (and :meth:`set_maintenance`'s bound holds for prices it keeps)."""
        tb, vb = self.tb, self.vb
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        self._room(len(idx))
        kc.refresh(idx, self.protocol, tb.venue, tb.size, tb.weight, tb.cash, tb.coin, tb.mm_floor, vb.coin_value,
                   vb.margin_mult, vb.tier_rate, vb.tier_ded, tb.liq_price, self._changed, self._n_changed)

    def set_maintenance(self, venues: np.ndarray, mult: np.ndarray) -> None:
        """Set the maintenance multiplier of ``venues`` to ``mult`` (one each) and refresh the
        liquidation prices that must follow: the band set's members (and the ``always``
        accounts) on those venues, and the other accounts the change may bring within the
        band (:func:`kernels_cascade.remargin`). The rest keep a stale price, which can
        neither reach the band nor be due, until the band set's next rescan refreshes them
        first (:meth:`near`); so a multiplier that changes every step (dynamic margin) costs
        the accounts near a trigger, not every open account. The members in the band set's
        sorted runs are re-keyed there, not noted as changed (the band set would check them
        one by one, then sort them in, every step). Multipliers change only here."""
        tb, vb = self.tb, self.vb
        self._room(tb.n)
        lo, hi = (self._near_mark * self._edges[0], self._near_mark * self._edges[1]) if self._band is not None \
            else (self._near_mark, self._near_mark)
        kept = kc.remargin(np.ascontiguousarray(venues, dtype=np.int64), np.ascontiguousarray(mult, dtype=float),
                           self._band is not None, lo, hi, vb.coin_value, self._changed, self._remargin_args)
        self._any_stale = self._any_stale or kept > 0

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
        those refreshed since the last sort, not a pass over all accounts or members.
        Prices left stale by :meth:`set_maintenance` are refreshed before a rescan
        (:func:`kernels_cascade.settle`)."""
        rescan = self._set_band(band)
        growth = np.exp(self.vb.basis)
        if self._any_stale:  # stale prices (set_maintenance) are refreshed before a rescan reads them
            self._room(self.tb.n)
            self._any_stale = not kc.settle_bundled(rescan, growth, self._edges[2], self._changed, self._settle_args)
        return kc.band_set(rescan, growth, *self._edges, self._changed, self._band_args)

    def _set_band(self, band: float) -> bool:
        """Take ``band`` (log) as the band set's; returns whether it changed (a rescan)."""
        rescan = band != self._band
        if rescan:
            self._band, self._edges = band, (float(np.exp(-band)), float(np.exp(band)), band / 2)
        return rescan

    # ------------------------------------------------------------ one round
    def run_round(self, near: np.ndarray, time_s: float, step: int, rnd: int) -> tuple[int, int]:
        """Liquidate, auto-deleverage and stop out what is due now among the accounts ``near``
        (ascending, int64; :meth:`near`'s). Returns (accounts acted on, accounts still under
        maintenance but waiting for their cooldown).

        The round is one compiled call (kernels_cascade.run_round), called again when the
        ADL choice needs NumPy's exponential of the fill prices or the event buffers more
        room; then, when a vault may be under water, its solvency (kernels_cascade.vault_solvency)."""
        growth, time_s, step, rnd, ev = np.exp(self.vb.basis), float(time_s), int(step), int(rnd), self.events
        outcome, acted, waiting = kc.run_round(near, growth, self._no_fill, time_s, step, rnd, ev.ints, ev.floats,
                                               ev.n, ev.starts, self._changed, self._round_args)
        return self._finish_round(outcome, acted, waiting, near, growth, time_s, step, rnd, False)

    def cascade_round(self, band: float, time_s: float, step: int, rnd: int) -> tuple[int, int]:
        """``run_round(near(band), time_s, step, rnd)`` (the same round, bit for bit) with the
        band set handed straight to the round in one compiled call
        (kernels_cascade.cascade_round, also for its calls again), stale prices settled in
        it: the cascade's rounds."""
        rescan = self._set_band(band)
        growth, time_s, step, rnd, ev, stale = \
            np.exp(self.vb.basis), float(time_s), int(step), int(rnd), self.events, self._any_stale
        if stale:
            self._room(self.tb.n)
        settled, outcome, acted, waiting, near = kc.cascade_round(
            stale, rescan, growth, *self._edges, self._no_fill, time_s, step, rnd, ev.ints, ev.floats, ev.n, ev.starts,
            self._changed, self._cascade_args, False, self._no_accounts)
        self._any_stale = stale and not settled
        return self._finish_round(outcome, acted, waiting, near, growth, time_s, step, rnd, True)

    def _finish_round(self, outcome: int, acted: int, waiting: int, near: np.ndarray, growth: np.ndarray,
                      time_s: float, step: int, rnd: int, fused: bool) -> tuple[int, int]:
        """Finish a round whose compiled call returned ``outcome`` (kernels_cascade.run_round's,
        or cascade_round's when ``fused``): call it again with NumPy's exponential of the fill
        prices or more room while it asks, then check the vaults' solvency if it asks. Returns
        (acted, waiting)."""
        efill, ev = self._no_fill, self.events
        while outcome == kc.NEED_FILL or outcome == kc.NEED_ROOM:
            if outcome == kc.NEED_FILL:
                efill = np.exp(self._avg)  # NumPy's exponential, as the fill prices take it
            else:  # ``acted`` is the room needed
                ev.reserve(acted, self._parts)
                self._room(acted)
            if fused:
                outcome, acted, waiting = kc.cascade_round(
                    False, False, growth, *self._edges, efill, time_s, step, rnd, ev.ints, ev.floats, ev.n, ev.starts,
                    self._changed, self._cascade_args, True, near)[1:4]
            else:
                outcome, acted, waiting = kc.run_round(near, growth, efill, time_s, step, rnd, ev.ints, ev.floats,
                                                       ev.n, ev.starts, self._changed, self._round_args)
        if outcome == kc.VAULTS:
            self._vault_solvency(step, rnd)
        return acted, waiting

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
        opposite accounts at its bankruptcy price (kernels_cascade.vault_solvency)."""
        tb, vb, mkt, ev = self.tb, self.vb, self.mkt, self.events
        while True:
            need = kc.vault_solvency(
                np.exp(vb.basis), mkt.lm, vb.mark_index, vb.coin_price, vb.haircut, self.vault_rows, vb.vault_row,
                int(step), int(rnd), self._kinds, self._rank, self._withdrawal, vb.nbp, vb.mm_row, vb.health, vb.fund,
                self.adl_volume, tb.size, tb.venue, tb.entry, tb.cash, tb.coin, vb.collateral_loss, tb.liquidated,
                tb.stop, mkt.tally, tb.cls, tb.juris, tb.weight, tb.lev_chosen, self.protocol, tb.mm_floor,
                vb.margin_mult, vb.tier_rate, vb.tier_ded, tb.liq_price, self._changed, self._n_changed, ev.ints,
                ev.floats, ev.n, ev.starts)
            if need == 0:
                return
            self.events.reserve(need, self._parts)
            self._room(need)

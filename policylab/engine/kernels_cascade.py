"""Compiled cascade rounds (Numba): the liquidation engine's round, the arbitrage desks
with their spot legs, the band set, and market execution with its price moves.

Each kernel does the arithmetic of the NumPy code it replaced (policylab.engine.liquidation,
policylab.engine.market), in one call, so a cascade round costs a few calls instead of
dozens. The exponential of the venues' basis stays in NumPy (its vectorised ``np.exp`` can
differ from the C library's in the last bit): callers pass ``growth`` = np.exp(basis) and
the kernels form the prices from it (:func:`prices`). Sums that feed results keep NumPy's
order: ``kernels.pairwise_sum`` for ``np.sum``, a sequential sum from 0 for ``np.bincount``.
``lm`` holds the market's log fundamental and transient dislocation (``Market.log_f``,
``Market.m``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from policylab.engine.kernels import (arbitrage_orders, count_opened, drifted, due, execute, impact,
                                      hold, liquidation_price, move_books, near, spot_leg, trade, pairwise_sum,
                                      under_water, _is_near, _maintenance)


@njit(cache=True, error_model="numpy")
def _sum(a):
    """``np.sum(a)`` of a whole array, in NumPy's order."""
    return pairwise_sum(a, 0, a.shape[0])

# run_round's outcomes: nothing left to do; the vaults' solvency to check (marks moved);
# the round needs the engine's Python path (a backstop takeover or auto-deleveraging);
# the fill prices' exponentials are needed for the ADL selection (call again with them)
DONE, VAULTS, PYTHON, NEED_FILL = 0, 1, 2, 3


@njit(cache=True, error_model="numpy")
def prices(lm, growth, mark_index):
    """(book prices, marks) per venue (``Market.prices_and_marks``) from ``growth`` = NumPy's
    exp(basis): the index x growth, and the index on venues that mark to it."""
    index = math.exp(lm[0] + lm[1])
    book = index * growth
    mark = book.copy()
    for v in range(mark.shape[0]):
        if mark_index[v]:
            mark[v] = index
    return book, mark


@njit(cache=True, error_model="numpy")
def coefficients(impact_y, depth0, liquidity_mult, health):
    """Square-root impact curve coefficients per venue: impact_y / sqrt(depth) (``Market.impact``)."""
    k = depth0.shape[0]
    c = np.empty(k)
    for v in range(k):
        c[v] = impact_y / math.sqrt(depth0[v] * liquidity_mult[v] * health[v])
    return c


@njit(cache=True, error_model="numpy")
def coin_values(coin_price, haircut):
    """Margin value of one unit of stablecoin collateral per venue (``VenueBook.coin_value``)."""
    k = coin_price.shape[0]
    out = np.empty(k)
    for v in range(k):
        out[v] = min(coin_price[v], 1.0 - haircut[v])
    return out


@njit(cache=True, error_model="numpy")
def _move_spot(dlog, lm, basis, spot, permanent_share):
    """A price move ``dlog`` of the spot venue (``Market.trade_spot``, ``Market.execute``):
    the index moves, every venue's basis the other way."""
    lm[0] += permanent_share * dlog
    lm[1] += (1.0 - permanent_share) * dlog
    for v in range(basis.shape[0]):
        basis[v] -= dlog
    basis[spot] = 0.0


@njit(cache=True, error_model="numpy")
def execute_orders(idx, dq, liq, forced, book, c, cv, venue, size, entry, cash, coin, taker_fee, liq_fee,
                   fee_to_fund, mm_row, fund, fees, flow, volume, resident, traded, forced_volume, resident_volume,
                   tally, basis, lm, spot, permanent_share):
    """``Market.execute`` for orders ``dq`` of unique accounts ``idx`` at book prices ``book``:
    :func:`kernels.execute`, the opened-position count (of ``idx``), the long positions (of
    ``idx`` and the books, see ``kernels.hold``) and the books' price moves. Returns the
    fill price per venue."""
    before = np.empty(idx.shape[0])
    for j in range(idx.shape[0]):
        before[j] = size[idx[j]]
    k = book.shape[0]
    book_before = np.empty(k)
    for v in range(k):
        book_before[v] = size[mm_row[v]] if mm_row[v] >= 0 else 0.0
    fill, dlog, net = execute(idx, dq, liq, forced, venue, size, entry, cash, coin, book, c, flow, taker_fee, liq_fee,
                              fee_to_fund, cv, mm_row, fund, fees, volume, resident, traded, forced_volume,
                              resident_volume)
    count_opened(idx, before, size, tally)
    books = np.empty(k, dtype=np.int64)
    b = 0
    for v in range(k):
        if net[v] != 0.0:  # the book took the venue's net (kernels.execute)
            books[b] = mm_row[v]
            book_before[b] = book_before[v]
            b += 1
    hold(books[:b], book_before[:b], size, tally)
    if move_books(net, dlog, basis, spot):
        _move_spot(dlog[spot], lm, basis, spot, permanent_share)
    return fill


@njit(cache=True, error_model="numpy")
def trade_spot(idx, dq, forced, c, hedge, hedge_cash, size, entry, cash, mm_row, flow, volume, tally, resident,
               traded, forced_volume, resident_volume, basis, lm, spot, permanent_share):
    """``Market.trade_spot``: hedge legs ``dq`` (BTC) of unique accounts ``idx`` against the
    spot book, at the average of the impact curve from the index; the index moves."""
    net = _sum(dq)
    index = math.exp(lm[0] + lm[1])
    q = net * index
    flows = np.zeros(flow.shape[0])
    flows[spot] = q
    move, avg = impact(c, flow, flows)
    dlog = move[spot]
    fill = index * math.exp(avg[spot])
    flow[spot] += q
    _move_spot(dlog, lm, basis, spot, permanent_share)
    spot_leg(idx, dq, fill, net, mm_row[spot], spot, forced, hedge, hedge_cash, size, entry, cash, tally, resident,
             traded, forced_volume, resident_volume)
    gross = np.empty(dq.shape[0])
    for j in range(dq.shape[0]):
        gross[j] = abs(dq[j])
    volume[spot] += _sum(gross) * fill


@njit(cache=True, error_model="numpy")
def arbitrage(growth, impact_y, min_gap, gap_share, depth0, liquidity_mult, health, coin_price, haircut, arb_row,
              arb_left, tier_floor, tier_lev, taker_fee, liq_fee, fee_to_fund, mm_row, fund, fees, venue, size,
              entry, cash, coin, leverage, weight, hedge, hedge_cash, flow, volume, resident, traded, forced_volume,
              resident_volume, tally, basis, lm, spot, permanent_share):
    """``Market.arbitrage``: the desks' orders (:func:`kernels.arbitrage_orders`) at the book
    prices (``growth``: NumPy's exp(basis), see :func:`prices`), executed
    (:func:`execute_orders`), and their spot legs (:func:`trade_spot`)."""
    book = math.exp(lm[0] + lm[1]) * growth
    c = coefficients(impact_y, depth0, liquidity_mult, health)
    cv = coin_values(coin_price, haircut)
    rows, dq = arbitrage_orders(basis, arb_row, arb_left, min_gap, gap_share, c, spot, book, venue, size, leverage,
                                cash, coin, weight, cv, tier_floor, tier_lev)
    if rows.shape[0] == 0:
        return
    no = np.zeros(rows.shape[0], dtype=np.bool_)
    execute_orders(rows, dq, no, no, book, c, cv, venue, size, entry, cash, coin, taker_fee, liq_fee, fee_to_fund,
                   mm_row, fund, fees, flow, volume, resident, traded, forced_volume, resident_volume, tally, basis,
                   lm, spot, permanent_share)
    trade_spot(rows, -dq, False, c, hedge, hedge_cash, size, entry, cash, mm_row, flow, volume, tally, resident,
               traded, forced_volume, resident_volume, basis, lm, spot, permanent_share)


DUE_TOL = 1e-9  # kernels.due's tolerance on liquidation prices in the cascade (relative)
# the band set's state (``LiquidationEngine``): per account, whether it is a member and whether
# it changed since the keys were sorted; the members, the changed members, the members checked
# every round (``always``), sorted trigger keys of the others per venue and side; and counts
COUNTS = 3  # ``counts``: members, changed members, ``always`` members
SLACK = 1e-12  # candidates take keys within this (relative) of the marks: a superset, never fewer


@njit(cache=True, error_model="numpy")
def _trigger(i, size, liq_price, stop, tol):
    """The price at or beyond which ``kernels.due`` checks account ``i``: for a long the
    largest of its stop and liquidation price x (1 + ``tol``), -inf without either; for a
    short the smallest of its stop and liquidation price x (1 - ``tol``), +inf without."""
    liq, st = liq_price[i], stop[i]
    if size[i] > 0.0:
        key = -np.inf
        if st == st:
            key = st
        if liq == liq:
            key = max(key, liq * (1.0 + tol))
        return key
    key = np.inf
    if st == st:
        key = st
    if liq == liq:
        key = min(key, liq * (1.0 - tol))
    return key


@njit(cache=True, error_model="numpy")
def _sort_keys(members, n, size, venue, liq_price, stop, always, protocol, tol, acc, key, start, side):
    """The members (first ``n``) with a position on side ``side`` (+1 long, -1 short), not
    ``always`` nor protocol rows, ordered by venue then trigger key into ``acc`` and ``key``;
    venue v's run is ``start[v]`` to ``start[v + 1]``."""
    k = start.shape[0] - 1
    start[:] = 0
    for j in range(n):
        i = members[j]
        if not always[i] and not protocol[i] and size[i] * side > 0.0:
            start[venue[i] + 1] += 1
    for v in range(k):
        start[v + 1] += start[v]
    fill = start[:k].copy()
    for j in range(n):
        i = members[j]
        if not always[i] and not protocol[i] and size[i] * side > 0.0:
            acc[fill[venue[i]]] = i
            key[fill[venue[i]]] = _trigger(i, size, liq_price, stop, tol)
            fill[venue[i]] += 1
    for v in range(k):
        a, b = start[v], start[v + 1]
        order = np.argsort(key[a:b], kind="mergesort")
        acc[a:b] = acc[a:b][order]
        key[a:b] = key[a:b][order]


@njit(cache=True, error_model="numpy")
def _merge_keys(over, o, dirty, size, venue, liq_price, stop, always, protocol, tol, acc, key, start, side):
    """The sorted runs of :func:`_sort_keys` (side ``side``) with the changed members (the
    first ``o`` of ``over``, flagged ``dirty``) re-keyed: their old entries dropped, their
    fresh ones merged in, in one pass over the runs."""
    k = start.shape[0] - 1
    nacc, nkey, nstart = np.empty(o, dtype=np.int64), np.empty(o), np.zeros(k + 1, dtype=np.int64)
    _sort_keys(over, o, size, venue, liq_price, stop, always, protocol, tol, nacc, nkey, nstart, side)
    old = start.copy()
    oacc, okey = acc[:old[k]].copy(), key[:old[k]].copy()
    w = 0
    for v in range(k):
        start[v] = w
        i, j = old[v], nstart[v]
        while i < old[v + 1] or j < nstart[v + 1]:
            if i < old[v + 1] and dirty[oacc[i]]:
                i += 1
            elif j == nstart[v + 1] or (i < old[v + 1] and okey[i] <= nkey[j]):
                acc[w], key[w] = oacc[i], okey[i]
                i += 1
                w += 1
            else:
                acc[w], key[w] = nacc[j], nkey[j]
                j += 1
                w += 1
    start[k] = w


@njit(cache=True, error_model="numpy")
def _rebuild(members, counts, over, dirty, size, venue, liq_price, stop, always, protocol, tol, lacc, lkey, lstart,
             sacc, skey, sstart, whole):
    """Sort the members' trigger keys afresh (``whole``), or merge in those of the members
    changed since the last sort; no member is changed since."""
    if whole:
        _sort_keys(members, counts[0], size, venue, liq_price, stop, always, protocol, tol, lacc, lkey, lstart, 1.0)
        _sort_keys(members, counts[0], size, venue, liq_price, stop, always, protocol, tol, sacc, skey, sstart, -1.0)
    else:
        _merge_keys(over, counts[1], dirty, size, venue, liq_price, stop, always, protocol, tol, lacc, lkey, lstart,
                    1.0)
        _merge_keys(over, counts[1], dirty, size, venue, liq_price, stop, always, protocol, tol, sacc, skey, sstart,
                    -1.0)
    for j in range(counts[1]):
        dirty[over[j]] = False
    counts[1] = 0


@njit(cache=True, error_model="numpy")
def _first_at_least(key, a, b, x):
    """The first position in ``key[a:b]`` (ascending) holding at least ``x`` (``b`` if none)."""
    while a < b:
        h = (a + b) // 2
        if key[h] < x:
            a = h + 1
        else:
            b = h
    return a


@njit(cache=True, error_model="numpy")
def _first_above(key, a, b, x):
    """The first position in ``key[a:b]`` (ascending) holding more than ``x`` (``b`` if none)."""
    while a < b:
        h = (a + b) // 2
        if key[h] <= x:
            a = h + 1
        else:
            b = h
    return a


@njit(cache=True, error_model="numpy")
def band_set(rescan, growth, lm, mark_index, ref, e_lo, e_hi, half, size, venue, liq_price, stop, always, protocol,
             tol, changed, n_changed, member, dirty, members, over, alw, counts, lacc, lkey, lstart, sacc, skey,
             sstart):
    """``LiquidationEngine.near``: the members of the band set that ``kernels.due`` at the
    marks (from ``growth``, see :func:`prices`) would check, ascending: the ``always`` ones
    and those whose trigger (:func:`_trigger`, ``tol`` as ``due``'s) the marks have reached.

    The band set is rescanned (``kernels.near``) when ``rescan`` or the marks drifted more
    than ``half`` (log) from ``ref`` (``ref`` then takes the marks); else the ``changed``
    accounts (first ``n_changed[0]``) that are near join it. The band's edges are the
    reference marks x ``e_lo`` and ``e_hi``. Members keep their trigger keys sorted per venue
    and side (``lacc``/``lkey`` by ``lstart`` for longs, ``sacc``/``skey`` by ``sstart`` for
    shorts), so a round finds the reached ones by binary search; the members changed since
    the sort (``over``, flagged ``dirty``) are checked one by one, and merged into the
    sorted runs when they are more than a 32nd of the members (plus 32). Clears the changed list."""
    mark = prices(lm, growth, mark_index)[1]
    lo, hi = ref * e_lo, ref * e_hi
    if rescan or drifted(mark, ref, half):
        ref[:] = mark
        lo, hi = ref * e_lo, ref * e_hi
        for j in range(counts[0]):
            member[members[j]] = False
        found = near(size, venue, liq_price, stop, always, lo, hi)
        m = a = 0
        for j in range(found.shape[0]):
            i = found[j]
            member[i] = True
            members[m] = i
            m += 1
            if always[i]:
                alw[a] = i
                a += 1
        counts[0], counts[2] = m, a
        _rebuild(members, counts, over, dirty, size, venue, liq_price, stop, always, protocol, tol, lacc, lkey, lstart,
                 sacc, skey, sstart, True)
    else:
        for j in range(n_changed[0]):
            i = changed[j]
            if always[i] or dirty[i]:
                continue  # checked every round, or already among the changed members
            if not member[i]:
                if not _is_near(i, size, venue, liq_price, stop, always, lo, hi):
                    continue
                member[i] = True
                members[counts[0]] = i
                counts[0] += 1
            dirty[i] = True
            over[counts[1]] = i
            counts[1] += 1
        if 32 * counts[1] > counts[0] + 1024:
            _rebuild(members, counts, over, dirty, size, venue, liq_price, stop, always, protocol, tol, lacc, lkey,
                     lstart, sacc, skey, sstart, False)
    n_changed[0] = 0
    k = mark.shape[0]
    la = np.empty(k, dtype=np.int64)
    sb = np.empty(k, dtype=np.int64)
    total = counts[1] + counts[2]
    for v in range(k):
        la[v] = _first_at_least(lkey, lstart[v], lstart[v + 1], mark[v] * (1.0 - SLACK))
        sb[v] = _first_above(skey, sstart[v], sstart[v + 1], mark[v] * (1.0 + SLACK))
        total += lstart[v + 1] - la[v] + sb[v] - sstart[v]
    out = np.empty(total, dtype=np.int64)
    n = 0
    for j in range(counts[2]):
        out[n] = alw[j]
        n += 1
    for v in range(k):
        for h in range(la[v], lstart[v + 1]):
            if not dirty[lacc[h]]:
                out[n] = lacc[h]
                n += 1
        for h in range(sstart[v], sb[v]):
            if not dirty[sacc[h]]:
                out[n] = sacc[h]
                n += 1
    for j in range(counts[1]):
        i = over[j]
        if protocol[i] or size[i] == 0.0:
            continue
        p = mark[venue[i]]
        key = _trigger(i, size, liq_price, stop, tol)
        if (size[i] > 0.0 and key >= p * (1.0 - SLACK)) or (size[i] < 0.0 and key <= p * (1.0 + SLACK)):
            out[n] = i
            n += 1
    return np.sort(out[:n])


@njit(cache=True, error_model="numpy")
def refresh(idx, protocol, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate, tier_ded, liq_price,
            changed, n_changed):
    """``LiquidationEngine.refresh``: liquidation prices of the accounts of ``idx`` that are
    not protocol rows, noted as changed (``changed`` has room for them)."""
    keep = np.empty(idx.shape[0], dtype=np.int64)
    n = 0
    for j in range(idx.shape[0]):
        if not protocol[idx[j]]:
            keep[n] = idx[j]
            n += 1
    if n == 0:
        return
    keep = keep[:n]
    lp = liquidation_price(keep, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate, tier_ded)
    m = n_changed[0]
    for j in range(n):
        liq_price[keep[j]] = lp[j]
        changed[m + j] = keep[j]
    n_changed[0] = m + n


@njit(cache=True, error_model="numpy")
def _record(ev_int, ev_float, ev_n, i, step, rnd, kind, venue, cls, juris, weight, lev_chosen, size, price, deficit):
    e = ev_n[0]
    ev_int[0, e] = step
    ev_int[1, e] = rnd
    ev_int[2, e] = kind
    ev_int[3, e] = i
    ev_int[4, e] = venue[i]
    ev_int[5, e] = cls[i]
    ev_int[6, e] = juris[i]
    ev_float[0, e] = size
    ev_float[1, e] = price
    ev_float[2, e] = weight[i]
    ev_float[3, e] = deficit
    ev_float[4, e] = lev_chosen[i]
    ev_n[0] = e + 1


@njit(cache=True, error_model="numpy")
def _positive(x):
    """``np.maximum(x, 0.0)`` (NaN stays NaN)."""
    return x if x != x or x > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def _start_part(starts, ev_n):
    starts[ev_n[1]] = ev_n[0]
    ev_n[1] += 1


@njit(cache=True, error_model="numpy")
def run_round(near_set, growth, efill, avg, time_s, step, rnd, kinds,
              size, venue, weight, cash, coin, liq_price, stop, mm_floor, entry, last_liq, liquidated, cls, juris,
              lev_chosen, always, protocol,
              coin_price, haircut, margin_mult, tier_floor, tier_rate, tier_ded, vault_rows, vault_row, backstop,
              partial_fraction, partial_threshold, cooldown, nbp, ranked, mark_index, taker_fee, liq_fee, fee_to_fund,
              mm_row, fund, fees, collateral_loss, depth0, liquidity_mult, health, impact_y,
              flow, volume, resident, traded, forced_volume, resident_volume, tally, basis, lm, spot,
              permanent_share, ev_int, ev_float, ev_n, starts, changed, n_changed):
    """``LiquidationEngine.run_round`` at the marks and book prices from ``growth`` (NumPy's
    exp(basis), see :func:`prices`): the due check, classification, backstop vaults' takeovers, market execution of liquidations
    (whole or slices) and triggered stops, marking, realising depegged collateral,
    negative balance cover, the events (kinds ``kinds``: liquidation, partial, stop,
    backstop) and the liquidation prices' refresh. Returns (outcome, accounts acted on,
    accounts waiting for their cooldown); the outcome says what the caller does next:
    :data:`DONE`; :data:`VAULTS`: check the vaults' solvency; :data:`PYTHON`: nothing
    changed, run the Python path, which auto-deleverages; :data:`NEED_FILL`: nothing
    changed, call again with ``efill`` = exp(``avg``) computed by NumPy. ``efill`` is
    empty when not known: the ADL selection then uses the C library's exponential (a few
    units in the last place from NumPy's) and asks for NumPy's only when a venue's
    deficits come within 1e-9 of what its fund covers. The buffers have room for one
    event and one change per account of ``near_set`` and four parts."""
    book, mark = prices(lm, growth, mark_index)
    cv = coin_values(coin_price, haircut)
    d = due(near_set, size, venue, weight, cash, coin, liq_price, stop, mm_floor, always, protocol, mark, cv,
            margin_mult, tier_floor, tier_rate, tier_ded, DUE_TOL)
    nd = d.shape[0]
    if nd == 0:
        return _vaults(vault_rows, cash, size, venue, mark, ranked), 0, 0
    liq = np.empty(nd, dtype=np.int64)
    frac = np.empty(nd)
    stops = np.empty(nd, dtype=np.int64)
    taken = np.empty(nd, dtype=np.int64)
    nl = ns = nb = waiting = 0
    for j in range(nd):
        i = d[j]
        v = venue[i]
        s = size[i]
        p = mark[v]
        eq = cash[i] + s * p - coin[i] * (1.0 - cv[v])
        mmr = _maintenance(i, v, weight, size, mm_floor, p, margin_mult, tier_floor, tier_rate, tier_ded)
        under = eq < mmr
        if not under and ((s > 0 and p <= stop[i]) or (s < 0 and p >= stop[i])):
            stops[ns] = i
            ns += 1
        if not under:
            continue
        if vault_row[v] >= 0 and eq < backstop[v] * mmr:
            taken[nb] = i
            nb += 1
            continue
        per_account = abs(s) * p / weight[i]
        big = per_account * (1.0 - partial_fraction[v]) > partial_threshold[v] and eq > 0
        if big and time_s - last_liq[i] < cooldown[v]:
            waiting += 1
            continue
        liq[nl] = i
        frac[nl] = partial_fraction[v] if big else 1.0
        nl += 1
    if nl + ns == 0:
        if nb:
            _backstop(taken[:nb], mark, step, rnd, kinds[3], size, venue, entry, cash, coin, coin_price,
                      collateral_loss, vault_row, stop, liquidated, tally, cls, juris, weight, lev_chosen, ev_int, ev_float, ev_n,
                      starts)
            refresh(taken[:nb], protocol, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate,
                    tier_ded, liq_price, changed, n_changed)
        return _vaults(vault_rows, cash, size, venue, mark, ranked), nb, waiting
    n = nl + ns
    idx = np.empty(n, dtype=np.int64)
    share = np.empty(n)
    is_liq = np.zeros(n, dtype=np.bool_)
    for j in range(nl):
        idx[j] = liq[j]
        share[j] = frac[j]
        is_liq[j] = True
    for j in range(ns):
        idx[nl + j] = stops[j]
        share[nl + j] = 1.0
    dq = np.empty(n)
    for j in range(n):
        dq[j] = -size[idx[j]] * share[j]
    c = coefficients(impact_y, depth0, liquidity_mult, health)
    # auto-deleveraging instead of market for what the fund cannot cover (_adl_selection)
    k = book.shape[0]
    candidates = np.zeros(k, dtype=np.int64)
    for j in range(nl):
        if share[j] >= 1.0 and ranked[venue[idx[j]]] and nbp[venue[idx[j]]]:
            candidates[venue[idx[j]]] += 1
    if candidates.sum() > 0:
        net = np.zeros(k)
        for j in range(n):
            net[venue[idx[j]]] += dq[j]
        move, a = impact(c, flow, net * book)
        exact = efill.shape[0] > 0
        ef = efill if exact else np.exp(a)
        for u in range(k):
            if candidates[u] == 0:
                continue
            deficit = np.empty(candidates[u])
            m = 0
            uncertain = 0.0  # scale of the accounts whose deficit the exponential's last bit can change
            for j in range(nl):
                i = idx[j]
                if share[j] >= 1.0 and venue[i] == u:
                    value = size[i] * (book[u] * ef[u])
                    e = cash[i] + value - coin[i] * (1 - coin_price[u])
                    deficit[m] = _positive(-e)
                    m += 1
                    scale = abs(cash[i]) + abs(value) + abs(coin[i])
                    if not e > 1e-12 * scale:
                        uncertain += scale
            total = _sum(deficit)
            limit = 0.0 if 0.0 > fund[u] else fund[u]
            if not exact and uncertain > 0.0 and not abs(total - limit) > 1e-9 * (uncertain + abs(limit)):
                avg[:] = a
                return NEED_FILL, 0, 0  # too close to call without NumPy's exponential
            if not total <= limit:
                return PYTHON, 0, 0  # the fund cannot cover: auto-deleverage
    if nb:  # the backstop vaults take over first
        _backstop(taken[:nb], mark, step, rnd, kinds[3], size, venue, entry, cash, coin, coin_price, collateral_loss,
                  vault_row, stop, liquidated, tally, cls, juris, weight, lev_chosen, ev_int, ev_float, ev_n, starts)
        refresh(taken[:nb], protocol, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate, tier_ded,
                liq_price, changed, n_changed)
    # market execution
    pre_size = np.empty(n)
    for j in range(n):
        pre_size[j] = size[idx[j]]
    forced = np.ones(n, dtype=np.bool_)
    fill = execute_orders(idx, dq, is_liq, forced, book, c, cv, venue, size, entry, cash, coin, taker_fee, liq_fee,
                          fee_to_fund, mm_row, fund, fees, flow, volume, resident, traded, forced_volume,
                          resident_volume, tally, basis, lm, spot, permanent_share)
    for j in range(nl):
        last_liq[idx[j]] = time_s
        liquidated[idx[j]] = True
    _realise_coin(idx[:n], True, size, venue, cash, coin, coin_price, collateral_loss)  # of the closed accounts
    # negative equity after the close: the deficit, then the fund covers it (cover_negative)
    deficits = np.zeros(n)
    covered = np.zeros(k)
    for j in range(n):
        i = idx[j]
        if size[i] == 0.0:
            deficits[j] = _positive(-cash[i])
            if cash[i] < 0 and nbp[venue[i]] and not protocol[i]:
                covered[venue[i]] += -cash[i]
                cash[i] = 0.0
            stop[i] = np.nan
    for v in range(k):
        fund[v] -= covered[v]
    # events: whole liquidations (0), slices (1), stops (2)
    for kind in range(3):
        started = False
        for j in range(n):
            if (2 if not is_liq[j] else (0 if share[j] >= 1.0 else 1)) != kind:
                continue
            if not started:
                _start_part(starts, ev_n)
                started = True
            i = idx[j]
            q = -dq[j] if kind == 1 else pre_size[j]
            _record(ev_int, ev_float, ev_n, i, step, rnd, kinds[kind], venue, cls, juris, weight, lev_chosen, q,
                    fill[venue[i]], deficits[j] if kind == 0 else 0.0)
    refresh(idx, protocol, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate, tier_ded, liq_price,
            changed, n_changed)
    return _vaults_moved(vault_rows, cash, size, venue, ranked, mark_index, basis, lm), nb + nl + ns, waiting


@njit(cache=True, error_model="numpy")
def _realise_coin(accounts, flat_only, size, venue, cash, coin, coin_price, collateral_loss):
    """``LiquidationEngine._realise_coin``: the depegged collateral of ``accounts`` (those
    now flat if ``flat_only``) is sold at its value; the losses per venue, summed in
    account order, are added to ``collateral_loss``."""
    k = collateral_loss.shape[0]
    lost = np.zeros(k)
    realised = False
    for i in accounts:
        if (size[i] == 0.0 or not flat_only) and coin[i] > 0:
            loss = coin[i] * (1.0 - coin_price[venue[i]])
            cash[i] -= loss
            coin[i] = 0.0
            lost[venue[i]] += loss
            realised = True
    if realised:
        for v in range(k):
            collateral_loss[v] += lost[v]


@njit(cache=True, error_model="numpy")
def _backstop(idx, mark, step, rnd, kind, size, venue, entry, cash, coin, coin_price, collateral_loss, vault_row, stop,
              liquidated, tally, cls, juris, weight, lev_chosen, ev_int, ev_float, ev_n, starts):
    """``LiquidationEngine._backstop``: the venues' vaults take over the positions of
    accounts ``idx`` at their marks with all their remaining margin (depegged collateral
    realised first), per vault row in ascending order; the backstop events."""
    _realise_coin(idx, False, size, venue, cash, coin, coin_price, collateral_loss)
    pre = np.empty(idx.shape[0])
    for j in range(idx.shape[0]):
        pre[j] = size[idx[j]]
    rows = np.unique(vault_row[venue[idx]])
    for row in rows:
        m = 0
        for i in idx:
            if vault_row[venue[i]] == row:
                m += 1
        sel = np.empty(m, dtype=np.int64)
        m = 0
        for i in idx:
            if vault_row[venue[i]] == row:
                sel[m] = i
                m += 1
        px = np.empty(m)
        dq = np.empty(m)
        for j in range(m):
            px[j] = mark[venue[sel[j]]]
            dq[j] = size[sel[j]]
        trade(sel, -dq, px, size, entry, cash)  # Market.transfer: no fees, no impact
        count_opened(sel, dq, size, tally)
        total = _sum(dq)
        notional = _sum(dq * px)
        if total != 0:
            one = np.array([row])
            before = np.array([size[row]])
            trade(one, np.array([total]), np.array([notional / total]), size, entry, cash)
            count_opened(one, before, size, tally)
        else:  # offsetting positions: only cash changes hands
            cash[row] -= notional
        left = np.empty(m)
        for j in range(m):
            left[j] = cash[sel[j]]
        cash[row] += _sum(left)
        for j in range(m):
            cash[sel[j]] = 0.0
    _start_part(starts, ev_n)
    for j in range(idx.shape[0]):
        i = idx[j]
        stop[i] = np.nan
        liquidated[i] = True
    for j in range(idx.shape[0]):
        i = idx[j]
        _record(ev_int, ev_float, ev_n, i, step, rnd, kind, venue, cls, juris, weight, lev_chosen, pre[j],
                mark[venue[i]], 0.0)


@njit(cache=True, error_model="numpy")
def _vaults_moved(rows, cash, size, venue, ranked, mark_index, basis, lm):
    """:func:`_vaults` after prices moved, without NumPy's marks: the marks from the C
    library's exponential, which differs from NumPy's by at most a few units in the last
    place (relative 1e-15); a vault whose equity is within 1e-12 of its cash and
    position's value from zero is left to the caller's exact check (:data:`VAULTS`)."""
    index = math.exp(lm[0] + lm[1])
    for r in rows:
        v = venue[r]
        if not ranked[v] or size[r] == 0.0:
            continue
        mark = index if mark_index[v] else index * math.exp(basis[v])
        value = size[r] * mark
        if not cash[r] + value > 1e-12 * (abs(cash[r]) + abs(value)):
            return VAULTS
    return DONE


@njit(cache=True, error_model="numpy")
def _vaults(rows, cash, size, venue, price, ranked):
    """:data:`VAULTS` if any of the vault ``rows`` on a venue that auto-deleverages
    (``ranked``) holds a position with negative equity at ``price`` (see
    ``LiquidationEngine._vault_solvency``), else :data:`DONE`."""
    broke = under_water(rows, cash, size, venue, price)
    for j in range(broke.shape[0]):
        if ranked[venue[broke[j]]]:
            return VAULTS
    return DONE

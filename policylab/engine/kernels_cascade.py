"""Compiled cascade rounds (Numba): the liquidation engine's round (auto-deleveraging
included) and the vaults' solvency, the arbitrage desks with their spot legs, the band set,
and market execution with its price moves.

Each kernel does the arithmetic of the NumPy code it replaced (policylab.engine.liquidation,
policylab.engine.market; tests/test_kernels_cascade.py keeps the round's as its oracle), in
one call, so a cascade round costs one call instead of dozens. The exponential of the
venues' basis stays in NumPy (its vectorised ``np.exp`` can differ from the C library's in
the last bit): callers pass ``growth`` = np.exp(basis) and the kernels form the prices from
it (:func:`prices`). Sums that feed results keep NumPy's order: ``kernels.pairwise_sum`` for
``np.sum``, a sequential sum from 0 for ``np.bincount``, a running sum for ``np.cumsum``.
``lm`` holds the market's log fundamental and transient dislocation (``Market.log_f``,
``Market.m``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from policylab.engine.kernels import (arbitrage_orders, copy_into, count_opened, drifted, due, execute, impact,
                                      hold, liquidation_price, move_books, near, spot_leg, trade, trade_one,
                                      pairwise_sum, under_water, unique_sorted, _is_near, _maintenance)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _sum(a):
    """``np.sum(a)`` of a whole array, in NumPy's order."""
    return pairwise_sum(a, 0, a.shape[0])

# run_round's outcomes: nothing left to do; the vaults' solvency to check (vault_solvency);
# the fill prices' exponentials are needed for the ADL choice (call again with them); the
# event and change buffers need more room (make it and call again)
DONE, VAULTS, NEED_FILL, NEED_ROOM = 0, 1, 2, 3
# the venues' ADL rankings (VenueRules.adl_ranking) as the kernels take them
RANKINGS = ("none", "hyperliquid", "binance", "pro_rata")
HYPERLIQUID, PRO_RATA = RANKINGS.index("hyperliquid"), RANKINGS.index("pro_rata")  # binance: scored otherwise


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
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


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def coefficients(impact_y, depth0, liquidity_mult, health):
    """Square-root impact curve coefficients per venue: impact_y / sqrt(depth), depth being
    ``depth0`` x ``liquidity_mult`` x ``health`` (USD within 1% of mid)."""
    k = depth0.shape[0]
    c = np.empty(k)
    for v in range(k):
        c[v] = impact_y / math.sqrt(depth0[v] * liquidity_mult[v] * health[v])
    return c


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def coin_values(coin_price, haircut):
    """Margin value of one unit of stablecoin collateral per venue (``VenueBook.coin_value``:
    ``np.minimum`` of the coin's price and 1 - haircut, NaN if either is)."""
    k = coin_price.shape[0]
    out = np.empty(k)
    for v in range(k):
        a, b = coin_price[v], 1.0 - haircut[v]
        out[v] = a if (a <= b or a != a) else b
    return out


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _move_spot(dlog, lm, basis, spot, permanent_share):
    """A price move ``dlog`` of the spot venue (``Market.trade_spot``, ``Market.execute``):
    the index moves, every venue's basis the other way."""
    lm[0] += permanent_share * dlog
    lm[1] += (1.0 - permanent_share) * dlog
    for v in range(basis.shape[0]):
        basis[v] -= dlog
    basis[spot] = 0.0


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
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


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
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


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def arbitrage(growth, fixed):
    """``Market.arbitrage``: the desks' orders (:func:`kernels.arbitrage_orders`) at the book
    prices (``growth``: NumPy's exp(basis), see :func:`prices`), executed
    (:func:`execute_orders`), and their spot legs (:func:`trade_spot`). ``fixed``: a
    :class:`kernels.Bundle` of the arguments below, the same at every call."""
    (impact_y, min_gap, gap_share, depth0, liquidity_mult, health, coin_price, haircut, arb_row, arb_left, tier_floor,
     tier_lev, taker_fee, liq_fee, fee_to_fund, mm_row, fund, fees, venue, size, entry, cash, coin, leverage, weight,
     hedge, hedge_cash, flow, volume, resident, traded, forced_volume, resident_volume, tally, basis, lm, spot,
     permanent_share) = fixed.items
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
COUNTS = 4  # ``counts``: members, changed members, ``always`` members, changed-member checks since the sort
SLACK = 1e-12  # candidates take keys within this (relative) of the marks: a superset, never fewer


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
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


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
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
        copy_into(acc, a, acc[a:b][order])
        copy_into(key, a, key[a:b][order])


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
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


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _rebuild(members, counts, over, dirty, size, venue, liq_price, stop, always, protocol, tol, lacc, lkey, lstart,
             sacc, skey, sstart, whole):
    """Sort the members' trigger keys afresh (``whole``, or when most members changed), or
    merge in those of the members changed since the last sort; no member is changed since."""
    if whole or 2 * counts[1] > counts[0]:
        _sort_keys(members, counts[0], size, venue, liq_price, stop, always, protocol, tol, lacc, lkey, lstart, 1.0)
        _sort_keys(members, counts[0], size, venue, liq_price, stop, always, protocol, tol, sacc, skey, sstart, -1.0)
    else:
        _merge_keys(over, counts[1], dirty, size, venue, liq_price, stop, always, protocol, tol, lacc, lkey, lstart,
                    1.0)
        _merge_keys(over, counts[1], dirty, size, venue, liq_price, stop, always, protocol, tol, sacc, skey, sstart,
                    -1.0)
    for j in range(counts[1]):
        dirty[over[j]] = False
    counts[1] = counts[3] = 0


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _sort_due(counts):
    """Whether to sort the changed members in (:func:`band_set`): once the one-by-one checks
    of changed members since the last sort (``counts[3]``, this call's included) exceed what a
    sort costs in such checks, a pass over the members plus about log2 of the changed ones
    each (and 1,024 for the call), so that checking and sorting each cost at most about what
    the other does (the ski-rental rule)."""
    o = counts[1]
    return o > 0 and counts[3] > counts[0] + 1024 + o * (1 + int(math.log2(o + 1)))


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _first_at_least(key, a, b, x):
    """The first position in ``key[a:b]`` (ascending) holding at least ``x`` (``b`` if none)."""
    while a < b:
        h = (a + b) // 2
        if key[h] < x:
            a = h + 1
        else:
            b = h
    return a


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _first_above(key, a, b, x):
    """The first position in ``key[a:b]`` (ascending) holding more than ``x`` (``b`` if none)."""
    while a < b:
        h = (a + b) // 2
        if key[h] <= x:
            a = h + 1
        else:
            b = h
    return a


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def band_set(rescan, growth, e_lo, e_hi, half, changed, fixed):
    """``LiquidationEngine.near``: the members of the band set that ``kernels.due`` at the
    marks (from ``growth``, see :func:`prices`) would check, ascending: the ``always`` ones
    and those whose trigger (:func:`_trigger`, ``tol`` as ``due``'s) the marks have reached.

    The band set is rescanned (``kernels.near``) when ``rescan`` or the marks drifted more
    than ``half`` (log) from ``ref`` (``ref`` then takes the marks); else the ``changed``
    accounts (first ``n_changed[0]``) that are near join it. The band's edges are the
    reference marks x ``e_lo`` and ``e_hi``. Members keep their trigger keys sorted per venue
    and side (``lacc``/``lkey`` by ``lstart`` for longs, ``sacc``/``skey`` by ``sstart`` for
    shorts), so a round finds the reached ones by binary search; the members changed since
    the sort (``over``, flagged ``dirty``) are checked one by one, by their triggers noted when
    they changed (``over_key``, ``over_venue``; ``slot``: each one's entry), and sorted in once those
    checks, summed over the calls since the sort, outweigh a sort (:func:`_sort_due`: so a
    rule that changes most members every step, dynamic margin, does not re-sort them every
    step). Clears the changed list. ``fixed``: a :class:`kernels.Bundle` of the arguments below, the
    same at every call."""
    (lm, mark_index, ref, size, venue, liq_price, stop, always, protocol, tol, n_changed, member, dirty, members, over,
     slot, over_key, over_venue, alw, counts, lacc, lkey, lstart, sacc, skey, sstart) = fixed.items
    mark = prices(lm, growth, mark_index)[1]
    lo, hi = ref * e_lo, ref * e_hi
    whole = rescan or drifted(mark, ref, half)
    if whole:
        copy_into(ref, int(0), mark)  # int(): a literal 0 would compile copy_into again
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
    else:
        for j in range(n_changed[0]):
            i = changed[j]
            if always[i]:
                continue  # checked every round
            if dirty[i]:  # already among the changed members: its trigger again
                _note_over(slot[i], i, size, venue, liq_price, stop, protocol, tol, over_key, over_venue)
                continue
            if not member[i]:
                if not _is_near(i, size, venue, liq_price, stop, always, lo, hi):
                    continue
                member[i] = True
                members[counts[0]] = i
                counts[0] += 1
            dirty[i] = True
            over[counts[1]] = i
            slot[i] = counts[1]
            _note_over(counts[1], i, size, venue, liq_price, stop, protocol, tol, over_key, over_venue)
            counts[1] += 1
        counts[3] += counts[1]
    if whole or _sort_due(counts):  # one call site: ``whole`` as a constant would compile _rebuild twice
        _rebuild(members, counts, over, dirty, size, venue, liq_price, stop, always, protocol, tol, lacc, lkey, lstart,
                 sacc, skey, sstart, whole)
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
    for j in range(counts[1]):  # their triggers noted in order (_note_over): no pass over their accounts' rows
        v = over_venue[j]
        if v == 0:
            continue
        key = over_key[j]
        if (v > 0 and key >= mark[v - 1] * (1.0 - SLACK)) or (v < 0 and key <= mark[-v - 1] * (1.0 + SLACK)):
            out[n] = over[j]
            n += 1
    out = out[:n]
    out.sort()  # in place: np.sort's copy would be one more function with its allocation in cascade_round's module
    return out


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _note_over(j, i, size, venue, liq_price, stop, protocol, tol, over_key, over_venue):
    """Note changed member ``i`` (entry ``j`` of the band set's ``over``) for :func:`band_set`'s
    checks: its trigger (:func:`_trigger`) in ``over_key[j]``, and in ``over_venue[j]`` its
    venue + 1 for a long, -(venue + 1) for a short, 0 when it is never due (flat, protocol)."""
    s = size[i]
    if protocol[i] or s == 0.0:
        over_venue[j] = 0
        return
    over_key[j] = _trigger(i, size, liq_price, stop, tol)
    over_venue[j] = venue[i] + 1 if s > 0.0 else -(venue[i] + 1)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
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


BOUND_SLACK = 1e-9  # relative slack of remargin's bound: covers the rounding of stored prices, bounds and edges
MAX_RATE = 0.9  # remargin bounds a venue's prices only while every tier's rate x multiplier stays below this


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _reach(v, m_lo, m_now, tier_rate, tier_ded):
    """How far venue ``v``'s maintenance multiplier ``m_now`` can have moved liquidation
    prices from what they were at any multiplier >= ``m_lo``: (up, down, bounded). A long's
    price is now at most its price then x ``up`` (when positive), a short's at least its
    price then x ``down`` (when positive); ``bounded`` is False where this does not hold.

    Why: a long's price is the largest root of equity = maintenance over the tier lines
    a p - X = m (r a p - w d) and the floor line (kernels.liquidation_price), i.e. the
    line value (X - w d m) / (a (1 - r m)). From m0 to m1 >= m0 its numerator falls (w, d
    >= 0), so the line is at most its m0 value x (1 - r m0) / (1 - r m1); below m0 the price
    is no higher (maintenance, tier 0's deduction 0, rises with m at every price >= 0).
    Shorts mirror it with (1 + r m0) / (1 + r m1). Bounded while rates and deductions are
    >= 0, tier 0's deduction is 0 and r x m_now < ``MAX_RATE`` (account weights w are >= 0)."""
    up = down = 1.0
    if tier_ded[v, 0] != 0.0:
        return up, down, False
    for t in range(tier_rate.shape[1]):
        r, d = tier_rate[v, t], tier_ded[v, t]
        if not (r >= 0.0 and d >= 0.0 and r * m_now < MAX_RATE):
            return 1.0, 1.0, False
        up = max(up, (1.0 - r * m_lo) / (1.0 - r * m_now))
        down = min(down, (1.0 + r * m_lo) / (1.0 + r * m_now))
    return up, down, True


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def remargin(venues, mult, scanned, lo, hi, cv, changed, fixed):
    """``LiquidationEngine.set_maintenance``: set the maintenance multiplier of ``venues`` to
    ``mult`` and refresh (:func:`refresh`) the liquidation prices that must be exact: every
    band-set ``member`` on them (the ``always`` accounts are members from the first scan),
    and each other account that the change may bring within the band (edges ``lo``/``hi``
    per venue; a long whose price x the :func:`_reach` bound could rise above ``lo``, a
    short whose price could fall below ``hi``). The others keep their price, marked
    ``stale`` per venue; ``m_lo`` keeps each venue's lowest multiplier since its prices were
    last all exact, which the bound starts from. Before the band set's first scan (not
    ``scanned``) every price is refreshed. Protocol rows are never refreshed (:func:`refresh`)
    nor due. The members held in the band set's sorted runs (not changed since its last
    sort) are refreshed without being noted as changed and re-keyed in their runs
    (:func:`_rekey`); the others refreshed are noted. Returns how many accounts kept a
    stale price. ``changed`` has room for every account. ``fixed``: a :class:`kernels.Bundle` of the arguments below, the
    same at every call."""
    (m_lo, stale, member, dirty, always, protocol, venue, size, weight, cash, coin, mm_floor, margin_mult, tier_rate,
     tier_ded, liq_price, stop, tol, n_changed, lacc, lkey, lstart, sacc, skey, sstart) = fixed.items
    k = margin_mult.shape[0]
    cover = np.zeros(k, dtype=np.bool_)
    bounded = np.zeros(k, dtype=np.bool_)
    up, down = np.ones(k), np.ones(k)
    for j in range(venues.shape[0]):
        v = venues[j]
        old, new = margin_mult[v], mult[j]
        margin_mult[v] = new
        m_lo[v] = min(m_lo[v], old, new) if stale[v] else min(old, new)
        cover[v] = True
        if scanned:
            up[v], down[v], bounded[v] = _reach(v, m_lo[v], new, tier_rate, tier_ded)
    todo = np.empty(size.shape[0], dtype=np.int64)
    held = np.empty(size.shape[0], dtype=np.int64)
    wait = np.empty(size.shape[0], dtype=np.int64)
    n = m = kept = 0
    for i in range(size.shape[0]):  # without branches: the accounts are in no order a branch predictor learns
        v = venue[i]
        s = size[i]
        liq = liq_price[i]
        affected = cover[v] & (s != 0.0)  # an open position on a venue whose multiplier moved
        # a member in its venue's sorted run (the band set's invariant), or a non-member that cannot reach the
        # band, whose price may wait (NaN never waits)
        run = member[i] & (not (dirty[i] | always[i] | protocol[i]))
        waits = (not member[i]) & bounded[v] & (((s > 0.0) & (liq * up[v] * (1.0 + BOUND_SLACK) <= lo[v]))
                                                | ((s < 0.0) & (liq * down[v] * (1.0 - BOUND_SLACK) >= hi[v])))
        held[m] = wait[kept] = todo[n] = i
        m += affected & run
        kept += affected & waits
        n += affected & (not run) & (not waits)
    for j in range(kept):
        stale[venue[wait[j]]] = True
    refresh(todo[:n], protocol, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate, tier_ded,
            liq_price, changed, n_changed)
    lp = liquidation_price(held[:m], venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate, tier_ded)
    trig = np.empty(size.shape[0])
    for j in range(m):
        i = held[j]
        liq_price[i] = lp[j]
        trig[i] = _trigger(i, size, liq_price, stop, tol)
    for j in range(venues.shape[0]):
        v = venues[j]
        _rekey(lstart[v], lstart[v + 1], lacc, lkey, dirty, trig)
        _rekey(sstart[v], sstart[v + 1], sacc, skey, dirty, trig)
    return kept


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _rekey(a, b, acc, key, dirty, trig):
    """Set the keys at positions ``a`` to ``b`` of a sorted run of the band set
    (:func:`_sort_keys`) to their accounts' fresh triggers ``trig`` (per account), and sort
    the run again by insertion (a multiplier moves a venue's keys much alike: the run stays
    nearly sorted). The entries of accounts changed since the sort (``dirty``: skipped, and
    dropped at the next sort) take the key before them, so that they add no moves of their own."""
    for h in range(a, b):
        i = acc[h]
        key[h] = -np.inf if dirty[i] and h == a else key[h - 1] if dirty[i] else trig[i]
        g = h
        while g > a and key[g - 1] > key[g]:
            key[g - 1], key[g] = key[g], key[g - 1]
            acc[g - 1], acc[g] = acc[g], acc[g - 1]
            g -= 1


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def settle(rescan, growth, lm, mark_index, ref, half, m_lo, stale, protocol, venue, size, weight, cash, coin,
           mm_floor, cv, margin_mult, tier_rate, tier_ded, liq_price, changed, n_changed):
    """Before :func:`band_set` rescans (``rescan``, or the marks drifted more than ``half``
    from ``ref``: its own test), refresh every open account on the ``stale`` venues, so the
    scan reads exact prices; those venues are then exact again. Returns whether it did.
    ``changed`` has room for every account."""
    if not (rescan or drifted(prices(lm, growth, mark_index)[1], ref, half)):
        return False
    todo = np.empty(size.shape[0], dtype=np.int64)
    n = 0
    for i in range(size.shape[0]):
        if stale[venue[i]] and size[i] != 0.0 and not protocol[i]:
            todo[n] = i
            n += 1
    refresh(todo[:n], protocol, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate, tier_ded,
            liq_price, changed, n_changed)
    for v in range(stale.shape[0]):
        if stale[v]:
            stale[v] = False
            m_lo[v] = margin_mult[v]
    return True


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def settle_bundled(rescan, growth, half, changed, fixed):
    """:func:`settle` with ``fixed``, a :class:`kernels.Bundle` of its arguments that are the
    same at every call (the collateral's values ``cv`` computed here from its prices and
    haircuts)."""
    (lm, mark_index, ref, m_lo, stale, protocol, venue, size, weight, cash, coin, mm_floor, coin_price, haircut,
     margin_mult, tier_rate, tier_ded, liq_price, n_changed) = fixed.items
    return settle(rescan, growth, lm, mark_index, ref, half, m_lo, stale, protocol, venue, size, weight, cash, coin,
                  mm_floor, coin_values(coin_price, haircut), margin_mult, tier_rate, tier_ded, liq_price, changed,
                  n_changed)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
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


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _positive(x):
    """``np.maximum(x, 0.0)`` (NaN stays NaN)."""
    return x if x != x or x > 0.0 else 0.0


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _start_part(starts, ev_n):
    starts[ev_n[1]] = ev_n[0]
    ev_n[1] += 1


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def run_round(near_set, growth, efill, time_s, step, rnd, ev_int, ev_float, ev_n, starts, changed, fixed):
    """``LiquidationEngine.run_round`` at the marks and book prices from ``growth`` (NumPy's
    exp(basis), see :func:`prices`): the due check, classification, the choice of bankrupt
    accounts to auto-deleverage (:func:`_adl_choice`), backstop vaults' takeovers,
    auto-deleveraging (:func:`_adl`), market execution of liquidations (whole or slices),
    of what ADL left and of triggered stops, marking, realising depegged collateral,
    negative balance cover, the events (kinds ``kinds``: liquidation, partial, stop,
    backstop, adl, adl_counterparty) and the liquidation prices' refresh. ``rank``: each
    venue's ADL ranking (:data:`RANKINGS`), ``withdrawal`` the share of depth its market
    maker withdraws when deleveraged.

    Returns (outcome, accounts acted on, accounts waiting for their cooldown); the outcome
    says what the caller does next: :data:`DONE`; :data:`VAULTS`: check the vaults'
    solvency (:func:`vault_solvency`); :data:`NEED_FILL`: nothing changed, call again with
    ``efill`` = exp(``avg``) computed by NumPy; :data:`NEED_ROOM`: nothing changed, make
    room for (second value) more events and changes and call again. ``efill`` is empty when
    not known: the ADL choice then uses the C library's exponential (a few units in the
    last place from NumPy's) and asks for NumPy's only when that could change it. A round
    needs room for one event and one change per due account and :func:`parts` parts (more
    when it deleverages). ``fixed``: a :class:`kernels.Bundle` of the arguments below, the same at
    every call."""
    (avg, kinds, size, venue, weight, cash, coin, liq_price, stop, mm_floor, entry, last_liq, liquidated, cls, juris,
     lev_chosen, always, protocol, coin_price, haircut, margin_mult, tier_floor, tier_rate, tier_ded, vault_rows,
     vault_row, backstop, partial_fraction, partial_threshold, cooldown, nbp, rank, withdrawal, mark_index, taker_fee,
     liq_fee, fee_to_fund, mm_row, fund, fees, collateral_loss, adl_volume, depth0, liquidity_mult, health, impact_y,
     flow, volume, resident, traded, forced_volume, resident_volume, tally, basis, lm, spot, permanent_share,
     n_changed) = fixed.items
    book, mark = prices(lm, growth, mark_index)
    cv = coin_values(coin_price, haircut)
    d = due(near_set, size, venue, weight, cash, coin, liq_price, stop, mm_floor, always, protocol, mark, cv,
            margin_mult, tier_floor, tier_rate, tier_ded, DUE_TOL)
    nd = d.shape[0]
    if nd == 0:
        return _vaults(vault_rows, cash, size, venue, mark, rank), 0, 0
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
    acted = nb + nl + ns
    if nl + ns == 0:
        if nb:
            if _short(nd, mark.shape[0], ev_int, ev_n, starts, changed, n_changed):
                return NEED_ROOM, nd, 0
            _backstop(taken[:nb], mark, step, rnd, kinds[3], size, venue, entry, cash, coin, coin_price,
                      collateral_loss, vault_row, stop, liquidated, tally, cls, juris, weight, lev_chosen, ev_int,
                      ev_float, ev_n, starts)
            refresh(taken[:nb], protocol, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate,
                    tier_ded, liq_price, changed, n_changed)
        return _vaults(vault_rows, cash, size, venue, mark, rank), nb, waiting
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
    known, chosen = _adl_choice(idx, dq, share, nl, efill, avg, book, c, flow, size, venue, cash, coin, coin_price,
                                fund, rank, nbp)
    if not known:
        return NEED_FILL, 0, 0  # too close to call without NumPy's exponential
    k = book.shape[0]
    need = nd
    if chosen.shape[0]:
        candidates = _adl_candidates(chosen, mark, size, venue, entry)
        need = 2 * nd + _adl_room(chosen, candidates, vault_row, venue)
    if _short(need, k, ev_int, ev_n, starts, changed, n_changed):
        return NEED_ROOM, need, 0
    if nb:  # the backstop vaults take over first
        _backstop(taken[:nb], mark, step, rnd, kinds[3], size, venue, entry, cash, coin, coin_price, collateral_loss,
                  vault_row, stop, liquidated, tally, cls, juris, weight, lev_chosen, ev_int, ev_float, ev_n, starts)
        refresh(taken[:nb], protocol, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate, tier_ded,
                liq_price, changed, n_changed)
    if chosen.shape[0]:  # auto-deleveraging, then what it left goes to market with the rest
        left = _adl(chosen, candidates, vault_row, mark, cv, step, rnd, kinds[4], kinds[5], rank, withdrawal, nbp,
                    mm_row, health, fund, adl_volume, size, venue, entry, cash, coin, coin_price, collateral_loss,
                    liquidated, stop, tally, cls, juris, weight, lev_chosen, protocol, mm_floor, margin_mult,
                    tier_rate, tier_ded, liq_price, changed, n_changed, ev_int, ev_float, ev_n, starts)
        m = n + left.shape[0]  # the orders not deleveraged, then what ADL left (whole liquidations)
        idx2, share2, liq2, dq2 = np.empty(m, dtype=np.int64), np.empty(m), np.empty(m, dtype=np.bool_), np.empty(m)
        m = 0
        gone = chosen  # _adl_choice's own array, not needed in rank order any more: sorted in place (as above)
        gone.sort()
        for j in range(n):
            h = _first_at_least(gone, 0, gone.shape[0], idx[j])
            if h == gone.shape[0] or gone[h] != idx[j]:  # not deleveraged
                idx2[m], share2[m], liq2[m] = idx[j], share[j], is_liq[j]
                m += 1
        for j in range(left.shape[0]):
            idx2[m], share2[m], liq2[m] = left[j], 1.0, True
            m += 1
        n = 0
        for j in range(m):
            q = -size[idx2[j]] * share2[j]  # ADL may have reduced orders' positions (counterparties)
            if q != 0.0:
                idx2[n], share2[n], liq2[n], dq2[n] = idx2[j], share2[j], liq2[j], q
                n += 1
        idx, share, is_liq, dq = idx2[:n], share2[:n], liq2[:n], dq2[:n]
        if n == 0:
            return _vaults(vault_rows, cash, size, venue, mark, rank), acted, waiting
        c = coefficients(impact_y, depth0, liquidity_mult, health)  # a deleveraged market maker withdrew depth
    # market execution
    pre_size = np.empty(n)
    for j in range(n):
        pre_size[j] = size[idx[j]]
    forced = np.ones(n, dtype=np.bool_)
    fill = execute_orders(idx, dq, is_liq, forced, book, c, cv, venue, size, entry, cash, coin, taker_fee, liq_fee,
                          fee_to_fund, mm_row, fund, fees, flow, volume, resident, traded, forced_volume,
                          resident_volume, tally, basis, lm, spot, permanent_share)
    for j in range(n):
        if is_liq[j]:
            last_liq[idx[j]] = time_s
            liquidated[idx[j]] = True
    _realise_coin(idx, bool(True), size, venue, cash, coin, coin_price, collateral_loss)  # of the closed accounts
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
    return _vaults_moved(vault_rows, cash, size, venue, rank, mark_index, basis, lm), acted, waiting


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def cascade_round(stale, rescan, growth, e_lo, e_hi, half, efill, time_s, step, rnd, ev_int, ev_float, ev_n, starts,
                  changed, fixed, again, near_set):
    """``LiquidationEngine.cascade_round``: one cascade round in one call, the band set's
    accounts (:func:`band_set`) handed straight to the round (:func:`run_round`), both at the
    prices from ``growth`` (nothing between them moves the basis); first, when ``stale``,
    :func:`settle_bundled` (``changed`` then has room for every account). Returns (settled,
    outcome, accounts acted on, accounts waiting, the band set's accounts). On
    :data:`NEED_FILL` or :data:`NEED_ROOM` the caller calls again with ``again`` and those
    accounts as ``near_set`` (else ignored): the round alone on them, nothing settled or
    rescanned (so the cascade has one compiled entry point to load from the cache, not
    this and :func:`run_round`, whose code this one's holds). ``fixed``: a
    :class:`kernels.Bundle` of three, the bundles of :func:`settle_bundled`, :func:`band_set` and :func:`run_round` that are the same at every call (one
    argument: each costs the call about 0.4 us)."""
    settle_fixed, band_fixed, round_fixed = fixed.items
    settled = False
    found = near_set
    if not again:
        settled = settle_bundled(rescan, growth, half, changed, settle_fixed) if stale else False
        found = band_set(rescan, growth, e_lo, e_hi, half, changed, band_fixed)
    outcome, acted, waiting = run_round(found, growth, efill, time_s, step, rnd, ev_int, ev_float, ev_n, starts,
                                        changed, round_fixed)  # one call site: inlined
    return settled, outcome, acted, waiting, found


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def parts(k):
    """Parts of the event log one round can add on ``k`` venues: backstops, liquidations,
    slices and stops, and per venue and side one part of deleveraged accounts and one of
    their counterparties."""
    return 4 + 4 * k


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _short(need, k, ev_int, ev_n, starts, changed, n_changed):
    """Whether the event buffers lack room for ``need`` more events or a round's parts on ``k``
    venues (:func:`parts`), or the change list for ``need`` more changes."""
    return ev_int.shape[1] - ev_n[0] < need or starts.shape[0] - ev_n[1] < parts(k) or \
        changed.shape[0] - n_changed[0] < need


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _member(a, x):
    """Whether ``x`` is in the (short) array ``a``."""
    for y in a:
        if y == x:
            return True
    return False


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def _adl_choice(idx, dq, share, nl, efill, avg, book, c, flow, size, venue, cash, coin, coin_price, fund, rank, nbp):
    """The bankrupt accounts a round auto-deleverages: of the whole liquidations among the
    round's orders (``idx``, ``dq``, ``share``; the first ``nl`` are liquidations)
    on venues that auto-deleverage and protect negative balances, per venue (ascending)
    whose deficits at the orders' fill prices exceed what its fund covers, the largest
    deficits (descending, ties in order) until the fund covers the rest. Returns (known,
    accounts); not ``known``: the fill prices' exponentials from the C library (``efill``
    empty) could give another choice than NumPy's, whose arguments are left in ``avg``.

    A deficit moves by at most a few units in the last place of the account's scale
    (cash, position value, collateral) between the two exponentials; the choice is known
    when no account's equity is within 1e-9 of its scale from zero, the deficits the
    ranking puts around the cut (and before it) differ by more than 1e-11 of the largest
    scale (or come from identical accounts), and the sums compared with the fund are
    further from it than 1e-9 (plus 1e-15 per candidate) of the deficits' scale and the
    fund."""
    k = book.shape[0]
    none = np.zeros(0, dtype=np.int64)
    candidates = np.zeros(k, dtype=np.int64)
    for j in range(nl):
        v = venue[idx[j]]
        if share[j] >= 1.0 and rank[v] != 0 and nbp[v]:
            candidates[v] += 1
    if candidates.sum() == 0:
        return True, none
    net = np.zeros(k)
    for j in range(idx.shape[0]):
        net[venue[idx[j]]] += dq[j]
    for v in range(k):
        net[v] *= book[v]  # USD, in a loop: here Numba's product of two arrays took 400 more IR lines
    a = impact(c, flow, net)[1]
    exact = efill.shape[0] > 0
    ef = efill if exact else np.exp(a)
    out = np.empty(nl, dtype=np.int64)
    n_out = 0
    for u in range(k):
        m = candidates[u]
        if m == 0:
            continue
        acc, deficit, scale = np.empty(m, dtype=np.int64), np.empty(m), np.empty(m)
        m = 0
        uncertain = widest = 0.0  # scale of the accounts in deficit (or nearly); the largest scale
        near_zero = False
        for j in range(nl):
            i = idx[j]
            if share[j] >= 1.0 and venue[i] == u:
                value = size[i] * (book[u] * ef[u])
                e = cash[i] + value - coin[i] * (1 - coin_price[u])
                acc[m] = i
                deficit[m] = _positive(-e)
                scale[m] = abs(cash[i]) + abs(value) + abs(coin[i])
                if not e > 1e-12 * scale[m]:
                    uncertain += scale[m]
                near_zero |= not abs(e) > 1e-9 * scale[m]
                widest = max(widest, scale[m])
                m += 1
        total = _sum(deficit)
        limit = 0.0 if 0.0 > fund[u] else fund[u]
        margin = (1e-9 + 1e-15 * m) * (uncertain + abs(limit))
        if not exact and uncertain > 0.0 and not abs(total - limit) > margin:
            copy_into(avg, int(0), a)  # int(): a literal 0 would compile copy_into again
            return False, none
        if total <= limit:
            continue
        order = np.argsort(-deficit, kind="mergesort")
        remaining = np.empty(m)  # what is left after each ranked deficit is deleveraged
        cum = 0.0
        cut = m  # the first position after which the fund covers what is left
        positive = 0
        for s in range(m):
            cum += deficit[order[s]]
            remaining[s] = total - cum
            if cut == m and remaining[s] <= limit:
                cut = s
            positive += deficit[order[s]] > 0.0
        last = min(cut, positive - 1)  # the last account chosen
        if not exact:
            known = not near_zero
            if last >= 1 and not remaining[last - 1] - limit > margin:
                known = False
            if cut < positive - 1 and not limit - remaining[cut] > margin:
                known = False
            for s in range(min(last, positive - 2) + 1):
                x, y = order[s], order[s + 1]
                same = cash[acc[x]] == cash[acc[y]] and size[acc[x]] == size[acc[y]] and coin[acc[x]] == coin[acc[y]]
                if not (deficit[x] - deficit[y] > 1e-11 * widest or same):
                    known = False
            if not known:
                copy_into(avg, int(0), a)  # int(): a literal 0 would compile copy_into again
                return False, none
        for s in range(last + 1):
            out[n_out] = acc[order[s]]
            n_out += 1
    return True, out[:n_out]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def _adl_candidates(bankrupt, mark, size, venue, entry):
    """The accounts in profit at ``mark`` on the venues of ``bankrupt``, ascending (one pass
    over the accounts): every counterparty :func:`_adl` can take is one of them or a vault
    (a backstop in between can change a vault; :func:`_adl` checks both as it goes)."""
    on = np.zeros(mark.shape[0], dtype=np.bool_)
    for i in bankrupt:
        on[venue[i]] = True
    out = np.empty(size.shape[0], dtype=np.int64)
    n = 0
    for i in range(size.shape[0]):  # branch-free: a third of the time of a test per account
        v = venue[i]
        out[n] = i
        n += on[v] & (size[i] * (mark[v] - entry[i]) > 0.0)
    return out[:n].copy()


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _venues(accounts, venue, k):
    """The venues (of ``k``) of ``accounts``, distinct and ascending (``np.unique(venue[accounts])``
    as int64, without a sort: Numba's ``np.unique`` of the int16 venues compiled a sort of its own)."""
    on = np.zeros(k, dtype=np.bool_)
    for i in accounts:
        on[venue[i]] = True
    out = np.empty(k, dtype=np.int64)
    n = 0
    for v in range(k):
        out[n] = v
        n += on[v]
    return out[:n]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def _adl_room(bankrupt, candidates, vault_row, venue):
    """Counterparties :func:`_adl` of ``bankrupt`` can take at most: its ``candidates``
    (:func:`_adl_candidates`) and the vaults of its venues."""
    need = candidates.shape[0]
    for u in _venues(bankrupt, venue, vault_row.shape[0]):
        if vault_row[u] >= 0:
            need += 1
    return need


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _counterparty(i, u, sd, p, bankrupt, size, venue, entry):
    """Whether account ``i`` can take bankrupt positions of side ``sd`` on venue ``u`` at
    mark ``p``: on the opposite side, in profit, not bankrupt itself (``bankrupt``: a flag
    per account)."""
    s, e, gone = size[i], entry[i], bankrupt[i]
    return venue[i] == u and s * sd < 0.0 and s * (p - e) > 0.0 and not gone


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _adl_score(i, p, cvv, rank_v, size, entry, cash, coin):
    """Auto-deleveraging priority of account ``i`` at mark ``p`` (higher goes first), for
    collateral value ``cvv``: hyperliquid (mark/entry for longs, entry/mark for shorts) x
    notional / account value; binance PnL% of margin x effective leverage."""
    s = size[i]
    e = entry[i]
    e = e if e > 0 else p
    eq = cash[i] + s * p - coin[i] * (1.0 - cvv)
    equity = eq if eq >= 1e-9 or eq != eq else 1e-9
    notional = abs(s) * p
    if rank_v == HYPERLIQUID:
        ratio = p / e if s > 0 else e / p
        return ratio * notional / equity
    # binance (pro rata and none do not rank)
    upnl = s * (p - e)
    margin = equity - upnl
    margin = margin if margin >= 1e-9 or margin != margin else 1e-9
    return (upnl / margin) * (notional / equity)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _ahead(key, a, b):
    """Whether position ``a`` of ``key`` sorts before ``b`` in a stable ascending sort."""
    ka, kb = key[a], key[b]
    return ka < kb or (ka == kb and a < b)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _sift_down(heap, n, h, key):
    while True:
        c = 2 * h + 1
        if c >= n:
            return
        if c + 1 < n and _ahead(key, heap[c + 1], heap[c]):
            c += 1
        if not _ahead(key, heap[c], heap[h]):
            return
        heap[c], heap[h] = heap[h], heap[c]
        h = c


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _ranked_prefix(key, avail, need):
    """``np.argsort(key, kind="stable")`` as far as it goes while the ``avail`` of the
    positions before stays below ``need``: the positions an ADL ranking takes from, in
    order, found with a heap (a pass over all, then a logarithm per position taken)."""
    n = key.shape[0]
    heap = np.arange(n)
    for h in range(n // 2 - 1, -1, -1):
        _sift_down(heap, n, h, key)
    out = np.empty(n, dtype=np.int64)
    q = 0
    before = 0.0
    while n > 0 and before < need:
        out[q] = heap[0]
        before += avail[heap[0]]
        q += 1
        n -= 1
        heap[0] = heap[n]
        _sift_down(heap, n, 0, key)
    return out[:q]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _adl(bankrupt, candidates, vault_row, mark, cv, step, rnd, kind_adl, kind_cp, rank, withdrawal, nbp, mm_row, health,
         fund, adl_volume, size, venue, entry, cash, coin, coin_price, collateral_loss, liquidated, stop, tally, cls,
         juris, weight, lev_chosen, protocol, mm_floor, margin_mult, tier_rate, tier_ded, liq_price, changed, n_changed,
         ev_int, ev_float, ev_n, starts):
    """Close the positions of ``bankrupt`` (unique) against ranked profitable opposite
    positions at their bankruptcy prices, per venue (ascending) and side (longs first):
    the counterparties (not bankrupt) are taken by the venue's ranking (``rank``; stable
    among equals), each at most its position and none below 1e-12 of the need, or pro rata;
    each pays the bankrupt side's average bankruptcy price. A counterparty the price takes
    below zero is made whole by the fund (``nbp``); a market maker deleveraged withdraws
    ``withdrawal`` of its depth (``health``). Depegged collateral is realised first; the
    USD closed adds to ``adl_volume``; events of kinds ``kind_adl`` and ``kind_cp``; the
    liquidation prices refreshed. The counterparties are found among ``candidates``
    (:func:`_adl_candidates` of ``bankrupt``) and the venues' vaults (``vault_row``).
    Returns the bankrupt accounts that found no counterparty or too little, to go to
    market with what is left of them."""
    _realise_coin(bankrupt, bool(False), size, venue, cash, coin, coin_price, collateral_loss)
    nb = bankrupt.shape[0]
    flagged = np.zeros(size.shape[0], dtype=np.bool_)  # the bankrupt
    for i in bankrupt:
        flagged[i] = True
    left = np.empty(nb, dtype=np.int64)
    n_left = 0
    found = np.empty(candidates.shape[0] + 1, dtype=np.int64)
    for u in _venues(bankrupt, venue, mark.shape[0]):
        p = mark[u]
        vault = vault_row[u]
        for sd in (1.0, -1.0):
            b = np.empty(nb, dtype=np.int64)
            m = 0
            for i in bankrupt:
                if venue[i] == u and np.sign(size[i]) == sd:
                    b[m] = i
                    m += 1
            if m == 0:
                continue
            b = b[:m]
            gross = np.empty(m)
            for j in range(m):
                gross[j] = abs(size[b[j]])
            need = _sum(gross)
            n_cp = 0  # the counterparties in account order: the candidates, the vault in its place
            placed = vault < 0
            for i in candidates:
                if not placed and vault <= i:
                    placed = True
                    if vault < i and _counterparty(vault, u, sd, p, flagged, size, venue, entry):
                        found[n_cp] = vault
                        n_cp += 1
                if _counterparty(i, u, sd, p, flagged, size, venue, entry):
                    found[n_cp] = i
                    n_cp += 1
            if not placed and _counterparty(vault, u, sd, p, flagged, size, venue, entry):
                found[n_cp] = vault
                n_cp += 1
            if n_cp == 0:
                copy_into(left, n_left, b)
                n_left += m
                continue
            cp = found[:n_cp].copy()
            avail = np.empty(n_cp)
            for j in range(n_cp):
                avail[j] = abs(size[cp[j]])
            take = np.empty(n_cp)
            if rank[u] == PRO_RATA:
                r = need / _sum(avail)
                ratio = r if r < 1.0 else 1.0
                for j in range(n_cp):
                    take[j] = avail[j] * ratio
            else:
                key = np.empty(n_cp)
                for j in range(n_cp):
                    key[j] = -_adl_score(cp[j], p, cv[u], rank[u], size, entry, cash, coin)
                top = _ranked_prefix(key, avail, need)  # the rest, ranked after them, take nothing
                take[:] = 0.0
                before = 0.0  # the sizes ranked above each
                for r in range(top.shape[0]):
                    j = top[r]
                    x = need - before
                    x = x if x > 0.0 or x != x else 0.0
                    x = x if x < avail[j] or x != x else avail[j]
                    take[r] = 0.0 if x <= 1e-12 * need else x  # rounding dust below the need
                    cp[r] = found[j]  # ranked order (found[:n_cp] still holds them in account order)
                    before += avail[j]
            taken = _sum(take)
            f = 1.0 if taken >= need * (1 - 1e-12) else taken / need
            n_take = 0
            for j in range(n_cp):
                if take[j] > 0.0:
                    cp[n_take], take[n_take] = cp[j], take[j]
                    n_take += 1
            if n_take == 0:  # every counterparty's share rounds to nothing (need dwarfs them)
                copy_into(left, n_left, b)
                n_left += m
                continue
            cp, take = cp[:n_take], take[:n_take]
            closed, p_bk, value = np.empty(m), np.empty(m), np.empty(m)
            for j in range(m):
                closed[j] = size[b[j]] * f
                p_bk[j] = -cash[b[j]] / size[b[j]]
                value[j] = closed[j] * p_bk[j]
            pbar = _sum(value) / _sum(closed)
            was = np.empty(m)
            for j in range(m):
                was[j] = size[b[j]]
            trade(b, -closed, p_bk, size, entry, cash)  # Market.transfer: no fees, no impact
            count_opened(b, was, size, tally)
            was = np.empty(n_take)
            for j in range(n_take):
                was[j] = size[cp[j]]
            trade(cp, sd * take, np.full(n_take, pbar), size, entry, cash)
            count_opened(cp, was, size, tally)
            if nbp[u]:  # a counterparty the ADL price takes below zero is made whole by the fund
                short = np.empty(n_take)
                for j in range(n_take):
                    i = cp[j]
                    short[j] = _positive(-(cash[i] + size[i] * p - coin[i] * (1.0 - cv[u])))
                    cash[i] += short[j]
                fund[u] -= _sum(short)
            adl_volume[u] += _sum(np.abs(value))
            for i in b:
                liquidated[i] = True
            if _member(cp, mm_row[u]):
                health[u] *= 1.0 - withdrawal[u]
            _start_part(starts, ev_n)
            for j in range(m):
                _record(ev_int, ev_float, ev_n, b[j], step, rnd, kind_adl, venue, cls, juris, weight, lev_chosen,
                        closed[j], p_bk[j], 0.0)
            _start_part(starts, ev_n)
            for j in range(n_take):
                _record(ev_int, ev_float, ev_n, cp[j], step, rnd, kind_cp, venue, cls, juris, weight, lev_chosen,
                        -sd * take[j], pbar, 0.0)
            refresh(cp, protocol, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate, tier_ded,
                    liq_price, changed, n_changed)
            if f < 1.0:
                copy_into(left, n_left, b)
                n_left += m
    for i in bankrupt:
        if size[i] == 0.0:
            stop[i] = np.nan
    refresh(bankrupt, protocol, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate, tier_ded,
            liq_price, changed, n_changed)
    return left[:n_left]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def vault_solvency(growth, lm, mark_index, coin_price, haircut, vault_rows, vault_row, step, rnd, kinds, rank,
                   withdrawal, nbp, mm_row, health, fund, adl_volume, size, venue, entry, cash, coin, collateral_loss,
                   liquidated, stop, tally, cls, juris, weight, lev_chosen, protocol, mm_floor, margin_mult,
                   tier_rate, tier_ded, liq_price, changed, n_changed, ev_int, ev_float, ev_n, starts):
    """The vaults' solvency, at the marks from ``growth`` (NumPy's exp(basis)): a backstop
    vault (of ``vault_rows``) on a venue that auto-deleverages whose equity is negative is
    itself auto-deleveraged (:func:`_adl`). Returns 0 when done, else (nothing changed) how
    many more events and changes the buffers must have room for."""
    mark = prices(lm, growth, mark_index)[1]
    broke = under_water(vault_rows, cash, size, venue, mark)
    m = 0
    for j in range(broke.shape[0]):
        if rank[venue[broke[j]]] != 0:
            broke[m] = broke[j]
            m += 1
    if m == 0:
        return 0
    broke = broke[:m]
    candidates = _adl_candidates(broke, mark, size, venue, entry)
    need = m + _adl_room(broke, candidates, vault_row, venue)
    if _short(need, mark.shape[0], ev_int, ev_n, starts, changed, n_changed):
        return need
    _adl(broke, candidates, vault_row, mark, coin_values(coin_price, haircut), step, rnd, kinds[4], kinds[5], rank,
         withdrawal, nbp, mm_row, health, fund, adl_volume, size, venue, entry, cash, coin, coin_price, collateral_loss,
         liquidated, stop, tally, cls, juris, weight, lev_chosen, protocol, mm_floor, margin_mult, tier_rate, tier_ded,
         liq_price, changed, n_changed, ev_int, ev_float, ev_n, starts)
    return 0


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _realise_coin(accounts, flat_only, size, venue, cash, coin, coin_price, collateral_loss):
    """The depegged collateral of ``accounts`` (those
    now flat if ``flat_only``) is sold at its value; the losses per venue, summed in
    account order, are added to ``collateral_loss``. Callers pass ``bool(True)`` or
    ``bool(False)``: a plain bool, where a constant would compile one copy per value (Numba
    specialises on literal arguments)."""
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


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _backstop(idx, mark, step, rnd, kind, size, venue, entry, cash, coin, coin_price, collateral_loss, vault_row, stop,
              liquidated, tally, cls, juris, weight, lev_chosen, ev_int, ev_float, ev_n, starts):
    """The venues' vaults take over the positions of
    accounts ``idx`` at their marks with all their remaining margin (depegged collateral
    realised first), per vault row in ascending order; the backstop events."""
    _realise_coin(idx, bool(False), size, venue, cash, coin, coin_price, collateral_loss)
    pre = np.empty(idx.shape[0])
    for j in range(idx.shape[0]):
        pre[j] = size[idx[j]]
    rows = unique_sorted(vault_row[venue[idx]])
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
            trade_one(row, total, notional / total, size, entry, cash)
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


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def _vaults_moved(rows, cash, size, venue, rank, mark_index, basis, lm):
    """:func:`_vaults` after prices moved, without NumPy's marks: the marks from the C
    library's exponential, which differs from NumPy's by at most a few units in the last
    place (relative 1e-15); a vault whose equity is within 1e-12 of its cash and
    position's value from zero is left to the caller's exact check (:data:`VAULTS`)."""
    index = math.exp(lm[0] + lm[1])
    for r in rows:
        v = venue[r]
        if rank[v] == 0 or size[r] == 0.0:
            continue
        mark = index if mark_index[v] else index * math.exp(basis[v])
        value = size[r] * mark
        if not cash[r] + value > 1e-12 * (abs(cash[r]) + abs(value)):
            return VAULTS
    return DONE


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _vaults(rows, cash, size, venue, price, rank):
    """:data:`VAULTS` if any of the vault ``rows`` on a venue that auto-deleverages
    (``rank``) holds a position with negative equity at ``price`` (see
    :func:`vault_solvency`), else :data:`DONE`."""
    broke = under_water(rows, cash, size, venue, price)
    for j in range(broke.shape[0]):
        if rank[venue[broke[j]]] != 0:
            return VAULTS
    return DONE

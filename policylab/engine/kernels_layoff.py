"""The market makers' lay-off candidates without a pass over every account (Numba).

A derivatives venue's market maker holding inventory lays part of it off each step to the
takers (retail and professional rows) holding a position in profit on the other side
(``venue_agents.MarketMakers.lay_off``). ``venue_agents.TakerPositions`` keeps the takers'
open positions sorted per segment (venue ``v`` and side: segment ``2v`` the longs, ``2v + 1``
the shorts) by key = entry for a long, -entry for a short (USD per BTC), ties by row, with
the running sum of their |size| (BTC) within the segment. A long is in profit at the
venue's price ``p`` when its entry is under ``p`` (key < p), a short when its entry is
over ``p`` (key < -p): a venue's candidates are a prefix of one segment, found by binary
search, and the BTC they hold ("room") a prefix sum.

Accounts whose size changed since the positions were last sorted in are "fresh" (every
size change, and so every entry change, is logged by ``kernels.hold`` in
``Market.changed``): the sorted entry of a fresh row, if it has one, is stale and taken out
of its prefix; the row's current position is checked directly. The fresh rows are sorted
in (:func:`merge`) once checking them has cost about as much as a merge.

Cost per step: O(venues x log N + F) for N sorted positions and F fresh rows (each
check reads the row's current size and entry); a merge O(N + F log F). Which candidates close is drawn by count (:func:`subsets`,
:func:`at_ranks`), not with one number per candidate; :func:`fill` closes them as
``Market.transfer`` would (it calls ``kernels.trade`` and ``kernels.count_opened``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from policylab.engine import kernels
from policylab.engine.kernels_cascade import coin_values, refresh


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def fresh_entries(log, taker, size, venue, entry):
    """The logged rows (``log``: count in slot 0, then rows) that are takers holding a
    position: (rows, segment, key, |size|) for :func:`merge`, in log order."""
    nf = log[0]
    rows = np.empty(nf, dtype=np.int64)
    seg = np.empty(nf, dtype=np.int64)
    key = np.empty(nf)
    mag = np.empty(nf)
    m = 0
    for j in range(1, nf + 1):
        r = log[j]
        s = size[r]
        if taker[r] and s != 0.0:
            rows[m] = r
            short = s < 0.0
            seg[m] = 2 * np.int64(venue[r]) + short
            key[m] = -entry[r] if short else entry[r]
            mag[m] = abs(s)
            m += 1
    return rows[:m], seg[:m], key[:m], mag[:m]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def lexical_order(rows, seg, key, segments):
    """The order of entries by segment (0 .. ``segments`` - 1), key and row: as
    ``np.lexsort((rows, key, seg))`` (rows distinct; keys not NaN): by row, then stably by
    key, then stably by segment (counting them). The rows are sorted as float64 (exact below
    2**53) with the keys' merge sort: an int64 sort would be a second sort compiled into the
    merge's cached code."""
    o = np.argsort(rows.astype(np.float64), kind="mergesort")
    o = o[np.argsort(key[o], kind="mergesort")]
    start = np.zeros(segments + 1, dtype=np.int64)
    for j in range(o.shape[0]):
        start[seg[o[j]] + 1] += 1
    for s in range(segments):
        start[s + 1] += start[s]
    out = np.empty_like(o)
    for j in range(o.shape[0]):
        s = seg[o[j]]
        out[start[s]] = o[j]
        start[s] += 1
    return out


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def merge(rows, seg, key, mag, segments, pos_of, changed, log, taker, size, venue, entry):
    """Sort the logged rows' current positions (:func:`fresh_entries`) into the sorted
    positions (``rows``, ``seg``, ``key``, ``mag``), leaving out the entries of logged rows
    (stale). Updates ``pos_of`` (position of each row, -1 for none), clears the log and its
    flags. Returns the new (rows, seg, key, mag, inc, seg_lo): ``inc`` the running sum of
    ``mag`` within each segment (inclusive), ``seg_lo`` where each of the ``segments``
    begins (length segments + 1)."""
    f_rows, f_seg, f_key, f_mag = fresh_entries(log, taker, size, venue, entry)
    order = lexical_order(f_rows, f_seg, f_key, segments)  # the fresh entries are read through it
    n = rows.shape[0]
    nf = f_rows.shape[0]
    dead = np.zeros(n, dtype=np.bool_)  # the stale entries, by position
    for j in range(1, log[0] + 1):
        r = log[j]
        if pos_of[r] >= 0:
            dead[pos_of[r]] = True
            pos_of[r] = -1
    o_rows = np.empty(n + nf, dtype=np.int64)
    o_seg = np.empty(n + nf, dtype=np.int64)
    o_key = np.empty(n + nf)
    o_mag = np.empty(n + nf)
    i = 0
    j = 0
    o = 0
    while i < n or j < nf:
        if i < n and dead[i]:
            i += 1
            continue
        f = order[j] if j < nf else 0
        if j >= nf:
            base = True
        elif i >= n:
            base = False
        else:
            base = (seg[i] < f_seg[f] or (seg[i] == f_seg[f] and (
                key[i] < f_key[f] or (key[i] == f_key[f] and rows[i] < f_rows[f]))))
        if base:
            o_rows[o], o_seg[o], o_key[o], o_mag[o] = rows[i], seg[i], key[i], mag[i]
            i += 1
        else:
            o_rows[o], o_seg[o], o_key[o], o_mag[o] = f_rows[f], f_seg[f], f_key[f], f_mag[f]
            j += 1
        o += 1
    for j in range(1, log[0] + 1):
        changed[log[j]] = False
    log[0] = 0
    inc = np.empty(o)
    seg_lo = np.zeros(segments + 1, dtype=np.int64)
    for q in range(o):
        pos_of[o_rows[q]] = q
        inc[q] = o_mag[q] if (q == 0 or o_seg[q] != o_seg[q - 1]) else inc[q - 1] + o_mag[q]
        seg_lo[o_seg[q] + 1] = q + 1
    for s in range(1, segments + 1):  # empty segments begin where the previous one ended
        if seg_lo[s] < seg_lo[s - 1]:
            seg_lo[s] = seg_lo[s - 1]
    return o_rows[:o], o_seg[:o], o_key[:o], o_mag[:o], inc, seg_lo


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def candidates(rows, key, mag, inc, seg_lo, price, keep, fixed):
    """Each derivatives venue's lay-off candidates: the takers holding a position in profit
    at the venue's ``price`` on the other side of its book's inventory (BTC: the size of
    its row ``mm_row`` where ``limited``; none where 0 or NaN). Writes per venue how many
    (``count``), the BTC they hold (``room``) and the chance that each closes (``share``),
    min(want, room) / room with want = |inventory| x ``keep`` (0 without candidates); and
    where they are, for :func:`close`, to ``where`` = (lo, cut, stale_off, stale, fresh_off,
    fresh): the sorted prefix [lo, cut) of ``rows`` they come from, its stale positions
    (``stale[stale_off[v]:stale_off[v + 1]]``, ascending) and the fresh rows in profit
    (``fresh[fresh_off[v]:fresh_off[v + 1]]``, in log order; ``stale`` and ``fresh`` have
    room for every log slot). Returns how many candidates in all. Room is the prefix sum
    less the stale entries plus the fresh positions: the scan's sum in another order. Per
    log slot ``j`` (row ``log[j + 1]``) ``slot_v``, ``slot_q``, ``slot_mag`` keep the row's
    venue (-1: not a taker), sorted position (``pos_of``) and sorted |size| (BTC), filled
    for the slots from ``seen[0]`` on (then ``seen[0]`` = the log's count), so that checking
    a fresh row reads only its current size and entry from the account arrays. ``fixed``: a
    :class:`kernels.Bundle` of the arguments from ``pos_of`` to ``where`` and scratch arrays
    (``inv``, each venue's inventory; ``kind``, per log slot 1 for a stale entry of the prefix
    plus 2 for a fresh row in profit; ``slot``, where each venue's next stale entry, then
    fresh row, goes: 2 x venues), the same at every call (the sorted positions, ``rows`` to
    ``seg_lo``, are replaced by each :func:`merge`). It allocates nothing, so its arrays need
    no reference counting (see kernels_decide's module docstring)."""
    (pos_of, log, slot_v, slot_q, slot_mag, seen, taker, size, venue, entry, mm_row, limited, count, room, share,
     where, inv, kind, slot) = fixed.items
    lo, cut, stale_off, stale, fresh_off, fresh = where
    k = price.shape[0]
    for v in range(k):
        inv[v] = size[mm_row[v]] if limited[v] else 0.0
    count[:] = 0
    room[:] = 0.0
    lo[:] = 0
    cut[:] = 0
    for v in range(k):
        if inv[v] < 0.0 or inv[v] > 0.0:
            s = 2 * v + (inv[v] > 0.0)  # a short book lays off to longs, a long one to shorts
            a = seg_lo[s]
            t = price[v] if inv[v] < 0.0 else -price[v]
            p = a + np.searchsorted(key[a:seg_lo[s + 1]], t)  # key < t: in profit
            lo[v] = a
            cut[v] = p
            count[v] = p - a
            room[v] = inc[p - 1] if p > a else 0.0
    for j in range(seen[0], log[0]):  # what the rows logged since the last call had when sorted in
        r = log[j + 1]
        q = pos_of[r]
        slot_v[j] = venue[r] if taker[r] else -1
        slot_q[j] = q
        slot_mag[j] = mag[q] if q >= 0 else 0.0
    seen[0] = log[0]
    stale_off[:] = 0  # counts per venue (at v + 1) first, then their running sums
    fresh_off[:] = 0
    for j in range(log[0]):
        kind[j] = 0
        v = slot_v[j]
        if v < 0 or not (inv[v] < 0.0 or inv[v] > 0.0):
            continue
        if lo[v] <= slot_q[j] < cut[v]:
            count[v] -= 1
            room[v] -= slot_mag[j]
            stale_off[v + 1] += 1
            kind[j] = 1
        r = log[j + 1]
        s = size[r]
        if s * inv[v] < 0.0 and s * (price[v] - entry[r]) > 0.0:
            count[v] += 1
            room[v] += abs(s)
            fresh_off[v + 1] += 1
            kind[j] += 2
    total = 0
    for v in range(k):
        share[v] = 0.0
        total += count[v]
        if count[v] == 0:
            room[v] = 0.0  # exactly: what the stale entries left of the prefix sum is rounding
        elif room[v] > 0.0:
            want = abs(inv[v]) * keep
            share[v] = min(want, room[v]) / room[v]
        else:  # the candidates' positions are within rounding of nothing: all of them
            share[v] = 1.0
        stale_off[v + 1] += stale_off[v]
        fresh_off[v + 1] += fresh_off[v]
    for v in range(k):
        slot[v] = stale_off[v]
        slot[k + v] = fresh_off[v]
    for j in range(log[0]):
        if kind[j] == 0:
            continue
        v = slot_v[j]
        if kind[j] & 1:
            stale[slot[v]] = slot_q[j]
            slot[v] += 1
        if kind[j] & 2:
            fresh[slot[k + v]] = log[j + 1]
            slot[k + v] += 1
    for v in range(k):
        if stale_off[v + 1] - stale_off[v] > 1:
            stale[stale_off[v]:stale_off[v + 1]].sort()
    return total


SMALL_SUBSET = 32  # a subset up to this size finds its ranks by scanning them, a larger one marks them


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def subsets(count, chosen, t, ranks, off, picked):
    """Uniform random subsets by Floyd's algorithm: ``chosen[v]`` distinct ranks out of
    0 .. ``count[v]`` - 1 per venue, from ``t``, the integers drawn uniformly in [0, j] for
    j = count - chosen .. count - 1, venue after venue. Writes venue ``v``'s ranks ascending
    to ``ranks[off[v]:off[v + 1]]`` (``off``: venues + 1); ``picked`` (bool, at least the
    largest count) is all False before and after."""
    k = count.shape[0]
    off[0] = 0
    for v in range(k):
        off[v + 1] = off[v] + chosen[v]
    for v in range(k):
        if chosen[v] == 0:
            continue
        b = off[v]
        first = count[v] - chosen[v]
        if chosen[v] <= SMALL_SUBSET:
            for j in range(first, count[v]):
                x = t[b + j - first]
                for q in range(b, b + j - first):
                    if ranks[q] == x:
                        x = j
                        break
                ranks[b + j - first] = x
        else:
            for j in range(first, count[v]):
                x = t[b + j - first]
                if picked[x]:
                    x = j
                picked[x] = True
                ranks[b + j - first] = x
            for q in range(b, off[v + 1]):
                picked[ranks[q]] = False
        ranks[b:off[v + 1]].sort()


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def at_ranks(ranks, off, rows, where, out):
    """Write to ``out`` the candidate rows at ``ranks`` (ascending per venue,
    ``ranks[off[v]:off[v + 1]]``) in the order a venue's candidates are numbered (after
    :func:`candidates`): the sorted prefix [lo, cut) of ``rows`` without its stale positions,
    then the fresh rows in profit (``where`` as :func:`candidates` writes it); venue after venue."""
    lo, cut, stale_off, stale, fresh_off, fresh = where
    for v in range(lo.shape[0]):
        base = cut[v] - lo[v] - (stale_off[v + 1] - stale_off[v])  # the sorted prefix's live entries
        sp = stale_off[v]
        for j in range(off[v], off[v + 1]):
            r = ranks[j]
            if r < base:
                q = lo[v] + r + (sp - stale_off[v])
                while sp < stale_off[v + 1] and stale[sp] <= q:
                    sp += 1
                    q += 1
                out[j] = rows[q]
            else:
                out[j] = fresh[fresh_off[v] + r - base]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def highs(count, chosen, out):
    """Write to ``out`` the bounds (exclusive) of the integers :func:`subsets` needs: count -
    chosen + 1 .. count per venue, venue after venue (none when none is chosen). Returns how many."""
    j = 0
    for v in range(count.shape[0]):
        for h in range(count[v] - chosen[v] + 1, count[v] + 1):
            out[j] = h
            j += 1
    return j


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def draw_chosen(rng, count, share, chosen):
    """How many of each venue's ``count`` candidates close: ``chosen[v]`` ~ Binomial(``count[v]``,
    ``share[v]``) from the NumPy Generator ``rng``, the draws of ``rng.binomial(count, share)``
    (venue after venue; none where the count or share is 0). Returns how many in all. Where
    the count or share is 0, 0 without a call (the Binomial's value there, drawing nothing):
    each call increments and decrements the Generator's reference count, and most venues
    have no candidates."""
    n = 0
    for v in range(count.shape[0]):
        chosen[v] = rng.binomial(count[v], share[v]) if count[v] and share[v] else 0
        n += chosen[v]
    return n


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def draw_below(rng, t, n):
    """Replace each bound of ``t[:n]`` by an integer drawn in [0, bound) from the NumPy
    Generator ``rng``: the draws of ``rng.integers(0, t[:n])`` (none where the bound is 1)."""
    for j in range(n):
        t[j] = rng.integers(0, t[j])


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def lay_off(rows, key, mag, inc, seg_lo, price, keep, changed, fixed):
    """``MarketMakers.lay_off`` in one call: :func:`candidates` at ``price`` for a lay-off of
    ``keep`` of the inventory, how many of each venue's close (:func:`draw_chosen`, into
    ``chosen``), then :func:`close_chosen`. Returns the room ``changed`` lacks for the closes
    (then they wait: make room and call :func:`close_chosen`), else 0. ``fixed``: a
    :class:`kernels.Bundle` of (:func:`candidates`'s bundle, :func:`close`'s, the market
    makers' stream (a NumPy Generator), count, share, chosen, n_changed), the same at every call."""
    candidate_args, _, rng, count, share, chosen, n_changed = fixed.items
    if candidates(rows, key, mag, inc, seg_lo, price, keep, candidate_args) == 0:
        return 0
    n = draw_chosen(rng, count, share, chosen)
    if n == 0:
        return 0
    if n_changed[0] + n > changed.shape[0]:
        return n
    close_chosen(rows, price, changed, fixed)
    return 0


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def close_chosen(rows, price, changed, fixed):
    """:func:`close` the ``chosen`` candidates with their subsets drawn from the stream
    (:func:`draw_below` of :func:`highs`); ``fixed`` as :func:`lay_off` takes it."""
    _, close_args, rng, count, _, chosen, _ = fixed.items
    t = close_args.items[2][0]
    n = highs(count, chosen, t)
    draw_below(rng, t, n)
    close(chosen, n, rows, price, changed, close_args)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def close(chosen, n, rows, price, changed, fixed):
    """Close ``chosen[v]`` of each venue's ``count[v]`` candidates (``rows`` and ``where``,
    from :func:`candidates`; ``n`` in all), the subsets drawn from the first ``n`` of
    ``scratch[0]`` (:func:`subsets`), with :func:`fill`; then refresh the closed rows'
    liquidation prices as ``LiquidationEngine.refresh`` does (``protocol`` to ``n_changed``;
    ``changed`` has room for them). ``fixed``: a :class:`kernels.Bundle` of the arguments
    below, the same at every call; ``scratch`` (``MarketMakers._close_scratch``) holds what
    the close writes, sized so that it cannot overflow (a candidate is a taker: at most one
    per account)."""
    count, where, scratch = fixed.items[:3]
    t, ranks, _, _, picked, off, _, _ = scratch
    subsets(count, chosen, t, ranks, off, picked)
    closed = t[:n]  # the draws are used: the closed rows take their place
    at_ranks(ranks, off, rows, where, closed)
    closed.sort()  # in place: np.sort's copy would be one more function with its allocation in the module
    fill(closed, price, fixed)
    # refresh's arrays taken from the bundle only now: one held across a call (subsets to fill) keeps its refcount pair
    venue, size, _, cash = fixed.items[3:7]
    (protocol, weight, coin, mm_floor, coin_price, haircut, margin_mult, tier_rate, tier_ded, liq_price,
     n_changed) = fixed.items[14:]
    refresh(closed, protocol, venue, size, weight, cash, coin, mm_floor, coin_values(coin_price, haircut), margin_mult,
            tier_rate, tier_ded, liq_price, changed, n_changed)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def fill(chosen, price, fixed):
    """Close the lay-off's chosen takers (``chosen``, distinct rows, ascending) against
    their books: each closes its whole position
    at its venue's ``price``. As ``Market.transfer`` would (the traders' and books' sizes,
    cash, entries and ``tally``), with the fills counted as voluntary volume (per venue as
    ``np.sum`` adds it) and attributed by ``kernels.attribute`` (per account and
    jurisdiction of residence); the chosen rows' stops are cleared. ``fixed``: :func:`close`'s
    bundle (``scratch`` to ``resident_volume``)."""
    scratch, venue, size, entry, cash, stop, mm_row, tally, resident, traded, volume, resident_volume = fixed.items[2:14]
    _, rows, before, on, _, _, book_dq, sum_scratch = scratch
    k = price.shape[0]
    m = chosen.shape[0]
    if m == 0:
        return
    for v in range(k):
        book_dq[v] = 0.0
    for j in range(m):  # the takers, then the books with a fill: rows and sizes before
        rows[j] = chosen[j]
        before[j] = size[chosen[j]]
        book_dq[venue[chosen[j]]] += -before[j]
    b = m
    for v in range(k):
        book_dq[v] = -book_dq[v]
        if book_dq[v] != 0.0:
            rows[b] = mm_row[v]
            before[b] = size[mm_row[v]]
            b += 1
    for j in range(m):  # rows are distinct: each trade changes only its own row
        kernels.trade_one(chosen[j], -before[j], price[venue[chosen[j]]], size, entry, cash)
    for v in range(k):
        if book_dq[v] != 0.0:
            kernels.trade_one(mm_row[v], book_dq[v], price[v], size, entry, cash)
    kernels.count_opened(rows[:b], before[:b], size, tally)
    for j in range(m):  # the takers' notional (USD)
        before[j] = abs(before[j]) * price[venue[chosen[j]]]
    for v in range(k):
        c = 0
        for j in range(m):
            if venue[chosen[j]] == v:
                on[c] = before[j]
                rows[c] = chosen[j]
                c += 1
        if c:
            volume[v] += kernels.pairwise_sum_with(on, 0, c, sum_scratch)
            # voluntary fills: attribute leaves the forced volume (its 7th argument) alone
            kernels.attribute(rows[:c], on[:c], v, False, resident, traded, volume, resident_volume)
    for j in range(m):
        stop[chosen[j]] = np.nan

"""Compiled per-step passes (Numba): the run's invariants check, over every account; the
per-step recording, which reads the long positions that ``kernels.hold`` keeps current as
sizes change (no pass over the accounts).

Each replaces a handful of NumPy calls and temporaries over all accounts by one call and
one pass, with the same arithmetic. Where a sum feeds a result it keeps NumPy's order:
``np.bincount`` and per-element accumulation add in row order from 0 (a loop here does
the same), ``np.sum`` adds pairwise (:func:`pairwise_sum` reproduces it bit for bit). The
recorded open interest is the exception: its long positions are compensated running sums
in the order the sizes changed, within a few units in the last place of the exact sum.
Arrays are the TraderBook/VenueBook ones, mutated in place where the docstring says so.
Compiled code is cached on disk next to this file (``cache=True``); Numba's cache checks
only this file, so the engine clears the cache of every kernel module when any of them
changes (``policylab.engine.kernel_cache``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from policylab.engine import kernels

@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def long_positions(size, venue, resident, k, jurisdictions):
    """Long BTC per venue, and per jurisdiction of residence and venue (``resident`` < 0:
    a venue's own row, in no jurisdiction), summed in account order (as ``np.bincount``)."""
    total = np.zeros(k)
    by_juris = np.zeros((jurisdictions, k))
    for i in range(size.shape[0]):  # branch-free on the side (unpredictable): a short adds +0.0, which changes no sum
        s = size[i]
        s = s if s > 0.0 else 0.0
        v = venue[i]
        total[v] += s
        r = resident[i]
        if r >= 0:
            by_juris[r, v] += s
    return total, by_juris


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def record(t, fixed):
    """Record step ``t``'s venue and residence series (``kernels_decide.close_step``, from
    MarketModel._collect): ``venues``
    (columns x steps x venues, the columns of model.VENUE_COLUMNS: price, depth, long open
    interest at the price, volume, fund, market makers' health, coin price, forced volume)
    and ``residents`` (columns x steps x jurisdictions x venues, model.RESIDENT_COLUMNS: the
    population's long open interest and volume by jurisdiction of residence). The prices
    are row ``t + 1`` of ``price_path`` (steps + 1 x venues); the long positions are
    ``longs``, kept by ``kernels.hold`` (its sums plus their compensations). ``fixed``:
    ``close_step``'s bundle (``price_path`` to ``resident_volume``); taken whole rather than
    unpacked by the caller, whose every array passed to a call would be reference-counted
    (see kernels_decide's module docstring)."""
    (price_path, venues, residents, longs, depth0, liquidity_mult, health, volume, fund, coin_price, forced_volume,
     resident_volume) = fixed.items[5:]
    price = price_path[t + 1]
    k = price.shape[0]
    total = longs.shape[1] - 1
    for v in range(k):
        venues[0, t, v] = price[v]
        venues[1, t, v] = depth0[v] * liquidity_mult[v] * health[v]
        venues[2, t, v] = (longs[0, total, v] + longs[1, total, v]) * price[v]
        venues[3, t, v] = volume[v]
        venues[4, t, v] = fund[v]
        venues[5, t, v] = health[v]
        venues[6, t, v] = coin_price[v]
        venues[7, t, v] = forced_volume[v]
        for r in range(residents.shape[2]):
            residents[0, t, r, v] = (longs[0, r, v] + longs[1, r, v]) * price[v]
            residents[1, t, r, v] = resident_volume[r, v]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def ledger_pass(ints, floats, starts, step, fixed):
    """The invariants check's call per step (experiments/invariants.Monitor): :func:`closed_out`
    over the event log's parts since ``parts[0]`` (``ints`` to ``slack``; ``size_copy`` and
    ``opened_copy`` are still the step's start), :func:`margin_check` (``tier_floor`` to
    ``limit``), then one pass over every account: the net ``size`` per venue with the sum of
    ``hedge`` added on the ``spot`` venue (audit.net_positions), less ``net0``; the sums of
    |``size``| and |``hedge``|; ``size`` and ``opened`` copied to ``size_copy`` and
    ``opened_copy`` (the next step's start). Writes the net drift per venue to ``dnet``;
    to ``sums`` sum |size|, sum |hedge|, the largest |net drift| (NaN if any is, as
    ``np.max``), and ``fund``, ``fees`` and ``collateral_loss`` summed as ``np.sum`` adds
    them; to the columns of ``found`` (4 x at most how many) closed_out's four arrays
    (the accounts as floats: exact below 2^53). Returns how many accounts closed_out
    found (the outputs are written in place: returning six arrays took 2.5 us, more than
    passing the arguments).

    The sums over accounts add their rows in interleaved partial sums (row i into sum
    i % 8 for the net, i % 4 for the others, the rows past the last multiple of 4 into the
    first; combined as a tree), not in ``np.sum``'s or ``np.bincount``'s order: a chain of
    additions into one total waits on the previous one, which made the net 4x slower. Any
    order's rounding error is at most (n - 1) x 2^-53 x the sum of the absolute values, so
    two orders differ by under 2.3e-16 x n x that sum: 1e-9 of it (the check's tolerance,
    ``audit.Ledger.rel_tol``) for up to 4 million accounts (tests/test_invariants.py); the
    sums of |size| and |hedge| only scale that tolerance. The accounts' money (cash, hedge
    cash, deposits) is left to ``np.sum``, whose vectorised loop is faster than a compiled
    one here (Numba does not vectorise the pairwise order: at 20,000 accounts, 21 us for
    the three against 13 us; 40 against 28 us within a run). Copying only the rows that
    changed (compare, then store) was slower than copying every row, at 20,000 and at
    1,000,000 accounts.

    ``fixed``: a :class:`kernels.Bundle` of the arguments from ``n_events`` to ``sums`` but
    ``step``, the same at every call (the event log's buffers, ``ints`` to ``starts``, grow)."""
    (n_events, parts, forced, closed_venue, scratch, slack, found, size, hedge, venue, opened, size_copy, opened_copy,
     net0, spot, fund, fees, collateral_loss, tier_floor, tier_rate, tier_lev, margin_mult, is_spot, margin,
     margin_step, limit, dnet, sums) = fixed.items
    acc, closed, room, held = closed_out(ints, floats, starts, n_events, parts, forced, venue, closed_venue,
                                         size_copy, opened, opened_copy, scratch, slack, found.shape[1])
    for j in range(acc.shape[0]):
        found[0, j], found[1, j], found[2, j], found[3, j] = acc[j], closed[j], room[j], held[j]
    margin_check(tier_floor, tier_rate, tier_lev, margin_mult, is_spot, margin, margin_step, step, limit)
    n = size.shape[0]
    k = net0.shape[0]
    lanes = np.zeros((8, k))  # lane-major: each lane's venues apart from the other lanes' (2.5x faster)
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = c0 = c1 = c2 = c3 = 0.0  # |size|, |hedge|, hedge: 4 lanes each
    end8 = n - n % 8
    end4 = n - n % 4
    for i in range(0, end8, 8):  # one pass: every row read once (the net and the sums in one loop: 15% faster)
        for lane in range(8):
            s = size[i + lane]
            lanes[lane, venue[i + lane]] += s
            size_copy[i + lane] = s
            opened_copy[i + lane] = opened[i + lane]
        s0, s1, s2, s3, s4, s5, s6, s7 = (size[i], size[i + 1], size[i + 2], size[i + 3], size[i + 4], size[i + 5],
                                          size[i + 6], size[i + 7])
        h0, h1, h2, h3, h4, h5, h6, h7 = (hedge[i], hedge[i + 1], hedge[i + 2], hedge[i + 3], hedge[i + 4],
                                          hedge[i + 5], hedge[i + 6], hedge[i + 7])
        a0 += abs(s0)
        a1 += abs(s1)
        a2 += abs(s2)
        a3 += abs(s3)
        a0 += abs(s4)
        a1 += abs(s5)
        a2 += abs(s6)
        a3 += abs(s7)
        b0 += abs(h0)
        b1 += abs(h1)
        b2 += abs(h2)
        b3 += abs(h3)
        b0 += abs(h4)
        b1 += abs(h5)
        b2 += abs(h6)
        b3 += abs(h7)
        c0 += h0
        c1 += h1
        c2 += h2
        c3 += h3
        c0 += h4
        c1 += h5
        c2 += h6
        c3 += h7
    for i in range(end8, n):
        s = size[i]
        lanes[i & 7, venue[i]] += s
        size_copy[i] = s
        opened_copy[i] = opened[i]
    if end4 > end8:  # four more rows, one per lane
        a0 += abs(size[end8])
        a1 += abs(size[end8 + 1])
        a2 += abs(size[end8 + 2])
        a3 += abs(size[end8 + 3])
        b0 += abs(hedge[end8])
        b1 += abs(hedge[end8 + 1])
        b2 += abs(hedge[end8 + 2])
        b3 += abs(hedge[end8 + 3])
        c0 += hedge[end8]
        c1 += hedge[end8 + 1]
        c2 += hedge[end8 + 2]
        c3 += hedge[end8 + 3]
    for j in range(end4, n):
        a0 += abs(size[j])
        b0 += abs(hedge[j])
        c0 += hedge[j]
    for v in range(k):
        dnet[v] = ((lanes[0, v] + lanes[1, v]) + (lanes[2, v] + lanes[3, v])) + \
                  ((lanes[4, v] + lanes[5, v]) + (lanes[6, v] + lanes[7, v]))
    dnet[spot] += (c0 + c1) + (c2 + c3)
    for v in range(k):
        dnet[v] -= net0[v]
    worst = 0.0
    for v in range(k):
        x = abs(dnet[v])
        if v == 0 or x > worst or x != x:
            worst = x
        if worst != worst:
            break
    sums[0] = (a0 + a1) + (a2 + a3)
    sums[1] = (b0 + b1) + (b2 + b3)
    sums[2] = worst
    sums[3] = kernels.pairwise_sum(fund, 0, k)
    sums[4] = kernels.pairwise_sum(fees, 0, k)
    sums[5] = kernels.pairwise_sum(collateral_loss, 0, k)
    return acc.shape[0]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def margin_check(tier_floor, tier_rate, tier_lev, margin_mult, is_spot, margin, margin_step, step, limit):
    """The invariants check's margin part (experiments/invariants.Monitor): per derivatives
    venue, the worst of its tiers' (finite ``tier_floor``) maintenance rate times leverage,
    times the maintenance multiplier (NaN if any is, as ``np.max``; 0 on spot venues); a venue
    over ``limit`` for the first time gets ``step`` in ``margin_step``; ``margin`` keeps each
    venue's worst so far (as ``np.maximum``). Mutates ``margin`` and ``margin_step``."""
    for v in range(margin.shape[0]):
        w = 0.0
        for j in range(tier_floor.shape[1]):
            x = tier_rate[v, j] * tier_lev[v, j] if np.isfinite(tier_floor[v, j]) else 0.0
            if j == 0 or x > w or x != x:
                w = x
            if w != w:
                break
        w = 0.0 if is_spot[v] else w * margin_mult[v]
        if w > limit and margin_step[v] < 0:
            margin_step[v] = step
        if not margin[v] >= w:  # w larger, or either NaN
            margin[v] = w if (margin[v] == margin[v]) else margin[v]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def refill(rows, draw, chance, size, stake, quit, cash, deposit, wiped_share):
    """Replace a population's wiped-out accounts (populations/base.TraderPopulation.refill):
    account ``rows[j]`` (unique), flat, with a starting deposit ``stake[j]`` > 0, not quit and
    with cash under ``wiped_share`` of it, gets its stake back in cash and deposits when its
    ``draw[j]`` (uniform) is under ``chance``. Mutates ``cash`` and ``deposit``; returns how many."""
    n = 0
    for j in range(rows.shape[0]):
        i = rows[j]
        # the tests evaluated together, without branches (flat accounts are common, wiped ones rare)
        if (size[i] == 0) & (stake[j] > 0) & (quit[i] == 0) & (cash[i] < wiped_share * stake[j]) & (draw[j] < chance):
            cash[i] += stake[j]
            deposit[i] += stake[j]
            n += 1
    return n


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def closed_out(ints, floats, starts, n_events, parts, forced, venue, closed_venue, size_start, opened, opened_start,
               scratch, slack, most):
    """The invariants check's part over a step's events (experiments/invariants.Monitor): the
    parts of the event log (liquidation.EventLog's buffers ``ints``, ``floats``, ``starts``
    and counts ``n_events``) from ``parts[0]`` on, each of one kind, ``forced[kind]`` or not;
    ``parts[0]`` is moved past them. Adds the forced events' |size| to ``closed_venue`` per
    venue (in event order, as ``np.add.at``); per account (ascending), the |size| its events
    closed (in event order, as ``np.bincount``) against what it could close, its |size| at
    the step's start plus what it opened during it. Returns (accounts, closed, room, |size|
    at the start) of the first ``most`` accounts that closed more than ``slack[0]`` x room +
    ``slack[1]``. ``scratch`` (a zero per account) is left as found."""
    first, last = parts[0], n_events[1]
    parts[0] = last
    lo = starts[first] if first < last else n_events[0]
    for p in range(first, last):
        end = starts[p + 1] if p + 1 < last else n_events[0]
        is_forced = forced[ints[2, starts[p]]]
        for j in range(starts[p], end):
            a = ints[3, j]
            s = abs(floats[0, j])
            if is_forced:
                closed_venue[venue[a]] += s
            scratch[a] += s
    acc = np.sort(ints[3, lo:n_events[0]])
    out_acc = np.empty(most, dtype=np.int64)
    out_closed = np.empty(most)
    out_room = np.empty(most)
    out_held = np.empty(most)
    n = 0
    for j in range(acc.shape[0]):
        a = acc[j]
        if j > 0 and acc[j - 1] == a:
            continue
        closed = scratch[a]
        scratch[a] = 0.0
        room = abs(size_start[a]) + (opened[a] - opened_start[a])
        if n < most and closed > room * slack[0] + slack[1]:
            out_acc[n], out_closed[n], out_room[n], out_held[n] = a, closed, room, abs(size_start[a])
            n += 1
    return out_acc[:n], out_closed[:n], out_room[:n], out_held[:n]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def long_sizes(size, venue, k):
    """Long BTC per venue (``k`` venues), summed in account order: ``np.bincount(venue,
    weights=np.maximum(size, 0), minlength=k)`` bit for bit for finite sizes (a NaN size
    counts as 0), without its temporaries (MarketModel.open_interest: the open-interest
    caps, and dynamic margin every step)."""
    total = np.zeros(k)
    for i in range(size.shape[0]):
        s = size[i]
        total[venue[i]] += s if s > 0.0 else 0.0
    return total

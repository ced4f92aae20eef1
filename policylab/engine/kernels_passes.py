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
changes (``policylab.engine.clear_stale_kernel_cache``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from policylab.engine import kernels

@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def record(t, venues, residents, price, longs, depth0, liquidity_mult, health, volume, fund, coin_price,
           forced_volume, resident_volume):
    """Record step ``t``'s venue and residence series (MarketModel._collect): ``venues``
    (columns x steps x venues, the columns of model.VENUE_COLUMNS: price, depth, long open
    interest at ``price``, volume, fund, market makers' health, coin price, forced volume)
    and ``residents`` (columns x steps x jurisdictions x venues, model.RESIDENT_COLUMNS: the
    population's long open interest and volume by jurisdiction of residence). The long
    positions are ``longs``, kept by ``kernels.hold`` (its sums plus their compensations)."""
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


@njit(cache=True, error_model="numpy")
def ledger_pass(size, hedge, venue, opened, size_copy, opened_copy, net0, spot, fund, fees, collateral_loss,
                tier_floor, tier_rate, tier_lev, margin_mult, is_spot, margin, margin_step, step, limit):
    """The invariants check's call per step (experiments/invariants.Monitor): :func:`margin_check`
    (``tier_floor`` to ``limit``), then one pass over every account: the net ``size`` per venue
    with the sum of ``hedge`` added on the ``spot`` venue (audit.net_positions), less ``net0``;
    the sums of |``size``| and |``hedge``|; ``size`` and ``opened`` copied to ``size_copy`` and
    ``opened_copy``. Returns (net drift per venue, [sum |size|, sum |hedge|, the largest
    |net drift| (NaN if any is, as ``np.max``), and ``fund``, ``fees`` and ``collateral_loss``
    summed as ``np.sum`` adds them]).

    The sums over accounts add their rows in interleaved partial sums (row i into sum
    i % 8 for the net, i % 4 for the others; combined as a tree), not in ``np.sum``'s or
    ``np.bincount``'s order: a chain of additions into one total waits on the previous one,
    which made the net 4x slower. Any order's rounding error is at most (n - 1) x 2^-53 x
    the sum of the absolute values, so two orders differ by under 2.3e-16 x n x that sum:
    1e-9 of it (the check's tolerance, ``audit.Ledger.rel_tol``) for up to 4 million accounts
    (tests/test_invariants.py); the sums of |size| and |hedge| only scale that tolerance."""
    margin_check(tier_floor, tier_rate, tier_lev, margin_mult, is_spot, margin, margin_step, step, limit)
    n = size.shape[0]
    k = net0.shape[0]
    lanes = np.zeros((8, k))  # lane-major: each lane's venues apart from the other lanes' (2.5x faster)
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = c0 = c1 = c2 = c3 = 0.0  # |size|, |hedge|, hedge: 4 lanes each
    end8 = n - n % 8
    for i in range(0, end8, 8):
        for lane in range(8):
            s = size[i + lane]
            lanes[lane, venue[i + lane]] += s
            size_copy[i + lane] = s
            opened_copy[i + lane] = opened[i + lane]
    for i in range(end8, n):
        lanes[i & 7, venue[i]] += size[i]
        size_copy[i] = size[i]
        opened_copy[i] = opened[i]
    end4 = n - n % 4
    for j in range(0, end4, 4):
        a0 += abs(size[j])
        a1 += abs(size[j + 1])
        a2 += abs(size[j + 2])
        a3 += abs(size[j + 3])
        b0 += abs(hedge[j])
        b1 += abs(hedge[j + 1])
        b2 += abs(hedge[j + 2])
        b3 += abs(hedge[j + 3])
        c0 += hedge[j]
        c1 += hedge[j + 1]
        c2 += hedge[j + 2]
        c3 += hedge[j + 3]
    for j in range(end4, n):
        a0 += abs(size[j])
        b0 += abs(hedge[j])
        c0 += hedge[j]
    dnet = np.empty(k)
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
    return dnet, np.array([(a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3), worst, kernels.pairwise_sum(fund, 0, k),
                           kernels.pairwise_sum(fees, 0, k), kernels.pairwise_sum(collateral_loss, 0, k)])


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def closed_out(idx, size, lens, forced, venue, closed_venue, size_start, opened, opened_start, scratch, slack,
               most):
    """The invariants check's part over a step's events (experiments/invariants.Monitor):
    events of accounts ``idx`` closing ``size`` BTC, in parts of ``lens`` events, part by part
    ``forced`` or not. Adds the forced ones' |size| to ``closed_venue`` per venue (in event
    order, as ``np.add.at``); per account (ascending), the |size| its events closed (in event
    order, as ``np.bincount``) against what it could close, its |size| at the step's start
    plus what it opened during it. Returns (accounts, closed, room) of the first ``most``
    accounts that closed more than ``slack[0]`` x room + ``slack[1]``. ``scratch`` (a zero per
    account) is left as found."""
    j = 0
    for p in range(lens.shape[0]):
        for _ in range(lens[p]):
            s = abs(size[j])
            if forced[p]:
                closed_venue[venue[idx[j]]] += s
            scratch[idx[j]] += s
            j += 1
    acc = np.sort(idx)
    out_acc = np.empty(most, dtype=np.int64)
    out_closed = np.empty(most)
    out_room = np.empty(most)
    n = 0
    for j in range(acc.shape[0]):
        a = acc[j]
        if j > 0 and acc[j - 1] == a:
            continue
        closed = scratch[a]
        scratch[a] = 0.0
        room = abs(size_start[a]) + (opened[a] - opened_start[a])
        if n < most and closed > room * slack[0] + slack[1]:
            out_acc[n], out_closed[n], out_room[n] = a, closed, room
            n += 1
    return out_acc[:n], out_closed[:n], out_room[:n]


@njit(cache=True, error_model="numpy")
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

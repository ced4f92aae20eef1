"""Compiled per-account loops of the engine's hottest steps (Numba).

A step makes a few hundred small array operations; on tens of thousands of accounts
their fixed cost per call, not the arithmetic, is what a run spends its time on. These
kernels do the same arithmetic as the NumPy expressions they replace, in one pass and
one call each, over the TraderBook/VenueBook arrays (mutated in place where the name
says so). ``idx`` arguments hold unique account rows. Compiled code is cached on disk
(``cache=True``; :mod:`policylab.engine.kernel_cache`), so only the first run on a machine compiles.
Calls with many arguments that stay the same all run take them in one :class:`Bundle`
(the last argument, ``fixed``, unpacked from ``fixed.items`` on the kernel's first line).
Every kernel is compiled without a C-callable wrapper (``no_cfunc_wrapper=True``: nothing
calls them from C or passes them as first-class functions): 90-150 LLVM instructions fewer
in each one's cached code, which a fresh process loads.

Reference counting: a compiled function increfs each array it is passed on entry and
decrefs it where it dies (out-of-line atomic calls, several ns each). Numba's pruning pass
drops such a pair only when every path from one reaches the other: a helper whose array
reads or writes sit in branches (the array dies in several blocks) keeps them, at every
iteration of the loop it is inlined into; so per-account helpers branch on scalars, read
their arrays first and write each once after the branches (:func:`trade_one`). A function
that can raise (allocates, or calls another that is not inlined) keeps every argument's
pair; kernels that compiled callers reach at one or a few places with many arrays take
``inline="always"`` (Numba inlines them where they are called: their arguments are the
caller's, not counted again; also about 5% less code to load).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from numba import njit, types
from numba.experimental import structref

from policylab.engine.kernel_cache import clear_stale_kernel_cache

clear_stale_kernel_cache()  # before any kernel module defines a kernel (they all import this module first)


@structref.register
class _BundleType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)

    @property
    def mangling_args(self):
        """A short name for the compiled symbols of functions taking a Bundle (a digest of the
        type's name, which spells out every item's type, a few KB): they are stored with each
        kernel's cached code and read again by each process that loads it."""
        return "Bundle" + hashlib.sha1(self.name.encode()).hexdigest()[:16], ()


class Bundle(structref.StructRefProxy):
    """A tuple of a compiled call's arguments (``items``) behind one reference: a call passes
    one argument (about 1 us, Numba's type lookup for it) instead of dozens (about 0.05 us
    each array). Its arrays are the caller's, shared, not copied; they must stay the same
    arrays (changed in place, never replaced) for as long as it is used."""


structref.define_proxy(Bundle, _BundleType, ["items"])


@njit(cache=True)
def bundle(items):
    """A :class:`Bundle` of the tuple ``items`` (built in compiled code, which is cached)."""
    return Bundle(items)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def trade(idx, dq, px, size, entry, cash):
    """Book trades of ``dq`` BTC at prices ``px``: cash, size and average entry (no fees)."""
    for j in range(idx.shape[0]):
        trade_one(idx[j], dq[j], px[j], size, entry, cash)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def trade_one(i, dq, px, size, entry, cash):
    """Book account ``i``'s trade of ``dq`` BTC at price ``px`` (as :func:`trade`; a book's
    side of a fill without one-element arrays, whose allocations and array expressions
    would be compiled into every kernel that fills)."""
    s0 = size[i]
    s1 = s0 + dq
    e = entry[i]
    if s1 == 0.0:
        e = 0.0
    elif s0 == 0.0 or s0 * s1 < 0.0:  # opened or flipped
        e = px
    elif s0 * dq > 0.0:  # grown: average in
        e = (e * s0 + dq * px) / s1
    entry[i] = e  # unchanged when reduced
    cash[i] -= dq * px
    size[i] = s1


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def impact(c, flow, q):
    """Square-root impact of net flows ``q`` (USD) added to this step's ``flow``: (move, average
    fill) per venue, both log, for curve coefficients ``c`` = impact_y / sqrt(depth)."""
    k = q.shape[0]
    move = np.zeros(k)
    avg = np.zeros(k)
    for v in range(k):
        f0 = flow[v]
        f1 = f0 + q[v]
        a0 = abs(f0)
        a1 = abs(f1)
        r0 = np.sign(f0) * math.sqrt(a0)
        move[v] = c[v] * (np.sign(f1) * math.sqrt(a1) - r0)
        if q[v] != 0.0:
            avg[v] = c[v] * (2.0 / 3.0) * (a1 ** 1.5 - a0 ** 1.5) / q[v] - c[v] * r0
    return move, avg


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def execute(idx, dq, liq, forced, venue, size, entry, cash, coin, price, c, flow, taker_fee, liq_fee, fee_to_fund,
            coin_value, mm_row, fund, fees, volume, resident, traded, forced_volume, resident_volume):
    """Net market orders per venue, fill them all at the venue's average impact price
    against its book row, charge taker fees (liquidations: the liquidation fee, at most
    the account's remaining equity) and record fund, fee and volume totals, and the
    volume's attribution: per account (``traded``), forced orders per venue
    (``forced_volume``) and per jurisdiction of residence and venue (``resident_volume``;
    ``resident`` < 0: a venue's own row, no residence). Mutates the accounts, ``flow``,
    ``fund``, ``fees``, ``volume``, ``traded``, ``forced_volume``, ``resident_volume``;
    returns (fill, move, net)."""
    k = price.shape[0]
    net = np.zeros(k)
    gross = np.zeros(k)
    for j in range(idx.shape[0]):
        v = venue[idx[j]]
        net[v] += dq[j]
        gross[v] += abs(dq[j])
    q = np.empty(k)  # loops, not array expressions: no broadcasting code to load
    for v in range(k):
        q[v] = net[v] * price[v]
    move, avg = impact(c, flow, q)
    fill = np.empty(k)
    for v in range(k):
        fill[v] = price[v] * math.exp(avg[v])  # as np.exp: Numba lowers both to llvm.exp
        flow[v] += q[v]
    px = np.empty(idx.shape[0])
    for j in range(idx.shape[0]):
        px[j] = fill[venue[idx[j]]]
    trade(idx, dq, px, size, entry, cash)
    for v in range(k):
        if net[v] != 0.0:
            trade_one(mm_row[v], -net[v], fill[v], size, entry, cash)
    for j in range(idx.shape[0]):
        i = idx[j]
        v = venue[i]
        notional = abs(dq[j]) * px[j]
        if liq[j]:
            eq = cash[i] + size[i] * fill[v] - coin[i] * (1.0 - coin_value[v])
            penalty = min(notional * liq_fee[v], max(eq, 0.0))
            cash[i] -= penalty
            fund[v] += penalty
        else:
            fee = notional * taker_fee[v]
            cash[i] -= fee
            to_fund = fee * fee_to_fund[v]
            fund[v] += to_fund
            fees[v] += fee - to_fund
        traded[i] += notional
        if forced[j]:
            forced_volume[v] += notional
        if resident[i] >= 0:
            resident_volume[resident[i], v] += notional
    for v in range(k):
        volume[v] += gross[v] * fill[v]
    return fill, move, net


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def liquidation_price(idx, venue, size, weight, cash, coin, mm_floor, coin_value, margin_mult, tier_rate, tier_ded):
    """Venue price at which each account's equity meets its maintenance margin (see
    margin.liquidation_price): the highest crossing of the tier lines and the floor line
    for longs, the lowest for shorts; NaN for flat accounts. A venue's trailing tiers that
    repeat the one before (the padding of a venue with fewer tiers than others) give the
    same line, which changes nothing: they are skipped (:func:`distinct_tiers`)."""
    out = np.empty(idx.shape[0])
    used = distinct_tiers(tier_rate, tier_ded)
    for j in range(idx.shape[0]):
        i = idx[j]
        s = size[i]
        if s == 0.0:
            out[j] = np.nan
            continue
        v = venue[i]
        w = weight[i]
        haircut = coin[i] * (1.0 - coin_value[v])
        mult = margin_mult[v]
        a = abs(s)
        long = s > 0.0
        if long:
            p = (haircut - cash[i]) / (a * (1.0 - mm_floor[i]))
        else:
            p = (cash[i] - haircut) / (a * (1.0 + mm_floor[i]))
        for t in range(used[v]):
            rate = tier_rate[v, t] * mult
            ded = tier_ded[v, t] * mult
            if long:
                line = (haircut - w * ded - cash[i]) / (a * (1.0 - rate))
                if line > p or line != line:
                    p = line
            else:
                line = (cash[i] - haircut + w * ded) / (a * (1.0 + rate))
                if line < p or line != line:
                    p = line
            if p != p:
                break
        out[j] = p
    return out


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def distinct_tiers(tier_rate, tier_ded):
    """Per venue, how many of its first tiers hold every distinct (rate, deduction): the
    tiers after them repeat the last of them. Searched from the last tier back (a loop that
    stops: its compiled code is about half a full scan's, which LLVM unrolls and vectorizes, and
    it is in each kernel that refreshes liquidation prices)."""
    k, tiers = tier_rate.shape
    used = np.empty(k, dtype=np.int64)
    for v in range(k):
        t = tiers - 1
        while t > 0 and tier_rate[v, t] == tier_rate[v, t - 1] and tier_ded[v, t] == tier_ded[v, t - 1]:
            t -= 1
        used[v] = t + 1
    return used


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _tier(v, per_account, tier_floor):
    """The tier of venue ``v`` a notional per real account (USD) falls in: how many tier
    floors above the first it reaches."""
    t = 0
    for u in range(1, tier_floor.shape[1]):
        if per_account >= tier_floor[v, u]:
            t += 1
    return t


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def tier_index(venue, per_account, tier_floor):
    """``_tier`` of each entry (venues and notionals per real account, USD)."""
    out = np.empty(venue.shape[0], dtype=np.int64)
    for j in range(venue.shape[0]):
        out[j] = _tier(venue[j], per_account[j], tier_floor)
    return out


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _maintenance(i, v, weight, size, mm_floor, price_v, margin_mult, tier_floor, tier_rate, tier_ded):
    w = weight[i]
    notional = abs(size[i]) * price_v
    t = _tier(v, notional / w, tier_floor)
    tiered = (notional * tier_rate[v, t] - w * tier_ded[v, t]) * margin_mult[v]
    return max(max(tiered, notional * mm_floor[i]), 0.0)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def maintenance(idx, venue, weight, size, mm_floor, price, margin_mult, tier_floor, tier_rate, tier_ded):
    """Maintenance margin (USD) of accounts ``idx`` at venue prices ``price``: the tier
    its notional per real account falls in, scaled by the dynamic multiplier, at least
    the rules' floor share of notional."""
    out = np.empty(idx.shape[0])
    for j in range(idx.shape[0]):
        i = idx[j]
        v = venue[i]
        out[j] = _maintenance(i, v, weight, size, mm_floor, price[v], margin_mult, tier_floor, tier_rate, tier_ded)
    return out


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _is_near(i, size, venue, liq_price, stop, always, lo, hi):
    """Whether account ``i`` is of :func:`near`'s set. Both sides' tests are evaluated and
    combined without branches (a scan's accounts are in no order a branch predictor learns)."""
    s = size[i]
    liq, st = liq_price[i], stop[i]
    v = venue[i]
    up = st if liq != liq else (liq if st != st else max(liq, st))  # a long's trigger
    down = st if liq != liq else (liq if st != st else min(liq, st))  # a short's
    return always[i] | ((s > 0.0) & (up > lo[v])) | ((s != 0.0) & (not s > 0.0) & (down < hi[v]))


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def near(size, venue, liq_price, stop, always, lo, hi):
    """Accounts whose liquidation or stop trigger is within the band: longs with a trigger
    above their venue's ``lo``, shorts with one below its ``hi``, plus ``always``."""
    out = np.empty(size.shape[0], dtype=np.int64)
    n = 0
    for i in range(size.shape[0]):
        out[n] = i
        n += _is_near(i, size, venue, liq_price, stop, always, lo, hi)
    return out[:n]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def due(near, size, venue, weight, cash, coin, liq_price, stop, mm_floor, always, protocol, price, coin_value,
        margin_mult, tier_floor, tier_rate, tier_ded, tol):
    """Of the ``near`` accounts (``always`` ones included), those to act on now: equity
    below maintenance or a stop the venue price has crossed. The liquidation and stop
    prices prefilter; equity is then checked exactly. Never protocol rows (books, vaults)."""
    out = np.empty(near.shape[0], dtype=np.int64)
    n = 0
    for j in range(near.shape[0]):
        i = near[j]
        s = size[i]
        if protocol[i] or s == 0.0:
            continue
        v = venue[i]
        p = price[v]
        if s > 0.0:
            stopped = p <= stop[i]
            hit = stopped or p <= liq_price[i] * (1.0 + tol)
        else:
            stopped = p >= stop[i]
            hit = stopped or p >= liq_price[i] * (1.0 - tol)
        if not (hit or always[i]):
            continue
        eq = cash[i] + s * p - coin[i] * (1.0 - coin_value[v])
        if stopped or eq < _maintenance(i, v, weight, size, mm_floor, p, margin_mult, tier_floor, tier_rate, tier_ded):
            out[n] = i
            n += 1
    return out[:n]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def arbitrage_orders(basis, arb_row, arb_left, min_gap, gap_share, c, spot, price, venue, size, leverage, cash,
                     coin, weight, coin_value, tier_floor, tier_lev):
    """Orders of the arbitrage desks (rows, BTC): on each venue whose basis exceeds
    ``min_gap``, the size that closes ``gap_share`` of it when both legs (the venue's book
    and spot, curve coefficients ``c``) move, within the desk's capacity left
    (``arb_left``, USD, reduced) and its margin: exposure in the trade's direction grows
    to at most equity x its leverage, capped by the venue's tier for that exposure."""
    k = basis.shape[0]
    active = 0
    for u in range(k):
        if arb_row[u] >= 0 and abs(basis[u]) > min_gap and arb_left[u] > 0.0:
            active += 1
    rows = np.empty(active, dtype=np.int64)
    dq = np.empty(active)
    j = 0
    for u in range(k):
        if not (arb_row[u] >= 0 and abs(basis[u]) > min_gap and arb_left[u] > 0.0):
            continue
        gap = basis[u]
        r = arb_row[u]
        want = (gap_share * abs(gap) / (c[u] + c[spot] * math.sqrt(active))) ** 2
        side = -np.sign(gap)
        q = min(want, arb_left[u])
        held = side * size[r] * price[u]  # exposure in the trade's direction (USD)
        lev = min(leverage[r], tier_lev[u, _tier(u, abs(held + q) / weight[r], tier_floor)])
        eq = max(cash[r] + size[r] * price[u] - coin[r] * (1.0 - coin_value[u]), 0.0)
        q = min(q, max(lev * eq - held, 0.0))
        arb_left[u] -= q
        rows[j] = r
        dq[j] = side * q / price[u]
        j += 1
    return rows, dq


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def attribute(idx, notional, v, forced, resident, traded, forced_volume, resident_volume):
    """Record the attribution of trades on venue ``v`` outside :func:`execute` (spot hedge
    legs): ``notional`` (USD) per account of ``idx``, as ``execute`` does."""
    for j in range(idx.shape[0]):
        i = idx[j]
        traded[i] += notional[j]
        if forced:
            forced_volume[v] += notional[j]
        if resident[i] >= 0:
            resident_volume[resident[i], v] += notional[j]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def count_opened(idx, before, size, tally):
    """Add to what accounts ``idx`` (unique) opened (BTC) since their sizes were ``before``:
    the new side's whole size after a flip, else the growth of the position; and keep the
    long positions and the change log current (:func:`hold`). ``tally`` is ``Market.tally``:
    (opened per account, venue per account, jurisdiction of residence per account, long
    positions, changed flag per account, change log)."""
    opened = tally[0]
    for j in range(idx.shape[0]):
        i = idx[j]
        b = before[j]
        a = size[i]
        if b * a < 0.0:
            opened[i] += abs(a)
        else:
            opened[i] += max(abs(a) - abs(b), 0.0)
    hold(idx, before, size, tally)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _long(s):
    """The long part of a position (BTC): ``s`` if positive, else 0 (NaN: 0)."""
    return s if s > 0.0 else 0.0


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _add_long(longs, r, v, old, new):
    """Replace a long position ``old`` by ``new`` (BTC) in cell (``r``, ``v``) of ``longs``
    (see :func:`hold`): both added as they are (each exact) in Neumaier's compensated sum."""
    for x in (-old, new):
        if x != 0.0:
            s = longs[0, r, v]
            t = s + x
            longs[1, r, v] += ((s - t) + x) if abs(s) >= abs(x) else ((x - t) + s)
            longs[0, r, v] = t
    longs[2, r, v] += int(new > 0.0) - int(old > 0.0)
    if longs[2, r, v] == 0.0:  # no long position left: the exact sum is 0, no rounding residue
        longs[0, r, v] = 0.0
        longs[1, r, v] = 0.0


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def hold(idx, before, size, tally):
    """Keep the long positions of ``tally`` (see :func:`count_opened`) current after accounts
    ``idx`` (unique) changed size from ``before``. ``longs`` (3, jurisdictions + 1, venues)
    holds per jurisdiction of residence and venue (last row: every account of the venue,
    its own rows included) the long BTC as a compensated sum, its compensation, and how
    many accounts hold a long position (``Market.count_longs`` counts them from flat). The
    long BTC is the sum plus its compensation: within a few units in the last place of
    the exact sum of the positions (Neumaier's bound; no drift over a run), and exactly 0
    when no account is long. Every account of ``idx`` not yet flagged in ``changed`` is
    flagged and appended to ``log`` (its count in slot 0, then the rows; see
    ``Market.changed``): every size change, hence every entry change, passes here."""
    venue, resident, longs, changed, log = tally[1], tally[2], tally[3], tally[4], tally[5]
    total = longs.shape[1] - 1
    for j in range(idx.shape[0]):
        i = idx[j]
        if not changed[i]:
            changed[i] = True
            log[0] += 1
            log[log[0]] = i
        old = _long(before[j])
        new = _long(size[i])
        if old == new:
            continue
        v = venue[i]
        _add_long(longs, total, v, old, new)
        if resident[i] >= 0:
            _add_long(longs, resident[i], v, old, new)


RADIX_BITS = 11  # radix_sorted's digit: 2,048 buckets a pass


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def radix_sorted(a):
    """``np.sort(a)`` of integers by least-significant-digit radix sort on ``a - min(a)``,
    :data:`RADIX_BITS` a pass: a pass per digit of the range (two for a million accounts)."""
    n = a.shape[0]
    b = a.copy()
    if n == 0:
        return b
    lo = hi = b[0]
    for j in range(n):
        lo = min(lo, b[j])
        hi = max(hi, b[j])
    tmp = np.empty(n, dtype=b.dtype)
    buckets = 1 << RADIX_BITS
    mask = buckets - 1
    count = np.empty(buckets + 1, dtype=np.int64)
    shift = 0
    while (hi - lo) >> shift:
        for d in range(buckets + 1):
            count[d] = 0
        for j in range(n):
            count[(((b[j] - lo) >> shift) & mask) + 1] += 1
        for d in range(buckets):
            count[d + 1] += count[d]
        for j in range(n):
            d = ((b[j] - lo) >> shift) & mask
            tmp[count[d]] = b[j]
            count[d] += 1
        b, tmp = tmp, b
        shift += RADIX_BITS
    return b


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def unique_sorted(a):
    """The distinct values of ``a`` (integers), ascending (as ``np.unique``): sorted by
    :func:`radix_sorted` (the traders' activity draws, a few thousand account rows a call:
    about 3x faster than ``np.sort``'s quicksort)."""
    b = radix_sorted(a)  # a new array: the distinct values are gathered at its front
    n = 0
    for j in range(b.shape[0]):
        if n == 0 or b[n - 1] != b[j]:
            b[n] = b[j]
            n += 1
    return b[:n]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def drifted(mark, ref, limit):
    """Whether any mark price has moved more than ``limit`` (log) from ``ref``, or is NaN."""
    for v in range(mark.shape[0]):
        d = abs(math.log(mark[v] / ref[v]))
        if not d <= limit:
            return True
    return False


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def move_books(net, dlog, basis, spot):
    """Add the price moves ``dlog`` (log) to the basis of every venue but ``spot`` whose book
    absorbed a net flow ``net``; returns whether the spot book did (its move goes to the index)."""
    for v in range(net.shape[0]):
        if v != spot and net[v] != 0.0:
            basis[v] += dlog[v]
    return net[spot] != 0.0


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def under_water(rows, cash, size, venue, price):
    """The rows of ``rows`` holding a position whose equity at their venue's ``price``
    (cash + size x price, USD; no collateral) is negative."""
    out = np.empty(rows.shape[0], dtype=np.int64)
    n = 0
    for j in range(rows.shape[0]):
        r = rows[j]
        if cash[r] + size[r] * price[venue[r]] < 0.0 and size[r] != 0.0:
            out[n] = r
            n += 1
    return out[:n]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def balance_sheet(rows, size, cash, price, depth0, inventory_depths, mm_margin, min_health):
    """Largest depth health each venue's market maker (book row ``rows``) can quote: depth x
    limit / inventory beyond ``inventory_depths`` x its starting depth ``depth0`` (USD), and
    in proportion to its equity's cushion over ``mm_margin`` x inventory, at least
    ``min_health`` (see venue_agents.MarketMakers)."""
    k = rows.shape[0]
    cap = np.ones(k)
    for v in range(k):
        r = rows[v]
        inv = abs(size[r]) * price[v]
        c = 1.0
        if inventory_depths > 0.0:
            limit = inventory_depths * depth0[v]
            if inv > limit:
                c = limit / inv
        if mm_margin > 0.0:
            need = mm_margin * inv
            cushion = (cash[r] + size[r] * price[v]) / need if need > 0.0 else np.inf
            c = min(c, min(max(cushion - 1.0, 0.0), 1.0))
        cap[v] = max(c, min_health)
    return cap


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def depth_health(move, price, fixed):
    """Market makers' depth ``health`` after a step in which venue prices moved ``move`` (log)
    to ``price``, in place: recovery toward 1, withdrawal beyond ``trigger`` normal-step
    standard deviations, and on ``limited`` venues at most the :func:`balance_sheet` of the
    book rows ``rows`` (``rows`` to ``min_health`` but ``price`` as it takes them).
    ``fixed``: a :class:`Bundle` of the arguments below, the same at every call."""
    (health, recovery, normal_sigma, trigger, sensitivity, limited, rows, size, cash, depth0, inventory_depths,
     mm_margin, min_health) = fixed.items
    sheet = balance_sheet(rows, size, cash, price, depth0, inventory_depths, mm_margin, min_health)
    for v in range(health.shape[0]):
        h = health[v] + (1.0 - health[v]) * recovery[v]
        excess = max(abs(move[v]) / normal_sigma - trigger, 0.0)
        h = min(h, 1.0 / (1.0 + sensitivity[v] * excess / trigger))
        if limited[v]:
            h = min(h, sheet[v])
        health[v] = h


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def net_orders(idx, dq):
    """Orders ``dq`` of accounts ``idx`` netted per account: (the distinct accounts, ascending;
    each one's sum, added up in the orders' sequence from 0, as ``np.bincount``)."""
    order = np.argsort(idx, kind="mergesort")
    rows = np.empty(idx.shape[0], dtype=np.int64)
    net = np.empty(idx.shape[0])
    n = 0
    for j in range(order.shape[0]):
        i = idx[order[j]]
        if n == 0 or rows[n - 1] != i:
            rows[n] = i
            net[n] = 0.0
            n += 1
        net[n - 1] += dq[order[j]]
    return rows[:n], net[:n]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True, inline="always")
def spot_leg(idx, dq, fill, net, book, v, forced, hedge, hedge_cash, size, entry, cash, tally, resident, traded,
             forced_volume, resident_volume):
    """Book the spot hedge legs ``dq`` (BTC) of unique accounts ``idx`` filled at ``fill``
    (USD per BTC) against the spot ``book`` row, which takes ``-net``: hedges, hedge cash,
    the book's position, the opened-position count and the volume's attribution on spot
    venue ``v`` (as :func:`attribute`)."""
    for j in range(idx.shape[0]):
        i = idx[j]
        hedge[i] += dq[j]
        hedge_cash[i] -= dq[j] * fill
    rows = np.array([book])
    before = np.array([size[book]])
    trade_one(book, -net, fill, size, entry, cash)
    count_opened(rows, before, size, tally)
    attribute(idx, np.abs(dq) * fill, v, forced, resident, traded, forced_volume, resident_volume)


# ------------------------------------------------------------ NumPy's summation order
_BLOCK = 128  # NumPy's pairwise summation block (PW_BLOCKSIZE in numpy/_core/src/umath/loops_utils.h.src)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def block_sum(a, lo, n):
    """NumPy's pairwise sum of ``a[lo:lo + n]`` for n <= 128: under 8 values in order; else 8
    interleaved partial sums combined as a tree, then the rest in order."""
    b = a[lo:lo + n]
    if n < 8:
        res = 0.0
        for i in range(n):
            res += b[i]
        return res
    r0, r1, r2, r3, r4, r5, r6, r7 = b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
    end = n - n % 8
    for i in range(8, end, 8):
        r0 += b[i]
        r1 += b[i + 1]
        r2 += b[i + 2]
        r3 += b[i + 3]
        r4 += b[i + 4]
        r5 += b[i + 5]
        r6 += b[i + 6]
        r7 += b[i + 7]
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(end, n):
        res += b[i]
    return res


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def copy_into(dst, lo, src):
    """``dst[lo:lo + src.shape[0]] = src`` (1-D), without Numba's check of the shapes: its
    error message's code (string concatenation, about 2,000 LLVM instructions) would be in
    the cached code of every kernel that assigns an array to a slice, parsed again for each
    kernel when a fresh process loads it."""
    for j in range(src.shape[0]):
        dst[lo + j] = src[j]


PAIRWISE_PENDING = 192  # a pairwise sum's pending visits and additions: at most 3 a level of its tree (under 64)
PAIRWISE_LEVELS = 64  # its partial sums pending: at most one a level


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def pairwise_sum(a, lo, n):
    """The sum of ``a[lo:lo + n]`` (float64) as ``np.sum`` adds it (see :func:`pairwise_sum_with`)."""
    if n <= _BLOCK:
        return block_sum(a, int(lo), n)  # int(): callers' lo = 0 would compile block_sum again
    return pairwise_sum_with(a, lo, n, pairwise_scratch())


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def pairwise_scratch():
    """The stacks :func:`pairwise_sum_with` walks its tree with: (pending, partial)."""
    return np.empty((PAIRWISE_PENDING, 2), dtype=np.int64), np.empty(PAIRWISE_LEVELS)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def pairwise_sum_with(a, lo, n, scratch):
    """The sum of ``a[lo:lo + n]`` (float64) as ``np.sum`` adds it, allocating nothing: blocks of
    at most 128 values (:func:`block_sum`), a run longer than 128 split in two, the first
    part's length half of it rounded down to a multiple of 8, the two parts' sums added. Walked
    with stacks (cached recursive kernels do not load reliably), ``scratch`` =
    :func:`pairwise_scratch`: ``pending`` (start, length; length 0: add the last two partial
    sums) and ``partial``."""
    if n <= _BLOCK:
        return block_sum(a, int(lo), n)
    pending, partial = scratch
    pending[0, 0], pending[0, 1] = lo, n
    t, top = 1, 0
    while t > 0:
        t -= 1
        s, m = pending[t, 0], pending[t, 1]
        if m == 0:
            top -= 1
            partial[top - 1] = partial[top - 1] + partial[top]
        elif m <= _BLOCK:
            partial[top] = block_sum(a, s, m)
            top += 1
        else:
            m2 = m // 2
            m2 -= m2 % 8
            pending[t, 0], pending[t, 1] = 0, 0
            pending[t + 1, 0], pending[t + 1, 1] = s + m2, m - m2
            pending[t + 2, 0], pending[t + 2, 1] = s, m2
            t += 3
    return partial[0]

"""Compiled per-account arithmetic of the traders' decisions (Numba).

The populations' random numbers come from their NumPy streams in the same order and
counts as the NumPy expressions these kernels replaced: passed in, or drawn in a kernel
from the stream held in its :class:`kernels.Bundle` (:func:`active`, :func:`retail_start`,
:func:`professional_start`, :func:`chosen_open`; Numba's
``Generator`` methods are NumPy's algorithms on the same bit generator, so the values are
NumPy's; a Generator costs about 6 us to pass to a call, once to bundle). The decision
kernels do the per-account arithmetic (who closes, who may open, positions
opened within the leverage caps and tiers, stops) in one pass each, element by element
as NumPy did (no sums), so results are bit for bit those of the NumPy code. ``np.minimum``
and ``np.maximum`` propagate NaN (``_min``, ``_max``); transcendental functions
(``np.expm1``, ``np.log``) stay in NumPy, whose SIMD versions may differ from the C
library's in the last bit. ``idx`` arguments hold unique account rows, ascending.

A population's decision is a few calls, NumPy's ``expm1`` between them (e.g.
:func:`active`, :func:`retail_start`, then :func:`chosen_open`). Their arguments start
with the step's values and end with the run's constants and arrays, which the populations
gather once per run (``TraderPopulation.__init__``), the long lists in one
:class:`kernels.Bundle` (``fixed``).

Reference counting (here, in kernels_layoff and kernels_passes): Numba increments an
array's reference count where a function gets it (an argument, an item of a bundle) and
decrements it where the array dies, each an out-of-line atomic call; its pruning pass
removes such a pair only when nothing on the way between can leave the function or release
another array: no allocation (its failure returns), no call that is not inlined, no other
array dying first. So a kernel takes its scratch arrays in its bundle
(kernels_layoff.candidates), or makes its allocations first and passes them, with its
bundle, to a helper that allocates nothing and unpacks the bundle itself (:func:`_open_at`,
:func:`professional_targets`): the helper's arrays then cost nothing, the kernel one pair
for each of its own arguments; and a kernel that passes arrays on to another passes its
bundle, not the arrays unpacked (``kernels_passes.record``, ``kernels_layoff.fill``).
Scratch arrays in a bundle are sized so that they cannot overflow (per account where a
call's rows are distinct accounts) and are never returned: what a kernel returns to
Python is a new array (or a view of one), as callers may keep it.

Also the step's own glue around the decisions (``MarketModel.step``): the exogenous
arrivals, the reset of the step's flows, the execution and refresh of the netted voluntary
orders in one call (:func:`execute_voluntary`, which calls kernels_cascade's execution and
refresh), and the bookkeeping at the step's end (:func:`close_step`, which records the
step's series with kernels_passes); these sum and exponentiate as the NumPy code they
replaced did (see each docstring).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from policylab.engine.kernels import _tier, copy_into, pairwise_sum, unique_sorted
from policylab.engine.kernels_cascade import coefficients, coin_values, execute_orders, refresh
from policylab.engine.kernels_passes import record


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _min(a, b):
    """``np.minimum`` of two floats (NaN if either is)."""
    return a if (a <= b or a != a) else b


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _max(a, b):
    """``np.maximum`` of two floats (NaN if either is)."""
    return a if (a >= b or a != a) else b


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _sign(x):
    """``np.sign`` of a float."""
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return x  # 0.0, -0.0 or NaN, as np.sign


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _leverage_cap(i, v, notional, weight, lev_cap, im_mult, tier_floor, tier_lev):
    """``MarketModel.leverage_cap`` of account ``i`` on venue ``v`` for ``notional`` (USD)."""
    tier = tier_lev[v, _tier(v, notional / weight[i], tier_floor)] / im_mult[v]
    return _max(_min(tier, lev_cap[i]), 1.0)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def active_rows(rows, draws):
    """``rows[np.unique(draws)]``: the population's rows drawn (with replacement) to act (in
    the new array of distinct draws)."""
    out = unique_sorted(draws)
    for j in range(out.shape[0]):
        out[j] = rows[out[j]]
    return out


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def thin(idx, size, u, keep):
    """``idx`` without the holders (size != 0) whose draw ``u`` is not below ``keep``: the
    first of ``idx``, which is overwritten."""
    n = 0
    for j in range(idx.shape[0]):
        if size[idx[j]] == 0.0 or u[j] < keep:
            idx[n] = idx[j]
            n += 1
    return idx[:n]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def draw_active(rng, rows, size, chance, surged, keep):
    """``TraderPopulation.active``'s draws from the population's NumPy Generator ``rng``, in
    the order and values of the NumPy calls they replaced: how many draws, k ~ Binomial(len(rows),
    ``chance``) (``rng.binomial``); k of ``rows`` with replacement (``rng.integers(0, len(rows),
    k)``), each once (:func:`active_rows`); if ``surged``, the holders among them kept with
    one uniform each under ``keep`` (``rng.random``, :func:`thin`)."""
    n = rows.shape[0]
    k = rng.binomial(n, chance) if n else 0
    if k == 0:
        return np.empty(0, dtype=np.int64)
    idx = active_rows(rows, rng.integers(0, n, k))
    if surged:
        return thin(idx, size, rng.random(idx.shape[0]), keep)
    return idx


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def active(chance, surged, keep, fixed):
    """:func:`draw_active` with ``fixed``, a :class:`kernels.Bundle` of (rng, rows, size)."""
    rng, rows, size = fixed.items
    return draw_active(rng, rows, size, chance, surged, keep)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def reentry_exponent(idx, last_liq, now_s, neg_ln2, half_life):
    """``-ln 2 x max(minutes since the last liquidation, 0) / half_life`` per account
    (``-inf``: never liquidated), for ``TraderPopulation.willing``; ``now_s`` seconds."""
    out = np.empty(idx.shape[0])
    for j in range(idx.shape[0]):
        since = (now_s - last_liq[idx[j]]) / 60.0
        out[j] = neg_ln2 * _max(since, 0.0) / half_life
    return out


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def open_candidates(idx, now_s, size, cash, quit, last_liq, neg_ln2, half_life):
    """Positions in ``idx`` of flat accounts with cash that have not quit (they may open),
    and for each (if ``half_life`` > 0, else none) its :func:`reentry_exponent`."""
    out = np.empty(idx.shape[0], dtype=np.int64)
    n = 0
    for j in range(idx.shape[0]):
        i = idx[j]
        if size[i] == 0.0 and cash[i] > 0.0 and not quit[i]:
            out[n] = j
            n += 1
    cand = out[:n]
    if half_life > 0.0:
        return cand, reentry_exponent(idx[cand], last_liq, now_s, neg_ln2, half_life)
    return cand, np.empty(0)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def chosen(cand, u, expm1_x, caution, scale):
    """The candidates ``cand`` that open: draw ``u`` (one per candidate) under ``scale`` x
    their willingness, ``caution x -expm1(x)`` with ``expm1_x`` (``np.expm1`` of
    :func:`reentry_exponent`, as ``TraderPopulation.willing``), or ``caution`` if it is empty."""
    out = np.empty(cand.shape[0], dtype=np.int64)
    n = 0
    for p in range(cand.shape[0]):
        w = caution * -expm1_x[p] if expm1_x.shape[0] else caution
        if u[p] < scale * w:
            out[n] = cand[p]
            n += 1
    return out[:n]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def retail_closes(idx, u, size, stop, r15, panic_move, close_prob):
    """Retail holders' closes: an active holder closes whole on an adverse 15-minute move
    ``-sign(size) x r15 > panic_move`` or with probability ``close_prob`` (its draw ``u``);
    its stop is cleared. Returns the orders per position in ``idx`` (0 for the others)."""
    dq = np.zeros(idx.shape[0])
    for j in range(idx.shape[0]):
        i = idx[j]
        s = size[i]
        if s != 0.0 and (-_sign(s) * r15 > panic_move or u[j] < close_prob):
            dq[j] = -s
            stop[i] = np.nan
    return dq


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def retail_decisions(idx, u, r15, close_prob, now_s, panic_move, size, stop, cash, quit, last_liq, neg_ln2, half_life):
    """``RetailSpeculators.decide`` before NumPy's ``expm1``: :func:`retail_closes` with the
    draws ``u`` (one per position in ``idx``), then :func:`open_candidates` (``now_s``
    seconds). Returns (orders per position, candidates, their re-entry exponents, their draws ``u``)."""
    dq = retail_closes(idx, u, size, stop, r15, panic_move, close_prob)
    cand, x = open_candidates(idx, now_s, size, cash, quit, last_liq, neg_ln2, half_life)
    return dq, cand, x, u[cand]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def retail_start(idx, r15, close_prob, now_s, fixed):
    """``RetailSpeculators.decide`` of the active accounts ``idx`` before NumPy's ``expm1``:
    one uniform each from the population's stream, then :func:`retail_decisions`, whose
    results it returns. ``fixed``: a :class:`kernels.Bundle` of (the stream, a NumPy
    Generator; :func:`retail_decisions`'s arguments from ``panic_move`` on)."""
    rng, panic_move, size, stop, cash, quit, last_liq, neg_ln2, half_life = fixed.items
    return retail_decisions(idx, rng.random(idx.shape[0]), r15, close_prob, now_s, panic_move, size, stop, cash, quit,
                            last_liq, neg_ln2, half_life)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def professional_targets(dq, idx, price, coin_value, caution, fixed):
    """Professionals' leverage targeting (``Professionals.decide``): a holder whose leverage
    exceeds ``risk_limit`` x its target cuts back to the target; with ``relever_below`` > 0
    one below that share of its target adds back to it, within the leverage caps and the
    position limit. Writes the orders per position in ``idx`` to ``dq`` (zeros; left 0 for
    the others). ``fixed``: :func:`professional_decisions`'s bundle. Allocates nothing, so
    the bundle's arrays need no reference counting (module docstring)."""
    (risk_limit, relever_below, _, _, _, venue, size, cash, coin, leverage, weight, lev_cap, pos_limit, im_mult,
     tier_floor, tier_lev) = fixed.items[:16]
    for j in range(idx.shape[0]):
        i = idx[j]
        s = size[i]
        if s == 0.0:
            continue
        v = venue[i]
        p = price[v]
        eq = cash[i] + s * p - coin[i] * (1.0 - coin_value[v])
        notional = abs(s) * p
        eff = notional / eq if eq > 0.0 else np.inf
        target = leverage[i] * caution
        if eff > risk_limit * target:
            dq[j] = -s * _min(_max(1.0 - target / eff, 0.0), 1.0)
        if relever_below > 0.0 and eq > 0.0 and eff < relever_below * target:
            want = eq * target
            cap = _leverage_cap(i, v, want, weight, lev_cap, im_mult, tier_floor, tier_lev)
            want = _min(eq * _min(target, cap), pos_limit[i] * weight[i])
            dq[j] = _sign(s) * _max(want - notional, 0.0) / p


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def professional_decisions(idx, growth, caution, now_s, fixed):
    """``Professionals.decide`` before NumPy's ``expm1``: :func:`professional_targets` at the
    book prices (the index x ``growth``, NumPy's exp of the basis, as ``Market.prices``) and
    the collateral values now, then :func:`open_candidates` (``now_s`` seconds). Returns
    (orders per position, candidates, their re-entry exponents). ``fixed``: a
    :class:`kernels.Bundle` of (risk_limit, relever_below, lm, coin_price, haircut, venue,
    size, cash, coin, leverage, weight, lev_cap, pos_limit, im_mult, tier_floor, tier_lev,
    quit, last_liq, neg_ln2, half_life), the same at every call."""
    lm, coin_price, haircut = fixed.items[2:5]
    price = math.exp(lm[0] + lm[1]) * growth
    dq = np.zeros(idx.shape[0])
    professional_targets(dq, idx, price, coin_values(coin_price, haircut), caution, fixed)
    size, cash = fixed.items[6:8]
    quit, last_liq, neg_ln2, half_life = fixed.items[16:]
    cand, x = open_candidates(idx, now_s, size, cash, quit, last_liq, neg_ln2, half_life)
    return dq, cand, x


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def professional_start(idx, growth, caution, now_s, fixed):
    """``Professionals.decide`` of the active accounts ``idx`` before NumPy's ``expm1``:
    :func:`professional_decisions`, then one uniform per candidate from the population's
    stream. Returns (orders per position, candidates, their re-entry exponents, their
    draws). ``fixed``: a :class:`kernels.Bundle` of (the stream, a NumPy Generator;
    :func:`professional_decisions`'s bundle)."""
    rng, decision_args = fixed.items
    dq, cand, x = professional_decisions(idx, growth, caution, now_s, decision_args)
    return dq, cand, x, rng.random(cand.shape[0])


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _open(i, side, price, coin_value, venue, size, cash, coin, leverage, weight, lev_cap, pos_limit, stop_dist, stop,
          im_mult, tier_floor, tier_lev):
    """``TraderPopulation.open_orders`` for account ``i``: the order (BTC); sets its stop."""
    v = venue[i]
    p = price[v]
    # margin value of the account: cash less the depeg haircut on its stablecoin collateral
    c = _max(cash[i] + size[i] * p - coin[i] * (1.0 - coin_value[v]), 0.0)
    cap = _leverage_cap(i, v, c * leverage[i], weight, lev_cap, im_mult, tier_floor, tier_lev)
    notional = _min(c * _min(leverage[i], cap), pos_limit[i] * weight[i])
    d = stop_dist[i]  # NaN: the account uses no stops
    stop[i] = np.nan if d != d else p * (1.0 - side * d)
    return side * notional / p


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def open_orders(idx, side, price, coin_value, venue, size, cash, coin, leverage, weight, lev_cap, pos_limit,
                stop_dist, stop, im_mult, tier_floor, tier_lev):
    """Orders (BTC) opening positions of accounts ``idx`` on sides ``side`` (+1 long, -1
    short) with their margin equity at their chosen leverage, within the venue's tier and
    dynamic initial margin (``im_mult``), the rules' cap and position limit; sets their stops."""
    dq = np.empty(idx.shape[0])
    for j in range(idx.shape[0]):
        dq[j] = _open(idx[j], side[j], price, coin_value, venue, size, cash, coin, leverage, weight, lev_cap,
                      pos_limit, stop_dist, stop, im_mult, tier_floor, tier_lev)
    return dq


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _open_at(idx, dq, at, u_side, u_follow, move, price, coin_value, fixed):
    """Set ``dq[at[p]]`` to the order opening account ``idx[at[p]]``'s position (:func:`_open`)
    on the side :func:`opens` draws (``fixed``: its bundle). Allocates nothing, so the
    bundle's arrays need no reference counting (module docstring)."""
    (long_share, follow_share, _, _, _, venue, size, cash, coin, leverage, weight, lev_cap, pos_limit, stop_dist, stop,
     im_mult, tier_floor, tier_lev) = fixed.items
    for p in range(at.shape[0]):
        if u_follow.shape[0]:
            side = _sign(move) if u_follow[p] < follow_share else -_sign(move)
        else:
            side = 1.0 if u_side[p] < long_share else -1.0
        j = at[p]
        dq[j] = _open(idx[j], side, price, coin_value, venue, size, cash, coin, leverage, weight, lev_cap,
                      pos_limit, stop_dist, stop, im_mult, tier_floor, tier_lev)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def opens(idx, dq, at, u_side, u_follow, move, growth, fixed):
    """The orders ``dq`` of accounts ``idx`` with the positions ``at`` (in ``idx``) opening
    (as :func:`open_orders`, written to ``dq``), less the zero orders: ``(accounts, BTC)``,
    new arrays. Position ``at[p]`` opens long if ``u_side[p] < long_share``, else short; with
    draws ``u_follow`` (one per opener; empty: none) instead in the direction of ``move`` if
    ``u_follow[p] < follow_share``, else against it (as ``np.where`` of the draws and
    ``np.sign(move)``); at the book prices (the index x ``growth``, NumPy's exp of the basis)
    and the collateral values now. ``fixed``: a :class:`kernels.Bundle` of (long_share,
    follow_share, lm, coin_price, haircut, then :func:`open_orders`'s arguments from ``venue``
    on), the same at every call."""
    lm, coin_price, haircut = fixed.items[2:5]
    price = math.exp(lm[0] + lm[1]) * growth
    coin_value = coin_values(coin_price, haircut)
    rows = np.empty(idx.shape[0], dtype=np.int64)
    out = np.empty(idx.shape[0])
    _open_at(idx, dq, at, u_side, u_follow, move, price, coin_value, fixed)
    n = 0
    for j in range(idx.shape[0]):
        if dq[j] != 0.0:
            rows[n] = idx[j]
            out[n] = dq[j]
            n += 1
    return rows[:n], out[:n]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def chosen_open(idx, dq, cand, u_cand, expm1_x, caution, scale, follow, move, growth, fixed):
    """The end of a population's decision, its draws from its stream: the candidates
    :func:`chosen` (draws ``u_cand``) open (:func:`opens`) on sides drawn with one uniform
    each, and if ``follow`` (a sharp ``move``) one more each. ``fixed``: a
    :class:`kernels.Bundle` of (the stream, a NumPy Generator; :func:`opens`'s bundle)."""
    rng, opens_args = fixed.items
    flat = chosen(cand, u_cand, expm1_x, caution, scale)
    u_side = rng.random(flat.shape[0])
    u_follow = rng.random(flat.shape[0]) if follow else np.empty(0)
    return opens(idx, dq, flat, u_side, u_follow, move, growth, opens_args)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def unhedged(rows, hedge, size, share):
    """Basis traders' spot sales (``BasisTraders.decide``): each account in ``rows`` whose
    long spot ``hedge`` exceeds its short perpetual (``hedge + size`` above 1e-9 of the
    hedge) sells ``share`` of the excess: ``(accounts, BTC)``."""
    idx = np.empty(rows.shape[0], dtype=np.int64)
    dq = np.empty(rows.shape[0])
    n = 0
    for j in range(rows.shape[0]):
        i = rows[j]
        excess = hedge[i] + size[i]
        if excess > 1e-9 * _max(hedge[i], 1e-9):
            idx[n] = i
            dq[n] = -excess * share
            n += 1
    return idx[:n], dq[:n]


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def arrivals(t, lm, log_return, transient_decay, basis, basis_decay, liquidity_mult, liquidity, coin_price, coin_path):
    """The step's exogenous arrivals (``MarketModel.step``, 1.): step ``t``'s fundamental
    return ``log_return[t]`` joins the log fundamental ``lm[0]``, the transient dislocation
    ``lm[1]`` decays by ``transient_decay`` and each venue's basis by ``basis_decay``; the
    depth multipliers and collateral values of row ``t`` of ``liquidity`` and ``coin_path``
    (steps x venues) arrive. Returns whether a collateral value changed (NaN counts as a
    change, as ``np.array_equal``)."""
    lm[0] += log_return[t]
    lm[1] *= transient_decay
    changed = False
    for v in range(basis.shape[0]):
        basis[v] *= basis_decay
        liquidity_mult[v] = liquidity[t, v]
        if coin_price[v] != coin_path[t, v]:
            changed = True
    if changed:
        copy_into(coin_price, 0, coin_path[t])
    return changed


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def new_step(volume, forced_volume, resident_volume, flow, arb_left, arb_capacity):
    """Start the step's flows (``Market.new_step``): zero the per-step flows, and set the
    arbitrage capacity left to ``arb_capacity``."""
    volume[:] = 0.0
    forced_volume[:] = 0.0
    resident_volume[:] = 0.0
    flow[:] = 0.0
    copy_into(arb_left, 0, arb_capacity)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def any_flat_in_debt(idx, size, cash):
    """Whether any account of ``idx`` is flat with negative cash (else negative balance
    protection has nothing to cover)."""
    for j in range(idx.shape[0]):
        if size[idx[j]] == 0.0 and cash[idx[j]] < 0.0:
            return True
    return False


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def rms_step(logs):
    """Root mean square of the steps of ``logs`` (``np.sqrt(np.mean(np.diff(logs) ** 2))``,
    summed in NumPy's pairwise order); ``logs`` holds at least two values and is overwritten
    (its first values by the squared steps)."""
    n = logs.shape[0] - 1
    for j in range(n):
        r = logs[j + 1] - logs[j]
        logs[j] = r * r
    return np.sqrt(pairwise_sum(logs, 0, n) / n)


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def execute_voluntary(idx, dq, growth, changed, fixed):
    """The step's netted voluntary orders ``dq`` (BTC) of unique accounts ``idx``, ascending
    (``MarketModel.step``, 3.), in one call: ``Market.execute`` at the book prices (the index
    x ``growth``, NumPy's exp of the basis), the orders of class ``vault`` rows counted as
    forced (vaults unwinding taken-over positions); then, unless an account of ``idx`` is
    flat with negative cash (negative balance protection must cover it first),
    ``LiquidationEngine.refresh`` of ``idx`` (``changed`` has room for them). Returns whether
    such an account is left (then nothing was refreshed). ``fixed``: a
    :class:`kernels.Bundle` of the arguments below, the same at every call; ``no_liq`` (all
    False) and ``forced`` are per account (``idx`` holds unique accounts), ``forced`` scratch."""
    (cls, vault, lm, impact_y, depth0, liquidity_mult, health, coin_price, haircut, venue, size, entry, cash, coin,
     taker_fee, liq_fee, fee_to_fund, mm_row, fund, fees, flow, volume, resident, traded, forced_volume,
     resident_volume, tally, basis, spot, permanent_share, protocol, weight, mm_floor, margin_mult, tier_rate,
     tier_ded, liq_price, n_changed, no_liq, forced) = fixed.items
    n = idx.shape[0]
    index = math.exp(lm[0] + lm[1])  # Market.index
    book = index * growth  # Market.prices
    cv = coin_values(coin_price, haircut)
    liq = no_liq[:n]
    forced = forced[:n]
    for j in range(n):
        forced[j] = cls[idx[j]] == vault
    execute_orders(idx, dq, liq, forced, book, coefficients(impact_y, depth0, liquidity_mult, health), cv, venue, size,
                   entry, cash, coin, taker_fee, liq_fee, fee_to_fund, mm_row, fund, fees, flow, volume, resident,
                   traded, forced_volume, resident_volume, tally, basis, lm, spot, permanent_share)
    if any_flat_in_debt(idx, size, cash):
        return True
    refresh(idx, protocol, venue, size, weight, cash, coin, mm_floor, cv, margin_mult, tier_rate, tier_ded, liq_price,
            changed, n_changed)
    return False


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def close_step(t, growth, fixed):
    """The step's bookkeeping (``MarketModel.step``, 5.): each venue's ``basis`` added to its
    funding premium sum and count; the index (of ``lm``) and the venues' book prices (the
    index x ``growth``, NumPy's exp of the basis, as ``Market.prices``) recorded at ``t + 1``;
    then the step's venue and residence series (``kernels_passes.record``). ``fixed``: a
    :class:`kernels.Bundle` of (lm, basis, premium_sum, premium_n, index_path, price_path,
    then record's arrays from ``venues`` to ``resident_volume``), the same at every call."""
    lm, basis, premium_sum, premium_n, index_path, price_path = fixed.items[:6]
    index = math.exp(lm[0] + lm[1])  # Market.index
    for v in range(basis.shape[0]):
        premium_sum[v] += basis[v]
        premium_n[v] += 1.0
        price_path[t + 1, v] = index * growth[v]
    index_path[t + 1] = index
    record(t, fixed)

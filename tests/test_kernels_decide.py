"""The decision kernels (policylab/engine/kernels_decide.py) give bit for bit what the
NumPy expressions they replaced gave: each is checked against that expression, kept here
as the oracle, on a model's accounts perturbed to reach every branch (flat and held
positions, negative cash, quit accounts, stablecoin collateral under a depeg, NaN stop
distances, infinite and binding caps, position limits, a dynamic initial margin)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from policylab.engine import kernels
from policylab.engine import kernels_decide as kd
from policylab.engine import kernels_passes
from policylab.inputs.rulesets import load_rules
from policylab.inputs.scenario import load_scenario
from policylab.model import MarketModel
from policylab.names import PRO, RETAIL, VAULT


@pytest.fixture(scope="module")
def model():
    m = MarketModel(load_scenario("october-2025"), seed=0, traders=3000, rules=[load_rules("status-quo-2025")])
    tb, vb = m.tb, m.vb
    rng = np.random.default_rng(7)
    rows = np.flatnonzero(np.isin(tb.cls, [RETAIL, PRO]))
    flat = rows[rng.random(len(rows)) < 0.3]
    tb.cash[flat] += tb.size[flat] * m.market.prices()[tb.venue[flat]]
    tb.size[flat] = 0.0
    tb.cash[rows[rng.random(len(rows)) < 0.05]] *= -1.0
    tb.quit[rows[rng.random(len(rows)) < 0.05]] = True
    tb.coin[rows] = np.where(rng.random(len(rows)) < 0.3, np.abs(tb.cash[rows]) * 0.5, 0.0)
    vb.coin_price[:] = 0.97
    tb.stop_dist[rows] = np.where(rng.random(len(rows)) < 0.5, np.nan, rng.uniform(0.02, 0.1, len(rows)))
    tb.pos_limit[rows] = np.where(rng.random(len(rows)) < 0.2, rng.uniform(1e3, 1e5, len(rows)), tb.pos_limit[rows])
    tb.lev_cap[rows] = np.where(rng.random(len(rows)) < 0.2, rng.uniform(2.0, 20.0, len(rows)), tb.lev_cap[rows])
    tb.leverage[rows[:50]] = np.inf * 0  # NaN leverage propagates as np.minimum does
    vb.im_mult[1] = 1.7
    tb.last_liq[rows] = np.where(rng.random(len(rows)) < 0.5, -np.inf, rng.uniform(0, 4000.0, len(rows)))
    m._test_rows = rows
    return m


def same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def leverage_cap(m, idx, notional):
    """The model's leverage cap (MarketModel.leverage_cap), as the kernels compute it."""
    return m.leverage_cap(idx, notional)


def open_orders_numpy(m, idx, side):
    """TraderPopulation.open_orders before the kernels: (orders, stops)."""
    prices = m.market.prices()
    price = prices[m.tb.venue[idx]]
    cash = np.maximum(m.tb.equity(idx, prices, m.vb.coin_value), 0.0)
    notional = cash * m.tb.leverage[idx]
    cap = leverage_cap(m, idx, notional)
    notional = np.minimum(cash * np.minimum(m.tb.leverage[idx], cap), m.tb.pos_limit[idx] * m.tb.weight[idx])
    dq = side * notional / price
    stop = np.where(np.isnan(m.tb.stop_dist[idx]), np.nan, price * (1 - side * m.tb.stop_dist[idx]))
    return dq, stop


def test_open_orders_and_stops_as_numpy(model):
    m, tb = model, model.tb
    idx = model._test_rows
    side = np.where(np.random.default_rng(1).random(len(idx)) < 0.6, 1.0, -1.0)
    want, stop = open_orders_numpy(m, idx, side)
    pop = next(iter(m.populations))
    got = pop.open_orders(idx, side)
    assert same(got, want) and same(tb.stop[idx], stop)
    assert np.isnan(got).any() and (got > 0).any() and (got < 0).any() and (got == 0).any()


def test_open_at_writes_the_openers_orders_and_stops_only(model):
    """kernels_decide._open_at: open_orders's orders at the positions ``at``, the others left."""
    m, tb = model, model.tb
    pop = next(iter(m.populations))
    idx = model._test_rows[:300]
    at = np.arange(0, len(idx), 2)
    side = np.where(np.arange(len(at)) % 3 == 0, -1.0, 1.0)
    stop = tb.stop.copy()
    want = kd.open_orders(idx[at], side, m.market.prices(), m.vb.coin_value, *pop._accounts)
    want_stop, tb.stop[:] = tb.stop.copy(), stop
    dq = np.full(len(idx), 7.0)
    u_side = np.where(side > 0, -1.0, 2.0)  # a draw below long_share opens long
    kd._open_at(idx, dq, at, u_side, np.zeros(0), 0.0, m.market.prices(), m.vb.coin_value, pop._opens)
    assert same(dq[at], want) and (dq[1::2] == 7.0).all() and same(tb.stop, want_stop)
    assert not same(want_stop, stop)


@pytest.mark.parametrize("move", [0.04, -0.04, 0.0])
def test_opens_draw_the_sides_and_keep_the_nonzero_orders_as_numpy(model, move):
    """The populations' sides (long with a draw under ``long_share``; after a sharp move, with
    the move for a draw under ``momentum_share``), their orders and stops at ``Market.prices``
    as ``open_orders``, and the other orders, less the zero ones."""
    m, tb = model, model.tb
    pop = next(iter(m.populations))
    idx = model._test_rows[:400]
    dq = np.where(np.arange(len(idx)) % 3 == 0, 1.5, 0.0)
    at = np.flatnonzero(np.arange(len(idx)) % 3 == 1)
    rng = np.random.default_rng(11)
    u_side, u_follow = rng.random(len(at)), rng.random(len(at))
    growth = np.exp(m.vb.basis)
    fixed = kernels.bundle((0.6, 0.3, m.market.lm, m.vb.coin_price, m.vb.haircut, *pop._accounts))
    for follow in (False, True):
        side = np.where(u_side < 0.6, 1.0, -1.0)
        if follow:
            side = np.where(u_follow < 0.3, np.sign(move), -np.sign(move))
        full = dq.copy()
        full[at], want_stop = open_orders_numpy(m, idx[at], side)
        keep = full != 0
        stop = tb.stop.copy()
        rows, out = kd.opens(idx, dq.copy(), at, u_side, u_follow if follow else np.zeros(0), move, growth, fixed)
        assert same(rows, idx[keep]) and same(out, full[keep]) and same(tb.stop[idx[at]], want_stop)
        assert same(np.delete(tb.stop, idx[at]), np.delete(stop, idx[at]))
        tb.stop[:] = stop
        assert (side > 0).any() and (side < 0).any() or (follow and move == 0.0)
        assert keep[at].any() and not keep.all()


def test_professional_targets_as_numpy(model):
    m, tb = model, model.tb
    idx = model._test_rows
    caution, risk_limit, relever_below = 0.8, 1.5, 0.67
    price = m.market.prices()
    s = tb.size[idx]
    eq = tb.equity(idx, price, m.vb.coin_value)
    notional = np.abs(s) * price[tb.venue[idx]]
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = np.where(eq > 0, notional / eq, np.inf)
    target = tb.leverage[idx] * caution
    over = (s != 0) & (eff > risk_limit * target)
    want_dq = np.zeros(len(idx))
    want_dq[over] = -s[over] * np.clip(1.0 - target[over] / eff[over], 0.0, 1.0)
    under = (s != 0) & (eq > 0) & (eff < relever_below * target)
    u = idx[under]
    want = eq[under] * target[under]
    want = np.minimum(eq[under] * np.minimum(target[under], leverage_cap(m, u, want)), tb.pos_limit[u] * tb.weight[u])
    want_dq[under] = np.sign(s[under]) * np.maximum(want - notional[under], 0.0) / price[tb.venue[u]]
    assert over.any() and under.any()
    fixed = kernels.bundle((risk_limit, relever_below, m.market.lm, m.vb.coin_price, m.vb.haircut, tb.venue, tb.size,
                            tb.cash, tb.coin, tb.leverage, tb.weight, tb.lev_cap, tb.pos_limit, m.vb.im_mult,
                            m.vb.tier_floor, m.vb.tier_lev, tb.quit, tb.last_liq, -np.log(2.0), 60.0))
    got = np.zeros(len(idx))
    kd.professional_targets(got, idx, price, m.vb.coin_value, caution, fixed)
    assert same(got, want_dq)
    tb.quit[idx[:5]] = True  # the fused call: targets at Market.prices, then the open candidates
    now_s = 3000.0
    want_cand, want_x = kd.open_candidates(idx, now_s, tb.size, tb.cash, tb.quit, tb.last_liq, -np.log(2.0), 60.0)
    got_dq, cand, x = kd.professional_decisions(idx, np.exp(m.vb.basis), caution, now_s, fixed)
    assert same(got_dq, want_dq) and same(cand, want_cand) and same(x, want_x) and len(cand)


@pytest.mark.parametrize("r15", [0.05, -0.05, 0.0])
def test_retail_closes_as_numpy(model, r15):
    tb = model.tb
    idx = model._test_rows
    u = np.random.default_rng(2).random(len(idx))
    s = tb.size[idx]
    close = (s != 0) & ((-np.sign(s) * r15 > 0.03) | (u < 0.1))
    want = np.where(close, -s, 0.0)
    stop = tb.stop.copy()
    got = kd.retail_closes(idx, u, tb.size, stop, r15, 0.03, 0.1)
    assert same(got, want) and np.isnan(stop[idx[close]]).all()
    assert same(np.delete(stop, idx[close]), np.delete(tb.stop, idx[close]))
    fused = tb.stop.copy()  # the fused call: the closes, then the open candidates and their draws
    cand, x = kd.open_candidates(idx, 3000.0, tb.size, tb.cash, tb.quit, tb.last_liq, -np.log(2.0), 60.0)
    got = kd.retail_decisions(idx, u, r15, 0.1, 3000.0, 0.03, tb.size, fused, tb.cash, tb.quit, tb.last_liq,
                              -np.log(2.0), 60.0)
    assert same(got[0], want) and same(got[1], cand) and same(got[2], x) and same(got[3], u[cand])
    assert same(fused, stop) and len(cand)


def test_open_candidates_willing_and_chosen_as_numpy(model):
    m, tb = model, model.tb
    idx = model._test_rows
    flat = (tb.size[idx] == 0) & (tb.cash[idx] > 0) & ~tb.quit[idx]
    pop = next(p for p in m.populations if p.name == "retail")
    m.steps = 40
    w = np.full(flat.sum(), pop.caution())
    now_s = (m.steps - 1) * m.scenario.step_minutes * 60.0
    since = (now_s - tb.last_liq[idx[flat]]) / 60.0
    w *= -np.expm1(-np.log(2.0) * np.maximum(since, 0.0) / pop.spec.reentry_half_life_minutes)
    assert same(pop.willing(idx[flat]), w) and (w < 1).any() and (w == 1).any()
    assert pop._reentry[-1] == pop.spec.reentry_half_life_minutes > 0
    cand, x = kd.open_candidates(idx, pop.now_s(), tb.size, tb.cash, *pop._reentry)
    expm1_x = np.expm1(x)
    assert same(cand, np.flatnonzero(flat))
    u = np.random.default_rng(5).random(len(idx))
    for scale in (0.9, 1.0):  # retail's OPEN_PROB, professionals'
        want = np.flatnonzero(flat)[u[flat] < scale * w]
        assert same(kd.chosen(cand, u[cand], expm1_x, pop.caution(), scale), want)
    no_reentry = (*pop._reentry[:-1], 0.0)  # a class without a re-entry half-life
    cand, expm1_x = kd.open_candidates(idx, pop.now_s(), tb.size, tb.cash, *no_reentry)
    assert len(expm1_x) == 0 and same(kd.chosen(cand, u[cand], expm1_x, 0.5, 0.9), cand[u[cand] < 0.9 * 0.5])


def test_active_rows_thin_unhedged_as_numpy(model):
    tb = model.tb
    rng = np.random.default_rng(3)
    rows = model._test_rows
    draws = rng.integers(0, len(rows), 200)
    idx = kd.active_rows(rows, draws)
    assert same(idx, rows[np.unique(draws)])
    u = rng.random(len(idx))
    assert same(kd.thin(idx.copy(), tb.size, u, 0.4), idx[(tb.size[idx] == 0) | (u < 0.4)])
    hedge = np.where(rng.random(tb.n) < 0.5, -tb.size + rng.normal(0, 1e-3, tb.n), 0.0)
    excess = hedge[rows] + tb.size[rows]
    sell = excess > 1e-9 * np.maximum(hedge[rows], 1e-9)
    got_idx, got_dq = kd.unhedged(rows, hedge, tb.size, 0.2)
    assert sell.any() and same(got_idx, rows[sell]) and same(got_dq, -excess[sell] * 0.2)


def test_rms_step_sums_in_numpys_pairwise_order():
    """MarketModel.vol_ratio's root mean square of log steps, for windows below, at and
    above NumPy's 128-element pairwise block (a sequential sum differs in the last bits)."""
    rng = np.random.default_rng(4)
    for n in [2, 3, 8, 9, 16, 17, 128, 129, 130, 257, 1000, 3001]:
        logs = 11.5 + np.cumsum(rng.normal(0.0, 0.01, n))
        assert kd.rms_step(logs.copy()) == np.sqrt(np.mean(np.diff(logs) ** 2))


def test_vol_ratio_is_kept_only_for_its_step_and_index():
    """MarketModel.vol_ratio answers a second question in the same step at the same index
    from what it kept, and computes afresh when the index or the step moved."""
    m = MarketModel(load_scenario("october-2025"), seed=0, traders=2000)
    for _ in range(20):
        m.step()

    def fresh(minutes):
        t, back = m.steps, max(2, minutes // m.scenario.step_minutes)
        logs = np.append(m.index_path[max(t - back, 0):t], m.market.index)
        return float(np.sqrt(np.mean(np.diff(np.log(logs)) ** 2))
                     / (m.scenario.sigma_daily * np.sqrt(m.scenario.step_minutes / 1440.0)))

    first = m.vol_ratio(15)
    assert first == fresh(15) and m.vol_ratio(15) == first and m.vol_ratio(60) == fresh(60)
    m.market.lm[1] += 0.02  # the index moves within the step
    assert m.vol_ratio(15) == fresh(15) != first
    m.step()
    assert m.vol_ratio(15) == fresh(15)


def test_arrivals_and_debt_check():
    basis, liquidity_mult, coin_price = np.array([0.01, -0.02, 0.0]), np.ones(3), np.ones(3)
    lm, log_return = np.array([11.0, 0.003]), np.array([0.0, -0.012, 0.004])
    liquidity = np.array([[1.0, 1.0, 1.0], [1.0, 0.5, 2.0], [1.0, 1.0, 1.0]])
    coin_path = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 0.9, 1.0], [1.0, np.nan, 1.0]])
    assert not kd.arrivals(1, lm, log_return, 0.7, basis, 0.5, liquidity_mult, liquidity, coin_price, coin_path)
    assert same(basis, np.array([0.01, -0.02, 0.0]) * 0.5) and same(liquidity_mult, np.array([1.0, 0.5, 2.0]))
    assert same(lm, np.array([11.0 + -0.012, 0.003 * 0.7]))
    assert kd.arrivals(2, lm, log_return, 0.7, basis, 0.5, liquidity_mult, liquidity, coin_price, coin_path)
    assert same(coin_price, np.array([1.0, 0.9, 1.0])) and same(liquidity_mult, np.ones(3))
    assert kd.arrivals(3, lm, log_return[[0, 1, 2, 2]], 0.7, basis, 0.5, liquidity_mult, liquidity[[0, 1, 2, 2]],
                       coin_price, coin_path)
    size, cash = np.array([0.0, 1.0, 0.0]), np.array([5.0, -3.0, -1.0])
    assert not kd.any_flat_in_debt(np.array([0, 1]), size, cash) and kd.any_flat_in_debt(np.array([2]), size, cash)


def test_the_market_makers_see_the_steps_price_move():
    """MarketModel.step gives the market makers the book prices after the arrivals
    (``Market.prices``) and the log of their ratio to the prices before the step (those
    recorded at the last step's end: nothing moves them between steps)."""
    m = MarketModel(load_scenario("october-2025"), seed=1, traders=500)
    adjust, seen = m.market_makers.adjust, []

    def checked(move, price):
        assert np.array_equal(price, m.market.prices())
        assert same(move, np.log(price / m.price_path[m.steps - 1]))
        seen.append(np.abs(move).max())
        adjust(move, price)

    m.market_makers.adjust = checked
    for _ in range(30):
        m.step()
    assert len(seen) == 30 and max(seen) > 0


def test_new_step_zeroes_the_flows_and_resets_arbitrage_capacity():
    rng = np.random.default_rng(4)
    flows = [rng.random(4), rng.random(4), rng.random((3, 4)), rng.random(4)]
    arb_left, capacity = rng.random(4), np.array([2e8, 0.0, 2e8, 0.0])
    kd.new_step(*flows, arb_left, capacity)
    assert all((f == 0).all() for f in flows) and same(arb_left, capacity)


def test_active_draw_size_as_a_tuple_gives_the_same_draws():
    """TraderPopulation.active drew its accounts with a size of ``(k,)`` (faster in NumPy),
    kernels_decide.draw_active as ``rng.integers(0, n, k)`` (test_draw_active_is_numpys):
    the stream gives the same accounts, and is left in the same state, either way."""
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for n, k in [(17_200, 35), (2_000, 1), (100_000, 4_000), (3, 7)]:
        assert same(a.integers(0, n, k), b.integers(0, n, (k,)))
    assert a.random() == b.random()


def _state(m) -> dict[str, np.ndarray]:
    """Every per-account, per-venue and market array the execution and refresh may change."""
    tb, vb, mkt, eng = m.tb, m.vb, m.market, m.engine
    out = {f"tb.{k}": v for k, v in vars(tb).items() if isinstance(v, np.ndarray)}
    out.update({f"vb.{k}": v for k, v in vars(vb).items() if isinstance(v, np.ndarray)})
    out.update({f"mkt.{k}": v for k, v in vars(mkt).items() if isinstance(v, np.ndarray)})
    out["changed"] = eng._changed[:eng._n_changed[0]]
    return out


@pytest.mark.parametrize("under_water", [False, True])
def test_execute_voluntary_as_market_execute_then_refresh(under_water):
    """MarketModel._execute_voluntary (one compiled call) leaves every array as the Python path
    it replaced: Market.execute with the vaults' orders forced, then (after negative balance
    protection when an account closed under water) LiquidationEngine.refresh."""
    sc = load_scenario("october-2025")
    a, b = (MarketModel(sc, seed=3, traders=2000, rules=[load_rules("status-quo-2025")]) for _ in range(2))
    for m in (a, b):
        for _ in range(30):
            m.step()
    tb = a.tb
    held = np.flatnonzero((tb.size != 0) & np.isin(tb.cls, [RETAIL, PRO]))[:40]
    vault = np.flatnonzero(tb.cls == VAULT)[:1]
    idx = np.sort(np.concatenate([held, vault, np.flatnonzero(tb.size == 0)[:5]]))
    rng = np.random.default_rng(11)
    dq = np.where(np.isin(idx, held[:10]), -tb.size[idx], rng.normal(0.0, 0.5, len(idx)))  # ten close
    for m in (a, b):
        m.tb.size[vault] = 3.0  # a vault unwinding a taken-over position: forced volume
        if under_water:
            m.tb.cash[held[:3]] = -1e7
    assert (a.market.forced_volume == 0).all()
    a.market.execute(idx, dq, forced=a.tb.cls[idx] == VAULT)
    debt = kd.any_flat_in_debt(idx, a.tb.size, a.tb.cash)
    if debt:
        a.engine.cover_negative(idx)
    a.engine.refresh(idx)
    assert debt == under_water and (a.market.forced_volume > 0).any()
    debt_b = b._execute_voluntary(idx, dq)
    assert debt_b == debt
    if debt_b:
        b.engine.cover_negative(idx)
        b.engine.refresh(idx)
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert same(sa[k], sb[k]), k


def test_close_step_is_the_numpy_statements():
    """kernels_decide.close_step: the premium sums and counts, the index and the book prices
    recorded as MarketModel.step's NumPy statements did (Market.index, Market.prices)."""
    from policylab.engine.market import Market

    rng = np.random.default_rng(9)
    k, steps = 5, 4
    lm, basis = np.array([11.2, -0.003]), rng.normal(0.0, 0.01, k)
    premium_sum, premium_n = rng.normal(size=k), np.full(k, 3.0)
    index_path, price_path = np.zeros(steps + 1), np.zeros((steps + 1, k))
    expect_sum = premium_sum + basis
    venues, residents = np.full((8, steps, k), np.nan), np.full((2, steps, 3, k), np.nan)
    series = (venues, residents, np.zeros((3, 4, k)), *(rng.random(k) for _ in range(7)), rng.random((3, k)))
    kd.close_step(2, np.exp(basis),
                  kernels.bundle((lm, basis, premium_sum, premium_n, index_path, price_path, *series)))
    recorded = (np.full((8, steps, k), np.nan), np.full((2, steps, 3, k), np.nan))
    kernels_passes.record(2, kernels.bundle((lm, basis, premium_sum, premium_n, index_path, price_path, *recorded,
                                             *series[2:])))
    assert same(venues, recorded[0]) and same(residents, recorded[1]) and same(venues[0, 2], price_path[3])
    market = Market.__new__(Market)
    market.lm, market.vb = lm, type("VB", (), {"basis": basis})()
    assert same(premium_sum, expect_sum) and same(premium_n, np.full(k, 4.0))
    assert index_path[3] == market.index and same(price_path[3], market.prices())
    assert not index_path[[0, 1, 2, 4]].any() and not price_path[[0, 1, 2, 4]].any()


@njit
def _bundled(bundle):
    return bundle.items


def _held(items) -> list:
    """The items of argument tuples and bundles, those of nested bundles too."""
    out = []
    for a in items:
        out.extend(_held(_bundled(a)) if isinstance(a, kernels.Bundle) else [a])
    return out


def test_the_populations_kernel_arguments_stay_the_models_arrays():
    """The argument tuples and bundles the populations build once per run hold the model's own
    arrays, which a run updates in place and never reallocates, and the population's own stream."""
    m = MarketModel(load_scenario("october-2025"), seed=0, traders=500)
    for _ in range(30):
        m.step()
    live = [*vars(m.tb).values(), *vars(m.vb).values(), m.market.lm]
    for pop in m.populations:
        held = _held([*pop._accounts, *pop._reentry, pop._opens, pop._active_args, pop._open_args,
                      getattr(pop, "_decisions", None), getattr(pop, "_start_args", None)])
        arrays = [a for a in held if isinstance(a, np.ndarray) and a is not pop.rows]
        assert arrays and all(any(a is b for b in live) for a in arrays), pop.name
        streams = [a for a in held if isinstance(a, np.random.Generator)]
        assert len(streams) >= 2 and all(g is pop.stream for g in streams), pop.name


def _active_numpy(pop):
    """TraderPopulation.active as NumPy statements, drawing from the population's stream."""
    rows, p, rng = pop.rows, pop._activity, pop.stream
    n = len(rows)
    surge = 1.0
    if pop.spec.activity_vol_elasticity > 0:
        surge += pop.spec.activity_vol_elasticity * max(pop.model.vol_ratio(pop.ACTIVITY_VOL_WINDOW) - 1.0, 0.0)
    k = rng.binomial(n, min(1.0, p * surge)) if n else 0
    idx = rows[np.unique(rng.integers(0, n, k))] if k else rows[:0]
    if surge > 1.0 and len(idx):
        minus_chance = np.expm1(np.array((-min(1.0, p), -min(1.0, p * surge))))
        u = rng.random(len(idx))
        idx = idx[(pop.model.tb.size[idx] == 0) | (u < -minus_chance[0] / -minus_chance[1])]
    return idx


def _retail_decide_numpy(pop):
    """RetailSpeculators.decide with its draws from NumPy's calls (before the kernels drew them)."""
    m, rng = pop.model, pop.stream
    idx = _active_numpy(pop)
    if len(idx) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    r15 = m.index_return(15)
    u = rng.random(len(idx))
    close_prob = min(1.0, pop.CLOSE_PROB + pop.spec.risk_off_close * m.risk_off)
    dq, cand, x, u_cand = kd.retail_decisions(idx, u, r15, close_prob, pop.now_s(), float(pop.spec.panic_move),
                                              m.tb.size, m.tb.stop, m.tb.cash, *pop._reentry)
    flat = kd.chosen(cand, u_cand, np.expm1(x), pop.caution(), pop.OPEN_PROB)
    u_side = rng.random(len(flat))
    growth = np.exp(m.vb.basis)
    if abs(r15) > pop.spec.dip_move:
        return kd.opens(idx, dq, flat, u_side, rng.random(len(flat)), r15, growth, pop._opens)
    return kd.opens(idx, dq, flat, u_side, np.zeros(0), 0.0, growth, pop._opens)


def _professional_decide_numpy(pop):
    """Professionals.decide with its draws from NumPy's calls (before the kernels drew them)."""
    idx = _active_numpy(pop)
    if len(idx) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    rng = pop.stream
    growth = np.exp(pop.model.vb.basis)
    caution = pop.caution()
    dq, cand, x = kd.professional_decisions(idx, growth, caution, pop.now_s(), pop._decisions)
    flat = kd.chosen(cand, rng.random(len(cand)), np.expm1(x), caution, 1.0)
    return kd.opens(idx, dq, flat, rng.random(len(flat)), np.zeros(0), 0.0, growth, pop._opens)


def test_draw_active_is_numpys():
    """kernels_decide.draw_active takes NumPy's draws (binomial, integers, uniforms) value for
    value, in order, and leaves the stream where they did: with and without thinning, for
    empty, small and large populations and chances from 0 to 1."""
    size = np.where(np.random.default_rng(0).random(50_000) < 0.5, 0.0, 1.0)
    gen = np.random.default_rng(1)
    for _ in range(300):
        n = int(gen.choice([0, 1, 3, 700, 50_000]))
        rows = np.sort(gen.choice(50_000, n, replace=False)).astype(np.int64)
        chance, surged, keep = float(gen.choice([0.0, 1e-3, 0.05, 0.6, 1.0])), bool(gen.random() < 0.5), gen.random()
        seed = int(gen.integers(0, 2**32))
        ours, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
        k = theirs.binomial(n, chance) if n else 0
        want = rows[np.unique(theirs.integers(0, n, k))] if k else rows[:0]
        if surged and len(want):
            want = want[(size[want] == 0) | (theirs.random(len(want)) < keep)]
        assert same(kd.draw_active(ours, rows, size, chance, surged, keep), want)
        assert ours.random() == theirs.random()


@pytest.mark.parametrize("elasticity, dip_move", [(0.0, None), (3.0, 0.0)])
def test_population_decisions_draw_as_numpy_did(elasticity, dip_move):
    """A run whose retail and professional decisions draw from NumPy's calls (the statements
    before the kernels drew them, kept here as the oracle) ends in the same state, with the
    same streams, as the model's: without a volatility elasticity of activity, and with one
    (thinning) and retail following or fading every move (``dip_move`` 0)."""
    sc = load_scenario("october-2025")
    for c in ("retail", "professional"):
        sc.classes[c].activity_vol_elasticity = elasticity
    if dip_move is not None:
        sc.classes["retail"].dip_move = dip_move
    a, b = (MarketModel(sc, seed=3, traders=3000) for _ in range(2))
    for pop in b.populations:
        if pop.name == "retail":
            pop.decide = lambda pop=pop: _retail_decide_numpy(pop)
        elif pop.name == "professional":
            pop.decide = lambda pop=pop: _professional_decide_numpy(pop)
    for _ in range(300):
        a.step()
        b.step()
    for name, arr in vars(a.tb).items():
        if isinstance(arr, np.ndarray):
            assert same(arr, getattr(b.tb, name)), name
    assert [p.stream.random() for p in a.populations] == [p.stream.random() for p in b.populations]

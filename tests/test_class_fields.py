"""Trader-class behaviour: per-venue leverage medians, volatility-driven activity, sizing on margin value."""

import copy

import numpy as np
import pytest

from policylab.populations import draw as population
from policylab.errors import InputError
from policylab.model import MarketModel
from policylab.inputs.scenario import load_scenario


def test_venue_leverage_median_applies_only_on_its_venue(short_scenario):
    base = population.build(short_scenario, seed=3)
    sc = copy.deepcopy(short_scenario)
    sc.classes["retail"].venue_leverage_median = {"dex": 30.0}
    tb0, vb, rows = base
    tb1, _, _ = population.build(sc, seed=3)
    retail = rows["retail"]
    on_dex = retail[tb0.venue[retail] == vb.names.index("dex")]
    off_dex = retail[tb0.venue[retail] != vb.names.index("dex")]
    assert np.array_equal(tb0.venue, tb1.venue)
    assert np.array_equal(tb0.leverage[off_dex], tb1.leverage[off_dex])  # same draws elsewhere
    assert np.median(tb1.leverage[on_dex]) > np.median(tb0.leverage[on_dex])


def test_venue_leverage_median_rejects_unknown_venue(tmp_path, short_scenario_path):
    text = short_scenario_path.read_text().replace(
        "      leverage_median: 10", "      leverage_median: 10\n      venue_leverage_median: {nowhere: 20}", 1)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match="venue_leverage_median.nowhere"):
        load_scenario(str(path))


def test_new_trades_rise_with_volatility_while_holders_keep_their_rate(short_scenario):
    sc = copy.deepcopy(short_scenario)
    sc.classes["retail"].activity_vol_elasticity = 3.0  # x13 at five times normal volatility
    counts = {}
    for name, scenario in (("calm", short_scenario), ("busy", sc)):
        m = MarketModel(scenario, seed=2)
        m.vol_ratio = lambda minutes: 5.0  # a market moving five times its normal volatility
        m.tb.size[m.rows["retail"][::2]] = 0.0  # half the accounts flat
        pop = next(p for p in m.populations if p.spec is m.scenario.classes["retail"])
        drawn = [pop.active() for _ in range(200)]
        flat = np.mean([(m.tb.size[a] == 0).sum() for a in drawn])
        counts[name] = (flat, np.mean([len(a) for a in drawn]) - flat)
    (flat_calm, held_calm), (flat_busy, held_busy) = counts["calm"], counts["busy"]
    assert flat_busy > 8 * flat_calm
    assert held_busy == pytest.approx(held_calm, rel=0.2)


def test_a_flat_account_sizes_new_positions_on_its_depegged_margin_value(short_scenario):
    m = MarketModel(short_scenario, seed=2)
    tb, vb = m.tb, m.vb
    pop = next(p for p in m.populations if p.spec is m.scenario.classes["retail"])
    cex = vb.names.index("cex")
    i = pop.rows[(tb.venue[pop.rows] == cex) & (tb.coin[pop.rows] > 0)][0]
    tb.size[i], tb.entry[i], tb.cash[i] = 0.0, 0.0, 2 * tb.coin[i]  # flat, half its cash in the stablecoin
    vb.coin_price[cex] = 0.6  # the stablecoin depegs
    margin_value = tb.cash[i] - tb.coin[i] * (1.0 - vb.coin_value[cex])
    lev = min(tb.leverage[i], m.leverage_cap(np.array([i]), np.array([margin_value * tb.leverage[i]]))[0])
    dq = pop.open_orders(np.array([i]), np.array([1.0]))[0]
    price = m.market.prices()[cex]
    assert dq * price == pytest.approx(min(margin_value * lev, tb.pos_limit[i] * tb.weight[i]), rel=1e-12)
    assert dq * price < tb.cash[i] * lev  # not the collateral at par


def test_categorical_is_the_cumulative_sum_statement():
    """population._categorical gives, row for row, the column that np.cumsum of the row's
    shares gives (zero-weight and NaN rows, one column, and shares summing to just under 1
    included)."""
    rng = np.random.default_rng(3)
    for cols in (1, 2, 9, 13):
        w = rng.random((5000, cols)) * (rng.random((5000, cols)) < 0.7)
        w[:50] = 0.0
        w[50, 0] = np.nan
        w[51:60] = 1e-300 * rng.random((9, cols))
        u = rng.random(5000)
        u[60:70] = 1.0 - 1e-16
        with np.errstate(invalid="ignore", divide="ignore"):
            cum = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
            expect = np.minimum((cum < u[:, None]).sum(axis=1), cols - 1)
            got = population._categorical(w, u)
        assert got.dtype == expect.dtype and np.array_equal(got, expect)


def test_side_totals_are_the_masked_sums():
    """population.side_totals gives, per venue and side, ``notional[mask].sum()`` bit for bit
    (NumPy's pairwise order over the rows in row order; empty groups 0)."""
    rng = np.random.default_rng(4)
    k, n = 7, 30000
    venue = rng.integers(0, k - 1, n).astype(np.int16)  # venue k - 1 has no rows
    side = np.where(rng.random(n) < 0.6, 1.0, -1.0)
    notional = rng.lognormal(0.0, 2.0, n) * 1e6
    rows = rng.random(n) < 0.8
    got = population.side_totals(venue, side, notional, rows, k)
    for v in range(k):
        for j, sd in enumerate((1.0, -1.0)):
            assert got[v, j] == notional[rows & (venue == v) & (side == sd)].sum()
    assert np.all(got[k - 1] == 0.0)

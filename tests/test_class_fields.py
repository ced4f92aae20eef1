"""Per-venue leverage medians and volatility-driven activity of trader classes."""

import copy

import numpy as np
import pytest

from policylab import population
from policylab.errors import InputError
from policylab.model import MarketModel
from policylab.scenario import load_scenario


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


def test_activity_rises_with_volatility(short_scenario):
    sc = copy.deepcopy(short_scenario)
    sc.classes["retail"].activity_vol_elasticity = 3.0
    calm_model = MarketModel(short_scenario, seed=2)
    busy_model = MarketModel(sc, seed=2)
    for m in (calm_model, busy_model):
        m.vol_ratio = lambda minutes: 5.0  # a market moving five times its normal volatility
    calm_pop = next(p for p in calm_model.populations if p.spec is calm_model.scenario.classes["retail"])
    busy_pop = next(p for p in busy_model.populations if p.spec is busy_model.scenario.classes["retail"])
    n_calm = np.mean([len(calm_pop.active()) for _ in range(50)])
    n_busy = np.mean([len(busy_pop.active()) for _ in range(50)])
    assert n_busy > 5 * n_calm

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

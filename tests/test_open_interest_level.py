"""Open interest as a level (MODEL.md section 8: BTC futures open interest ended 10 October
2025 about 22% below its start and stayed there), distinct from liquidations over open interest."""

import dataclasses

import numpy as np
import pytest

from policylab.experiments.run import run
from policylab.inputs.scenario import load_scenario


def level(result, minute):
    ts = result.timeseries
    deriv = [v.name for v in result.scenario.venues if not v.is_spot]
    return ts[(ts["minute"] == minute) & ts["venue"].isin(deriv)]["open_interest_usd"].sum()


@pytest.mark.parametrize("scenario, minutes", [("october-2025", 1440), ("stylized-month", 2880)])
def test_open_interest_change_is_the_level_at_the_end_and_after_24_hours(scenario, minutes):
    sc = dataclasses.replace(load_scenario(scenario), duration_minutes=minutes)
    result = run(sc, seed=0, traders=600)
    row = result.metrics.iloc[0]
    start = level(result, 0)
    assert row["open_interest_start_usd"] == pytest.approx(start, rel=1e-12)
    assert row["open_interest_change"] == pytest.approx(level(result, minutes) / start - 1, rel=1e-9, abs=1e-12)
    assert row["open_interest_change_24h"] == pytest.approx(level(result, 1440) / start - 1, rel=1e-9, abs=1e-12)
    if minutes > 1440:
        assert row["open_interest_change_24h"] != row["open_interest_change"]
    # the level is not liquidations over open interest
    assert not np.isclose(row["open_interest_change"], -row["liquidated_share_of_oi"])

"""Metric definitions, the three result tables, and writing them to disk."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from policylab import metrics
from policylab.experiments import run as results
from policylab.names import CLASSES
from policylab.names import EVENT_KINDS
from policylab.inputs.scenario import load_scenario

@pytest.fixture(scope="module")
def scenario(flash_path):
    return load_scenario(str(flash_path))


@pytest.fixture(scope="module")
def result(scenario):
    return results.run(scenario, seed=3, traders=2000)


# ------------------------------------------------------------------ definitions
def test_every_metric_column_is_defined_with_unit_and_direction(scenario, result):
    defs = metrics.definitions(scenario)
    assert list(result.metrics.columns) == ["scenario", "seed", "traders", *defs]
    for name, m in defs.items():
        assert m.name == name and m.unit and m.description
        assert m.direction in metrics.DIRECTIONS
        assert result.metrics[name].dtype == "float64"
    catalogue = metrics.catalogue()
    venues = [v.name for v in scenario.venues]
    for name in defs:
        stem, _, member = name.partition(".venue.")
        assert name in catalogue or (member in venues and f"{stem}.venue.<venue>" in catalogue)
    assert set(catalogue) <= set(results.COLUMNS["metrics"])


def test_metrics_cover_model_md_section_7(scenario):
    names = set(metrics.definitions(scenario))
    for required in ("liquidated_usd", "liquidated_usd.side.long", "liquidated_usd.class.retail",
                     "liquidated_usd.venue.dex", "liquidated_accounts", "index_drawdown", "drawdown.venue.cex",
                     "index_low_vs_close", "realised_volatility", "cascade_rounds_max", "cascade_rounds_total",
                     "amplification", "fund_drawdown_usd", "bad_debt_usd", "adl_usd", "pnl_usd.class.retail",
                     "retail_loss_usd", "open_interest_change", "oi_share.venue.cex", "volume_share.venue.cex",
                     "offshore_oi_share", "offshore_volume_share", "volume_usd", "depth_mean_ratio",
                     "depth_worst_ratio", "accounts_wiped_out", "recovery_half_minutes", "liquidated_share_of_oi",
                     "long_share_liquidated"):
        assert required in names, required


def test_direction_is_checked():
    with pytest.raises(ValueError, match="direction"):
        metrics.Metric("x", "USD", "a metric", "up")


# ------------------------------------------------------------------ values
def test_liquidation_metrics_add_up(scenario, result):
    m = result.metrics.iloc[0]
    ev = result.events
    total = m["liquidated_usd"]
    assert total > 0  # the crash liquidates: the checks below are not vacuous
    liq = ev[ev["kind"].isin(metrics.LIQUIDATION_KINDS)]
    assert math.isclose(liq["notional_usd"].sum(), total, rel_tol=1e-9)
    assert math.isclose(result.timeseries["liquidated_usd"].sum(), total, rel_tol=1e-9)
    derivs = [v.name for v in scenario.venues if not v.is_spot]
    assert math.isclose(sum(m[f"liquidated_usd.venue.{v}"] for v in derivs), total, rel_tol=1e-9)
    assert math.isclose(m["liquidated_usd.side.long"] + m["liquidated_usd.side.short"], total, rel_tol=1e-9)
    assert math.isclose(sum(m[f"liquidated_usd.class.{c}"] for c in metrics.TRADER_CLASSES), total, rel_tol=1e-9)
    assert math.isclose(m["long_share_liquidated"], m["liquidated_usd.side.long"] / total, rel_tol=1e-9)
    assert math.isclose(m["liquidated_share_of_oi"], total / m["open_interest_start_usd"], rel_tol=1e-9)
    accounts = liq.drop_duplicates("account")["accounts"].sum()
    assert math.isclose(m["liquidated_accounts"], accounts, rel_tol=1e-9)
    assert m["forced_closed_usd"] >= total
    assert math.isclose(m["stopped_usd"], ev.loc[ev["kind"] == "stop", "notional_usd"].sum(), rel_tol=1e-9)


def test_price_metrics_match_the_timeseries(scenario, result):
    m = result.metrics.iloc[0]
    ts = result.timeseries
    index = ts.drop_duplicates("step")["index_usd"].to_numpy()
    running_peak = np.maximum.accumulate(index)
    assert math.isclose(m["index_drawdown"], np.max(1 - index / running_peak), rel_tol=1e-12)
    assert m["index_low_usd"] == index.min() and m["index_close_usd"] == index[-1]
    assert math.isclose(m["index_low_vs_close"], index.min() / index[-1] - 1, rel_tol=1e-12)
    trough = int(np.argmax(1 - index / running_peak))
    amp = ts.drop_duplicates("step")["amplification"].to_numpy()
    assert math.isclose(m["amplification"], amp[trough], rel_tol=1e-12)
    assert m["amplification"] > 0
    rounds = ts.drop_duplicates("step")["rounds"]
    assert m["cascade_rounds_max"] == rounds.max() and m["cascade_rounds_total"] == rounds.sum()
    peak = int(np.argmax(index[: trough + 1]))
    half = index[trough] + 0.5 * (index[peak] - index[trough])
    recovered = np.flatnonzero(index[trough:] >= half)
    if len(recovered):
        assert m["recovery_half_minutes"] == recovered[0] * scenario.step_minutes
    else:
        assert math.isnan(m["recovery_half_minutes"])


def test_market_structure_metrics(scenario, result):
    m = result.metrics.iloc[0]
    ts = result.timeseries
    derivs = [v.name for v in scenario.venues if not v.is_spot]
    assert math.isclose(sum(m[f"oi_share.venue.{v}"] for v in derivs), 1.0, rel_tol=1e-9)
    assert math.isclose(sum(m[f"volume_share.venue.{v}"] for v in derivs), 1.0, rel_tol=1e-9)
    offshore = [v.name for v in scenario.venues if v.offshore and not v.is_spot]
    after = ts[ts["step"] > 0]  # time-weighted over the run: open interest at the end of every step
    oi = after.loc[after["venue"].isin(derivs), "open_interest_usd"].sum()
    offshore_oi = after.loc[after["venue"].isin(offshore), "open_interest_usd"].sum()
    assert math.isclose(m["offshore_oi_share"], offshore_oi / oi, rel_tol=1e-9)
    assert m["offshore_oi_share"] != pytest.approx(sum(m[f"oi_share.venue.{v}"] for v in offshore))  # not the start
    assert math.isclose(m["volume_usd"], ts["volume_usd"].sum(), rel_tol=1e-9)
    start = ts[ts["step"] == 0].set_index("venue")
    end = ts[ts["step"] == ts["step"].max()].set_index("venue")
    assert math.isclose(m["open_interest_start_usd"], start.loc[derivs, "open_interest_usd"].sum(), rel_tol=1e-9)
    assert math.isclose(m["open_interest_end_usd"], end.loc[derivs, "open_interest_usd"].sum(), rel_tol=1e-9)
    depth = ts.pivot(index="step", columns="venue", values="depth_usd")
    worst = (depth.sum(axis=1) / depth.loc[0].sum()).iloc[1:].min()
    assert math.isclose(m["depth_worst_ratio"], worst, rel_tol=1e-9)
    assert 0 <= m["retail_losers_share"] <= 1 and m["retail_loss_usd"] >= -min(m["pnl_usd.class.retail"], 0)


# ------------------------------------------------------------------ tables
def test_timeseries_table(scenario, result):
    ts = result.timeseries
    k = len(scenario.venues)
    assert list(ts.columns) == list(results.COLUMNS["timeseries"])
    assert len(ts) == (scenario.steps + 1) * k
    assert ts["venue"].dtype == "str"
    assert list(ts["venue"].iloc[:k]) == [v.name for v in scenario.venues]
    first = ts[ts["step"] == 0]
    assert np.allclose(first["price_usd"], scenario.start_price) and (first["volume_usd"] == 0).all()
    assert (ts["minute"] == ts["step"] * scenario.step_minutes).all()
    assert np.allclose(ts["basis"], np.log(ts["price_usd"] / ts["index_usd"]))


def test_events_table(scenario, result):
    ev = result.events
    assert list(ev.columns) == list(results.COLUMNS["events"])
    assert len(ev) > 0
    for col in ("kind", "venue", "trader_class", "side"):
        assert ev[col].dtype == "str"
    assert set(ev["kind"]) <= set(EVENT_KINDS)
    assert set(ev["venue"]) <= {v.name for v in scenario.venues}
    assert set(ev["trader_class"]) <= set(CLASSES)
    assert ((ev["side"] == "long") == (ev["size_btc"] > 0)).all()
    assert np.allclose(ev["notional_usd"], ev["size_btc"].abs() * ev["price_usd"])
    assert ev["step"].between(1, scenario.steps).all()


def test_same_seed_same_results_other_seed_differs(scenario, result):
    again = results.run(scenario, seed=3, traders=2000)
    for name, table in result.tables().items():
        pd.testing.assert_frame_equal(table, again.tables()[name], check_exact=True)
    other = results.run(scenario, seed=4, traders=2000)
    assert not other.metrics.equals(result.metrics)


def test_progress_reports_every_step(scenario):
    calls = []
    results.run(scenario, seed=0, traders=200, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, scenario.steps) for i in range(1, scenario.steps + 1)]


def test_module_docstring_documents_every_column():
    for cols in results.COLUMNS.values():
        for name, (unit, desc) in cols.items():
            assert unit and desc
            assert f"``{name}``" in results.__doc__


# ------------------------------------------------------------------ writing
def test_write_round_trips(result, tmp_path):
    out = tmp_path / "run"
    written = result.write(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written) == sorted(
        [f"{t}.{ext}" for t in ("metrics", "timeseries", "events", "violations") for ext in ("parquet", "csv")]
        + ["metrics.json"])
    for name, table in {**result.tables(), "violations": result.violations}.items():
        parquet = pd.read_parquet(out / f"{name}.parquet")
        pd.testing.assert_frame_equal(parquet, table, check_exact=True)
        csv = pd.read_csv(out / f"{name}.csv", dtype=dict(table.dtypes))
        pd.testing.assert_frame_equal(csv, parquet, check_exact=True)
    record = json.loads((out / "metrics.json").read_text())
    assert record == result.record()
    row = result.metrics.iloc[0]
    for name, value in record.items():
        assert (value is None and math.isnan(row[name])) or value == row[name]


def test_failed_write_leaves_no_partial_files(result, tmp_path, monkeypatch):
    def broken(self, path, *args, **kwargs):
        open(path, "w").write("half")
        raise OSError("disk full")

    fresh = tmp_path / "fresh"
    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        result.write(fresh)
    assert not fresh.exists()
    monkeypatch.undo()

    kept = tmp_path / "kept"
    result.write(kept)
    before = {p.name: p.read_bytes() for p in kept.iterdir()}
    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        result.write(kept)
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == before

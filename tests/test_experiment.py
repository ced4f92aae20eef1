"""Comparisons: common random numbers, paired statistics, the results folder, backends,
failed runs, interruption and resume."""

import json
import math

import numpy as np
import pandas as pd
import pytest

import policylab
from policylab.experiments import stats
from policylab.experiments.backends import downsample
from policylab.errors import InputError
from policylab.experiments.compare import BASELINE, digest
from policylab.experiments.run import COLUMNS, run
from policylab.inputs.rulesets import load_rules
from policylab.inputs.scenario import load_scenario
from policylab.names import JURISDICTIONS

TRADERS = 400
FILES = ("runs.parquet", "failed.parquet", "timeseries.parquet", "events.parquet", "summary.csv", "metrics.json",
         "rule_sets.json", "scenario.json", "manifest.json")


@pytest.fixture(scope="module")
def scenario(flash_path):
    return load_scenario(str(flash_path))


@pytest.fixture(scope="module")
def comparison(scenario, tmp_path_factory):
    """ESMA 2018's repeal and the scenario as written against the baseline, 4 seeds, in this process."""
    out = tmp_path_factory.mktemp("cmp") / "esma"
    result = policylab.compare(["repeal-esma-2018", []], scenario, 4, traders=TRADERS, out=out, workers=1)
    return result, out


def read(out):
    return {f: pd.read_parquet(out / f) for f in FILES if f.endswith(".parquet")}


# ------------------------------------------------------------------ folder format
def test_folder_has_every_file_with_contract_columns(comparison, scenario):
    result, out = comparison
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    t = read(out)
    assert dict(t["runs.parquet"].dtypes.astype(str)) == {"rule_set": "str", "scenario": "str", "seed": "int64",
                                                         "metric": "str", "value": "float64", "unit": "str",
                                                         "invariant_violations": "int64", "invariant_detail": "str"}
    assert (t["runs.parquet"]["invariant_violations"] == 0).all() and (t["runs.parquet"]["invariant_detail"] == "").all()
    assert list(t["failed.parquet"].columns) == ["rule_set", "scenario", "seed", "error", "traceback"]
    assert t["failed.parquet"].empty
    by_jurisdiction = [f"{c}_{j}" for c in ("open_interest_usd", "volume_usd") for j in JURISDICTIONS]
    assert list(t["timeseries.parquet"].columns) == ["rule_set", "seed", "step", "minute", "venue", "price_usd",
                                                     "index_usd", "depth_usd", "open_interest_usd", "volume_usd",
                                                     "liquidated_usd", "forced_volume_usd", *by_jurisdiction]
    assert list(t["events.parquet"].columns) == ["rule_set", "seed", *COLUMNS["events"]]
    summary = pd.read_csv(out / "summary.csv")
    assert tuple(summary.columns) == (*stats.SUMMARY_COLUMNS, "flagged_runs")
    assert (summary["flagged_runs"] == 0).all()
    arms = [BASELINE, "repeal-esma-2018", "scenario-as-written"]
    assert list(dict.fromkeys(summary["rule_set"])) == arms
    assert list(dict.fromkeys(t["runs.parquet"]["rule_set"])) == arms
    assert sorted(set(t["runs.parquet"]["seed"])) == [0, 1, 2, 3]
    defs = json.loads((out / "metrics.json").read_text())
    assert list(defs) == list(result.definitions)
    assert all(set(d) == {"unit", "description", "direction"} for d in defs.values())
    rule_sets = json.loads((out / "rule_sets.json").read_text())
    assert list(rule_sets) == arms
    assert rule_sets["repeal-esma-2018"] == json.loads(json.dumps(load_rules("repeal-esma-2018").to_dict()))
    assert json.loads((out / "scenario.json").read_text())["name"] == scenario.name
    assert not list(out.glob(".*"))  # no temporary files, the staged runs removed


def test_manifest_records_configuration_and_timings(comparison):
    result, out = comparison
    m = json.loads((out / "manifest.json").read_text())
    for key in ("version", "git_revision", "config_hash", "command", "scenario", "baseline", "rule_sets", "seeds",
                "traders", "backend", "workers", "started", "finished", "wall_seconds", "run_seconds", "platform",
                "python", "failed_runs"):
        assert key in m
    assert (m["backend"], m["workers"], m["traders"], m["seeds"]) == ("in-process", 1, TRADERS, [0, 1, 2, 3])
    assert m["failed_runs"] == 0 and m["complete"] and len(m["run_seconds"]) == 12
    assert len(m["config_hash"]) == 64 and m["baseline"] == BASELINE


def test_config_hash_is_canonical():
    assert digest({"a": 1, "b": [1.5, float("inf")]}) == digest({"b": (1.5, float("inf")), "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


def test_timeseries_downsampled_to_five_minutes(comparison):
    result, _ = comparison
    ts = result.timeseries
    assert set(ts["minute"] % 5) == {0}
    assert ts.groupby(["rule_set", "seed", "venue"])["minute"].apply(lambda m: list(m) == sorted(m)).all()


def test_downsample_keeps_levels_and_sums_flows(scenario):
    full = run(scenario, seed=2, traders=TRADERS).timeseries
    small = downsample(full)
    assert set(small["minute"]) == set(range(0, scenario.duration_minutes + 1, 5))
    for col in ("volume_usd", "liquidated_usd", "forced_volume_usd", *(f"volume_usd_{j}" for j in JURISDICTIONS)):
        assert small[col].sum() == pytest.approx(full[col].sum(), rel=1e-12)
    at = full[full["minute"] == 35].set_index("venue")
    got = small[small["minute"] == 35].set_index("venue")
    pd.testing.assert_series_equal(got["price_usd"], at["price_usd"])
    window = full[(full["minute"] > 30) & (full["minute"] <= 35)].groupby("venue")["volume_usd"].sum()
    pd.testing.assert_series_equal(got["volume_usd"], window.reindex(got.index), check_names=False)



def test_downsample_is_pandas_groupby_by_window_and_venue(scenario):
    """Bit for bit the statement grouping by window and venue name (the window's last step;
    its flows summed by pandas in row order), on the flash crash's real series."""
    from policylab.experiments.backends import FLOWS, TIMESERIES_COLUMNS

    full = run(scenario, seed=1, traders=TRADERS).timeseries
    window = (full["minute"] + 4) // 5
    keep = full.groupby(window)["step"].transform("max") == full["step"]
    expect = full.loc[keep, list(TIMESERIES_COLUMNS)].copy()
    expect[list(FLOWS)] = full.groupby([window, full["venue"]])[list(FLOWS)].transform("sum").loc[keep]
    pd.testing.assert_frame_equal(downsample(full), expect.reset_index(drop=True), check_exact=True)

# ------------------------------------------------------------------ common random numbers and statistics
def test_runs_equal_single_runs_with_the_same_seed(comparison, scenario):
    result, _ = comparison
    w = result.wide()
    single = run(scenario, seed=3, traders=TRADERS, rules=[load_rules("repeal-esma-2018")]).metrics
    row = w[(w["rule_set"] == "repeal-esma-2018") & (w["seed"] == 3)].iloc[0]
    for name in result.definitions:
        assert row[name] == single[name].iloc[0] or (math.isnan(row[name]) and math.isnan(single[name].iloc[0]))


def test_no_change_rule_set_gives_zero_differences(comparison):
    """Repealing rules that bind no venue of the scenario (the flash crash has no EU broker)
    changes nothing: identical runs seed by seed, and the manifest marks the arm a repeal."""
    result, _ = comparison
    assert result.manifest["repeals"] == {"repeal-esma-2018": ["esma-2018-leverage", "esma-2018-closeout",
                                                               "esma-2018-negative-balance", "esma-2018-risk-warning"]}
    assert result.rule_sets["repeal-esma-2018"]["repeal"] is True and result.rule_sets[BASELINE]["repeal"] is False
    s = result.summary[result.summary["rule_set"] == "repeal-esma-2018"]
    defined = s[s["n"] > 0]
    assert (defined["diff_mean"].fillna(0) == 0).all()
    assert set(defined["improvement"]) <= {"no difference", "n/a"}
    assert set(defined.loc[defined["direction"] == "neutral", "improvement"]) == {"n/a"}


def test_differences_are_paired_bootstrap_over_common_seeds(comparison):
    result, _ = comparison
    w = result.wide().set_index(["rule_set", "seed"])
    s = result.summary.set_index(["rule_set", "metric"])
    d = (w.loc["repeal-esma-2018", "liquidated_usd"] - w.loc[BASELINE, "liquidated_usd"]).to_numpy()
    row = s.loc[("repeal-esma-2018", "liquidated_usd")]
    assert row["diff_mean"] == pytest.approx(d.mean())
    assert (row["diff_lo"], row["diff_hi"]) == stats.mean_interval(d)
    assert row["baseline"] == pytest.approx(w.loc[BASELINE, "liquidated_usd"].mean())
    assert row["improvement"] == stats.improvement("lower_is_better", row["diff_lo"], row["diff_hi"])


def test_verdicts_follow_the_metric_direction():
    assert stats.improvement("lower_is_better", -3, -1) == "better"
    assert stats.improvement("lower_is_better", 1, 3) == "worse"
    assert stats.improvement("higher_is_better", 1, 3) == "better"
    assert stats.improvement("higher_is_better", -1, 3) == "no difference"
    assert stats.improvement("neutral", 1, 3) == "n/a"
    assert stats.improvement("lower_is_better", float("nan"), float("nan")) == "n/a"


def test_mean_interval_is_deterministic_and_covers_the_mean():
    v = np.random.default_rng(0).normal(5, 1, 30)
    lo, hi = stats.mean_interval(v)
    assert lo < v.mean() < hi and (lo, hi) == stats.mean_interval(v.copy())
    assert math.isnan(stats.mean_interval(np.array([1.0]))[0])


# ------------------------------------------------------------------ backends
def test_local_processes_give_identical_tables(comparison, scenario):
    result, _ = comparison
    other = policylab.compare(["repeal-esma-2018", []], scenario, 4, traders=TRADERS, workers=2)
    assert other.manifest["backend"] == "processes" and other.manifest["workers"] == 2
    for name in ("runs", "failed", "timeseries", "events", "summary"):
        pd.testing.assert_frame_equal(getattr(other, name), getattr(result, name), check_exact=True)


# ------------------------------------------------------------------ failed runs
def test_failed_run_is_recorded_and_the_rest_continue(scenario, buggy, tmp_path):
    """The module is loaded from a local file: it must reach worker processes too."""
    out = tmp_path / "out"
    result = policylab.compare([buggy], scenario, 3, traders=TRADERS, out=out, workers=2, allow_local_modules=True)
    failed = pd.read_parquet(out / "failed.parquet")
    assert failed[["rule_set", "seed"]].values.tolist() == [["buggy", 1]]
    assert failed["error"].iloc[0] == "ZeroDivisionError: bug in a third-party module"
    assert "in on_step" in failed["traceback"].iloc[0] and "Traceback" in failed["traceback"].iloc[0]
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(set(zip(runs["rule_set"], runs["seed"]))) == sorted(
        [(BASELINE, s) for s in range(3)] + [("buggy", 0), ("buggy", 2)])
    assert result.manifest["failed_runs"] == 1 and result.manifest["complete"]
    assert (out / ".runs").is_dir()  # kept: --resume retries the failed run


def test_fail_fast_stops_at_the_first_failure(scenario, buggy):
    result = policylab.compare([], scenario, [1, 0, 2, 3], baseline=buggy, traders=TRADERS, workers=1,
                               fail_fast=True, allow_local_modules=True)
    assert result.manifest["stopped_at_failure"] and not result.manifest["complete"]
    assert result.manifest["finished_runs"] == 1 and len(result.failed) == 1


# ------------------------------------------------------------------ interruption and resume
class Interrupt:
    """A progress callback that presses Ctrl-C after ``after`` runs."""

    def __init__(self, after):
        self.after = after

    def __call__(self, done, total):
        if done == self.after:
            raise KeyboardInterrupt


def test_interrupted_experiment_keeps_finished_runs_and_resumes(comparison, scenario, tmp_path):
    full, _ = comparison
    out = tmp_path / "out"
    args = (["repeal-esma-2018", []], scenario, 4)
    part = policylab.compare(*args, traders=TRADERS, out=out, workers=1, progress=Interrupt(5))
    m = json.loads((out / "manifest.json").read_text())
    assert m["interrupted"] and not m["complete"] and m["finished_runs"] == 5
    assert len(pd.read_parquet(out / "runs.parquet").groupby(["rule_set", "seed"])) == 5
    assert len(list((out / ".runs").glob("*.pkl"))) == 5
    assert part.manifest == m
    with pytest.raises(InputError, match="interrupted experiment"):
        policylab.compare(*args, traders=TRADERS, out=out, workers=1)
    with pytest.raises(InputError, match="different"):
        policylab.compare(*args, traders=TRADERS + 100, out=out, workers=1, resume=True)
    done = []
    resumed = policylab.compare(*args, traders=TRADERS, out=out, workers=1, resume=True,
                                progress=lambda d, t: done.append((d, t)))
    assert done[-1] == (7, 7) and resumed.manifest["resumed_runs"] == 5 and resumed.manifest["complete"]
    for name in ("runs", "timeseries", "events", "summary"):
        pd.testing.assert_frame_equal(getattr(resumed, name), getattr(full, name), check_exact=True)
    assert not (out / ".runs").exists()


def test_resume_needs_an_unfinished_experiment(scenario, tmp_path):
    with pytest.raises(InputError, match="--resume: .* holds no unfinished experiment"):
        policylab.compare([], scenario, 2, traders=TRADERS, out=tmp_path, resume=True)


def test_bad_input_is_rejected_before_running(scenario, tmp_path):
    with pytest.raises(InputError, match="--seeds: got 0"):
        policylab.compare([], scenario, 0)
    with pytest.raises(InputError, match="--traders: got 5"):
        policylab.compare([], scenario, 2, traders=5, out=tmp_path / "x")
    with pytest.raises(InputError, match="unknown rule set 'esma'"):
        policylab.compare(["esma"], scenario, 2)
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="not a folder"):
        policylab.compare([], scenario, 2, out=tmp_path / "file" / "out")
    assert not (tmp_path / "x").exists()


def test_tagged_tables_equal_the_concatenation_of_the_runs_tables():
    """The experiment's timeseries and events (compare._tagged, built column by column) are
    the runs' tables concatenated with rule_set and seed in front: same values, dtypes, order."""
    from policylab.experiments.compare import _tagged

    def frame(n, shift):
        return pd.DataFrame({"step": pd.Series(np.arange(n) + shift, dtype="int64"),
                             "kind": pd.Series(["liquidation", "stop", "adl"] * n, dtype="str")[:n],
                             "size_btc": pd.Series(np.linspace(-1, 1, n) * shift, dtype="float64"),
                             "round": pd.Series(np.arange(n) % 3, dtype="int64"),
                             "venue": pd.Series(["a", "b"] * n, dtype="str")[:n].reset_index(drop=True)})

    frames = [("arm-a", 0, frame(4, 1)), ("arm-b", 7, frame(0, 2)), ("arm-a", 3, frame(5, 3))]
    parts = []
    for label, seed, df in frames:
        df = df.copy()
        df.insert(0, "seed", np.int64(seed))
        df.insert(0, "rule_set", label)
        parts.append(df)
    expected = pd.concat(parts, ignore_index=True).astype({"rule_set": "str", "seed": "int64"})
    got = _tagged(frames, [])
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.dtypes) == list(expected.dtypes) and list(got.columns) == list(expected.columns)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_summary_statistics_equal_those_of_each_metric_alone():
    """stats.summarise computes an arm's metrics at once where no value is dropped; every
    figure equals, bit for bit, the same statistic of the metric's own non-NaN values."""
    from policylab.metrics import Metric

    rng = np.random.default_rng(3)
    defs = {f"m{i}": Metric(f"m{i}", "USD", "test metric", "lower_is_better") for i in range(5)}
    rows = []
    for arm in ("base", "a", "b"):
        for seed in range(12):
            v = rng.standard_normal(5) * 10.0 ** rng.integers(-3, 9, 5)
            v[1] = np.nan if seed % 4 == 0 else v[1]  # some runs without a value
            v[2] = np.inf if (arm, seed) == ("a", 5) else v[2]  # a difference inf - finite
            v[4] = np.nan  # never defined
            rows.append({"rule_set": arm, "seed": seed, **{f"m{i}": x for i, x in enumerate(v)}})
    wide = pd.DataFrame(rows)
    got = stats.summarise(wide, ["base", "a", "b"], "base", defs).set_index(["rule_set", "metric"])
    base = wide[wide["rule_set"] == "base"].set_index("seed")
    for arm in ("base", "a", "b"):
        own = wide[wide["rule_set"] == arm].set_index("seed")
        for name in defs:
            x = own[name].to_numpy()
            v = x[~np.isnan(x)]
            a, b = own[name].to_numpy(), base[name].to_numpy()
            pair = ~np.isnan(a) & ~np.isnan(b)
            d = a[pair] - b[pair]
            lo, hi = stats.mean_interval(d) if arm != "base" else (np.nan, np.nan)
            expected = [len(v)] + [f(v) if len(v) else np.nan for f in (
                np.mean, np.median, lambda y: np.percentile(y, 5), lambda y: np.percentile(y, 95))] + [
                b[pair].mean() if pair.any() else np.nan, d.mean() if pair.any() else np.nan, lo, hi]
            row = got.loc[(arm, name), ["n", "mean", "median", "p05", "p95", "baseline", "diff_mean", "diff_lo",
                                        "diff_hi"]].to_numpy(dtype=float)
            assert np.array_equal(row, np.array(expected, dtype=float), equal_nan=True), (arm, name)

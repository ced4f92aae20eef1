"""Calibration targets: evaluation over seeds, and the brief's credibility appendix."""

import numpy as np
import pandas as pd
import pytest

from policylab.validation import calibration, record
from policylab.brief import render as report
from policylab.brief import sections
from policylab.experiments.compare import compare


def test_targets_met_when_the_median_lies_in_range():
    t = calibration.Target("dd", "drawdown", "fraction", 0.10, 0.18, "test", lambda m: m["index_drawdown"])
    runs = pd.DataFrame({"index_drawdown": [0.05, 0.12, 0.30]})  # median 0.12: in range
    assert t.met(float(np.median(runs["index_drawdown"])))
    assert not t.met(0.19) and not t.met(float("nan"))
    assert calibration.TARGETS["calm"][0].range_text() == "$0.05B to $0.5B"
    minutes = calibration.Target("m", "minutes", "minutes", None, 60, "test", lambda m: 0.0)
    assert minutes.range_text() == "<= 60"  # whole numbers keep their zeros


def test_every_target_has_a_source_and_reads_real_metrics():
    from policylab.metrics import definitions
    from policylab.inputs.scenario import load_scenario
    for scenario, targets in calibration.TARGETS.items():
        names = set(definitions(load_scenario(scenario)))
        row = pd.Series({n: 0.0 for n in names})
        for t in targets:
            assert t.source and t.unit and (t.lo is not None or t.hi is not None)
            assert np.isfinite(t.value(row)), (scenario, t.name)  # reads only metrics the scenario has


@pytest.fixture(scope="module")
def october(tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "october"
    compare(["repeal-japan-2020"], "october-2025", seeds=2, traders=1500, workers=1, out=out)
    return out


def test_brief_carries_the_october_calibration_check(october):
    res = report.load(october)
    rows = sections.calibration_check(res)
    assert [r["target"] for r in rows] == [t.name for t in calibration.TARGETS["october-2025"]]
    for r, t in zip(rows, calibration.TARGETS["october-2025"]):
        assert r["met"] == t.met(r["median"]) and r["band_lo"] <= r["median"] <= r["band_hi"]
    html = report.render_html(report.context(res))
    assert "how well the model reproduces past events" in html
    assert "Every historical scenario (the validation record shipped with this version)" in html
    for v in record.summary(record.read()):
        assert f"<th>{v['scenario']}</th>" in html
    cover = sections.cover(res)["validation"]
    others = [v for v in record.summary(record.read()) if v["scenario"] != "october-2025" and v["of"]]
    assert (f"{len(others)} other past events meet {sum(v['met'] for v in others)} of {sum(v['of'] for v in others)} "
            f"targets of published magnitude (appendix)") in cover
    assert f"{sum(r['met'] for r in rows)} of {len(rows)} targets are met" in html


def test_no_calibration_appendix_without_the_status_quo_baseline(october):
    res = report.load(october)
    res.manifest["baseline"] = "repeal-japan-2020"
    assert sections.calibration_check(res) == []


def test_the_shipped_validation_record_covers_every_scenario_with_targets():
    """policylab/validation/record.csv (the brief's appendix) has a block for every
    scenario with calibration targets, each block's targets the current ones."""
    rec = record.read()
    assert rec is not None and list(rec.columns) == list(record.COLUMNS)
    for scenario, targets in calibration.TARGETS.items():
        if scenario == "calm":  # checked beside every scenario
            continue
        rows = rec[(rec["validated_with"] == scenario) & (rec["scenario"] == scenario)]
        assert list(rows["target"]) == [t.name for t in targets], scenario
    assert list(rec.loc[rec["scenario"] == "calm", "target"].unique()) == [t.name for t in calibration.TARGETS["calm"]]


def test_a_record_replaces_the_rows_of_the_scenario_it_validated():
    targets = pd.DataFrame({"scenario": ["a", "calm"], "target": ["t1", "c1"], "description": ["d", "c"],
                            "range": ["1 to 2", "<= 1"], "median": [1.5, 2.0], "band_lo": [1.0, 1.0],
                            "band_hi": [2.0, 3.0], "met": [True, False]})
    rec = record.updated(None, targets, "a", 5, 20_000)
    rec = record.updated(rec, targets.assign(scenario=["b", "calm"]), "b", 10, 40_000)
    again = record.updated(rec, targets.assign(met=[False, False]), "a", 3, 1_000)
    assert list(again["validated_with"]) == ["b", "b", "a", "a"] and not again["met"].iloc[2:].any()
    (a, b) = sorted(record.summary(again), key=lambda v: v["scenario"])
    assert (a["met"], a["of"], a["calm_met"], a["calm_of"], a["runs"]) == (0, 1, 0, 1, "3 seeds of 1,000 traders")
    assert (b["met"], b["of"]) == (1, 1) and b["missed"] == ["c (target <= 1)"]


def test_validate_refuses_a_record_that_is_not_one_before_running(tmp_path):
    from click.testing import CliRunner

    from policylab.cli import cli

    bad = tmp_path / "record.csv"
    bad.write_text("scenario,target\ncalm,x\n")
    res = CliRunner().invoke(cli, ["validate", "--scenario", "calm", "--seeds", "2", "--record", str(bad),
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith(f"error: {bad}: --record: columns validated_with, description")
    assert not (tmp_path / "out").exists()


def test_validate_refuses_a_folder_as_its_record(tmp_path):
    from click.testing import CliRunner

    from policylab.cli import cli

    res = CliRunner().invoke(cli, ["validate", "--scenario", "calm", "--seeds", "2", "--record", str(tmp_path),
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith(f"error: {tmp_path}: --record: not a file")
    assert not (tmp_path / "out").exists()
    missing = tmp_path / "no-such-folder" / "record.csv"
    res = CliRunner().invoke(cli, ["validate", "--scenario", "calm", "--seeds", "2", "--record", str(missing),
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and res.stderr.startswith(f"error: {missing}: --record: folder")
    assert not (tmp_path / "out").exists()

"""Calibration targets: evaluation over seeds, and the brief's credibility appendix."""

import numpy as np
import pandas as pd
import pytest

from policylab.validation import calibration
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
    assert "how well the model reproduces this scenario" in html
    assert f"{sum(r['met'] for r in rows)} of {len(rows)} targets are met" in html


def test_no_calibration_appendix_without_the_status_quo_baseline(october):
    res = report.load(october)
    res.manifest["baseline"] = "repeal-japan-2020"
    assert sections.calibration_check(res) == []

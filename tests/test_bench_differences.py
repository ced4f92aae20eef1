"""benchmarks/bench_compare.py differences: the paired differences at N and 2N, side by side."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_compare.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_compare", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _summary(rows):
    return pd.DataFrame([{"rule_set": r, "metric": m, "unit": "USD", "diff_mean": d, "diff_lo": lo, "diff_hi": hi,
                          "improvement": v} for r, m, d, lo, hi, v in rows])


def test_side_by_side_flags_a_difference_that_moved_outside_its_interval():
    bench = _bench()
    small = _summary([("base", "a", np.nan, np.nan, np.nan, "n/a"),
                      ("x", "a", -1.0, -2.0, 0.5, "no difference"),
                      ("x", "b", 1.0, 0.5, 1.5, "worse"),
                      ("x", "c", -1e-8, -2e-8, 0.0, "no difference"),
                      ("x", "d", 1.0, np.nan, np.nan, "n/a"),
                      ("x", "not-a-headline", 5.0, 4.0, 6.0, "worse")])
    large = _summary([("base", "a", np.nan, np.nan, np.nan, "n/a"),
                      ("x", "a", -1.5, -1.9, -1.1, "better"),
                      ("x", "b", 2.0, 1.8, 2.2, "worse"),
                      ("x", "c", 0.0, 0.0, 0.0, "no difference"),
                      ("x", "d", 1.0, 0.0, 2.0, "n/a"),
                      ("x", "not-a-headline", 50.0, 40.0, 60.0, "worse")])
    t = bench._side_by_side(small, large, 100, "base", ("b", "a", "c", "d"))
    assert list(t["metric"]) == ["b", "a", "c", "d"] and set(t["rule_set"]) == {"x"}
    row = t.set_index("metric")
    assert row.loc["b", "moved_outside"] and row.loc["b", "intervals_disjoint"] and not row.loc["b", "verdict_changed"]
    assert not row.loc["a", "moved_outside"] and not row.loc["a", "intervals_disjoint"]
    assert row.loc["a", "verdict_changed"]  # no difference at N, better at 2N, inside N's interval
    assert not row.loc["c", "moved_outside"]  # -1e-8 and 0 are the same zero
    assert pd.isna(row.loc["d", "moved_outside"])  # no interval at N: not judged
    assert row.loc["b", "diff_mean_100"] == 1.0 and row.loc["b", "diff_hi_200"] == 2.2
    assert np.isclose(row.loc["b", "shift_in_half_widths"], 2.0)

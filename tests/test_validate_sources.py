"""The stylized facts of the exogenous news path beside the index's and the data's (issue 13, item 7)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from policylab.experiments.compare import BASELINE, compare
from policylab.inputs.rulesets import load_rules
from policylab.inputs.scenario import load_scenario
from policylab.model import MarketModel
from policylab.validation.report import bars, by_source, news_paths, real_facts, simulated_facts, window_drawdown
from policylab.validation.stylized import FACTS, PATH_FACTS, max_drawdown

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FOUR_H = DATA / "binance_btcusdt_4h_2018-01-01_2026-06-15.csv"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data (real BTC prices) is not in this checkout")


def test_max_drawdown():
    r = np.log([2.0, 2.0, 0.5, 1.5, 0.5, 3.0])  # path 1, 2, 4, 2, 3, 1.5, 4.5: worst fall 4 -> 1.5
    assert max_drawdown(r) == pytest.approx(1 - 1.5 / 4)
    assert max_drawdown(np.array([0.1, 0.2])) == 0.0 and np.isnan(max_drawdown(np.array([])))


def test_bars_start_at_the_scenario_step():
    assert bars(15) == {"15min": 15, "1h": 60, "4h": 240}
    assert bars(1) == {"1min": 1, "1h": 60, "4h": 240} and bars(60) == {"1h": 60, "4h": 240}
    assert bars(7) == {"7min": 7}
    assert bars(1, 1440) == {"1min": 1, "1h": 60}  # a day has 6 four-hour returns, too few


def test_news_path_is_the_one_each_run_was_driven_by():
    sc = load_scenario("stylized-month")
    paths = news_paths(sc, [0, 3])
    for seed in (0, 3):  # the model under the baseline's rules draws the same path
        model = MarketModel(sc, seed=seed, traders=200, rules=[load_rules(BASELINE)])
        np.testing.assert_array_equal(paths[seed], model.exo_log_path)
    assert not np.array_equal(paths[0], paths[3]) and len(paths[0]) == sc.steps + 1


def test_simulated_facts_of_news_path_and_index():
    sc = load_scenario("stylized-month")
    sc.duration_minutes = 4 * 1440  # four days keep the test short
    res = compare([], sc, 2, traders=300, workers=1)
    t = simulated_facts(res, sc)
    assert list(zip(t["source"], t["bars"])) == [(s, b) for s in ("news path", "index") for b in ("15min", "1h", "4h")]
    assert list(t["returns"]) == [2 * 384, 2 * 96, 2 * 24] * 2 and set(t["scenario"]) == {"stylized-month"}
    assert set(FACTS) | set(PATH_FACTS) <= set(t.columns) and t[list(FACTS)].notna().all().all()
    news = news_paths(sc, [0, 1])  # the news path's 4h returns, recomputed by hand
    r = np.concatenate([np.diff(p[::16]) for p in news.values()])
    row = t[(t["source"] == "news path") & (t["bars"] == "4h")].iloc[0]
    assert row["acf_abs_lag1"] == pytest.approx(np.corrcoef(np.abs(r[1:]), np.abs(r[:-1]))[0, 1], abs=0.1)
    assert row["max_drawdown"] == pytest.approx(np.median([max_drawdown(np.diff(p[::16])) for p in news.values()]))
    # the index is the model's output, not a copy of its input
    assert not np.allclose(t[t["source"] == "index"][list(FACTS)].to_numpy(),
                           t[t["source"] == "news path"][list(FACTS)].to_numpy())


def test_by_source_turns_the_table_around():
    t = pd.DataFrame([{"scenario": "m", "source": s, "bars": b, "returns": 10, **{f: v + (b == "4h") for f in FACTS},
                       "max_drawdown": v} for s, v in (("news path", 1.0), ("index", 3.0)) for b in ("1h", "4h")]
                     + [{"scenario": "m", "source": "data", "bars": "4h", "returns": 10, **{f: 7.0 for f in FACTS},
                         "max_drawdown": 7.0}]
                     + [{"scenario": "d", "source": s, "bars": "1min", "returns": 10, **{f: v for f in FACTS},
                         "max_drawdown": v} for s, v in (("news path", 0.1), ("index", 0.3))])
    w = by_source(t)
    n = len(FACTS) + len(PATH_FACTS)
    assert list(w["scenario"]) == ["m"] * 2 * n + ["d"] * n
    k = w[(w["fact"] == "excess_kurtosis") & (w["bars"] == "4h")].iloc[0]
    assert (k["news_path"], k["index"], k["data"], k["added_by_trading"]) == (2.0, 4.0, 7.0, 2.0)
    assert np.isnan(w[(w["fact"] == "tail_index") & (w["bars"] == "1h")].iloc[0]["data"])
    d = w[(w["scenario"] == "d") & (w["fact"] == "max_drawdown")].iloc[0]
    assert d["added_by_trading"] == pytest.approx(0.2) and np.isnan(d["data"])


def test_window_drawdown_is_the_median_over_whole_windows():
    idx = pd.date_range("2024-01-01", periods=24 * 9, freq="1h", tz="UTC")
    p = np.ones(len(idx))
    p[24:48], p[48:72] = 0.8, 1.0  # day 2 falls 20% and recovers; three-day windows
    p[150:] = 0.5  # a 50% fall inside the third window
    s = pd.Series(p, index=idx)
    assert window_drawdown(s, "1h", 3 * 1440) == pytest.approx(0.2)  # windows: 0.2, 0, 0.5
    assert window_drawdown(s[: 24 * 4], "1h", 3 * 1440) == pytest.approx(0.2)  # a 1-day stub is skipped


@needs_data
def test_real_facts_only_where_the_file_has_those_bars():
    t = real_facts(str(FOUR_H), "2020-03-01", bars(15), 30 * 1440)
    assert list(t["bars"]) == ["4h"]  # a 4-hour file gives no 15-minute or hourly returns
    row = t.iloc[0]
    assert row["excess_kurtosis"] == pytest.approx(19, rel=0.15) and row["tail_index"] == pytest.approx(2.8, abs=0.2)
    assert 0.05 < row["max_drawdown"] < 0.3  # median fall within a month of BTC

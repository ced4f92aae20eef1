"""The price loader copes with real files' quirks; stylized facts match the data README."""

from pathlib import Path

import numpy as np
import pytest

from policylab.errors import InputError
from policylab.validation.prices import load_prices, log_returns
from policylab.validation.stylized import acf, excess_kurtosis, facts, hill_tail_index

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data (real BTC prices) is not in this checkout")


def test_quirks_are_handled(tmp_path):
    # newest first, trailing spaces, a duplicate row, a gap, an unfinished last row, thousands separators
    path = tmp_path / "prices.csv"
    path.write_text("Date ,Close \n"
                    "2024-01-05 ,\"1,050.0\"\n"
                    "2024-01-04 ,1040\n"
                    "2024-01-04 ,1040\n"
                    "2024-01-02 ,1000\n"
                    "2024-01-01 , 990 \n"
                    " ,\n")
    s = load_prices(path)
    assert list(s.to_numpy()) == [990.0, 1000.0, 1040.0, 1050.0]
    assert s.index.is_monotonic_increasing and s.index.is_unique
    r = log_returns(s)  # the 2-day gap before 01-04 is not counted as one move
    np.testing.assert_allclose(r, [np.log(1000 / 990), np.log(1050 / 1040)])


def test_epoch_milliseconds(tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("timestamp,open,high,low,close\n1700000000000,1,1,1,10\n1700003600000,1,1,1,11\n1700007200000,1,1,1,12\n")
    s = load_prices(path)
    assert str(s.index[0]) == "2023-11-14 22:13:20+00:00" and s.iloc[-1] == 12.0


@pytest.mark.parametrize("text, message", [
    ("a,b\n1,2\n", "no a time column found"),
    ("date,volume\n2024-01-01,2\n", "no a price column found"),
    ("date,close\n2024-01-01,x\n", "fewer than 3 usable rows"),
])
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as e:
        load_prices(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="price file not found"):
        load_prices(tmp_path / "none.csv")


def test_statistics_on_known_series():
    rng = np.random.default_rng(0)
    normal = rng.standard_normal(200_000)
    assert abs(excess_kurtosis(normal)) < 0.05
    assert abs(acf(normal, 1)) < 0.01
    pareto = rng.pareto(3.0, 200_000) + 1.0  # tail index 3
    assert hill_tail_index(pareto, tail_share=0.05) == pytest.approx(3.0, rel=0.08)
    clustered = np.repeat(rng.standard_normal(20_000), 5)
    assert acf(np.abs(clustered), 1) > 0.7


@needs_data
def test_real_files_load_and_match_reference_figures():
    four_h = load_prices(DATA / "binance_btcusdt_4h_2018-01-01_2026-06-15.csv")
    assert len(four_h) == 18_510  # 18,513 rows less two duplicates and the unfinished candle
    assert four_h["2025-10-10 20:00"] == pytest.approx(112_774.5)
    f = facts(log_returns(four_h["2020-03":"2025-12-31"]))
    assert 15 < f["excess_kurtosis"] < 24 and 2.5 < f["tail_index"] < 3.1 and 0.18 < f["acf_abs_lag1"] < 0.28
    assert abs(f["acf_raw_lag1"]) < 0.08
    daily = load_prices(DATA / "bitstamp_btc_daily_midnight_2012-01-01_2026-08-22.csv")
    assert daily.index.is_monotonic_increasing and daily.index[0].year == 2012
    g = facts(log_returns(daily["2021":"2025"]))
    assert 3.0 < g["excess_kurtosis"] < 4.6 and 3.0 < g["tail_index"] < 3.8 and 0.1 < g["acf_abs_lag1"] < 0.2

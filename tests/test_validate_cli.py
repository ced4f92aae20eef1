"""The validate and leverage-study commands, on small runs."""

from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from policylab.validation.calibration import TARGETS
from policylab.cli import cli

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_validate_writes_targets_facts_and_report(tmp_path):
    prices = tmp_path / "prices.csv"  # a real file's shape when ../shared/data is absent
    src = DATA / "binance_btcusdt_4h_2018-01-01_2026-06-15.csv"
    prices.write_text(src.read_text() if src.is_file() else
                      "Date,Close\n" + "\n".join(f"2024-01-{d:02d},{100 + d % 7}" for d in range(1, 29)) + "\n")
    out = tmp_path / "val"
    res = invoke("validate", "--scenario", "september-2025", "--seeds", 2, "--traders", 500, "--workers", 1,
                 "--prices", prices, "--out", out, "--format", "html")
    assert res.exit_code == 0, res.output
    targets = pd.read_csv(out / "targets.csv")
    names = [t.name for t in TARGETS["september-2025"] + TARGETS["calm"]]
    assert list(targets["target"]) == names and targets["median"].notna().all()
    assert f"{int(targets['met'].sum())} of {len(names)} targets met" in res.stdout
    facts = pd.read_csv(out / "stylized_facts.csv")
    month = facts[facts["scenario"] == "stylized-month"]
    own = ["15min", "1h", "4h"]  # stylized-month's step, then hourly and 4-hourly bars
    assert list(month[month["source"] == "news path"]["bars"]) == own == list(month[month["source"] == "index"]["bars"])
    day = facts[facts["scenario"] == "september-2025"]  # the checked day: 1-minute steps, 24 hourly returns
    assert list(zip(day["source"], day["bars"])) == [(s, b) for s in ("news path", "index") for b in ("1min", "1h")]
    wide = pd.read_csv(out / "facts_by_source.csv")
    assert list(wide.columns) == ["scenario", "fact", "bars", "unit", "description", "news_path", "index", "data",
                                  "added_by_trading"]
    assert wide[wide["scenario"] == "september-2025"]["data"].isna().all()
    assert set(wide["fact"]) >= {"excess_kurtosis", "tail_index", "acf_abs_lag1", "max_drawdown"}
    assert wide[["news_path", "index"]].notna().all().all()
    np.testing.assert_allclose(wide["added_by_trading"], wide["index"] - wide["news_path"])
    if src.is_file():  # the 4-hour file has 4-hour bars only
        assert list(wide[wide["data"].notna()]["bars"].unique()) == ["4h"]
    assert "What the traders add" in res.stdout and "added_by_trading" in res.stdout
    html = (out / "validation.html").read_text()
    assert "Stylized facts of returns" in html and "max drawdown" in html
    assert "news path, stylized-month" in html and "index, september-2025" in html


def test_validate_bad_price_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    res = invoke("validate", "--prices", bad, "--out", tmp_path / "v")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "no a time column" in res.stderr
    assert not (tmp_path / "v").exists()


def test_leverage_study_writes_curve_and_figure(tmp_path):
    out = tmp_path / "lev"
    res = invoke("leverage-study", "--caps", "1,10", "--seeds", 2, "--traders", 400, "--workers", 1, "--out", out)
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "leverage_study.csv")
    assert sorted(table["cap"].unique()) == [1.0, 10.0] and (table["lo"] <= table["hi"]).all()
    assert (out / "leverage_study.png").stat().st_size > 1000


def test_leverage_study_bad_caps(tmp_path):
    res = invoke("leverage-study", "--caps", "1,x", "--out", tmp_path / "l")
    assert res.exit_code == 2 and "--caps" in res.stderr and not (tmp_path / "l").exists()


def test_leverage_study_bar_minutes_must_be_a_multiple_of_the_step(tmp_path):
    res = invoke("leverage-study", "--bar-minutes", 7, "--out", tmp_path / "l")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert "--bar-minutes: got 7; allowed: a multiple of 5" in res.stderr and not (tmp_path / "l").exists()

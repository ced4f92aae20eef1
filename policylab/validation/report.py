"""Validation: the calibration targets and the stylized facts of returns, model against data.

``validate`` runs a scenario on several seeds under the 2025 status quo and checks
each calibration target (policylab.validation.calibration); it runs a month-long scenario and
computes the stylized facts (policylab.validation.stylized) of its index returns at the
scenario's step and aggregated to hourly and 4-hourly bars, beside the same facts of the
exogenous news path that drove those runs (its input) and of a real price file: what the
index has beyond the news path is what leverage and trading add. The same news-path and
index facts are given for the checked scenario's day (no data column: the price file is
a long history, not that day).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from policylab import __version__
from policylab.engine import exogenous
from policylab.inputs.scenario import Scenario, load_scenario
from policylab.validation import calibration
from policylab.experiments.compare import compare
from policylab.validation.prices import load_prices, log_returns
from policylab.validation.stylized import FACTS, PATH_FACTS, facts, max_drawdown

BARS = {"1h": 60, "4h": 240}  # bar: minutes
MIN_RETURNS = 20  # a bar is used only if one run has at least this many of its returns
NEWS, INDEX, DATA = "news path", "index", "data"  # the sources of the facts table
BY_SOURCE = {NEWS: "news_path", INDEX: "index", DATA: "data"}  # source: its column in facts_by_source


def bars(step_minutes: int, duration_minutes: int | None = None) -> dict[str, int]:
    """The bars the facts are computed on: the scenario's own step if under an hour, then
    those of BARS that are a whole number of steps and, given a run's ``duration_minutes``,
    give it at least MIN_RETURNS returns (bar: minutes)."""
    own = {f"{step_minutes}min": step_minutes} if step_minutes < 60 else {}
    return {b: m for b, m in {**own, **BARS}.items() if m % step_minutes == 0
            and (duration_minutes is None or duration_minutes // m >= MIN_RETURNS)}


def news_paths(scenario: Scenario, seeds) -> dict[int, np.ndarray]:
    """Log price of the exogenous news path relative to its start, at every step boundary
    (steps + 1 values), per seed. It is drawn again here, not stored by the runs:
    :func:`policylab.engine.exogenous.draw` depends on the scenario and the seed only
    (the "exogenous" random stream), so this is the path each run was driven by."""
    return {int(s): np.concatenate([[0.0], np.cumsum(exogenous.draw(scenario, int(s)).log_return)]) for s in seeds}


def index_paths(result) -> dict[int, np.ndarray]:
    """Log index price at every step boundary, per seed, from a result's timeseries."""
    ts = result.timeseries
    index = ts[ts["venue"] == ts["venue"].iloc[0]].sort_values(["seed", "minute"])
    return {int(seed): np.log(g["index_usd"].to_numpy()) for seed, g in index.groupby("seed")}


def path_facts(paths: dict[int, np.ndarray], scenario: Scenario, source: str) -> list[dict]:
    """Stylized facts of log price paths of ``scenario`` (one per seed) on each of its
    :func:`bars`: return facts pooled over paths, the maximum drawdown the median over paths."""
    rows = []
    step = scenario.step_minutes
    for bar, minutes in bars(step, scenario.duration_minutes).items():
        per_path = [np.diff(p[::minutes // step]) for p in paths.values()]
        r = np.concatenate(per_path) if per_path else np.zeros(0)
        drawdowns = [max_drawdown(x) for x in per_path]
        rows.append({"scenario": scenario.name, "source": source, "bars": bar, "returns": len(r), **facts(r),
                     "max_drawdown": float(np.median(drawdowns)) if drawdowns else float("nan")})
    return rows


def simulated_facts(result, scenario: Scenario) -> pd.DataFrame:
    """Stylized facts of the news path and of the index of each of ``result``'s runs of
    ``scenario`` (pooled over seeds), on each of :func:`bars`."""
    seeds = sorted(result.timeseries["seed"].unique())
    return pd.DataFrame(path_facts(news_paths(scenario, seeds), scenario, NEWS)
                        + path_facts(index_paths(result), scenario, INDEX))


def window_drawdown(prices: pd.Series, every: str, window_minutes: int) -> float:
    """Median maximum drawdown over consecutive windows of ``window_minutes`` of ``prices``
    resampled to ``every``; windows with under 90% of their bars are skipped."""
    s = prices.resample(every).last().dropna()
    per_window = pd.Timedelta(minutes=window_minutes) / pd.Timedelta(every)
    key = (s.index - s.index[0]) // pd.Timedelta(minutes=window_minutes)
    drawdowns = [max_drawdown(np.diff(np.log(g.to_numpy()))) for _, g in s.groupby(key)
                 if len(g) >= 0.9 * per_window]
    return float(np.median(drawdowns)) if drawdowns else float("nan")


def real_facts(path: str, start: str | None = None, on: dict[str, int] | None = None,
               window_minutes: int | None = None) -> pd.DataFrame:
    """Stylized facts of a real price file on the bars ``on`` (default BARS) that have at
    least 50 returns; the maximum drawdown over windows of ``window_minutes`` (a simulated
    run's length; NaN if not given)."""
    prices = load_prices(path)
    if start is not None:
        prices = prices[start:]
    rows = []
    for bar in on or BARS:
        r = log_returns(prices, bar)
        if len(r) >= 50:
            dd = window_drawdown(prices, bar, window_minutes) if window_minutes else float("nan")
            rows.append({"source": DATA, "bars": bar, "returns": len(r), **facts(r), "max_drawdown": dd})
    return pd.DataFrame(rows)


def by_source(table: pd.DataFrame) -> pd.DataFrame:
    """The facts table turned around: one row per scenario, fact and bar, one column per
    source (news_path, index, data; data only where a price file gave that bar), and
    ``added_by_trading`` = index - news_path (what leverage and trading add to the input)."""
    rows = []
    for name in dict.fromkeys(table["scenario"]):
        own = table[table["scenario"] == name]
        for fact, (unit, description) in {**FACTS, **PATH_FACTS}.items():
            for bar in dict.fromkeys(own["bars"]):
                row = {"scenario": name, "fact": fact, "bars": bar, "unit": unit, "description": description}
                for source, column in BY_SOURCE.items():
                    hit = own[(own["source"] == source) & (own["bars"] == bar)]
                    row[column] = float(hit[fact].iloc[0]) if len(hit) else float("nan")
                row["added_by_trading"] = row["index"] - row["news_path"]
                rows.append(row)
    return pd.DataFrame(rows)


def validate(scenario: str = "october-2025", seeds: int = 10, traders: int | None = None,
             prices: str | None = None, facts_scenario: str = "stylized-month", workers: int | None = None,
             prices_from: str | None = "2020-03-01") -> dict[str, pd.DataFrame]:
    """Tables: ``targets`` (one row per target), ``facts`` (one row per scenario, source
    and bar: news path, index and data for ``facts_scenario``, news path and index for
    ``scenario``) and ``facts_by_source`` (:func:`by_source`)."""
    month_sc = load_scenario(facts_scenario)
    targets, day = [], None
    for name in dict.fromkeys([scenario, "calm"]):
        sc = load_scenario(name)
        res = compare([], sc, seeds, traders=traders, workers=workers)
        targets.append(calibration.evaluate(name, res.wide()))
        if name == scenario and sc.name != month_sc.name:
            day = simulated_facts(res, sc)
    sc = month_sc
    month = compare([], sc, max(2, seeds // 3), traders=traders, workers=workers)
    table = simulated_facts(month, sc)
    if prices is not None:
        data = real_facts(prices, prices_from, bars(sc.step_minutes), sc.duration_minutes)
        data.insert(0, "scenario", sc.name)
        table = pd.concat([table, data], ignore_index=True)
    table = pd.concat([table, day], ignore_index=True)
    return {"targets": pd.concat(targets, ignore_index=True), "facts": table, "facts_by_source": by_source(table)}


def render(tables: dict[str, pd.DataFrame], title: str = "policylab validation", paper: str = "a4") -> str:
    """A short self-contained HTML report of the validation tables."""
    from policylab.brief.render import environment

    digest = hashlib.sha256("".join(t.to_csv(index=False) for t in tables.values()).encode()).hexdigest()[:12]
    return environment().get_template("validation.html").render(
        title=title, version=__version__, paper=paper, config_hash=digest, targets=tables["targets"].to_dict("records"),
        facts=[{**f, "source": f"{f['source']}, {f['scenario']}"} for f in tables["facts"].to_dict("records")],
        fact_names={**FACTS, **PATH_FACTS})

"""Validation: the calibration targets and the stylized facts of returns, model against data.

``validate`` runs a scenario on several seeds under the 2025 status quo and checks
each calibration target (policylab.validation.calibration); it runs a month-long scenario and
computes the stylized facts (policylab.validation.stylized) of its index returns at the
scenario's step and aggregated to hourly and 4-hourly bars, beside the same facts of the
exogenous news path that drove those runs (its input) and of a real price file: what the
index has beyond the news path is what leverage and trading add.
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
NEWS, INDEX, DATA = "news path", "index", "data"  # the sources of the facts table
BY_SOURCE = {NEWS: "news_path", INDEX: "index", DATA: "data"}  # source: its column in facts_by_source


def bars(step_minutes: int) -> dict[str, int]:
    """The bars the facts are computed on: the scenario's own step if under an hour, then
    those of BARS that are a whole number of steps (bar: minutes)."""
    own = {f"{step_minutes}min": step_minutes} if step_minutes < 60 else {}
    return {**own, **{b: m for b, m in BARS.items() if m % step_minutes == 0}}


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


def path_facts(paths: dict[int, np.ndarray], step_minutes: int, source: str) -> list[dict]:
    """Stylized facts of log price paths (one per seed) on each of :func:`bars`: return
    facts pooled over paths, the maximum drawdown the median over paths."""
    rows = []
    for bar, minutes in bars(step_minutes).items():
        per_path = [np.diff(p[::minutes // step_minutes]) for p in paths.values()]
        r = np.concatenate(per_path) if per_path else np.zeros(0)
        drawdowns = [max_drawdown(x) for x in per_path]
        rows.append({"source": source, "bars": bar, "returns": len(r), **facts(r),
                     "max_drawdown": float(np.median(drawdowns)) if drawdowns else float("nan")})
    return rows


def simulated_facts(result, scenario: Scenario) -> pd.DataFrame:
    """Stylized facts of the news path and of the index of each of ``result``'s runs of
    ``scenario`` (pooled over seeds), on each of :func:`bars`."""
    seeds = sorted(result.timeseries["seed"].unique())
    return pd.DataFrame(path_facts(news_paths(scenario, seeds), scenario.step_minutes, NEWS)
                        + path_facts(index_paths(result), scenario.step_minutes, INDEX))


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
    """The facts table turned around: one row per fact and bar, one column per source
    (news_path, index, data; data only where a price file gave that bar), and
    ``added_by_trading`` = index - news_path (what leverage and trading add to the input)."""
    rows = []
    for fact, (unit, description) in {**FACTS, **PATH_FACTS}.items():
        for bar in dict.fromkeys(table["bars"]):
            row = {"fact": fact, "bars": bar, "unit": unit, "description": description}
            for source, column in BY_SOURCE.items():
                hit = table[(table["source"] == source) & (table["bars"] == bar)]
                row[column] = float(hit[fact].iloc[0]) if len(hit) else float("nan")
            row["added_by_trading"] = row["index"] - row["news_path"]
            rows.append(row)
    return pd.DataFrame(rows)


def validate(scenario: str = "october-2025", seeds: int = 10, traders: int | None = None,
             prices: str | None = None, facts_scenario: str = "stylized-month", workers: int | None = None,
             prices_from: str | None = "2020-03-01") -> dict[str, pd.DataFrame]:
    """Tables: ``targets`` (one row per target), ``facts`` (one row per source and bar:
    news path, index, data) and ``facts_by_source`` (:func:`by_source`)."""
    targets = []
    for name in dict.fromkeys([scenario, "calm"]):
        res = compare([], name, seeds, traders=traders, workers=workers)
        targets.append(calibration.evaluate(name, res.wide()))
    sc = load_scenario(facts_scenario)
    month = compare([], sc, max(2, seeds // 3), traders=traders, workers=workers)
    table = simulated_facts(month, sc)
    if prices is not None:
        on = bars(sc.step_minutes)
        table = pd.concat([table, real_facts(prices, prices_from, on, sc.duration_minutes)], ignore_index=True)
    return {"targets": pd.concat(targets, ignore_index=True), "facts": table, "facts_by_source": by_source(table)}


def render(tables: dict[str, pd.DataFrame], title: str = "policylab validation", paper: str = "a4") -> str:
    """A short self-contained HTML report of the validation tables."""
    from policylab.brief.render import environment

    digest = hashlib.sha256("".join(t.to_csv(index=False) for t in tables.values()).encode()).hexdigest()[:12]
    return environment().get_template("validation.html").render(
        title=title, version=__version__, paper=paper, config_hash=digest, targets=tables["targets"].to_dict("records"),
        facts=tables["facts"].to_dict("records"), fact_names={**FACTS, **PATH_FACTS})

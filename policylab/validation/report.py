"""Validation: the calibration targets and the stylized facts of returns, model against data.

``validate`` runs a scenario on several seeds under the 2025 status quo and checks
each calibration target (policylab.validation.calibration); it runs a month-long scenario and
computes the stylized facts (policylab.validation.stylized) of its index returns aggregated to
hourly and 4-hourly bars, beside the same facts of a real price file.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from policylab import __version__
from policylab.validation import calibration
from policylab.experiments.compare import compare
from policylab.validation.prices import load_prices, log_returns
from policylab.validation.stylized import FACTS, facts

BARS = {"1h": 60, "4h": 240}  # bar: minutes


def simulated_facts(result, step_minutes: int) -> pd.DataFrame:
    """Stylized facts of each run's index, aggregated to BARS, pooled over seeds."""
    ts = result.timeseries
    index = ts[ts["venue"] == ts["venue"].iloc[0]].sort_values(["seed", "minute"])
    rows = []
    for bar, minutes in BARS.items():
        pooled = []
        for _, g in index.groupby("seed"):
            on_bar = g[g["minute"] % minutes == 0]["index_usd"].to_numpy()
            pooled.append(np.diff(np.log(on_bar)))
        r = np.concatenate(pooled) if pooled else np.zeros(0)
        rows.append({"source": "model", "bars": bar, "returns": len(r), **facts(r)})
    return pd.DataFrame(rows)


def real_facts(path: str, start: str | None = None) -> pd.DataFrame:
    prices = load_prices(path)
    if start is not None:
        prices = prices[start:]
    rows = []
    for bar in BARS:
        r = log_returns(prices, bar)
        if len(r) >= 50:
            rows.append({"source": f"data ({len(prices)} rows)", "bars": bar, "returns": len(r), **facts(r)})
    return pd.DataFrame(rows)


def validate(scenario: str = "october-2025", seeds: int = 10, traders: int | None = None,
             prices: str | None = None, facts_scenario: str = "stylized-month", workers: int | None = None,
             prices_from: str | None = "2020-03-01") -> dict[str, pd.DataFrame]:
    """Targets (one row per target) and stylized facts (model and data) as tables."""
    targets = []
    for name in dict.fromkeys([scenario, "calm"]):
        res = compare([], name, seeds, traders=traders, workers=workers)
        targets.append(calibration.evaluate(name, res.wide()))
    month = compare([], facts_scenario, max(2, seeds // 3), traders=traders, workers=workers)
    tables = {"targets": pd.concat(targets, ignore_index=True),
              "facts": simulated_facts(month, 0)}
    if prices is not None:
        tables["facts"] = pd.concat([tables["facts"], real_facts(prices, prices_from)], ignore_index=True)
    return tables


def render(tables: dict[str, pd.DataFrame], title: str = "policylab validation", paper: str = "a4") -> str:
    """A short self-contained HTML report of the validation tables."""
    from policylab.brief.render import environment

    digest = hashlib.sha256("".join(t.to_csv(index=False) for t in tables.values()).encode()).hexdigest()[:12]
    return environment().get_template("validation.html").render(
        title=title, version=__version__, paper=paper, config_hash=digest, targets=tables["targets"].to_dict("records"),
        facts=tables["facts"].to_dict("records"), fact_names=FACTS)

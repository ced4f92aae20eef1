"""Run a scenario and collect its results as four tables.

:func:`run` builds the model, records the starting state, runs every step (checking
the invariants of :mod:`policylab.experiments.invariants` after each) and returns a
:class:`RunResult` with four pandas DataFrames:

- ``metrics``: one row per run, the run's identity then one column per metric
  (:mod:`policylab.metrics`; venue families have one column per venue);
- ``timeseries``: one row per step and venue, step 0 being the state before the
  first step; per-step flows (volume, liquidations) are those of the step ending there;
- ``events``: one row per liquidation, ADL or stop-loss event, in the order they happened;
- ``violations``: one row per broken invariant (none in a sound run).

:meth:`RunResult.write` stores each table as Parquet and CSV plus ``metrics.json``.
String columns use pandas' ``str`` dtype, counts ``int64``, amounts ``float64``.
The columns, with their units (also in :data:`COLUMNS`):
"""

from __future__ import annotations

import json
import math
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from policylab import metrics
from policylab.atomic import write_all
from policylab.errors import InputError
from policylab.engine.book import CLASSES
from policylab.engine.liquidation import EVENT_KINDS
from policylab.experiments import invariants
from policylab.model import RESIDENT_COLUMNS, MarketModel
from policylab.names import JURISDICTIONS, VENUE_CLASSES
from policylab.inputs.scenario import Scenario

COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "metrics": {
        "scenario": ("name", "scenario name"),
        "seed": ("integer", "the run's seed"),
        "traders": ("accounts", "simulated trader accounts (rows; each stands for several real accounts)"),
        **{name: (m.unit, f"{m.description} [{m.direction}]") for name, m in metrics.catalogue().items()},
    },
    "timeseries": {
        "step": ("step", "step number; 0 is the state before the first step"),
        "minute": ("minutes", "market time at the end of the step, from the start"),
        "venue": ("name", "venue name"),
        "price_usd": ("USD", "venue price"),
        "index_usd": ("USD", "index (spot) price"),
        "basis": ("log", "log of venue price over index price"),
        "depth_usd": ("USD", "resting depth within 1% of mid"),
        "open_interest_usd": ("USD", "long open interest on the venue"),
        "volume_usd": ("USD", "notional traded on the venue during the step"),
        "liquidated_usd": ("USD", "notional liquidated on the venue during the step"),
        "fund_usd": ("USD", "insurance fund (negative: owes)"),
        "mm_health": ("fraction", "market makers' depth health, 1 = full depth"),
        "coin_price": ("USD", "value of one unit of the venue's depeggable stablecoin collateral"),
        "rounds": ("rounds", "cascade rounds with activity in the step (same for every venue)"),
        "amplification": ("ratio", "index log move from its running peak over the exogenous log move "
                          "over the same steps; NaN at a peak or if the exogenous path did not fall"),
        "forced_volume_usd": ("USD", "part of volume_usd from forced orders (liquidations and partial slices in "
                              "the book, stop-losses, vault unwinds, spot legs a forced close left unhedged)"),
        **{f"{c}_{j}": ("USD", f"part of {c} from accounts resident in {j}") for c in RESIDENT_COLUMNS
           for j in JURISDICTIONS},
    },
    "events": {
        "step": ("step", "step during which the event happened (as in the timeseries)"),
        "minute": ("minutes", "market time at the end of that step"),
        "round": ("round", "cascade round within the step, from 0"),
        "kind": ("name", "liquidation, partial, backstop, adl (bankrupt side), adl_counterparty or stop"),
        "venue": ("name", "venue name"),
        "trader_class": ("name", f"class of the account: {', '.join(CLASSES)}"),
        "side": ("name", "side of the position closed: long or short"),
        "account": ("integer", "account row in the model's trader book"),
        "size_btc": ("BTC", "position closed, signed (positive: long)"),
        "notional_usd": ("USD", "absolute size times price"),
        "price_usd": ("USD", "execution price (mark for backstop, bankruptcy price for ADL)"),
        "accounts": ("accounts", "real accounts the row stands for"),
        "deficit_usd": ("USD", "negative equity left after a whole liquidation"),
        "jurisdiction": ("name", f"the account's jurisdiction of residence: {', '.join(JURISDICTIONS)}; none for "
                         "the venues' own rows (books, arbitrage desks, backstop vaults)"),
        "leverage_chosen": ("x", "leverage the account chose before any rule bound it (TraderBook.lev_chosen); "
                            "NaN for the venues' own rows"),
    },
    "violations": {
        "invariant": ("name", f"the invariant broken: {', '.join(invariants.INVARIANTS)}"),
        "venue": ("name", "venue name (empty: market-wide)"),
        "detail": ("text", "what was found, in one line"),
        "value": ("unit", "the value found"),
        "limit": ("unit", "the limit it broke"),
        "unit": ("name", "unit of value and limit"),
    },
}

_STR = "str"


@dataclass
class RunResult:
    """The four tables of one run, with the scenario they came from."""

    scenario: Scenario
    metrics: pd.DataFrame
    timeseries: pd.DataFrame
    events: pd.DataFrame
    violations: pd.DataFrame = field(default_factory=lambda: invariants.table([]))
    rules: list[str] = field(default_factory=list)  # names of the rule sets in force
    warnings: list[str] = field(default_factory=list)  # configured modules that never took effect

    @property
    def definitions(self) -> dict[str, metrics.Metric]:
        """The metric definitions of this run's columns."""
        return metrics.definitions(self.scenario)

    def record(self) -> dict:
        """The metrics row as a JSON-ready dict (NaN becomes None)."""
        row = self.metrics.iloc[0].to_dict()
        out = {"scenario": str(row.pop("scenario")), "seed": int(row.pop("seed")), "traders": int(row.pop("traders"))}
        out.update({k: None if math.isnan(v) else float(v) for k, v in row.items()})
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        """The model's output tables (those the reference hashes cover); ``write`` adds ``violations``."""
        return {"metrics": self.metrics, "timeseries": self.timeseries, "events": self.events}

    @property
    def flagged(self) -> tuple[int, str]:
        """(number of invariants violated, their "; "-separated details; "" if none)."""
        return invariants.summary(self.violations)

    def write(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write ``<table>.parquet`` and ``<table>.csv`` of the four tables and ``metrics.json`` into ``out_dir``.

        Every file is first written under a temporary name in the same folder and
        renamed into place only once all are complete: on failure no file is left
        half-written and a folder created here is removed. Returns the paths written.
        """
        out = Path(out_dir)
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        jobs: list[tuple[Path, Callable[[Path], object]]] = []
        for name, df in {**self.tables(), "violations": self.violations}.items():
            jobs.append((out / f"{name}.parquet", lambda p, df=df: df.to_parquet(p, index=False)))
            jobs.append((out / f"{name}.csv", lambda p, df=df: df.to_csv(p, index=False)))
        text = json.dumps(self.record(), indent=2, allow_nan=False) + "\n"
        jobs.append((out / "metrics.json", lambda p: p.write_text(text)))
        try:
            return write_all(jobs)
        except BaseException:
            if created and not any(out.iterdir()):
                out.rmdir()
            raise


def check_seed(seed) -> int:
    """``seed`` as a Python int: any integer type (NumPy's included) >= 0; InputError otherwise."""
    try:
        value = operator.index(seed)
    except TypeError:
        value = None
    if value is None or isinstance(seed, bool) or value < 0:
        raise InputError(f"seed: got {seed!r}; allowed: an integer >= 0")
    return value


def run(scenario: Scenario, seed: int = 0, traders: int | None = None, audit: bool = False,
        progress: Callable[[int, int], None] | None = None, rules=()) -> RunResult:
    """Run ``scenario`` to its end under ``rules`` and collect the tables.

    Args:
        scenario: the scenario to run.
        seed: the run's seed (same seed, same results): any integer type (NumPy's too), >= 0.
        traders: simulated trader accounts (default: the scenario's).
        audit: stop at the first step where money or positions are not conserved (raises
            AssertionError); without it a failure is reported in ``violations``.
        progress: called as ``progress(steps_done, total_steps)`` after every step.
        rules: rule sets (policylab.rules.RuleSet) in force, composed.
    """
    seed = check_seed(seed)
    model = MarketModel(scenario, seed=seed, traders=traders, audit=audit, rules=rules)
    scenario = model.scenario  # with the rules' venue changes and new venues
    start = metrics.snapshot(model)
    monitor = invariants.Monitor(model)

    def step_done(done: int, total: int) -> None:
        monitor.observe()
        if progress is not None:
            progress(done, total)

    model.run(step_done)
    values = metrics.compute(model, start)
    identity = pd.DataFrame({"scenario": pd.Series([scenario.name], dtype=_STR),
                             "seed": np.array([seed], dtype="int64"),
                             "traders": np.array([traders or scenario.traders], dtype="int64")})
    # the metrics as one float block (a Series per metric cost 30 ms a run)
    row = pd.concat([identity, pd.DataFrame(np.array([list(values.values())], dtype="float64"), columns=list(values))],
                    axis=1)
    return RunResult(scenario=scenario, metrics=row, timeseries=_timeseries(model, start),
                     events=_events(model), violations=monitor.finish(values, metrics.definitions(scenario)),
                     rules=[r.name for r in model.rule_sets], warnings=model.warnings())


def _timeseries(model: MarketModel, start: metrics.Start) -> pd.DataFrame:
    k = len(model.vb.rules)
    n = model.steps
    series = metrics.venue_series(model)

    def with_start(first: np.ndarray, name: str) -> np.ndarray:
        return np.vstack([first, series[name]]).ravel()

    ev = metrics.event_arrays(model)
    liq = ev["liquidation"]
    liquidated = np.zeros((n + 1) * k)
    np.add.at(liquidated, (ev["step"][liq] + 1) * k + ev["venue"][liq], ev["notional"][liq])
    index = np.repeat(model.index_path, k)
    price = model.price_path.ravel()
    steps = np.repeat(np.arange(n + 1), k)
    cols = {
        "step": (steps, "int64"),
        "minute": (steps * model.scenario.step_minutes, "int64"),
        "venue": (names_at(model.vb.names, np.tile(np.arange(k), n + 1)), _STR),
        "price_usd": (price, "float64"),
        "index_usd": (index, "float64"),
        "basis": (np.log(price / index), "float64"),
        "depth_usd": (with_start(start.depth, "depth_usd"), "float64"),
        "open_interest_usd": (with_start(start.open_interest, "open_interest_usd"), "float64"),
        "volume_usd": (with_start(np.zeros(k), "volume_usd"), "float64"),
        "liquidated_usd": (liquidated, "float64"),
        "fund_usd": (with_start(start.fund, "fund_usd"), "float64"),
        "mm_health": (with_start(start.health, "mm_health"), "float64"),
        "coin_price": (with_start(start.coin_price, "coin_price"), "float64"),
        "rounds": (np.repeat(np.concatenate([[0], model.rounds]), k), "int64"),
        "amplification": (np.repeat(metrics.running_amplification(
            model.index_path, model.exo_log_path, metrics.shock_direction(model.exo_log_path)), k), "float64"),
        "forced_volume_usd": (with_start(np.zeros(k), "forced_volume_usd"), "float64"),
    }
    resident = {c: a[:n] for c, a in model.resident_series.items()}
    start_of = {"open_interest_usd": start.resident_open_interest, "volume_usd": np.zeros((len(JURISDICTIONS), k))}
    for c in RESIDENT_COLUMNS:
        for j, name in enumerate(JURISDICTIONS):
            cols[f"{c}_{name}"] = (np.vstack([start_of[c][j], resident[c][:, j]]).ravel(), "float64")
    assert list(cols) == list(COLUMNS["timeseries"])
    return _frame(cols)


def _events(model: MarketModel) -> pd.DataFrame:
    ev = metrics.event_arrays(model)
    step = ev["step"] + 1
    own = np.isin(ev["cls"], VENUE_CLASSES)  # a venue's own row: no residence, no chosen leverage
    cols = {
        "step": (step, "int64"),
        "minute": (step * model.scenario.step_minutes, "int64"),
        "round": (ev["round"], "int64"),
        "kind": (names_at(EVENT_KINDS, ev["kind"]), _STR),
        "venue": (names_at(model.vb.names, ev["venue"]), _STR),
        "trader_class": (names_at(CLASSES, ev["cls"]), _STR),
        "side": (names_at(("long", "short"), np.where(ev["size"] > 0, 0, 1)), _STR),
        "account": (ev["account"], "int64"),
        "size_btc": (ev["size"], "float64"),
        "notional_usd": (ev["notional"], "float64"),
        "price_usd": (ev["price"], "float64"),
        "accounts": (ev["weight"], "float64"),
        "deficit_usd": (ev["deficit"], "float64"),
        "jurisdiction": (names_at((*JURISDICTIONS, "none"), np.where(own, len(JURISDICTIONS), ev["juris"])), _STR),
        "leverage_chosen": (np.where(own, np.nan, ev["lev_chosen"]), "float64"),
    }
    assert list(cols) == list(COLUMNS["events"])
    return _frame(cols)


def _frame(cols: dict[str, tuple[object, str]]) -> pd.DataFrame:
    """A DataFrame of ``{column: (values, dtype)}``: numeric columns as NumPy arrays of their
    dtype, ``str`` ones as :func:`names_at` built them (a Series per column, its dtype named
    by a string, cost about 5 ms a run)."""
    return pd.DataFrame({c: v if t == _STR else np.asarray(v, dtype=t) for c, (v, t) in cols.items()})


def names_at(names, codes: np.ndarray) -> pd.arrays.ArrowStringArray:
    """``names[codes]`` as a ``str`` array, built in Arrow (a ``str`` Series from Python
    strings costs about 1 ms per 10,000 rows)."""
    return pd.array(pa.array(list(names), type=pa.large_string()).take(np.asarray(codes)), dtype=_STR)


def _column_docs() -> str:
    lines = []
    for table, cols in COLUMNS.items():
        lines += ["", f"``{table}``:", ""]
        width = max(len(c) for c in cols)
        lines += [f"- ``{c}``{' ' * (width - len(c))}  [{unit}] {desc}" for c, (unit, desc) in cols.items()]
    return "\n".join(lines) + "\n"


__doc__ += _column_docs()

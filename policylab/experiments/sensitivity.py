"""How robust a comparison is: its paired differences at the ends of each assumption's
documented range, and its ranking of rule sets on a second scenario.

:data:`policylab.inputs.assumptions.ASSUMPTIONS` is the one list of assumptions varied,
each with the low and high of its range in docs/calibration.md. Each is applied with the sweep machinery (:func:`policylab.experiments.sweep.point_arm`)
as one or more ``scenario.PATH`` parameters set to the same value.

:func:`sensitivity` re-runs the comparison's baseline and rule sets at each end of
each range on fewer seeds (common random numbers, as in a comparison) and returns
``sensitivity.csv``'s rows: assumption, side, value, rule_set, metric, diff_mean, diff_lo,
diff_hi (the paired difference from the baseline with its 90% bootstrap interval), seeds
and traders (the size of these runs).
:func:`ranking` ranks the rule sets by their difference from the baseline on the
comparison's scenario and on a second one (``ranking.csv``: metric, rule_set, rank,
second_rank, holds, and the second scenario's seeds and traders).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from policylab.atomic import write_all
from policylab.errors import InputError
from policylab.experiments import stats
from policylab.experiments.compare import Arm, Progress, make_arm, run_experiment, wide
from policylab.experiments.sweep import point_arm
from policylab.inputs.assumptions import ASSUMPTIONS
from policylab.inputs.scenario import Scenario, load_scenario
from policylab.metrics import HIGHER, NEUTRAL
from policylab.metrics.headlines import CORE_OUTCOMES, resolve

SIDES = ("low", "high")
SENSITIVITY_COLUMNS = ("assumption", "side", "value", "rule_set", "metric", "diff_mean", "diff_lo", "diff_hi",
                       "seeds", "traders")
RANKING_COLUMNS = ("metric", "rule_set", "scenario", "rank", "second_scenario", "second_rank", "holds", "seeds",
                   "traders")



def core_metrics(available: Sequence[str]) -> list[str]:
    """The core outcomes' metrics present in ``available``, in page 1's order."""
    have = set(available)
    out = []
    for outcome in CORE_OUTCOMES:  # a jurisdiction's member ({J}) differs by rule set: the market-wide ones only
        found = resolve(outcome, have, [])
        if found:
            out.append(found[0])
    return out


def _paired(w: pd.DataFrame, arm: str, base: str, metric: str) -> tuple[float, float, float]:
    """Mean paired difference (arm - base over common seeds) with its interval."""
    a = w[w["rule_set"] == arm].set_index("seed")[metric]
    b = w[w["rule_set"] == base].set_index("seed")[metric]
    d = (a - b).dropna().to_numpy(dtype=float)
    if not len(d):
        return np.nan, np.nan, np.nan
    lo, hi = stats.mean_interval(d)
    return float(d.mean()), lo, hi


def _arms(spec: str, rule_sets: Sequence[str], sc: Scenario, tag: str = "") -> list[Arm]:
    out = []
    for r in (spec, *rule_sets):
        arm = make_arm(r, sc)
        out.append(Arm(f"{tag}{arm.label}", arm.scenario, arm.rules, arm.params))
    return out


def sensitivity(scenario: Scenario, baseline: str, rule_sets: Sequence[str], metrics: Sequence[str],
                seeds: Sequence[int], *, traders: int | None = None, workers: int | None = None,
                progress: Progress | None = None) -> pd.DataFrame:
    """``sensitivity.csv``: each rule set's paired difference from ``baseline`` on each
    core metric, with each assumption of :data:`ASSUMPTIONS` that applies to ``scenario``
    at its low and at its high (``rule_sets`` exclude the baseline)."""
    plan, arms = [], []
    for a in ASSUMPTIONS:
        paths = a.paths(scenario)
        if not paths:
            continue
        for side, value in zip(SIDES, (a.low, a.high)):
            tag = f"{a.name}={side}|"
            for arm in _arms(baseline, rule_sets, scenario, tag):
                arms.append(point_arm(arm, [(p, value) for p in paths], arm.label))
            plan.append((a, side, value, tag))
    if not arms:
        return pd.DataFrame({c: pd.Series([], dtype=str if c in ("assumption", "side", "rule_set", "metric")
                                          else float) for c in SENSITIVITY_COLUMNS})
    result = run_experiment(arms, list(seeds), baseline=arms[0].label, traders=traders, workers=workers,
                            progress=progress, kind="sensitivity")
    w = wide(result.runs, result.definitions)
    size = {"seeds": len(seeds), "traders": result.manifest["traders"]}
    base_label = make_arm(baseline, scenario).label
    rows = []
    for a, side, value, tag in plan:
        for r in rule_sets:
            label = make_arm(r, scenario).label
            for m in metrics:
                if m not in w.columns:
                    continue
                mean, lo, hi = _paired(w, tag + label, tag + base_label, m)
                rows.append({"assumption": a.name, "side": side, "value": value, "rule_set": label, "metric": m,
                             "diff_mean": mean, "diff_lo": lo, "diff_hi": hi, **size})
    return pd.DataFrame(rows, columns=list(SENSITIVITY_COLUMNS))


def ranks(diffs: dict[str, float], direction: str) -> dict[str, int]:
    """Rank 1 = the best difference from the baseline: the largest if higher is better,
    the smallest if lower is better, the smallest in size for a neutral outcome; ties
    share the better rank; NaN gets no rank (0)."""
    s = pd.Series(diffs, dtype=float)
    r = (s.abs() if direction == NEUTRAL else s).rank(ascending=direction != HIGHER, method="min")
    return {k: (0 if np.isnan(v) else int(v)) for k, v in r.items()}


def ranking(summary: pd.DataFrame, scenario_name: str, second: Scenario, baseline: str, rule_sets: Sequence[str],
            metrics: Sequence[str], seeds: Sequence[int], *, traders: int | None = None, workers: int | None = None,
            progress: Progress | None = None) -> pd.DataFrame:
    """``ranking.csv``: each rule set's rank per core metric on the comparison
    (``summary``: its summary.csv) and on ``second``, and whether the rank holds."""
    arms = _arms(baseline, rule_sets, second)
    result = run_experiment(arms, list(seeds), baseline=arms[0].label, traders=traders, workers=workers,
                            progress=progress, kind="ranking")
    other = result.summary
    size = {"seeds": len(seeds), "traders": result.manifest["traders"]}
    rows = []
    labels = [a.label for a in arms[1:]]
    for m in metrics:
        first = summary[summary["metric"] == m].set_index("rule_set")
        there = other[other["metric"] == m].set_index("rule_set")
        if first.empty or there.empty:
            continue
        direction = str(first["direction"].iloc[0])
        r1 = ranks({r: first["diff_mean"].get(r, np.nan) for r in labels}, direction)
        r2 = ranks({r: there["diff_mean"].get(r, np.nan) for r in labels}, direction)
        for r in labels:
            rows.append({"metric": m, "rule_set": r, "scenario": scenario_name, "rank": r1[r],
                         "second_scenario": second.name, "second_rank": r2[r],
                         "holds": bool(r1[r] and r1[r] == r2[r]), **size})
    return pd.DataFrame(rows, columns=list(RANKING_COLUMNS))


def comparison_scenario(scenario: dict, manifest: dict) -> Scenario:
    """A comparison's scenario: the file its scenario.json names when that exists (a
    built-in's path is its bare file name), else the built-in scenario of its name."""
    path = str(scenario.get("path") or "")
    return load_scenario(path if Path(path).is_file() else manifest["scenario"])


def for_folder(folder: str | os.PathLike, second: str, seeds: int = 5, *, varied: Sequence[str] = (),
               traders: int | None = None, workers: int | None = None,
               progress: Progress | None = None) -> list[Path]:
    """Write ``sensitivity.csv`` and ``ranking.csv`` into a comparison's results folder:
    its baseline and rule sets (by name, as its manifest lists them) on its scenario
    (the file scenario.json names when it exists, else the built-in scenario of its name) and on ``second``, on seeds
    0..``seeds``-1. ``varied`` limits the assumptions' runs to those of its rule sets
    (default: all; the ranking always has all). Returns the paths written."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        scenario = json.loads((folder / "scenario.json").read_text())
        summary = pd.read_csv(folder / "summary.csv")
    except (OSError, ValueError) as e:
        raise InputError(f"{folder}: not a finished comparison's results folder ({e}); allowed: the --out "
                         "folder of policylab compare") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "compare":
        found = manifest.get("kind") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(f"{folder}/manifest.json: kind: found {found!r}; allowed: 'compare'")
    for key, kind in (("baseline", str), ("rule_sets", list), ("scenario", str)):
        value = manifest.get(key)
        if not isinstance(value, kind) or (kind is list and not all(isinstance(r, str) for r in value)):
            raise InputError(f"{folder}/manifest.json: {key}: found {value!r}; allowed: a "
                             f"{'list of rule set names' if kind is list else 'name'}, as policylab compare writes it")
    if not isinstance(scenario, dict):
        raise InputError(f"{folder}/scenario.json: found a {type(scenario).__name__}; allowed: an object, as "
                         "policylab compare writes it")
    missing = [c for c in ("rule_set", "metric", "direction", "diff_mean") if c not in summary.columns]
    if missing:
        raise InputError(f"{folder}/summary.csv: columns {', '.join(missing)} missing; allowed: the summary.csv "
                         "policylab compare writes")
    if seeds < 2:
        raise InputError(f"--seeds: got {seeds}; allowed: an integer >= 2 (the intervals need two)")
    baseline = manifest["baseline"]
    rule_sets = [r for r in manifest["rule_sets"] if r != baseline]
    unknown = [r for r in varied if r not in rule_sets]
    if unknown:
        raise InputError(f"--rule-set: found {', '.join(unknown)}; allowed: the comparison's rule sets other than its "
                         f"baseline ({', '.join(rule_sets)})")
    sc = comparison_scenario(scenario, manifest)
    second_sc = load_scenario(second)  # before any run: a wrong name must not cost the runs
    for key, names in (("baseline", [baseline]), ("rule_sets", rule_sets)):  # an old folder may name retired ones
        for r in names:
            try:
                make_arm(r, sc)
            except InputError as e:
                raise InputError(f"{folder}/manifest.json: {key}: {e}") from None
    metrics = core_metrics(summary["metric"].unique())
    seed_list = list(range(seeds))
    table = sensitivity(sc, baseline, [r for r in rule_sets if not varied or r in varied], metrics, seed_list,
                        traders=traders, workers=workers, progress=progress)
    ranked = ranking(summary, sc.name, second_sc, baseline, rule_sets, metrics, seed_list,
                     traders=traders, workers=workers, progress=progress)
    return write_all([(folder / "sensitivity.csv", lambda p: table.to_csv(p, index=False)),
                      (folder / "ranking.csv", lambda p: ranked.to_csv(p, index=False))])

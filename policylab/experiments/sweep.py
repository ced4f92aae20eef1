"""Sweeps: one arm per point of a grid over policy-module and scenario parameters.

A parameter is named ``MODULE.PARAM`` (a parameter of a module of the swept rule
sets, e.g. ``leverage_cap.max_leverage``: in each rule set its own modules of that
name, or, when it has none, those it inherits from its base; or a module's ``id``,
e.g. ``japan-2020-2x.max_leverage``, which sets that module only) or
``scenario.PATH`` (a scenario field: ``scenario.traders``, ``scenario.sigma_daily``,
``scenario.shocks.0.size``, ``scenario.classes.retail.leverage_median``,
``scenario.venues.dex.depth_usd``, ``scenario.market.impact_y``; list items by
position, venues and trader classes by name). Every point runs on the same seeds, so
curves are paired like a comparison; the first point is the baseline of ``summary.csv``.

``method="grid"`` runs the full factorial grid of the given values and adds
``curves`` (each metric at each point: mean with its 90% bootstrap interval, median,
p05, p95). ``"sobol"`` and ``"morris"`` sample the given ``(low, high)`` ranges with
SALib (the optional ``sensitivity`` extra) and add ``sensitivity``: per metric and
parameter, Sobol first-order and total indices or Morris mu* and sigma, computed on
the mean of each point over the seeds.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from policylab.experiments import stats
from policylab.errors import InputError
from policylab.experiments.compare import (AS_WRITTEN, Arm, ExperimentResult, Progress, RuleSpec, check_seeds, make_arm, run_experiment,
                         wide)
from policylab.policies.api import PolicyError
from policylab.inputs.rulesets import RuleSet
from policylab.inputs.scenario import Scenario, check_meaningful, load_scenario
from policylab.inputs.yaml import Where

METHODS = ("grid", "sobol", "morris")
SALIB_SEED = 20251010
MORRIS_LEVELS = 4
Value = float | int | bool | str


def parse_param(text: str, method: str = "grid") -> tuple[str, list[Value] | tuple[float, float]]:
    """``NAME=V1,V2,...`` (grid) or ``NAME=LOW:HIGH`` (sobol, morris) from the command line."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or "." not in name or not values.strip():
        raise InputError(f"--param: got {text!r}; allowed: MODULE.PARAM=V1,V2,... or scenario.FIELD=V1,V2,...")
    if method == "grid":
        return name, [yaml.safe_load(v.strip()) for v in values.split(",")]
    lo, sep, hi = values.partition(":")
    try:
        bounds = (float(lo), float(hi))
    except ValueError:
        bounds = None
    if not sep or bounds is None or not bounds[0] < bounds[1]:
        raise InputError(f"--param {name}: got {values!r}; allowed: LOW:HIGH with LOW < HIGH for --method {method}")
    return name, bounds


# ------------------------------------------------------------------------ applying a value
def _child(obj, key: str, where: str):
    """The field, key or item ``key`` of ``obj`` (list items by position or name)."""
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj) if f.init]
        if key not in names:
            raise InputError(f"{where}: unknown field {key!r}; allowed: {', '.join(names)}")
        return key, getattr(obj, key)
    if isinstance(obj, dict):
        if key not in obj:
            raise InputError(f"{where}: unknown key {key!r}; allowed: {', '.join(map(str, obj))}")
        return key, obj[key]
    if isinstance(obj, list):
        names = [getattr(x, "name", None) for x in obj]
        if key in names:
            return names.index(key), obj[names.index(key)]
        if key.isdigit() and int(key) < len(obj):
            return int(key), obj[int(key)]
        raise InputError(f"{where}: no item {key!r}; allowed: {', '.join(n for n in names if n) or f'0 to {len(obj) - 1}'}")
    raise InputError(f"{where}: {type(obj).__name__} has no field {key!r}")


def _get_path(obj, path: list[str], where: str):
    for key in path:
        obj = _child(obj, key, where)[1]
        where = f"{where}.{key}"
    return obj


def _set_path(obj, path: list[str], value: Value, where: str):
    """A copy of ``obj`` with the field at ``path`` set to ``value`` (typed like the old value)."""
    key, old = _child(obj, path[0], where)
    here = f"{where}.{path[0]}"
    new = _set_path(old, path[1:], value, here) if path[1:] else _typed(old, value, here)
    if dataclasses.is_dataclass(obj):
        try:
            return dataclasses.replace(obj, **{key: new})
        except ValueError as e:
            raise InputError(f"{here}: {e}") from None
    if isinstance(obj, dict):
        return {**obj, key: new}
    out = list(obj)
    out[key] = new
    return out


def _typed(old, value: Value, where: str) -> Value:
    """``value`` converted to the type of ``old``; numbers must keep the old value's sign."""
    if isinstance(old, bool):
        if not isinstance(value, bool):
            raise InputError(f"{where}: got {value!r}; allowed: true or false")
        return value
    if isinstance(old, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where}: got {value!r}; allowed: a number")
        if isinstance(old, int) and not float(value).is_integer():
            raise InputError(f"{where}: got {value!r}; allowed: an integer")
        if value < 0 <= old:
            raise InputError(f"{where}: got {value!r}; allowed: a number >= 0")
        return type(old)(value)
    if isinstance(old, str) and isinstance(value, str):
        return value
    raise InputError(f"{where}: cannot be swept (it holds {type(old).__name__}); allowed: a number, "
                     "true/false or a name")


def set_scenario(sc: Scenario, name: str, value: Value) -> Scenario:
    """``sc`` with ``scenario.PATH`` set to ``value``."""
    out = _set_path(sc, name.split(".")[1:], value, "scenario")
    if out.traders < 100 or out.traders > 10_000_000:
        raise InputError(f"{name}: got {out.traders}; allowed: 100 to 10,000,000 simulated trader accounts")
    check_meaningful(out, Where(f"--param {name}"))
    return out


def _is_swept(rule_set: RuleSet, spec, module: str) -> bool:
    """Whether ``MODULE.PARAM`` sets ``spec`` of ``rule_set``: the module with that id;
    else the rule set's own modules of that name, or the inherited ones if it has none
    (so a proposal's cap is swept without moving the baseline's national caps)."""
    if any(m.id == module for m in rule_set.modules):
        return spec.id == module
    own = any(m.module == module and not m.origin for m in rule_set.modules)
    return spec.module == module and (not own or not spec.origin)


def _declared(rules: tuple[RuleSet, ...], name: str):
    """The declared Param of ``MODULE.PARAM`` in ``rules``."""
    module, _, param = name.partition(".")
    specs = [m for r in rules for m in r.modules if _is_swept(r, m, module)]
    if not specs:
        present = dict.fromkeys([m.module for r in rules for m in r.modules] + [m.id for r in rules for m in r.modules if m.id])
        raise InputError(f"--param {name}: no module {module!r} in the swept rule sets; allowed: "
                         f"{', '.join(present) or 'scenario.FIELD (the rule sets have no modules)'}")
    declared = specs[0].cls.params()
    if param not in declared:
        raise InputError(f"--param {name}: unknown parameter of {module}; allowed: {', '.join(declared)}")
    return declared[param]


def set_module(rules: tuple[RuleSet, ...], name: str, value: Value) -> tuple[RuleSet, ...]:
    """``rules`` with parameter ``PARAM`` of the modules ``MODULE`` names set (``name`` =
    MODULE.PARAM; which modules: see ``_is_swept``)."""
    module, _, param = name.partition(".")
    try:
        checked = _declared(rules, name).check(value, f"--param {name}")
    except PolicyError as e:
        raise InputError(str(e)) from None
    return tuple(dataclasses.replace(r, modules=[dataclasses.replace(m, params={**m.params, param: checked})
                                                 if _is_swept(r, m, module) else m for m in r.modules])
                 for r in rules)


def point_arm(base: Arm, point: Sequence[tuple[str, Value]], label: str) -> Arm:
    """The base arm with every parameter of ``point`` applied."""
    sc, rules = base.scenario, base.rules
    for name, value in point:
        if name.startswith("scenario."):
            sc = set_scenario(sc, name, value)
        else:
            rules = set_module(rules, name, value)
    return Arm(label, sc, rules, tuple(point))


# ------------------------------------------------------------------------ designs
def _label(point: Sequence[tuple[str, Value]]) -> str:
    return ", ".join(f"{n}={v:g}" if isinstance(v, float) else f"{n}={v}" for n, v in point)


def _integer_param(base: Arm, name: str) -> bool:
    """Whether the swept field holds an integer (its samples are rounded)."""
    if name.startswith("scenario."):
        old = _get_path(base.scenario, name.split(".")[1:], "scenario")
        return isinstance(old, int) and not isinstance(old, bool)
    return _declared(base.rules, name).kind is int


def design(base: Arm, params: Mapping, method: str, samples: int) -> tuple[list[list[tuple[str, Value]]], np.ndarray | None]:
    """Grid points (or SALib samples, returned as well as their matrix)."""
    names = list(params)
    if method == "grid":
        return [list(zip(names, combo)) for combo in itertools.product(*params.values())], None
    problem = _problem(params)
    x = _salib(method).sample(problem, samples, **({"calc_second_order": False} if method == "sobol" else
                                                  {"num_levels": MORRIS_LEVELS}), seed=SALIB_SEED)
    ints = [_integer_param(base, n) for n in names]
    x = np.where(ints, np.round(x), x)
    return [[(n, int(v) if i else float(v)) for n, v, i in zip(names, row, ints)] for row in x], x


def _problem(params: Mapping) -> dict:
    return {"num_vars": len(params), "names": list(params), "bounds": [list(b) for b in params.values()]}


def _salib(method: str, analyze: bool = False):
    try:
        if analyze:
            from SALib.analyze import morris, sobol
        else:
            from SALib.sample import morris, sobol
    except ImportError:
        raise InputError(f"--method {method}: needs SALib; allowed: pip install 'policylab[sensitivity]', "
                         "or --method grid") from None
    return {"sobol": sobol, "morris": morris}[method]


def sensitivity(wide: pd.DataFrame, labels: list[str], x: np.ndarray, params: Mapping, method: str) -> pd.DataFrame:
    """Global sensitivity of each metric's per-point mean to each parameter."""
    problem = _problem(params)
    means = wide.groupby("rule_set", sort=False).mean(numeric_only=True).drop(columns="seed").reindex(labels)
    rows = []
    analyzer = _salib(method, analyze=True)
    for metric in means.columns:
        y = means[metric].to_numpy(dtype=float)
        if not np.isfinite(y).all() or np.ptp(y) == 0:
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if method == "sobol":
                r = analyzer.analyze(problem, y, calc_second_order=False, seed=SALIB_SEED)
                cols = {"S1": r["S1"], "S1_conf": r["S1_conf"], "ST": r["ST"], "ST_conf": r["ST_conf"]}
            else:
                r = analyzer.analyze(problem, x, y, num_levels=MORRIS_LEVELS, seed=SALIB_SEED)
                cols = {"mu_star": r["mu_star"], "mu_star_conf": r["mu_star_conf"], "sigma": r["sigma"]}
        for i, name in enumerate(problem["names"]):
            rows.append({"metric": metric, "param": name, **{k: float(v[i]) for k, v in cols.items()}})
    return pd.DataFrame(rows).astype({"metric": "str", "param": "str"}) if rows else pd.DataFrame(
        {"metric": pd.Series([], dtype="str"), "param": pd.Series([], dtype="str")})


def curves(summary: pd.DataFrame, wide: pd.DataFrame, grid: pd.DataFrame) -> pd.DataFrame:
    """Each metric along the grid: the summary's statistics with the mean's interval."""
    cols = ["rule_set", "metric", "unit", "direction", "n", "mean", "median", "p05", "p95",
            "diff_mean", "diff_lo", "diff_hi", "improvement"]
    out = grid.merge(summary[cols], on="rule_set", how="right")
    by_arm = {label: df for label, df in wide.groupby("rule_set", sort=False)}
    bounds = [stats.mean_interval(by_arm[a][m].to_numpy(dtype=float)) if a in by_arm else (np.nan, np.nan)
              for a, m in zip(out["rule_set"], out["metric"])]
    out.insert(out.columns.get_loc("mean") + 1, "mean_lo", [b[0] for b in bounds])
    out.insert(out.columns.get_loc("mean_lo") + 1, "mean_hi", [b[1] for b in bounds])
    return out


# ------------------------------------------------------------------------ entry point
def sweep(params: Mapping[str, Sequence[Value]], scenario: str | Scenario, seeds: int | Sequence[int] = 10, *,
          rules: RuleSpec = (), method: str = "grid", samples: int = 16, traders: int | None = None,
          out: str | os.PathLike | None = None, workers: int | None = None, scheduler: str | None = None,
          backend: str | None = None, resume: bool = False, force: bool = False, fail_fast: bool = False,
          progress: Progress | None = None, command: str | None = None,
          finish: Callable[[ExperimentResult], None] | None = None,
          allow_local_modules: bool = False) -> ExperimentResult:
    """Run ``rules`` on ``scenario`` at every point of a parameter grid (or SALib sample).

    Args:
        params: ``{name: [values]}`` for a grid, ``{name: (low, high)}`` for sobol or
            morris; names are ``MODULE.PARAM`` or ``scenario.PATH`` (module docstring).
        scenario: a built-in scenario name, a path, or a Scenario.
        seeds: a count N (seeds 0..N-1) or the seeds themselves.
        rules: the rule set(s) swept, as for :func:`policylab.compare` (default: none).
        method: "grid", "sobol" or "morris".
        samples: SALib's base sample size N (sobol runs N x (params + 2) points,
            morris N x (params + 1)).
        The remaining arguments are those of :func:`policylab.compare`.
    """
    if method not in METHODS:
        raise InputError(f"--method: got {method!r}; allowed: {', '.join(METHODS)}")
    if not params:
        raise InputError("--param: none given; allowed: one or more MODULE.PARAM=V1,V2,... or scenario.FIELD=...")
    if method != "grid" and samples < 2:
        raise InputError(f"--samples: got {samples}; allowed: an integer >= 2")
    sc = dataclasses.replace(scenario) if isinstance(scenario, Scenario) else load_scenario(scenario)
    for name, values in params.items():
        if method == "grid" and len(set(map(repr, values))) != len(values):
            raise InputError(f"--param {name}: got {list(values)}; allowed: distinct values")
    base = make_arm(rules, sc, allow_local_modules)
    points, x = design(base, params, method, samples)
    labels = [_label(p) if method == "grid" else f"sample {i:04d}" for i, p in enumerate(points)]
    arms = [point_arm(base, p, label) for p, label in zip(points, labels)]
    grid = pd.DataFrame([{"rule_set": a.label, **dict(a.params)} for a in arms]).astype({"rule_set": "str"})

    def extra(t: dict) -> dict:
        w = wide(t["runs"], t["definitions"])
        tables = {"grid": grid, "curves": curves(t["summary"], w, grid)}
        if method != "grid" and w["rule_set"].nunique() == len(arms):
            tables["sensitivity"] = sensitivity(w, labels, x, params, method)
        return tables

    manifest = {"method": method, "swept_rules": base.label if base.label != AS_WRITTEN else None,
                "params": {k: list(v) for k, v in params.items()}, "samples": samples if method != "grid" else None}
    return run_experiment(arms, check_seeds(seeds), baseline=arms[0].label, traders=traders, out=out, workers=workers,
                          scheduler=scheduler, backend=backend, resume=resume, force=force, fail_fast=fail_fast,
                          progress=progress, command=command, kind="sweep", extra_manifest=manifest,
                          extra_tables=extra, finish=finish)

"""Experiments: every arm (a rule set, or a grid point of a sweep) run on the same seeds.

Common random numbers: seed i gives every arm the same exogenous path, the same
population draws and the same trader randomness (streams split by purpose,
:mod:`policylab.engine.streams`), so differences between arms are paired by seed.

:func:`compare` runs rule sets against a baseline; :func:`run_experiment` does the
work for it and for sweeps. Runs execute on a backend (:mod:`policylab.experiments.backends`);
while an experiment runs with an output folder, each finished run is kept in
``OUT/.runs/`` so that Ctrl-C or a crash loses nothing and ``resume`` redoes only
what is missing (runs that failed are retried). The folder's files (docs/contracts.md)
are written by :meth:`ExperimentResult.write`, each under a temporary name first and
renamed into place, ``manifest.json`` last.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import pickle
import platform
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd

from policylab import __version__
from policylab.experiments import backends, folders
from policylab.experiments import stats
from policylab.atomic import write_all
from policylab.experiments.backends import Outcome
from policylab.errors import InputError
from policylab.metrics import Metric
from policylab.experiments.run import COLUMNS, names_at
from policylab.inputs.rulesets import RuleSet, compose, load_rules
from policylab.inputs.scenario import Scenario, load_scenario

BASELINE = "status-quo-2025"
AS_WRITTEN = "scenario-as-written"  # label of an arm with no rule set
STAGING = ".runs"
TRADERS_RANGE = (100, 10_000_000)
RUNS_COLUMNS = {"rule_set": "str", "scenario": "str", "seed": "int64", "metric": "str", "value": "float64",
                "unit": "str", "invariant_violations": "int64", "invariant_detail": "str"}
FAILED_COLUMNS = {"rule_set": "str", "scenario": "str", "seed": "int64", "error": "str", "traceback": "str"}

Progress = Callable[[int, int], None]
RuleSpec = str | RuleSet | Sequence[str | RuleSet]


# ------------------------------------------------------------------------ arms
def jsonable(v):
    """``v`` as plain JSON: tuples as lists, infinities as "inf"/"-inf", NaN as None."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        v = dataclasses.asdict(v)
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def digest(config) -> str:
    """sha256 of the canonical JSON of ``config``."""
    return hashlib.sha256(json.dumps(jsonable(config), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def scenario_dict(sc: Scenario) -> dict:
    """The scenario as loaded, JSON-ready."""
    return jsonable(sc)


@dataclass(frozen=True)
class Arm:
    """What one arm runs: a scenario under a composition of rule sets (empty: as written).
    ``params`` are a sweep's grid coordinates."""

    label: str
    scenario: Scenario
    rules: tuple[RuleSet, ...] = ()
    params: tuple[tuple[str, float | str], ...] = ()

    def describe(self) -> dict:
        """The arm's rule sets, for ``rule_sets.json``."""
        if len(self.rules) == 1 and not self.params:
            return self.rules[0].to_dict()
        return {"name": self.label, "title": " + ".join(r.title for r in self.rules) or "the scenario as written",
                "params": dict(self.params), "repeal": self.repeals,
                "composed_of": [r.to_dict() for r in self.rules]}

    @property
    def repeals(self) -> bool:
        """The arm removes rules of a base (a repeal: compared with the base, it shows what
        the repealed rules do)."""
        return any(r.repeals for r in self.rules)

    def config(self) -> dict:
        """Everything a run of this arm depends on besides its seed and population size."""
        sc = {k: v for k, v in scenario_dict(self.scenario).items() if k != "path"}
        return {"label": self.label, "scenario": sc, "rules": [r.to_dict() for r in self.rules],
                "params": [list(p) for p in self.params]}


def make_arm(spec: RuleSpec, sc: Scenario, allow_local_modules: bool = False) -> Arm:
    """An arm from a rule set name or path, ``A+B`` (composed), a RuleSet, or a list of these.
    Local modules in rule set files run only if ``allow_local_modules`` (load_rules)."""
    if isinstance(spec, str):
        parts = [spec] if Path(spec).is_file() else [p for p in spec.split("+") if p]
    elif isinstance(spec, RuleSet):
        parts = [spec]
    else:
        parts = list(spec)
    rules = tuple(p if isinstance(p, RuleSet) else load_rules(str(p), allow_local_modules) for p in parts)
    return Arm("+".join(r.name for r in rules) or AS_WRITTEN, sc, compose(rules))


# ------------------------------------------------------------------------ results
@dataclass
class ExperimentResult:
    """The tables of an experiment (docs/contracts.md), ready for pandas and seaborn.

    ``runs`` is long (one row per run and metric); :meth:`wide` pivots it to one row
    per run. Sweeps add ``grid`` (arm label and parameter values), ``curves`` (each
    metric along the grid, with intervals) and, for a global sensitivity analysis,
    ``sensitivity``.
    """

    runs: pd.DataFrame
    failed: pd.DataFrame
    timeseries: pd.DataFrame
    events: pd.DataFrame
    summary: pd.DataFrame
    definitions: dict[str, Metric]
    rule_sets: dict[str, dict]
    scenario: dict
    manifest: dict
    grid: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None
    sensitivity: pd.DataFrame | None = None

    @property
    def complete(self) -> bool:
        """Every run finished (some may have failed)."""
        return self.manifest["complete"]

    def wide(self) -> pd.DataFrame:
        """One row per finished run: rule_set, seed, then one column per metric."""
        return wide(self.runs, self.definitions)

    def files(self) -> dict[str, Callable[[Path], object]]:
        """Writers of every file of the folder, by file name, manifest last."""
        def parquet(df):
            return lambda p: df.to_parquet(p, index=False)

        def text(obj):
            return lambda p: p.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")

        files = {f"{name}.parquet": parquet(getattr(self, name)) for name in ("runs", "failed", "timeseries", "events")}
        files["summary.csv"] = lambda p: self.summary.to_csv(p, index=False)
        for name in ("grid", "curves", "sensitivity"):
            df = getattr(self, name)
            if df is not None:
                files[f"{name}.csv"] = lambda p, df=df: df.to_csv(p, index=False)
        files["metrics.json"] = text({k: {"unit": m.unit, "description": m.description, "direction": m.direction}
                                      for k, m in self.definitions.items()})
        files["rule_sets.json"] = text(self.rule_sets)
        files["scenario.json"] = text(self.scenario)
        files["manifest.json"] = text(self.manifest)
        return files

    def write(self, out: str | os.PathLike) -> list[Path]:
        """Write the results folder; no file is ever left half-written. Returns the paths.
        Two files are written at once (the timeseries' and the events' Parquet, the largest)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        return write_all([(out / name, write) for name, write in self.files().items()], threads=2)


def wide(runs: pd.DataFrame, definitions: dict[str, Metric]) -> pd.DataFrame:
    """Long ``runs`` to one row per run (rule_set, seed, metrics in definition order)."""
    if runs.empty:
        return _empty({"rule_set": "str", "seed": "int64", **{k: "float64" for k in definitions}})
    order = list(runs["rule_set"].unique())
    table = runs.pivot_table(index=["rule_set", "seed"], columns="metric", values="value", sort=False, dropna=False)
    table = table.reindex(columns=list(definitions)).reset_index()
    table["rule_set"] = pd.Categorical(table["rule_set"], categories=order)
    table = table.sort_values(["rule_set", "seed"]).reset_index(drop=True)
    table["rule_set"] = table["rule_set"].astype("str")
    table.columns.name = None
    return table


COLUMNS_UNITS = {c: unit for table in ("timeseries", "events") for c, (unit, _) in COLUMNS[table].items()}


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in columns.items()})


def _dtype(unit: str) -> str:
    return "str" if unit == "name" else "int64" if unit in ("step", "minutes", "round", "integer") else "float64"


def _tagged(frames: list[tuple[str, int, pd.DataFrame]], columns: Sequence[str]) -> pd.DataFrame:
    """Concatenate per-run tables with ``rule_set`` and ``seed`` in front."""
    if not frames:
        return _empty({"rule_set": "str", "seed": "int64",
                       **{c: _dtype(COLUMNS_UNITS[c]) for c in columns}})
    # column by column, each copied once (a concat of the frames copied every block of every
    # frame several times: seconds over a 300-run comparison); columns are not consolidated
    first = frames[0][2]
    lengths = np.array([len(df) for _, _, df in frames])
    labels = list(dict.fromkeys(label for label, _, _ in frames))
    codes = np.repeat(np.array([labels.index(label) for label, _, _ in frames]), lengths)
    data = {"rule_set": names_at(labels, codes),
            "seed": np.repeat(np.array([seed for _, seed, _ in frames], dtype="int64"), lengths)}
    for c in first.columns:
        parts = [df[c] for _, _, df in frames]
        data[c] = (np.concatenate([p.to_numpy() for p in parts]) if isinstance(first[c].dtype, np.dtype)
                   else pd.concat(parts, ignore_index=True).array)
    return pd.DataFrame(data, copy=False)


def tables(arms: Sequence[Arm], seeds: Sequence[int], outcomes: dict[tuple[str, int], Outcome],
           baseline: str) -> dict:
    """The experiment's tables from its outcomes, in arm then seed order."""
    ordered = [outcomes[a.label, s] for a in arms for s in seeds if (a.label, s) in outcomes]
    names = {a.label: a.scenario.name for a in arms}
    ok = [o for o in ordered if o.ok]
    definitions: dict[str, Metric] = {}
    for o in ok:
        for k, m in o.definitions.items():
            definitions.setdefault(k, m)
    runs = _runs_table(ok, names, definitions)
    bad = [(o.arm, names[o.arm], o.seed, o.error, o.traceback) for o in ordered if not o.ok]
    failed = pd.DataFrame(bad, columns=list(FAILED_COLUMNS)).astype(FAILED_COLUMNS) if bad else _empty(FAILED_COLUMNS)
    summary = stats.summarise(wide(runs, definitions), [a.label for a in arms], baseline, definitions)
    summary["flagged_runs"] = summary["rule_set"].map(flagged_runs(ordered)).fillna(0).astype("int64")
    return {
        "runs": runs, "failed": failed, "definitions": definitions,
        "timeseries": _tagged([(o.arm, o.seed, o.timeseries) for o in ok], backends.TIMESERIES_COLUMNS),
        "events": _tagged([(o.arm, o.seed, o.events) for o in ok], list(COLUMNS["events"])),
        "summary": summary,
    }


def _runs_table(ok: Sequence[Outcome], scenarios: dict[str, str], definitions: dict[str, Metric]) -> pd.DataFrame:
    """``runs``: one row per finished run and metric, built column by column (from a tuple
    per row it cost about 0.1 s over a 300-run comparison)."""
    counts = [len(o.metrics) for o in ok]
    if not sum(counts):
        return _empty(RUNS_COLUMNS)
    metric = [k for o in ok for k in o.metrics]
    per_run = {"rule_set": [o.arm for o in ok], "scenario": [scenarios[o.arm] for o in ok],
               "seed": [o.seed for o in ok], "invariant_violations": [o.violations[0] for o in ok],
               "invariant_detail": [o.violations[1] for o in ok]}
    columns = {c: np.repeat(np.array(per_run[c], dtype=object), counts) for c in per_run}
    columns.update(metric=metric, value=[v for o in ok for v in o.metrics.values()],
                   unit=[definitions[k].unit for k in metric])
    return pd.DataFrame({c: pd.Series(columns[c], dtype=t) for c, t in RUNS_COLUMNS.items()})


def flagged_runs(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """Per arm: runs that failed or violated an invariant (summary.csv ``flagged_runs``)."""
    out: dict[str, int] = {}
    for o in outcomes:
        out[o.arm] = out.get(o.arm, 0) + int(not o.ok or o.violations[0] > 0)
    return out


def flagged_warning(summary: pd.DataFrame) -> str:
    """One line naming the arms with flagged runs ("" if none): not to be read as policy effects."""
    arms = summary.drop_duplicates("rule_set")
    arms = arms[arms["flagged_runs"] > 0]
    if arms.empty:
        return ""
    names = ", ".join(f"{r} ({n} runs)" for r, n in zip(arms["rule_set"], arms["flagged_runs"]))
    return (f"warning: flagged arms (failed runs or invariant violations; see runs.parquet invariant_detail): "
            f"{names}")


# ------------------------------------------------------------------------ staging
class Staging:
    """Finished runs, one file each in ``OUT/.runs/``, kept until the experiment completes."""

    def __init__(self, out: Path, arms_hash: str):
        self.dir, self.arms_hash = out / STAGING, arms_hash

    def exists(self) -> bool:
        return (self.dir / "experiment.json").is_file()

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_all([(self.dir / "experiment.json", lambda p: p.write_text(json.dumps({"arms_hash": self.arms_hash}) + "\n"))])

    def check(self, out: Path) -> None:
        """Raise InputError unless the staged runs belong to an experiment with these arms."""
        found = json.loads((self.dir / "experiment.json").read_text())["arms_hash"]
        if found != self.arms_hash:
            raise InputError(f"--resume: {out} holds an experiment with a different scenario, rule sets, "
                             "parameters or population; allowed: the same command as the interrupted one "
                             "(--seeds may grow)")

    def path(self, key: str, seed: int) -> Path:
        return self.dir / f"{key}-{seed}.pkl"

    def save(self, key: str, seed: int, pickled: bytes) -> None:
        """Keep a run's outcome, pickled (as a backend yields it)."""
        tmp = self.dir / f".{key}-{seed}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_bytes(pickled)
        os.replace(tmp, self.path(key, seed))

    def load(self, key: str, seed: int) -> Outcome | None:
        path = self.path(key, seed)
        return pickle.loads(path.read_bytes()) if path.is_file() else None

    def count(self) -> int:
        return len(list(self.dir.glob("*.pkl")))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------ running
def _git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def check_seeds(seeds: int | Sequence[int]) -> list[int]:
    """``N`` means seeds 0..N-1; a list must hold distinct integers >= 0."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise InputError(f"--seeds: got {seeds}; allowed: a number of seeds >= 1")
        return list(range(int(seeds)))
    out = list(seeds)
    if not out or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in out) \
            or len(set(out)) != len(out):
        raise InputError(f"--seeds: got {out!r}; allowed: a count >= 1 or distinct integers >= 0")
    return [int(s) for s in out]


def check_traders(traders: int | None) -> None:
    lo, hi = TRADERS_RANGE
    if traders is not None and not lo <= traders <= hi:
        raise InputError(f"--traders: got {traders}; allowed: {lo:,} to {hi:,} simulated trader accounts")


def _check_out(out: Path) -> None:
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"--out: {existing} exists and is not a folder; allowed: a folder path")


class ExperimentFailed(RuntimeError):
    """Every run of an experiment failed; ``result`` holds the tables (``failed`` lists the
    errors), the message the first error and its note the first traceback."""

    def __init__(self, result: ExperimentResult, out: Path | None):
        first = result.failed.iloc[0]
        where = f"; errors and tracebacks in {out / 'failed.parquet'}" if out is not None else ""
        super().__init__(f"every run failed ({len(result.failed)} of {result.manifest['runs']}; first: "
                         f"{first['rule_set']} seed {first['seed']}: {first['error']}){where}")
        self.result = result
        self.add_note(str(first["traceback"]))


def run_experiment(arms: Sequence[Arm], seeds: Sequence[int], *, baseline: str, traders: int | None = None,
                   out: str | os.PathLike | None = None, workers: int | None = None, scheduler: str | None = None,
                   backend: str | None = None, resume: bool = False, force: bool = False, fail_fast: bool = False,
                   progress: Progress | None = None, command: str | None = None, kind: str = "compare",
                   extra_manifest: dict | None = None,
                   extra_tables: Callable[[dict], dict[str, pd.DataFrame]] | None = None,
                   finish: Callable[[ExperimentResult], None] | None = None) -> ExperimentResult:
    """Run every arm on every seed and collect the tables (writing ``out`` if given).

    ``baseline`` is the label of the arm the others are compared with. ``progress`` is
    called as ``progress(done, total)`` over the runs this call executes.
    ``extra_tables`` turns the tables into additional ones (sweeps). ``out`` is locked
    (:class:`~policylab.experiments.folders.FolderLock`) from before the first run
    until ``finish(result)`` (if given) has returned. Raises ExperimentFailed if every
    run failed, after writing ``out``.
    """
    started, t0 = _now(), time.perf_counter()
    seeds = list(seeds)
    check_traders(traders)
    if resume and force:
        raise InputError("--force: given with --resume; allowed: one of them (--force discards the interrupted runs)")
    configs = [a.config() for a in arms]
    run = _Run(arms, seeds, configs, traders, backend, workers, scheduler, fail_fast, progress)
    if out is None:
        result = run.execute(None, started, t0, baseline, command, kind, extra_manifest, extra_tables)
        return _finished(result, None, finish)
    out = Path(out)
    _check_out(out)
    staging = Staging(out, run.arms_hash)
    if resume and not staging.exists():
        raise InputError(f"--resume: {out} holds no unfinished experiment; allowed: the --out folder "
                         "of an interrupted compare or sweep")
    with folders.FolderLock(out):
        if resume:
            if not staging.exists():
                raise InputError(f"--resume: {out} holds no unfinished experiment; allowed: the --out folder "
                                 "of an interrupted compare or sweep")
            staging.check(out)
        else:
            folders.claim(out, run.config_hash, force)
        result = run.execute(staging, started, t0, baseline, command, kind, extra_manifest, extra_tables,
                             resume=resume)
        return _finished(result, out, finish)


def _finished(result: ExperimentResult, out: Path | None, finish) -> ExperimentResult:
    m = result.manifest
    if m["complete"] and m["failed_runs"] == m["runs"]:
        raise ExperimentFailed(result, out)
    if finish is not None:
        finish(result)
    return result


class _Run:
    """One execution of an experiment's runs; Ctrl-C at any moment leaves a consistent folder."""

    def __init__(self, arms, seeds, configs, traders, backend, workers, scheduler, fail_fast, progress):
        self.arms, self.seeds, self.configs, self.traders = arms, seeds, configs, traders
        self.backend_name, self.workers, self.scheduler = backend, workers, scheduler
        self.fail_fast, self.progress = fail_fast, progress
        self.keys = {a.label: digest(c)[:16] for a, c in zip(arms, configs)}
        self.arms_hash = digest({"arms": configs, "traders": traders})
        self.config_hash = digest({"scenario": configs[0]["scenario"], "arms": configs, "seeds": seeds,
                                   "traders": traders})
        try:
            self.payloads = {a.label: cloudpickle.dumps(a) for a in arms}
        except (pickle.PicklingError, TypeError) as e:
            raise InputError(f"rule sets: cannot send them to workers ({e})") from None

    def execute(self, staging: Staging | None, started: str, t0: float, baseline: str, command, kind,
                extra_manifest, extra_tables, resume: bool = False) -> ExperimentResult:
        arms, seeds = self.arms, self.seeds
        outcomes: dict[tuple[str, int], Outcome] = {}
        if resume:
            for a in arms:
                for s in seeds:
                    o = staging.load(self.keys[a.label], s)
                    if o is not None:
                        outcomes[a.label, s] = o
        resumed = len(outcomes)
        todo = [(a.label, s, self.payloads[a.label]) for a in arms for s in seeds if (a.label, s) not in outcomes]
        interrupted = stopped = abandon = False
        done = 0
        backend = None

        def record(pickled: bytes) -> Outcome:
            """Save the run, then count it, with Ctrl-C held in between."""
            nonlocal done
            with folders.HeldInterrupts():
                o = pickle.loads(pickled)
                if staging is not None and o.ok:
                    staging.save(self.keys[o.arm], o.seed, pickled)
                outcomes[o.arm, o.seed] = o
                done += 1
            if self.progress is not None:
                self.progress(done, len(todo))
            return o

        try:
            backend = backends.choose(self.workers, self.scheduler, len(todo), self.backend_name)
            if staging is not None:
                with folders.HeldInterrupts():
                    staging.start()
            for pickled in backend.outcomes(todo, self.traders):
                o = record(pickled)
                if self.fail_fast and not o.ok:
                    stopped = True
                    break
        except KeyboardInterrupt:
            interrupted = True
        if backend is not None and (interrupted or stopped):
            try:
                for pickled in backend.stop():
                    record(pickled)
            except KeyboardInterrupt:
                interrupted = abandon = True
        with folders.HeldInterrupts(deliver=False):  # Ctrl-C from here on changes nothing
            if backend is not None:
                backend.close(abandon)
            return self._result(outcomes, staging, resumed, started, t0, baseline, command, kind, extra_manifest,
                                extra_tables, backend, interrupted, stopped)

    def _result(self, outcomes, staging, resumed, started, t0, baseline, command, kind, extra_manifest,
                extra_tables, backend, interrupted, stopped) -> ExperimentResult:
        arms, seeds = self.arms, self.seeds
        sc = arms[0].scenario
        t = tables(arms, seeds, outcomes, baseline)
        finished = [outcomes[a.label, s] for a in arms for s in seeds if (a.label, s) in outcomes]
        n_failed = sum(not o.ok for o in finished)
        complete = len(finished) == len(arms) * len(seeds)
        interrupted = interrupted and not complete  # a Ctrl-C as the last runs finished loses nothing
        warnings: dict[str, list[str]] = {}
        for o in finished:
            for w in o.warnings:
                if w not in warnings.setdefault(o.arm, []):
                    warnings[o.arm].append(w)
        manifest = {
            "package": "policylab", "version": __version__, "git_revision": _git_revision(),
            "config_hash": self.config_hash,
            "command": command, "kind": kind, "scenario": sc.name, "baseline": baseline,
            "rule_sets": [a.label for a in arms],
            # arms that remove rules of their base: compared with it, "what the rule does" (base minus repeal)
            "repeals": {a.label: [m for r in a.rules for m in r.repeal] for a in arms if a.repeals},
            "seeds": seeds, "traders": self.traders or sc.traders,
            "backend": backend.name if backend else None, "workers": backend.workers if backend else 0,
            "started": started, "finished": _now(),
            "wall_seconds": round(time.perf_counter() - t0, 3),
            "run_seconds": [{"rule_set": o.arm, "seed": o.seed, "seconds": round(o.seconds, 4),
                             "cpu_seconds": round(o.cpu_seconds, 4)} for o in finished],
            "platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": sys.version.split()[0], "runs": len(arms) * len(seeds), "finished_runs": len(finished),
            "resumed_runs": resumed, "failed_runs": n_failed, "complete": complete,
            "interrupted": interrupted, "stopped_at_failure": stopped, "warnings": warnings,
            **(extra_manifest or {}),
        }
        result = ExperimentResult(
            runs=t["runs"], failed=t["failed"], timeseries=t["timeseries"], events=t["events"],
            summary=t["summary"], definitions=t["definitions"], rule_sets={a.label: a.describe() for a in arms},
            scenario=scenario_dict(sc), manifest=manifest, **(extra_tables(t) if extra_tables else {}))
        if staging is not None:
            if not staging.exists():  # interrupted before the first run: --resume starts it
                staging.start()
            result.write(staging.dir.parent)
            if complete and not n_failed:
                staging.remove()
        return result


def compare(rules: Sequence[RuleSpec], scenario: str | Scenario, seeds: int | Sequence[int] = 30, *,
            baseline: RuleSpec = BASELINE, traders: int | None = None, out: str | os.PathLike | None = None,
            workers: int | None = None, scheduler: str | None = None, backend: str | None = None,
            resume: bool = False, force: bool = False, fail_fast: bool = False, progress: Progress | None = None,
            command: str | None = None, finish: Callable[[ExperimentResult], None] | None = None,
            allow_local_modules: bool = False) -> ExperimentResult:
    """Run ``rules`` and the baseline on the same seeds of ``scenario`` and compare them.

    Worker processes re-import the script that calls this: in a script, call it under
    ``if __name__ == "__main__":`` (RuntimeError otherwise) or with ``workers=1``.

    Args:
        rules: rule sets, each a built-in name or a path, ``"A+B"`` (composed), a
            RuleSet, or a list of these (composed; an empty list is the scenario as written).
            Every arm, the baseline included, must have its own name.
        scenario: a built-in scenario name, a path, or a Scenario.
        seeds: a count N (seeds 0..N-1) or the seeds themselves (any integer type).
        baseline: the rule set the others are compared with (first in every table).
        traders: simulated trader accounts (default: the scenario's).
        out: the results folder to write (default: none); it holds one experiment.
        workers: local worker processes (default: all cores; 1 runs in this process).
        scheduler: a Dask scheduler address (tcp://HOST:PORT) to run on instead.
        backend: a name of ``backends.BACKENDS`` (default: from ``workers`` and ``scheduler``).
        resume: continue the interrupted experiment in ``out``.
        force: replace the contents of ``out`` if it holds another experiment.
        fail_fast: stop at the first failed run.
        progress: called as ``progress(done, total)`` after each run.
        command: the command line, for the manifest.
        finish: called with the result once ``out`` is written, while it is still locked.
        allow_local_modules: let rule set files run the local Python modules they name
            (``file.py:Class``; also POLICYLAB_ALLOW_LOCAL_MODULES=1); refused otherwise.

    Raises:
        InputError: bad input (nothing is run).
        ExperimentFailed: every run failed (the message holds the first error).
    """
    sc = dataclasses.replace(scenario) if isinstance(scenario, Scenario) else load_scenario(scenario)
    arms: dict[str, Arm] = {}
    sources: dict[str, str] = {}
    for i, spec in enumerate([baseline, *rules]):
        arm = make_arm(spec, sc, allow_local_modules)
        where = ("the baseline " if i == 0 else "") + _source(spec, arm)
        if arm.label in arms:
            raise InputError(f"rule sets: {sources[arm.label]} and {where} are both named {arm.label!r}; "
                             "allowed: distinct names (each arm once; change the name: of a rule set file)")
        arms[arm.label], sources[arm.label] = arm, where
    return run_experiment(list(arms.values()), check_seeds(seeds), baseline=next(iter(arms)), traders=traders,
                          out=out, workers=workers, scheduler=scheduler, backend=backend, resume=resume,
                          force=force, fail_fast=fail_fast, progress=progress, command=command, finish=finish)


def _source(spec: RuleSpec, arm: Arm) -> str:
    """Where an arm's rule sets come from, for messages: files by path, built-ins by name."""
    parts = [r.path if r.path and Path(r.path).is_file() else f"built-in {r.name}" for r in arm.rules]
    return " + ".join(parts) or AS_WRITTEN

"""CLI commands for experiments: ``compare`` (rule sets on common seeds) and ``sweep``.

Both write a results folder (docs/contracts.md) and print the headline differences.
Exit codes: 0 when every run finished, 1 when some runs failed (listed in
``failed.parquet``; also when every run failed), 130 when interrupted with Ctrl-C
(finished runs are kept: ``--resume`` continues), 2 for bad input (a results folder
of another experiment without ``--force``, or one another process is writing, included).
The default results folder is ``outputs/<command>-<scenario>`` with the scenario part
made a safe file name.
"""

from __future__ import annotations

import math
import shlex
import sys
from functools import partial
from pathlib import Path

import click

from policylab.cli.formats import fmt
from policylab.cli.options import ALLOW_LOCAL_MODULES
from policylab.errors import InputError
from policylab.experiments.compare import BASELINE, ExperimentFailed, ExperimentResult, compare, flagged_warning
from policylab.experiments.folders import OUTPUTS, slug
from policylab.experiments.sweep import METHODS, parse_param, sweep
from policylab.metrics import headlines

EXIT_FAILED_RUNS = 1
EXIT_INTERRUPTED = 130
HEADLINE_METRICS = headlines.flagged("compare")  # policylab.metrics.headlines


class RunsProgress:
    """``progress(done, total)`` drawing a bar with the run count and ETA on stderr,
    only when stderr is a terminal."""

    def __init__(self, label: str):
        self.label, self.bar, self.done = label, None, 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if not sys.stderr.isatty():
                return
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True,
                                         show_eta=True)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        """End the bar (if drawn); a second call does nothing."""
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _common_options(f):
    options = [
        click.option("--scenario", "scenario_name", required=True, metavar="NAME|PATH",
                     help="Built-in scenario name or path to a scenario .yaml file."),
        click.option("--seeds", type=int, default=None, help="Number of seeds (0..N-1), the same for every arm (default: compare 30, sweep 10)."),
        click.option("--traders", type=int, default=None,
                     help="Simulated trader accounts, 100 to 10,000,000 (default: the scenario's)."),
        click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None, help="Results folder."),
        click.option("--workers", type=int, default=None,
                     help="Local worker processes (default: all cores; 1: run in this process)."),
        click.option("--scheduler", metavar="tcp://HOST:PORT", default=None,
                     help="Run on this Dask distributed scheduler instead of local processes."),
        click.option("--resume", is_flag=True, help="Continue the interrupted experiment in --out."),
        click.option("--force", is_flag=True,
                     help="Replace --out if it holds another experiment (its old contents are removed first)."),
        click.option("--fail-fast", is_flag=True, help="Stop at the first failed run."),
        ALLOW_LOCAL_MODULES,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def default_out(command: str, scenario_name: str) -> Path:
    """``outputs/<command>-<scenario>``, the scenario's file stem or name made a safe file name."""
    return OUTPUTS / f"{command}-{slug(Path(scenario_name).stem)}"


def execute(experiment, out: Path, **kwargs) -> ExperimentResult:
    """Run ``experiment`` (compare or sweep) with a progress bar; Ctrl-C before the first
    run or after the folder is written, and every run failing, end in one line."""
    progress = RunsProgress("runs")
    try:
        return experiment(out=out, progress=progress, command=_command(), **kwargs)
    except KeyboardInterrupt:
        progress.close()
        click.echo(f"interrupted: no run of this command was kept in {out}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except ExperimentFailed as e:
        progress.close()
        click.echo(f"error: {' '.join(str(e).split())}", err=True)
        sys.exit(EXIT_FAILED_RUNS)
    finally:
        progress.close()


def _check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise InputError(f"--workers: got {workers}; allowed: an integer >= 1")


def _command() -> str:
    """The command line this CLI was invoked with (not the host process's, e.g. pytest's)."""
    root = click.get_current_context().find_root().command
    return shlex.join(["policylab", *map(str, getattr(root, "last_args", sys.argv[1:]))])


def _interval(value: float, lo: float, hi: float, unit: str) -> str:
    sign = "+" if value > 0 else ""
    if math.isnan(lo):
        return f"{sign}{fmt(value, unit)}"
    return f"{sign}{fmt(value, unit)} [{fmt(lo, unit)}, {fmt(hi, unit)}]"


def differences(result: ExperimentResult) -> str:
    """Each rule set's headline differences from the baseline, with intervals and verdicts."""
    s = result.summary.set_index(["rule_set", "metric"])
    base = result.manifest["baseline"]
    names = [m for m in HEADLINE_METRICS if m in result.definitions]
    if not names:  # no run finished
        return ""
    lines = []
    for arm in result.manifest["rule_sets"][1:]:
        if (arm, names[0]) not in s.index:
            continue
        lines += ["", f"{arm} vs {base} (mean over seeds; paired 90% interval of the difference)"]
        table = [["metric", base, arm, "difference", "verdict"]]
        for name in names:
            r = s.loc[(arm, name)]
            unit = result.definitions[name].unit
            table.append([name, fmt(r["baseline"], unit), fmt(r["mean"], unit),
                          _interval(r["diff_mean"], r["diff_lo"], r["diff_hi"], unit), r["improvement"]])
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines += ["  " + "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
                  for row in table]
    return "\n".join(lines)


def curve_table(result: ExperimentResult) -> str:
    """Headline metrics at each grid point: mean and its 90% interval."""
    c = result.curves
    names = [m for m in HEADLINE_METRICS[:4] if m in result.definitions]
    if not names:  # no run finished
        return ""
    table = [["point", *names]]
    for arm in result.manifest["rule_sets"]:
        rows = c[c["rule_set"] == arm].set_index("metric")
        if names[0] not in rows.index:
            continue
        cells = []
        for name in names:
            r, unit = rows.loc[name], result.definitions[name].unit
            cells.append(f"{fmt(r['mean'], unit)} [{fmt(r['mean_lo'], unit)}, {fmt(r['mean_hi'], unit)}]")
        table.append([arm, *cells])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


def report(result: ExperimentResult, out: Path, details: str) -> None:
    """Print what ran, the details, warnings and the outcome; exit 1 or 130 if not all ran."""
    m = result.manifest
    click.echo(f"{m['scenario']}: {len(m['rule_sets'])} arms x {len(m['seeds'])} seeds, {m['finished_runs']} of "
               f"{m['runs']} runs finished in {m['wall_seconds']:.1f} s ({m['backend']}, {m['workers']} workers"
               f"{', ' + str(m['resumed_runs']) + ' resumed' if m['resumed_runs'] else ''})")
    click.echo(details)
    for arm, warnings in m["warnings"].items():
        for w in warnings:
            click.echo(f"warning: {arm}: {w}", err=True)
    if flagged := flagged_warning(result.summary):
        click.echo(flagged, err=True)
    click.echo(f"\nresults written to {out}")
    if m["failed_runs"]:
        first = result.failed.iloc[0]
        click.echo(f"error: {m['failed_runs']} of {m['runs']} runs failed (first: {first['rule_set']} seed "
                   f"{first['seed']}: {first['error']}); errors and tracebacks in {out / 'failed.parquet'}", err=True)
    if m["interrupted"] or m["stopped_at_failure"]:
        why = "interrupted" if m["interrupted"] else "stopped at the first failure (--fail-fast)"
        click.echo(f"{why}: {m['finished_runs']} of {m['runs']} runs kept; continue with --resume", err=True)
    if m["interrupted"]:
        sys.exit(EXIT_INTERRUPTED)
    if m["failed_runs"]:
        sys.exit(EXIT_FAILED_RUNS)


@click.command("compare")
@click.argument("rule_specs", nargs=-1, required=True, metavar="RULES...")
@click.option("--baseline", default=BASELINE, show_default=True, metavar="RULES",
              help="Rule set the others are compared with.")
@click.option("--brief/--no-brief", default=True, show_default=True,
              help="Write brief.html and brief.pdf into the results folder.")
@_common_options
def compare_command(rule_specs, baseline, brief, scenario_name, seeds, traders, out_dir, workers, scheduler, resume,
                    force, fail_fast, allow_local_modules) -> None:
    """Run rule sets on the same seeds of a scenario and compare them with a baseline.

    RULES: built-in rule set names or paths to rule set files; A+B composes two.
    Differences are paired by seed (common random numbers) with bootstrap intervals.
    """
    _check_workers(workers)
    out = out_dir or default_out("compare", scenario_name)

    def write(result: ExperimentResult) -> None:
        """The brief, written while the results folder is still locked."""
        m = result.manifest
        if not brief or m["interrupted"] or m["stopped_at_failure"] or not m["finished_runs"]:
            return
        from policylab.brief.render import write_brief  # matplotlib and WeasyPrint load only when a brief is written

        try:
            for path in write_brief(out):
                click.echo(f"brief written to {path}", err=True)
        except OSError as e:
            raise click.ClickException(f"cannot write the brief to {out}: {e.strerror or e}") from None
        except KeyboardInterrupt:
            click.echo(f"interrupted while writing the brief: the results in {out} are complete; write the brief "
                       f"with: policylab report {out}", err=True)
            sys.exit(EXIT_INTERRUPTED)

    result = execute(partial(compare, list(rule_specs), scenario_name, 30 if seeds is None else seeds), out,
                     baseline=baseline, traders=traders, workers=workers, scheduler=scheduler, resume=resume,
                     force=force, fail_fast=fail_fast, finish=write, allow_local_modules=allow_local_modules)
    report(result, out, differences(result))


@click.command("sweep")
@click.option("--rules", "rule_spec", default="", metavar="RULES",
              help="Rule set swept (A+B composes; default: the scenario as written).")
@click.option("--param", "param_texts", multiple=True, required=True, metavar="NAME=V1,V2,...",
              help="MODULE.PARAM or scenario.FIELD and its values (LOW:HIGH for sobol/morris); repeatable.")
@click.option("--method", type=click.Choice(METHODS), default="grid", show_default=True,
              help="Full grid, or SALib global sensitivity.")
@click.option("--samples", type=int, default=16, show_default=True, help="SALib base sample size (sobol, morris).")
@_common_options
def sweep_command(rule_spec, param_texts, method, samples, scenario_name, seeds, traders, out_dir, workers,
                  scheduler, resume, force, fail_fast, allow_local_modules) -> None:
    """Run a rule set over a grid of policy or scenario parameters; report each metric as a curve.

    Example: --rules esma-2026-perpetuals --param leverage_cap.max_leverage=1001,100,20,2
    """
    _check_workers(workers)
    params = dict(parse_param(p, method) for p in param_texts)
    if len(params) != len(param_texts):
        raise InputError("--param: a parameter is given twice; allowed: each parameter once")
    out = out_dir or default_out("sweep", scenario_name)
    result = execute(partial(sweep, params, scenario_name, 10 if seeds is None else seeds), out, rules=rule_spec,
                     method=method, samples=samples, traders=traders, workers=workers, scheduler=scheduler,
                     resume=resume, force=force, fail_fast=fail_fast, allow_local_modules=allow_local_modules)
    if result.sensitivity is not None:
        details = f"\nglobal sensitivity ({method}) in {out / 'sensitivity.csv'}"
    else:
        details = "\n" + curve_table(result)
    report(result, out, details)

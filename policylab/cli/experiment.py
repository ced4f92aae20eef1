"""CLI commands for experiments: ``compare`` (rule sets on common seeds), ``sweep`` and
``sensitivity`` (how robust a comparison is).

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
import time
from functools import partial
from pathlib import Path

import click

from policylab.cli.formats import fmt, fmt_diff
from policylab.cli.options import ALLOW_LOCAL_MODULES
from policylab.errors import InputError
from policylab.experiments.compare import BASELINE, ExperimentFailed, ExperimentResult, compare, flagged_warning
from policylab.experiments.folders import OUTPUTS, slug
from policylab.experiments.sweep import METHODS, parse_param, sweep
from policylab.metrics import headlines

EXIT_FAILED_RUNS = 1
EXIT_INTERRUPTED = 130
HEADLINE_METRICS = headlines.flagged("compare")  # policylab.metrics.headlines
RELIABLE_SEEDS = 10  # below this, intervals are called unreliable (as in the brief: policylab.brief.summary)
PROGRESS_LINES = 20  # lines a run without a terminal prints at most, by run count...
PROGRESS_SECONDS = 30.0  # ...or one at least this often while runs finish


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class RunsProgress:
    """``progress(done, total)`` on stderr: a bar with the run count and ETA when stderr
    is a terminal; otherwise one line every few runs (about PROGRESS_LINES in all, and at
    least every PROGRESS_SECONDS while runs finish) and at the last run, so a log shows progress."""

    def __init__(self, label: str):
        self.label, self.bar, self.done = label, None, 0
        self.started, self.printed, self.printed_at = time.monotonic(), 0, time.monotonic()

    def line(self, done: int, total: int) -> str:
        """``runs: 12 of 270 finished (4%), 1m05s elapsed, about 23m40s left``."""
        elapsed = time.monotonic() - self.started
        left = f", about {_duration(elapsed / done * (total - done))} left" if 0 < done < total else ""
        return f"{self.label}: {done} of {total} finished ({100 * done // max(total, 1)}%), {_duration(elapsed)} elapsed{left}"

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None and not sys.stderr.isatty():
            step = max(1, math.ceil(total / PROGRESS_LINES))
            now = time.monotonic()
            if done > self.printed and (done - self.printed >= step or done >= total
                                        or now - self.printed_at >= PROGRESS_SECONDS):
                click.echo(self.line(done, total), err=True)
                self.printed, self.printed_at = done, now
            self.done = done
            return
        if self.bar is None:
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
    """A difference and its interval, shares in pp (as the brief writes them)."""
    if math.isnan(lo):
        return fmt_diff(value, unit)
    return f"{fmt_diff(value, unit)} [{fmt_diff(lo, unit)}, {fmt_diff(hi, unit)}]"


def seeds_warning(seeds: int) -> str:
    """The warning below RELIABLE_SEEDS seeds (empty from there up), as page 1 of the brief gives it."""
    if seeds < 2:
        return "note: one seed per rule set: no intervals, so no difference is a verdict"
    if seeds < RELIABLE_SEEDS:
        return (f"note: only {seeds} seeds: intervals are unreliable below {RELIABLE_SEEDS} seeds; "
                "treat every verdict as provisional")
    return ""


def differences(result: ExperimentResult) -> str:
    """Each rule set's headline differences from the baseline, with intervals and verdicts
    (differences of shares in pp), after a warning when there are too few seeds for them."""
    s = result.summary.set_index(["rule_set", "metric"])
    base = result.manifest["baseline"]
    names = [m for m in HEADLINE_METRICS if m in result.definitions]
    if not names:  # no run finished
        return ""
    warning = seeds_warning(len(result.manifest["seeds"]))
    lines = ["", warning] if warning else []
    for arm in result.manifest["rule_sets"][1:]:
        if (arm, names[0]) not in s.index:
            continue
        lines += ["", f"{arm} vs {base} (mean over seeds; paired 90% interval of the difference)"]
        table = [["metric", base, arm, "difference", "verdict"]]
        for name in names:
            r = s.loc[(arm, name)]
            unit = result.definitions[name].unit
            verdict = r["improvement"] if len(result.manifest["seeds"]) >= 2 else "no interval"
            table.append([name, fmt(r["baseline"], unit), fmt(r["mean"], unit),
                          _interval(r["diff_mean"], r["diff_lo"], r["diff_hi"], unit), verdict])
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


def report(result: ExperimentResult, out: Path, details: str, last: str = "") -> None:
    """Print what ran, the details, warnings and the outcome, then ``last`` as the very last
    line (the brief's path); exit 1 or 130 if not all ran."""
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
    if last:
        sys.stdout.flush()
        sys.stderr.flush()
        click.echo(last)
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
@click.option("--firm-names", is_flag=True,
              help="Name venues in the brief as the scenario does (often firms), not by archetype.")
@_common_options
def compare_command(rule_specs, baseline, brief, firm_names, scenario_name, seeds, traders, out_dir, workers,
                    scheduler, resume, force, fail_fast, allow_local_modules) -> None:
    """Run rule sets on the same seeds of a scenario and compare them with a baseline.

    RULES: built-in rule set names or paths to rule set files; A+B composes two.
    Differences are paired by seed (common random numbers) with bootstrap intervals.
    """
    _check_workers(workers)
    out = out_dir or default_out("compare", scenario_name)
    briefs: list[Path] = []

    def write(result: ExperimentResult) -> None:
        """The brief, written while the results folder is still locked."""
        m = result.manifest
        if not brief or m["interrupted"] or m["stopped_at_failure"] or not m["finished_runs"]:
            return
        from policylab.brief.render import write_brief  # matplotlib and WeasyPrint load only when a brief is written

        try:
            briefs.extend(p for p in write_brief(out, firm_names=firm_names) if p.name.startswith("brief."))
            for path in briefs:
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
    pdf = [p for p in briefs if p.suffix == ".pdf"]
    report(result, out, differences(result), f"brief: {pdf[0]}" if pdf else "")


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


@click.command("sensitivity")
@click.argument("results_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--second-scenario", "second", default="september-2025", show_default=True, metavar="NAME|PATH",
              help="Scenario on which the ranking of the rule sets is checked.")
@click.option("--seeds", type=int, default=5, show_default=True, help="Seeds per arm (0..N-1).")
@click.option("--rule-set", "varied", multiple=True, metavar="NAME",
              help="Vary the assumptions for this rule set of DIR only (repeatable; default: every rule set). "
                   "The ranking on the second scenario always covers every rule set.")
@click.option("--traders", type=int, default=None,
              help="Simulated trader accounts, 100 to 10,000,000 (default: the scenario's).")
@click.option("--workers", type=int, default=None,
              help="Local worker processes (default: all cores; 1: run in this process).")
@click.option("--brief/--no-brief", default=True, show_default=True,
              help="Rewrite DIR's brief with its 'How robust' section.")
def sensitivity_command(results_dir: Path, second: str, seeds: int, varied: tuple[str, ...], traders: int | None,
                        workers: int | None, brief: bool) -> None:
    """How robust a comparison in DIR is: its differences at each end of each assumption's
    documented range (DIR/sensitivity.csv) and its ranking of rule sets on a second
    scenario (DIR/ranking.csv), on fewer seeds; then the brief again.

    A separate step, not a compare option: it reads a finished comparison, runs its own
    (smaller) budget, and can be run again without touching the comparison's runs.
    """
    from policylab.experiments.sensitivity import for_folder

    _check_workers(workers)
    progress = RunsProgress("sensitivity runs")
    try:
        paths = for_folder(results_dir, second, seeds, varied=varied, traders=traders, workers=workers,
                           progress=progress)
    except ExperimentFailed as e:
        click.echo(f"error: {' '.join(str(e).split())}", err=True)
        sys.exit(EXIT_FAILED_RUNS)
    finally:
        progress.close()
    for path in paths:
        click.echo(f"written: {path}")
    if brief:
        from policylab.brief.render import write_brief  # matplotlib and WeasyPrint load only when a brief is written

        try:
            pdf = [p for p in write_brief(results_dir) if p.suffix == ".pdf"]
        except OSError as e:
            raise click.ClickException(f"cannot write the brief to {results_dir}: {e.strerror or e}") from None
        if pdf:
            click.echo(f"brief: {pdf[0]}")

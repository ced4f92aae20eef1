"""Command line: ``policylab run`` and ``policylab scenarios list|show``.

Bad input (an unknown or malformed scenario, an option out of range, an unknown
option) is reported as one line ``error: ...`` on stderr with exit code 2, before
anything is run or written.

Progress: ``run`` draws a progress bar on stderr once a run has taken longer than
``PROGRESS_DELAY_SECONDS`` and only when stderr is a terminal, so short runs, pipes,
logs and ``--json`` consumers never see it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import click

from policylab import __version__
from policylab.errors import InputError
from policylab.cli.formats import fmt, usd
from policylab.cli.options import ALLOW_LOCAL_MODULES
from policylab.cli.experiment import compare_command, sensitivity_command, sweep_command
from policylab.cli.rules import new_policy, policies, rules
from policylab.cli.validate import leverage_study_command, validate_command
from policylab.experiments.folders import OUTPUTS, slug
from policylab.experiments.run import RunResult, run as run_scenario
from policylab.inputs.rulesets import load_rules
from policylab.inputs.scenario import Scenario, builtin_names, load_scenario
from policylab.metrics import headlines
from policylab.names import SPOT_CLASSES

TRADERS_RANGE = (100, 10_000_000)
PROGRESS_DELAY_SECONDS = 2.0
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2: a group run without a command

HEADLINES = headlines.grouped("run")  # (group, ((metric, label), ...)): policylab.metrics.headlines

VENUE_COLUMNS = (
    ("liquidated", "liquidated_usd"), ("drawdown", "drawdown"), ("fund drawdown", "fund_drawdown_usd"),
    ("ADL", "adl_usd"), ("OI share", "oi_share"), ("volume share", "volume_share"),
    ("worst depth", "depth_worst_ratio"),
)


def summary(result: RunResult) -> str:
    """Headline metrics and a per-venue table, aligned."""
    sc = result.scenario
    rec = result.record()
    defs = result.definitions
    lines = [f"{sc.name}: {sc.title}",
             f"seed {rec['seed']}, {rec['traders']:,} simulated traders, {sc.steps} steps of {sc.step_minutes} min", ""]
    width = max(len(label) for _, rows in HEADLINES for _, label in rows)
    for section, rows in HEADLINES:
        lines.append(section)
        for name, label in rows:
            lines.append(f"  {label:<{width}}  {fmt(rec[name], defs[name].unit):>12}")
        lines.append("")
    header = ["venue"] + [h for h, _ in VENUE_COLUMNS]
    table = [header]
    for v in sc.venues:
        row = [v.name]
        for _, stem in VENUE_COLUMNS:
            name = f"{stem}.venue.{v.name}"
            row.append(fmt(rec[name], defs[name].unit) if name in defs else "-")
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        lines.append("  " + "  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]))
    return "\n".join(lines)


# ------------------------------------------------------------------------ progress
class Progress:
    """``progress(done, total)`` callback drawing a click progress bar on ``stream``
    once ``delay`` seconds have passed, and only if ``stream`` is a terminal."""

    def __init__(self, label: str, stream=None, delay: float = PROGRESS_DELAY_SECONDS):
        self.label, self.delay = label, delay
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.monotonic()
        self.bar = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if not self.tty or time.monotonic() - self.t0 < self.delay:
                return
            self.bar = click.progressbar(length=total, label=self.label, file=self.stream,
                                         update_min_steps=max(1, total // 200))
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


# ------------------------------------------------------------------------ commands
class _Cli(click.Group):
    """A group that reports errors as one line ``error: ...`` on stderr: bad input
    (InputError, usage errors) with exit code 2, other click errors with theirs. It
    always runs click in non-standalone mode and handles what click would print."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        self.last_args = list(sys.argv[1:] if args is None else args)  # the command line, for manifests
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as e:
            e.show()
            sys.exit(e.exit_code)
        except (InputError, click.ClickException) as e:
            message = e.format_message() if isinstance(e, click.ClickException) else str(e)
            click.echo(f"error: {' '.join(message.split())}", err=True)
            sys.exit(e.exit_code if isinstance(e, click.ClickException) else 2)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)


@click.group(cls=_Cli)
@click.version_option(__version__, prog_name="policylab")
def cli() -> None:
    """Simulate BTC derivatives venues under alternative market rules."""


@cli.command("run")
@click.option("--scenario", "scenario_name", required=True, metavar="NAME|PATH",
              help="Built-in scenario name or path to a scenario .yaml file.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run (>= 0).")
@click.option("--traders", type=int, default=None,
              help="Simulated trader accounts, 100 to 10,000,000 (default: the scenario's).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: outputs/<scenario>-seed<N>/, the scenario's name made a safe file name).")
@click.option("--json", "as_json", is_flag=True, help="Print only the metrics, as one JSON object, on stdout.")
@click.option("--audit", is_flag=True, help="Check money conservation after every step.")
@click.option("--rules", "rule_names", multiple=True, metavar="NAME|PATH",
              help="Rule set in force (repeatable: rule sets compose; the most restrictive rule wins).")
@ALLOW_LOCAL_MODULES
def run_command(scenario_name: str, seed: int, traders: int | None, out_dir: Path | None, as_json: bool,
                audit: bool, rule_names: tuple[str, ...], allow_local_modules: bool) -> None:
    """Run a scenario under rule sets; print its headline metrics and write its tables."""
    sc = load_scenario(scenario_name)
    rule_sets = [load_rules(name, allow_local_modules) for name in rule_names]
    lo, hi = TRADERS_RANGE
    if traders is not None and not lo <= traders <= hi:
        raise InputError(f"--traders: got {traders}; allowed: {lo:,} to {hi:,} simulated trader accounts")
    if seed < 0:
        raise InputError(f"--seed: got {seed}; allowed: an integer >= 0")
    out = out_dir if out_dir is not None else OUTPUTS / f"{slug(sc.name)}-seed{seed}"
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"--out: {existing} exists and is not a folder; allowed: a folder path")
    with Progress(f"{sc.name} seed {seed}") as progress:
        result = run_scenario(sc, seed=seed, traders=traders, audit=audit, progress=progress, rules=rule_sets)
    try:
        result.write(out)
    except OSError as e:
        raise click.ClickException(f"cannot write the tables to {out}: {e.strerror or e}") from None
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.flagged[0]:
        click.echo(f"warning: invariants violated (violations.csv): {result.flagged[1]}", err=True)
    if as_json:
        click.echo(json.dumps(result.record(), allow_nan=False))
        click.echo(f"tables written to {out}", err=True)
    else:
        click.echo(summary(result))
        click.echo(f"\ntables written to {out}")


@cli.group()
def scenarios() -> None:
    """Built-in scenarios."""


@scenarios.command("list")
def scenarios_list() -> None:
    """List built-in scenarios with their titles."""
    names = builtin_names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        click.echo(f"{name:<{width}}  {load_scenario(name).title}")


@scenarios.command("show")
@click.argument("name", metavar="NAME|PATH")
def scenarios_show(name: str) -> None:
    """Show a scenario's venues, population and shocks."""
    click.echo(describe(load_scenario(name)))


def describe(sc: Scenario) -> str:
    """A scenario's settings, for people."""
    lines = [f"{sc.name}: {sc.title}"]
    if sc.description:
        lines.append(sc.description)
    lines += ["", f"start price {usd(sc.start_price)}, {sc.duration_minutes} minutes in steps of "
                  f"{sc.step_minutes} min, fundamental volatility {sc.sigma_daily:.1%} per day", "", "Venues"]
    table = [["name", "kind", "offshore", "KYC", "open interest", "depth +/-1%", "max leverage"]]
    for v in sc.venues:
        table.append([v.name, v.kind, "yes" if v.offshore else "no", "yes" if v.kyc_required else "no",
                      usd(sc.open_interest.get(v.name, 0.0)), usd(v.depth_usd), f"{v.max_leverage:g}x"])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines += ["", f"Population: {sc.traders:,} simulated accounts standing for {sc.real_accounts:,.0f} real accounts, "
                  f"{sc.kyc_share:.0%} willing to verify (KYC)"]
    for cname, c in sc.classes.items():
        where = ", ".join(f"{v} {p:.0%}" for v, p in c.venues.items()) or "by open interest"
        if cname in SPOT_CLASSES:
            lines.append(f"  {cname:<13} {c.share:.0%} of accounts, spot holdings {usd(c.holdings_usd)}")
        elif cname == "basis":
            lines.append(f"  {cname:<13} {c.share:.0%} of accounts, {c.oi_share:.0%} of open interest, "
                         f"short perpetual against long spot at median leverage {c.leverage_median:g}x; venues: {where}")
        else:
            lines.append(f"  {cname:<13} {c.share:.0%} of accounts, {c.oi_share:.0%} of open interest, "
                         f"median leverage {c.leverage_median:g}x, {c.long_share:.0%} long; venues: {where}")
    lines += ["", "Shocks" if sc.shocks else "Shocks: none"]
    for s in sc.shocks:
        span = f"minute {s.start_minute:g} to {s.start_minute + s.duration_minutes:g}"
        on = ", ".join(s.venues) or "all venues"
        what = {"price": f"price log move {s.size:+.3f}",
                "liquidity": f"depth x{s.depth_multiplier:g} on {on}, recovery half-life {s.recovery_half_life_minutes:g} min",
                "collateral": f"stablecoin collateral at ${s.price:g} on {on}",
                "volatility": f"volatility x{s.multiplier:g}"}[s.kind]
        lines.append(f"  {s.kind:<10}  {span}: {what}")
    return "\n".join(lines)


# "modules" lists the policy modules (Python classes); "rules" the rule sets (YAML files in
# policies/). "policies" was the modules' command before 0.2 and stays as a hidden alias.
cli.add_command(policies, name="modules")
cli.add_command(click.Group("policies", commands=policies.commands, hidden=True,
                            help="Deprecated alias of 'policylab modules' (removed in 0.3)."))
cli.add_command(rules)
cli.add_command(new_policy)
cli.add_command(validate_command)
cli.add_command(leverage_study_command)
cli.add_command(compare_command)
cli.add_command(sweep_command)
cli.add_command(sensitivity_command)


@cli.command("report")
@click.argument("results_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--format", "formats", default="html,pdf", show_default=True, metavar="FORMATS",
              help="What to write, comma-separated: html, pdf.")
@click.option("--template-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of custom templates; any template it lacks comes from the defaults.")
@click.option("--title", default=None, help="Title of the brief (default: from the scenario).")
@click.option("--paper", type=click.Choice(["a4", "letter"]), default="a4", show_default=True,
              help="Paper size of the PDF.")
@click.option("--firm-names", is_flag=True,
              help="Name venues as the scenario does (often firms), not by archetype.")
def report_command(results_dir: Path, formats: str, template_dir: Path | None, title: str | None,
                   paper: str, firm_names: bool) -> None:
    """Render a results folder's brief (DIR/brief.html, DIR/brief.pdf) without rerunning anything."""
    from policylab.brief.render import parse_formats, write_brief  # matplotlib and WeasyPrint load only for this command

    try:
        paths = write_brief(results_dir, parse_formats(formats), template_dir=template_dir, title=title, paper=paper,
                            firm_names=firm_names)
    except OSError as e:
        raise click.ClickException(f"cannot write the brief to {results_dir}: {e.strerror or e}") from None
    data = [p for p in paths if not p.name.startswith("brief.")]
    if data:
        click.echo(f"figure data written to {data[0].parent} ({len(data)} CSV files)")
    for path in paths[len(data):]:
        click.echo(f"brief written to {path}")

def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``policylab``); ``argv`` defaults to ``sys.argv[1:]``."""
    cli.main(args=argv)

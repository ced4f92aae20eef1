"""CLI commands for validation: ``validate`` and ``leverage-study``."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from policylab.atomic import write_all
from policylab.errors import InputError
from policylab.validation import record
from policylab.validation.prices import load_prices
from policylab.inputs.scenario import load_scenario


def _write(path: Path, data: bytes | str) -> None:
    write_all([(path, lambda p: p.write_bytes(data.encode() if isinstance(data, str) else data))])


def _seeds(seeds: int) -> None:
    if not 2 <= seeds <= 1000:
        raise InputError(f"--seeds: got {seeds}; allowed: 2 to 1000")


@click.command("validate")
@click.option("--scenario", default="october-2025", show_default=True, metavar="NAME|PATH",
              help="Scenario whose calibration targets to check (the calm day is always checked too).")
@click.option("--seeds", type=int, default=10, show_default=True, help="Seeds per scenario (2 to 1000).")
@click.option("--traders", type=int, default=None, help="Simulated trader accounts (default: the scenario's).")
@click.option("--prices", "prices_path", type=click.Path(path_type=Path), default=None,
              help="Real price CSV (OHLCV or date,close) for the stylized facts.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("outputs/validation"),
              show_default=True,
              help="Folder for targets.csv, stylized_facts.csv, facts_by_source.csv and the report.")
@click.option("--format", "formats", default="html,pdf", show_default=True, help="Report formats: html, pdf.")
@click.option("--workers", type=int, default=None, help="Local worker processes (default: all cores).")
@click.option("--record", "record_path", type=click.Path(path_type=Path), default=None,
              help="Also write this check into a validation record CSV (its rows for --scenario replaced); "
                   "the package's own, policylab/validation/record.csv, is the table every brief's appendix shows.")
def validate_command(scenario, seeds, traders, prices_path, out_dir, formats, workers, record_path) -> None:
    """Check the calibration targets; stylized facts of returns of the news path, the index and real data."""
    from policylab.brief.render import parse_formats, render_pdf
    from policylab.validation.report import render, validate

    _seeds(seeds)
    fmts = parse_formats(formats)
    old_record = _read_record(record_path) if record_path is not None else None
    if prices_path is not None:
        load_prices(prices_path)  # bad file: one-line error before any run
    tables = validate(scenario, seeds, traders=traders, prices=None if prices_path is None else str(prices_path),
                      workers=workers)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        t = tables["targets"]
        click.echo(t[["scenario", "description", "range", "median", "band_lo", "band_hi", "met"]].to_string(index=False))
        click.echo(f"\n{int(t['met'].sum())} of {len(t)} targets met\n")
        click.echo(tables["facts"].to_string(index=False))
        click.echo("\nWhat the traders add: each fact of the exogenous news path (the input), of the index "
                   "(the model's output)\nand of the price file; added_by_trading = index - news_path\n")
        wide = tables["facts_by_source"].drop(columns=["unit", "description"])
        click.echo(wide.to_string(index=False, na_rep="-", float_format=lambda x: f"{x:.3g}"))
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(out_dir / "targets.csv", tables["targets"].to_csv(index=False))
    _write(out_dir / "stylized_facts.csv", tables["facts"].to_csv(index=False))
    _write(out_dir / "facts_by_source.csv", tables["facts_by_source"].to_csv(index=False))
    html = render(tables)
    if "html" in fmts:
        _write(out_dir / "validation.html", html)
    if "pdf" in fmts:
        _write(out_dir / "validation.pdf", render_pdf(html))
    click.echo(f"\nwritten to {out_dir}")
    if record_path is not None:
        sc = load_scenario(scenario)
        new = record.updated(old_record, tables["targets"], sc.name, seeds, traders or sc.traders)
        _write(record_path, new.to_csv(index=False))
        click.echo(f"recorded in {record_path}")


def _read_record(path: Path):
    """The record at ``path`` (None if it does not exist yet); a file that is not one is a
    one-line error before any run."""
    if not path.exists():
        if not path.parent.is_dir():
            raise InputError(f"{path}: --record: folder {path.parent} does not exist; allowed: a file in an "
                             f"existing folder")
        return None
    if not path.is_file():
        raise InputError(f"{path}: --record: not a file; allowed: a validation record CSV (or a path that does not "
                         f"exist yet)")
    try:
        found = record.read(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: --record: cannot read it ({e}); allowed: a validation record CSV") from None
    missing = [c for c in record.COLUMNS if c not in found.columns]
    if missing:
        raise InputError(f"{path}: --record: columns {', '.join(missing)} missing; allowed: a validation record CSV "
                         f"with columns {', '.join(record.COLUMNS)}")
    return found


@click.command("leverage-study")
@click.option("--caps", default="1,2,5,10,25,50,100", show_default=True, help="Leverage caps to sweep (x).")
@click.option("--seeds", type=int, default=6, show_default=True, help="Seeds per cap (2 to 1000).")
@click.option("--traders", type=int, default=5000, show_default=True, help="Simulated trader accounts.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("outputs/leverage-study"),
              show_default=True, help="Folder for leverage_study.csv and leverage_study.png.")
@click.option("--workers", type=int, default=None, help="Local worker processes (default: all cores).")
@click.option("--bar-minutes", type=click.IntRange(1, 1440), default=15, show_default=True,
              help="Return horizon (minutes, a multiple of the leverage-study scenario's step).")
def leverage_study_command(caps, seeds, traders, out_dir, workers, bar_minutes) -> None:
    """Thurner, Farmer and Geanakoplos (2012) in this model: tails and clustering against the leverage cap."""
    from policylab.validation.leverage_study import leverage_study, plot

    try:
        values = sorted({float(c) for c in caps.split(",")})
    except ValueError:
        raise InputError(f"--caps: got {caps!r}; allowed: comma-separated numbers from 1 to 2000") from None
    if len(values) < 2 or values[0] < 1 or values[-1] > 2000:
        raise InputError(f"--caps: got {caps!r}; allowed: at least two numbers from 1 to 2000")
    _seeds(seeds)
    step = load_scenario("leverage-study").step_minutes
    if bar_minutes % step:
        raise InputError(f"--bar-minutes: got {bar_minutes}; allowed: a multiple of {step} (the scenario's step)")
    table = leverage_study(tuple(values), seeds, traders=traders, workers=workers, bar_minutes=bar_minutes)
    wide = table.pivot(index="cap", columns="fact", values="mean")
    click.echo(wide.to_string(float_format=lambda x: f"{x:.3f}"))
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(out_dir / "leverage_study.csv", table.to_csv(index=False))
    write_all([(out_dir / "leverage_study.png", lambda p: plot(table, p, bar_minutes))])
    click.echo(f"\nwritten to {out_dir}")

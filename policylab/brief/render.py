"""Impact briefs: an experiment's results folder (docs/contracts.md) rendered to HTML and PDF.

:func:`write_brief` reads the folder (:func:`load`, nothing is rerun), builds the
templates' context (:func:`context`: key findings, the side-by-side table, figures,
rule sets, ODD methodology, reproducibility), renders ``brief.html`` with jinja2
(autoescaping on) and turns the same HTML into ``brief.pdf`` with WeasyPrint. The HTML
is one self-contained file (CSS and PNG figures inline); the PDF renderer is given no
way to fetch anything but inline ``data:`` URLs.

Templates are looked up first in ``template_dir`` (an analyst's copy), then among the
defaults shipped as ``policylab.templates`` (the repository's ``templates/`` folder), so
a custom folder needs only the files it changes; any template may extend or include the
defaults as ``default/NAME`` (``{% extends "default/brief.html" %}`` then override one
block). Bad input (a missing or malformed results file, an unknown format or paper, a
broken custom template) raises :class:`~policylab.errors.InputError` before anything is
written; both files are written under temporary names and renamed into place together.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import statistics
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2
import pandas as pd
import pyarrow

from policylab import __version__
from policylab.validation import calibration
from policylab.brief import figures
from policylab.brief import findings
from policylab.brief import odd
from policylab.atomic import write_all
from policylab.errors import InputError

FORMATS = ("html", "pdf")
PAPERS = {"a4": "A4", "letter": "letter"}
COLUMNS_PER_TABLE = 5  # rule sets per block of the side-by-side table, baseline included
COLUMNS_PER_APPENDIX = 9  # the same for the appendix's one-line cells
FILES: dict[str, tuple[str, ...]] = {  # file -> columns the brief reads
    "summary.csv": ("rule_set", "metric", "unit", "direction", "description", "n", "mean", "median", "p05", "p95",
                    "baseline", "diff_mean", "diff_lo", "diff_hi", "improvement"),
    "runs.parquet": ("rule_set", "seed", "metric", "value"),
    "failed.parquet": ("rule_set", "seed", "error"),
    "timeseries.parquet": ("rule_set", "seed", "minute", "venue", "index_usd", "liquidated_usd"),
    "rule_sets.json": (),
    "scenario.json": ("name", "title", "venues", "classes", "shocks", "start_price", "duration_minutes",
                      "step_minutes"),
    "manifest.json": ("baseline", "seeds"),
}


@dataclass
class Results:
    """A results folder's tables and documents, as read from disk."""

    folder: Path
    summary: pd.DataFrame
    runs: pd.DataFrame
    failed: pd.DataFrame
    timeseries: pd.DataFrame
    rule_sets: dict
    scenario: dict
    manifest: dict

    @property
    def baseline(self) -> str:
        return self.manifest["baseline"]

    @property
    def order(self) -> list[str]:
        """Rule set names in comparison order, baseline first."""
        return list(self.rule_sets)

    @property
    def finished(self) -> list[str]:
        """Rule sets with at least one finished run, in comparison order."""
        done = set(self.runs["rule_set"].unique())
        return [r for r in self.order if r in done]


# ------------------------------------------------------------------------ reading
def _read(path: Path, columns: tuple[str, ...]):
    if not path.is_file():
        raise InputError(f"{path}: missing; a results folder (docs/contracts.md) holds {', '.join(FILES)}")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except (ValueError, OSError, pyarrow.ArrowException) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{path}: cannot be read ({first})") from None
    if path.suffix == ".json" and not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(data).__name__}")
    missing = [c for c in columns if c not in (data if isinstance(data, dict) else data.columns)]
    if missing:
        raise InputError(f"{path}: missing {', '.join(missing)}; allowed: the format of docs/contracts.md")
    return data


def load(folder: str | os.PathLike) -> Results:
    """Read and check a results folder. Raises InputError naming the file and what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; allowed: the results folder of `policylab compare`")
    data = {name: _read(folder / name, cols) for name, cols in FILES.items()}
    res = Results(folder, data["summary.csv"], data["runs.parquet"], data["failed.parquet"],
                  data["timeseries.parquet"], data["rule_sets.json"], data["scenario.json"], data["manifest.json"])
    if res.baseline not in res.rule_sets:
        raise InputError(f"{folder / 'manifest.json'}: baseline {res.baseline!r} is not in rule_sets.json "
                         f"({', '.join(res.rule_sets) or 'empty'})")
    unknown = sorted(set(res.summary["rule_set"]) - set(res.rule_sets))
    if unknown:
        raise InputError(f"{folder / 'summary.csv'}: rule sets {', '.join(unknown)} are not in rule_sets.json")
    for col in ("rule_set", "metric", "unit", "direction", "description", "improvement"):
        res.summary[col] = res.summary[col].fillna("").astype(str)
    return res


# ------------------------------------------------------------------------ context
def _cell(row) -> dict:
    """One rule set's numbers for one metric, formatted as the table shows them."""
    unit = row["unit"]
    status = row["improvement"] if row["improvement"] in findings.SIGNIFICANT else ""
    lo, hi, dlo, dhi = row["p05"], row["p95"], row["diff_lo"], row["diff_hi"]
    spread = findings.fmt_range(lo, hi, unit).replace(" to ", " to " if lo < 0 else "\u2013")
    diff_range = "[" + findings.fmt_range(dlo, dhi, unit, diff=True).replace(" to ", ", ") + "]"
    return {"value": findings.fmt_value(row["mean"], unit),
            "spread": "" if math.isnan(lo) or math.isnan(hi) else spread,
            "diff": findings.fmt_diff(row["diff_mean"], unit),
            "diff_range": "" if math.isnan(dlo) or math.isnan(dhi) else diff_range,
            "status": status}


EMPTY_CELL = {"value": "n/a", "spread": "", "diff": "n/a", "diff_range": "", "status": ""}


def _rows(cells: dict[str, dict[str, dict]], info: pd.DataFrame, metrics_: list[tuple[str, str]],
          order: list[str]) -> list[dict]:
    rows = []
    for name, text in metrics_:
        first = info.loc[name]
        rows.append({"metric": name, "label": text, "unit": first["unit"], "description": first["description"],
                     "direction": first["direction"].replace("_", " "),
                     "cells": {rs: cells[name].get(rs, EMPTY_CELL) for rs in order}})
    return rows


def side_by_side(summary: pd.DataFrame, order: list[str]) -> tuple[list[dict], list[dict]]:
    """(headline sections, appendix sections): each ``{"title", "rows"}``, a row holding
    the metric's label, unit, description and one cell per rule set of ``order``. The
    headline holds the metrics of ``findings.SECTIONS``; the appendix every other
    market-wide metric. Per-venue, per-class and per-side metrics (``stem.kind.member``)
    are left to the figures and ``summary.csv``."""
    present = list(dict.fromkeys(summary["metric"]))
    available = set(present)
    info = summary.drop_duplicates("metric").set_index("metric")
    cells: dict[str, dict[str, dict]] = {}
    for row in summary.to_dict("records"):
        cells.setdefault(row["metric"], {})[row["rule_set"]] = _cell(row)
    head = []
    for title, rows in findings.SECTIONS:
        chosen = [(m, text) for m, text in rows if m in available]
        if chosen:
            head.append({"title": title, "rows": _rows(cells, info, chosen, order)})
    other = [(m, info.loc[m, "description"]) for m in present if "." not in m and m not in findings.LABELS]
    return head, ([{"title": "Other metrics", "rows": _rows(cells, info, other, order)}] if other else [])


def column_blocks(order: list[str], baseline: str, per: int = COLUMNS_PER_TABLE) -> list[list[str]]:
    """Rule sets split into blocks of table columns, each block led by the baseline."""
    others = [r for r in order if r != baseline]
    n = max(per - 1, 1)
    return [[baseline, *others[i:i + n]] for i in range(0, len(others), n)] or [[baseline]]


def _safe_url(url) -> str | None:
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def rule_set_view(name: str, info: dict, warnings: list[str], colour: str, runs: int, failed: int) -> dict:
    """A rule set for the template: its description, modules, sources (links only for http(s))."""
    parts = info.get("composed_of") or [info]
    modules = [{"module": m.get("module", ""), "title": m.get("title", ""), "source": m.get("source", ""),
                "params": {k: odd.value(k, v) for k, v in (m.get("params") or {}).items()},
                "given": m.get("given", []),
                "target": "; ".join(f"{k.replace('_', ' ')}: {odd.value(k, v)}"
                                    for k, v in (m.get("target") or {}).items()) or "every venue and trader"}
               for p in parts for m in p.get("modules") or []]
    sources = [{"citation": s.get("citation", ""), "url": _safe_url(s.get("url"))}
               for p in parts for s in p.get("sources") or []]
    return {"name": name, "title": info.get("title", name), "description": info.get("description", ""),
            "jurisdiction": info.get("jurisdiction", ""), "effective_date": str(info.get("effective_date", "")),
            "composed_of": [p.get("name", "") for p in info.get("composed_of") or []],
            "params": {k: odd.value(k, v) for k, v in (info.get("params") or {}).items()},
            "modules": modules, "sources": sources, "warnings": warnings, "colour": colour,
            "runs": runs, "failed": failed}


def _seed_text(seeds: list[int]) -> str:
    """Seeds as ranges: ``0–29`` or ``1, 3, 5–7``."""
    out, run = [], []
    for s in sorted(seeds):
        if run and s == run[-1] + 1:
            run.append(s)
            continue
        if run:
            out.append(f"{run[0]}\u2013{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
        run = [s]
    if run:
        out.append(f"{run[0]}\u2013{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
    return ", ".join(out)


def _date(stamp) -> str:
    try:
        return dt.datetime.fromisoformat(str(stamp)).strftime("%-d %B %Y")
    except ValueError:
        return str(stamp or "not recorded")


def reproducibility(res: Results) -> list[tuple[str, str]]:
    """What reproduces the results, as label-value pairs from the manifest."""
    m = res.manifest
    per_run = [r["seconds"] for r in m.get("run_seconds", []) if isinstance(r, dict) and "seconds" in r]
    rows = [
        ("command", m.get("command") or "not recorded (Python API)"),
        ("package version", f"{m.get('package', 'policylab')} {m.get('version', 'not recorded')}"),
        ("git revision", m.get("git_revision") or "none (not run from a git checkout)"),
        ("configuration hash", m.get("config_hash") or "not recorded"),
        ("scenario", f"{res.scenario.get('name')} ({res.scenario.get('title')})"),
        ("baseline", res.baseline),
        ("seeds", f"{_seed_text(m.get('seeds', []))} ({len(m.get('seeds', []))} per rule set)"),
        ("simulated traders per run", f"{m['traders']:,}" if isinstance(m.get("traders"), int) else "not recorded"),
        ("backend", f"{m.get('backend', 'not recorded')}, {m.get('workers', '?')} worker(s)"),
        ("started", str(m.get("started", "not recorded"))),
        ("finished", str(m.get("finished", "not recorded"))),
        ("wall time", f"{m['wall_seconds']:,.1f} s" if isinstance(m.get("wall_seconds"), (int, float))
         else "not recorded"),
    ]
    if per_run:
        rows.append(("time per run", f"median {statistics.median(per_run):,.2f} s, total {sum(per_run):,.1f} s "
                                     f"over {len(per_run)} runs"))
    rows += [("platform", f"{m.get('platform', 'not recorded')}, Python {m.get('python', '?')}"),
             ("runs", f"{m.get('finished_runs', len(res.runs[['rule_set', 'seed']].drop_duplicates()))} finished of "
                      f"{m.get('runs', '?')}, {len(res.failed)} failed"),
             ("results folder", str(res.folder.resolve()))]
    return rows


def paper_size(paper: str) -> str:
    """The CSS page size of ``--paper``; raises InputError for anything but a4 or letter."""
    if paper not in PAPERS:
        raise InputError(f"--paper: got {paper!r}; allowed: {', '.join(PAPERS)}")
    return PAPERS[paper]


def context(res: Results, title: str | None = None, paper: str = "a4") -> dict:
    """Everything the templates use, by name, with every number already formatted."""
    size = paper_size(paper)
    order, baseline = res.order, res.baseline
    sc, m = res.scenario, res.manifest
    colours = figures.palette(order, baseline)
    seeds = len(m.get("seeds", []))
    titles = {r: res.rule_sets[r].get("title", r) for r in order}
    head, appendix = side_by_side(res.summary, order)
    failed_runs = [{"rule_set": r["rule_set"], "seed": int(r["seed"]),
                    "error": (str(r["error"]).strip().splitlines() or [""])[-1]}
                   for _, r in res.failed.iterrows()]
    finished = res.finished
    counts = res.runs.drop_duplicates(["rule_set", "seed"]).groupby("rule_set").size()
    failed_counts = res.failed.groupby("rule_set").size()
    warnings = m.get("warnings") or {}
    return {
        "title": title or f"Impact brief: {sc.get('title', sc.get('name'))}",
        "paper": size,
        "version": __version__,
        "scenario": {"name": sc.get("name"), "title": sc.get("title"), "description": sc.get("description", "")},
        "baseline": baseline,
        "baseline_title": titles[baseline],
        "order": order,
        "colours": colours,
        "titles": titles,
        "seeds": seeds,
        "traders": m.get("traders"),
        "run_date": _date(m.get("finished") or m.get("started")),
        "rendered": dt.date.today().strftime("%-d %B %Y"),
        "config_hash": "".join(c for c in str(m.get("config_hash") or "") if c in string.hexdigits)[:12],
        "complete": m.get("complete", True),
        "findings": findings.key_findings(res.summary, titles, baseline, seeds) if finished else [],
        "materiality": findings.materiality(),
        "sections": head,
        "appendix": appendix,
        "blocks": column_blocks(order, baseline),
        "appendix_blocks": column_blocks(order, baseline, COLUMNS_PER_APPENDIX),
        "figures": figures.all_figures(res.summary, res.runs, res.timeseries, finished, baseline)
        if baseline in finished else [],
        "rule_sets": [rule_set_view(r, res.rule_sets[r], warnings.get(r, []), colours[r], int(counts.get(r, 0)),
                                    int(failed_counts.get(r, 0))) for r in order],
        "odd": odd.methodology(sc, m),
        "reproducibility": reproducibility(res),
        "failed_runs": failed_runs,
        "total_runs": m.get("runs", len(order) * seeds),
        "calibration": calibration_check(res),
    }


def calibration_check(res: Results) -> list[dict]:
    """The scenario's calibration targets on the baseline's runs, when the baseline is the
    2025 status quo the targets describe (empty otherwise)."""
    name = res.scenario.get("name")
    if res.baseline != "status-quo-2025" or name not in calibration.TARGETS:
        return []
    base = res.runs[res.runs["rule_set"] == res.baseline]
    if base.empty:
        return []
    wide = base.pivot_table(index="seed", columns="metric", values="value", aggfunc="first")
    return calibration.evaluate(name, wide).to_dict("records")


# ------------------------------------------------------------------------ rendering
def _default_source(name: str):
    path = resources.files("policylab.templates").joinpath(*name.split("/"))
    return path.read_text(encoding="utf-8") if path.is_file() else None


def environment(template_dir: str | os.PathLike | None = None) -> jinja2.Environment:
    """Templates from ``template_dir`` first, then the defaults (also as ``default/NAME``)."""
    defaults = jinja2.FunctionLoader(_default_source)
    loaders: list[jinja2.BaseLoader] = [jinja2.PrefixLoader({"default": defaults}), defaults]
    if template_dir is not None:
        if not Path(template_dir).is_dir():
            raise InputError(f"--template-dir: {template_dir} is not a folder; allowed: a folder of templates")
        loaders.insert(0, jinja2.FileSystemLoader(str(template_dir)))
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                              autoescape=jinja2.select_autoescape(("html", "xml"), default_for_string=True),
                              trim_blocks=True, lstrip_blocks=True)


def brief_template(template_dir: str | os.PathLike | None = None) -> jinja2.Template:
    """The compiled brief template; every custom template is compiled too, so a syntax
    error is reported before any work is done."""
    env = environment(template_dir)
    try:
        if template_dir is not None:
            for path in sorted(Path(template_dir).rglob("*")):
                if path.is_file() and path.suffix in (".html", ".css"):
                    env.get_template(path.relative_to(template_dir).as_posix())
        return env.get_template("brief.html")
    except jinja2.TemplateSyntaxError as e:
        raise InputError(f"{e.filename or e.name}:{e.lineno}: template error: {e.message}") from None


def _render(template: jinja2.Template, ctx: dict) -> str:
    try:
        return template.render(ctx)
    except jinja2.TemplateSyntaxError as e:
        raise InputError(f"{e.filename or e.name}:{e.lineno}: template error: {e.message}") from None
    except jinja2.TemplateNotFound as e:
        raise InputError(f"template error: template {e.name!r} not found in the template folder or the "
                         "defaults") from None
    except jinja2.TemplateError as e:
        raise InputError(f"template error: {e.message}") from None


def render_html(ctx: dict, template_dir: str | os.PathLike | None = None) -> str:
    """The brief as one self-contained HTML document."""
    return _render(brief_template(template_dir), ctx)


def render_pdf(html: str) -> bytes:
    """The same HTML, paginated by WeasyPrint with the templates' print CSS. Only inline
    ``data:`` URLs are fetched: no network, no local files."""
    import weasyprint
    from weasyprint.urls import URLFetcher

    return weasyprint.HTML(string=html, url_fetcher=URLFetcher(allowed_protocols=("data",))).write_pdf()


def parse_formats(text: str) -> tuple[str, ...]:
    """``"html,pdf"`` -> ("html", "pdf"); raises InputError for anything else."""
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise InputError(f"--format: got {text!r}; allowed: {', '.join(FORMATS)} (comma-separated)")
    return chosen


def write_brief(folder: str | os.PathLike, formats: tuple[str, ...] = FORMATS, *,
                template_dir: str | os.PathLike | None = None, title: str | None = None,
                paper: str = "a4") -> list[Path]:
    """Render ``brief.html`` and/or ``brief.pdf`` into the results folder. Returns the paths.

    Everything is rendered in memory first; the files are then written under temporary
    names and renamed into place, so a failure (OSError) leaves no half-written brief.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"--format: got {','.join(formats)!r}; allowed: {', '.join(FORMATS)} (comma-separated)")
    paper_size(paper)
    template = brief_template(template_dir)
    res = load(folder)
    html = _render(template, context(res, title=title, paper=paper))
    content = {"html": html.encode("utf-8")}
    if "pdf" in formats:
        content["pdf"] = render_pdf(html)
    return write_all([(res.folder / f"brief.{fmt}", lambda p, data=content[fmt]: p.write_bytes(data))
                      for fmt in formats])

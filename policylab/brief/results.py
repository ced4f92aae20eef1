"""Reading a results folder (docs/contracts.md): its tables and documents, checked.

Everything the brief shows comes from here; nothing is rerun and no model is imported.
"""

from __future__ import annotations

import json
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow
import pyarrow.parquet

from policylab.errors import InputError
from policylab.venues.archetypes import ARCHETYPES

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
ONLY_THESE_COLUMNS = ("timeseries.parquet",)  # large tables of which the brief reads only the columns above

# Written by `policylab sensitivity` (policylab.experiments.sensitivity); read when present.
OPTIONAL = {
    "sensitivity.csv": ("assumption", "side", "value", "rule_set", "metric", "diff_mean", "diff_lo", "diff_hi",
                        "seeds", "traders"),
    "ranking.csv": ("metric", "rule_set", "scenario", "rank", "second_scenario", "second_rank", "holds", "seeds",
                    "traders"),
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
    firm_names: bool = False  # label venues by the scenario's names (often firms) instead of their archetype
    sensitivity: pd.DataFrame | None = None  # sensitivity.csv, when `policylab sensitivity` has run on the folder
    ranking: pd.DataFrame | None = None  # ranking.csv, likewise
    labels: dict[str, str] = field(default_factory=dict, init=False)
    drawn: list = field(default_factory=list, init=False, repr=False)  # figures.draw_all's figures, drawn once

    def __post_init__(self):
        self.labels = venue_labels(self.scenario.get("venues") or [], self.firm_names)

    def venue_label(self, venue: str) -> str:
        """How the brief names a venue: its archetype (lettered when several share one), or
        the scenario's own name with ``firm_names``."""
        return self.labels.get(venue, venue.replace("_", " "))

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

    @property
    def titles(self) -> dict[str, str]:
        """Rule set name -> its title (the name when it has none), in comparison order."""
        return {r: self.rule_sets[r].get("title", r) for r in self.order}


PROPER_ADJECTIVES = ("Japanese", "European", "British", "American", "Korean", "Chinese")  # kept capitalised


def archetype_label(kind: str) -> str:
    """An archetype's label without the firm it resembles: "Offshore CEX (Binance-like)" ->
    "offshore CEX", "EU regulated broker (eToro-like CFDs)" -> "EU regulated broker (CFDs)"."""
    label = str((ARCHETYPES.get(kind) or {}).get("label") or kind.replace("_", " "))
    label = re.sub(r"\(([^)]*)-like\s*([^)]*)\)", lambda m: f"({m.group(2)})" if m.group(2) else "", label)
    label = re.sub(r"\s+", " ", label).strip()
    proper = label[:2] == label[:2].upper() or label.split(" ")[0] in PROPER_ADJECTIVES
    return label if proper else label[0].lower() + label[1:]


def venue_labels(venues: list, firm_names: bool = False) -> dict[str, str]:
    """Venue name -> label: its archetype's, lettered A, B, ... when several venues share
    an archetype; with ``firm_names``, the scenario's own names."""
    venues = [v for v in venues if isinstance(v, dict) and "name" in v]
    if firm_names:
        return {v["name"]: v["name"] for v in venues}
    kinds = [str(v.get("kind") or v["name"]) for v in venues]
    out, seen = {}, {}
    for v, kind in zip(venues, kinds):
        n = seen.setdefault(kind, 0)
        seen[kind] = n + 1
        out[v["name"]] = archetype_label(kind) + (f" {string.ascii_uppercase[n % 26]}" if kinds.count(kind) > 1
                                                   else "")
    return out


def _read(path: Path, columns: tuple[str, ...]):
    if not path.is_file():
        raise InputError(f"{path}: missing; a results folder (docs/contracts.md) holds {', '.join(FILES)}")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = pd.read_csv(path) if path.suffix == ".csv" else _read_parquet(path, columns)
    except (ValueError, OSError, pyarrow.ArrowException) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{path}: cannot be read ({first})") from None
    if path.suffix == ".json" and not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(data).__name__}")
    missing = [c for c in columns if c not in (data if isinstance(data, dict) else data.columns)]
    if missing:
        raise InputError(f"{path}: missing {', '.join(missing)}; allowed: the format of docs/contracts.md")
    return data


def _read_parquet(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A Parquet table; for a file of ONLY_THESE_COLUMNS, only ``columns`` (those it has:
    the caller reports the missing ones), which makes the 80 MB time series of the
    standard comparison a tenth of a second to read instead of one and a half."""
    if path.name not in ONLY_THESE_COLUMNS:
        return pd.read_parquet(path)
    present = set(pyarrow.parquet.read_schema(path).names)
    return pd.read_parquet(path, columns=[c for c in columns if c in present])


def load(folder: str | os.PathLike, firm_names: bool = False) -> Results:
    """Read and check a results folder. Raises InputError naming the file and what is wrong.
    ``firm_names``: name venues as the scenario does rather than by archetype."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; allowed: the results folder of `policylab compare`")
    data = {name: _read(folder / name, cols) for name, cols in FILES.items()}
    optional = {name: _read(folder / name, cols) if (folder / name).is_file() else None
                for name, cols in OPTIONAL.items()}
    res = Results(folder, data["summary.csv"], data["runs.parquet"], data["failed.parquet"],
                  data["timeseries.parquet"], data["rule_sets.json"], data["scenario.json"], data["manifest.json"],
                  firm_names, optional["sensitivity.csv"], optional["ranking.csv"])
    if res.baseline not in res.rule_sets:
        raise InputError(f"{folder / 'manifest.json'}: baseline {res.baseline!r} is not in rule_sets.json "
                         f"({', '.join(res.rule_sets) or 'empty'})")
    unknown = sorted(set(res.summary["rule_set"]) - set(res.rule_sets))
    if unknown:
        raise InputError(f"{folder / 'summary.csv'}: rule sets {', '.join(unknown)} are not in rule_sets.json")
    for col in ("rule_set", "metric", "unit", "direction", "description", "improvement"):
        res.summary[col] = res.summary[col].astype(object).fillna("").astype(str)  # an all-empty column reads as float
    return res

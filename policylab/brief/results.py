"""Reading a results folder (docs/contracts.md): its tables and documents, checked.

Everything the brief shows comes from here; nothing is rerun and no model is imported.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow

from policylab.errors import InputError

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

    @property
    def titles(self) -> dict[str, str]:
        """Rule set name -> its title (the name when it has none), in comparison order."""
        return {r: self.rule_sets[r].get("title", r) for r in self.order}


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

"""The validation record: the calibration targets of every historical scenario as
``policylab validate`` last checked them, shipped with the package (``record.csv``) so
that every brief's appendix says how the model does beyond the scenario it ran.

Rewritten by ``policylab validate --scenario S --record policylab/validation/record.csv``
(the rows of that ``--scenario`` are replaced; the others kept), after any change that
moves a calibration target; a commit that changes results re-runs it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from policylab import __version__

RECORD = Path(__file__).with_name("record.csv")
COLUMNS = ("validated_with", "scenario", "target", "description", "range", "median", "band_lo", "band_hi", "met",
           "seeds", "traders", "version", "date")


def updated(record: pd.DataFrame | None, targets: pd.DataFrame, validated_with: str, seeds: int, traders: int,
            date: dt.date | None = None) -> pd.DataFrame:
    """``record`` with the rows of ``validated_with`` replaced by ``targets`` (validate's
    targets table: that scenario's targets and the calm day's checked beside them)."""
    rows = targets.assign(validated_with=validated_with, seeds=seeds, traders=traders, version=__version__,
                          date=(date or dt.date.today()).isoformat())[list(COLUMNS)]
    kept = record[record["validated_with"] != validated_with] if record is not None else None
    return pd.concat([kept, rows], ignore_index=True) if kept is not None and not kept.empty else rows


def read(path: Path = RECORD) -> pd.DataFrame | None:
    """The record, or None when there is none."""
    return pd.read_csv(path) if path.is_file() else None


def summary(record: pd.DataFrame | None) -> list[dict]:
    """One entry per validated scenario (in the record's order): its own targets met, the
    runs (seeds of traders), the date and version, and the targets missed (with their range)."""
    if record is None or record.empty:
        return []
    out = []
    for name, rows in record.groupby("validated_with", sort=False):
        own, calm = rows[rows["scenario"] == name], rows[(rows["scenario"] == "calm") & (name != "calm")]
        first = rows.iloc[0]
        out.append({"scenario": name, "met": int(own["met"].sum()), "of": len(own),
                    "calm_met": int(calm["met"].sum()), "calm_of": len(calm),
                    "runs": f"{int(first['seeds'])} seeds of {int(first['traders']):,} traders", "date": str(first["date"]),
                    "version": str(first["version"]),
                    "missed": [f"{r.description} (target {r.range})" for r in rows.itertuples() if not r.met]})
    return out

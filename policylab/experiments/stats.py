"""Statistics of an experiment: per-arm distributions and paired bootstrap differences.

Intervals are 90% percentile-bootstrap intervals of a mean with ``RESAMPLES``
resamples drawn from a fixed seed, so the same runs always give the same tables.
A difference from the baseline is paired: it resamples the per-seed differences over
the seeds on which both arms finished with a defined value (common random numbers
make those differences far less noisy than the arms themselves).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from policylab.metrics import HIGHER, LOWER, Metric

RESAMPLES = 2000
LEVEL = 0.90
BOOTSTRAP_SEED = 20251010

SUMMARY_COLUMNS = ("rule_set", "metric", "unit", "direction", "description", "n", "mean", "median", "p05", "p95",
                   "baseline", "diff_mean", "diff_lo", "diff_hi", "improvement")


@lru_cache(maxsize=64)
def _weights(n: int) -> np.ndarray:
    """Resampling weights (RESAMPLES x n): how often each of n observations is drawn."""
    rng = np.random.default_rng([BOOTSTRAP_SEED, n])
    idx = rng.integers(0, n, size=(RESAMPLES, n))
    w = np.zeros((RESAMPLES, n))
    np.add.at(w, (np.repeat(np.arange(RESAMPLES), n), idx.ravel()), 1.0)
    return w / n


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    """Bootstrap interval of the mean of ``values`` (NaNs dropped; NaN if fewer than 2)."""
    v = values[~np.isnan(values)]
    if len(v) < 2:
        return float("nan"), float("nan")
    means = _weights(len(v)) @ v
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def improvement(direction: str, lo: float, hi: float) -> str:
    """"better", "worse", "no difference" (interval includes 0) or "n/a"."""
    if direction not in (LOWER, HIGHER) or np.isnan(lo) or np.isnan(hi):
        return "n/a"
    if lo <= 0 <= hi:
        return "no difference"
    return "better" if (hi < 0) == (direction == LOWER) else "worse"


def summarise(wide: pd.DataFrame, arms: list[str], baseline: str, definitions: dict[str, Metric]) -> pd.DataFrame:
    """The summary table: one row per arm and metric.

    ``wide`` has one row per finished run: ``rule_set``, ``seed`` and one column per metric.
    """
    names = list(definitions)
    base = wide[wide["rule_set"] == baseline].set_index("seed")
    rows = []
    for arm in arms:
        own = wide[wide["rule_set"] == arm].set_index("seed")
        seeds = own.index.intersection(base.index)
        values = own[names].to_numpy(dtype=float)  # runs x metrics, read once per arm
        paired = own.loc[seeds, names].to_numpy(dtype=float)
        base_paired = base.loc[seeds, names].to_numpy(dtype=float)
        for j, (name, m) in enumerate(definitions.items()):
            x = values[:, j]
            v = x[~np.isnan(x)]
            a, b = paired[:, j], base_paired[:, j]
            pair = ~np.isnan(a) & ~np.isnan(b)
            d = a[pair] - b[pair]
            lo, hi = mean_interval(d) if arm != baseline else (float("nan"), float("nan"))
            rows.append({
                "rule_set": arm, "metric": name, "unit": m.unit, "direction": m.direction,
                "description": m.description, "n": len(v),
                "mean": v.mean() if len(v) else np.nan, "median": np.median(v) if len(v) else np.nan,
                "p05": np.percentile(v, 5) if len(v) else np.nan, "p95": np.percentile(v, 95) if len(v) else np.nan,
                "baseline": b[pair].mean() if pair.any() else np.nan,
                "diff_mean": d.mean() if pair.any() else np.nan, "diff_lo": lo, "diff_hi": hi,
                "improvement": "n/a" if arm == baseline else improvement(m.direction, lo, hi),
            })
    return _typed(pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    types = {c: "str" for c in ("rule_set", "metric", "unit", "direction", "description", "improvement")}
    types.update({c: "float64" for c in ("mean", "median", "p05", "p95", "baseline", "diff_mean", "diff_lo", "diff_hi")})
    types["n"] = "int64"
    return df.astype(types)

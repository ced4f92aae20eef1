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
    Every statistic is that of the metric's own values (NaN dropped), computed for all the
    metrics of an arm at once where none is dropped (the same NumPy reductions over each
    metric's contiguous values, so the same numbers as one metric at a time).
    """
    names = list(definitions)
    base = wide[wide["rule_set"] == baseline].set_index("seed")
    m = list(definitions.values())
    parts = []
    for arm in arms:
        own = wide[wide["rule_set"] == arm].set_index("seed")
        seeds = own.index.intersection(base.index)
        values = own[names].to_numpy(dtype=float)  # runs x metrics, read once per arm
        paired = own.loc[seeds, names].to_numpy(dtype=float)
        base_paired = base.loc[seeds, names].to_numpy(dtype=float)
        pair = ~np.isnan(paired) & ~np.isnan(base_paired)
        diff = paired - base_paired
        n, mean, median, p05, p95 = _distribution(values)
        if arm != baseline:
            lo, hi = _intervals(diff, pair)
            verdict = [improvement(x.direction, a, b) for x, a, b in zip(m, lo, hi)]
        else:
            lo = hi = np.full(len(names), np.nan)
            verdict = ["n/a"] * len(names)
        parts.append(pd.DataFrame({
            "rule_set": arm, "metric": names, "unit": [x.unit for x in m], "direction": [x.direction for x in m],
            "description": [x.description for x in m], "n": n, "mean": mean, "median": median, "p05": p05,
            "p95": p95, "baseline": _means(base_paired, pair), "diff_mean": _means(diff, pair), "diff_lo": lo,
            "diff_hi": hi, "improvement": verdict}))
    if not parts:
        return _typed(pd.DataFrame(columns=list(SUMMARY_COLUMNS)))
    return _typed(pd.concat(parts, ignore_index=True)[list(SUMMARY_COLUMNS)])


def _rows(x: np.ndarray) -> np.ndarray:
    """(metrics x runs), each metric's values contiguous as a 1-D array of them is."""
    return np.ascontiguousarray(x.T)


def _distribution(values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per metric (column of ``values``): count, mean, median, 5th and 95th percentiles of its
    non-NaN values (NaN if none)."""
    k = values.shape[1]
    n = (~np.isnan(values)).sum(axis=0)
    out = [np.full(k, np.nan) for _ in range(4)]
    full = n == values.shape[0]
    if values.shape[0] and full.any():
        x = _rows(values[:, full])
        for o, stat in zip(out, (x.mean(axis=1), np.median(x, axis=1), np.percentile(x, 5, axis=1),
                                  np.percentile(x, 95, axis=1))):
            o[full] = stat
    for j in np.flatnonzero(~full & (n > 0)):
        v = values[~np.isnan(values[:, j]), j]
        out[0][j], out[1][j], out[2][j], out[3][j] = v.mean(), np.median(v), np.percentile(v, 5), np.percentile(v, 95)
    return (n, *out)


def _means(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Per column: the mean of ``x``'s values where ``keep`` (NaN if none)."""
    out = np.full(x.shape[1], np.nan)
    full = keep.all(axis=0)
    if x.shape[0] and full.any():
        out[full] = _rows(x[:, full]).mean(axis=1)
    for j in np.flatnonzero(~full & keep.any(axis=0)):
        out[j] = x[keep[:, j], j].mean()
    return out


def _intervals(diff: np.ndarray, pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: :func:`mean_interval` of ``diff``'s values where ``pair``; the bootstrap
    means of every column with the same values (all paired and none NaN) at once."""
    k = diff.shape[1]
    lo, hi = np.full(k, np.nan), np.full(k, np.nan)
    full = pair.all(axis=0) & ~np.isnan(diff).any(axis=0)
    if diff.shape[0] >= 2 and full.any():
        w = _weights(diff.shape[0])
        means = np.stack([w @ v for v in _rows(diff[:, full])])
        tail = (1 - LEVEL) / 2 * 100
        lo[full], hi[full] = np.percentile(means, [tail, 100 - tail], axis=1)
    for j in np.flatnonzero(~full):
        lo[j], hi[j] = mean_interval(diff[pair[:, j], j])
    return lo, hi


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    types = {c: "str" for c in ("rule_set", "metric", "unit", "direction", "description", "improvement")}
    types.update({c: "float64" for c in ("mean", "median", "p05", "p95", "baseline", "diff_mean", "diff_lo", "diff_hi")})
    types["n"] = "int64"
    return df.astype(types)

"""Stylized facts of returns: fat tails and volatility clustering, and the largest fall.

Excess kurtosis; the Hill estimator of the tail index on the largest ``tail_share``
of absolute returns; autocorrelation of absolute and of raw returns at given lags
(``FACTS``, of a sample of returns, pooled over paths). The maximum drawdown
(``PATH_FACTS``) is a fact of one price path.
"""

from __future__ import annotations

import numpy as np

FACTS = {  # name: (unit, description)
    "excess_kurtosis": ("ratio", "excess kurtosis of log returns (0 for a normal distribution)"),
    "tail_index": ("exponent", "Hill estimator of the tail index on the largest 5% of |r| (lower: fatter tails)"),
    "acf_abs_lag1": ("correlation", "autocorrelation of |r| at lag 1 (volatility clustering)"),
    "acf_abs_lag5": ("correlation", "autocorrelation of |r| at lag 5"),
    "acf_raw_lag1": ("correlation", "autocorrelation of r at lag 1 (about 0 in efficient markets)"),
}
PATH_FACTS = {  # name: (unit, description)
    "max_drawdown": ("share", "largest peak-to-trough fall of the price over one path (median over paths)"),
}


def excess_kurtosis(r: np.ndarray) -> float:
    d = r - r.mean()
    var = np.mean(d ** 2)
    return float(np.mean(d ** 4) / var ** 2 - 3.0) if var > 0 else float("nan")


def hill_tail_index(r: np.ndarray, tail_share: float = 0.05) -> float:
    """Hill estimator alpha = 1 / mean(log(x_i / x_k)) over the k largest |r|."""
    x = np.sort(np.abs(r[r != 0]))[::-1]
    k = max(int(len(x) * tail_share), 2)
    if len(x) <= k:
        return float("nan")
    return float(1.0 / np.mean(np.log(x[:k] / x[k])))


def acf(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    denom = np.sum(x ** 2)
    return float(np.sum(x[lag:] * x[:-lag]) / denom) if denom > 0 and len(x) > lag else float("nan")


def facts(r: np.ndarray) -> dict[str, float]:
    """Every fact in FACTS for log returns ``r``."""
    r = np.asarray(r, dtype=float)
    r = r[np.isfinite(r)]
    return {"excess_kurtosis": excess_kurtosis(r), "tail_index": hill_tail_index(r),
            "acf_abs_lag1": acf(np.abs(r), 1), "acf_abs_lag5": acf(np.abs(r), 5), "acf_raw_lag1": acf(r, 1)}


def max_drawdown(r: np.ndarray) -> float:
    """Largest peak-to-trough fall, as a share of the peak, of the path with log returns ``r``."""
    r = np.asarray(r, dtype=float)
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return float("nan")
    log_path = np.concatenate([[0.0], np.cumsum(r)])
    return float(1.0 - np.exp(np.min(log_path - np.maximum.accumulate(log_path))))

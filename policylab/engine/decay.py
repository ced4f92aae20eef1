"""Exponential decay by half-life: the one formula of every quantity that fades with time
(the index's transient dislocation, the venues' basis, a shock's liquidity recovery, the
market's memory of a drawdown, the market makers' depth recovery and lay-off, the refills
of wiped-out accounts). Where a half-life of 0 means "off" (lay-off, refills), the caller
checks it first."""

from __future__ import annotations

import numpy as np


def left(minutes, half_life: float):
    """Share of a quantity left after ``minutes`` (a number or an array) of exponential decay
    with ``half_life`` (minutes): 0.5 ** (minutes / half_life). A half-life of 0 leaves
    nothing: the quantity does not outlast its step."""
    if half_life > 0:
        return 0.5 ** (minutes / half_life)
    return np.zeros(np.shape(minutes)) if isinstance(minutes, np.ndarray) else 0.0

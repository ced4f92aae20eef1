"""Activity and liquidity, the cost side of a rule set: traded volume and order-book depth
within +/-1% of the price, against their starting values."""

from __future__ import annotations

import numpy as np

from policylab.metrics.api import HIGHER, Run, Section, ratio, shared

SECTION = Section("activity", "Activity and liquidity")


@shared
def _total_depth_ratio(run: Run) -> np.ndarray:
    """Per step: total depth over its starting value."""
    return ratio(run.series["depth_usd"].sum(axis=1), run.start.depth.sum())


@shared
def _depth_ratio(run: Run) -> np.ndarray:
    """Per step and venue: depth over its starting value."""
    return ratio(run.series["depth_usd"], run.start.depth)


@SECTION.metric("volume_usd", "USD", "traded notional on all venues (spot included)", HIGHER)
def volume_usd(run: Run) -> float:
    return run.volume.sum()


@SECTION.family("volume_usd", "venue", "USD", "traded notional on {member}", HIGHER)
def volume_usd_by_venue(run: Run) -> np.ndarray:
    return run.volume


@SECTION.metric("depth_mean_ratio", "ratio", "mean over steps of total +/-1% depth over its starting value", HIGHER)
def depth_mean_ratio(run: Run) -> float:
    return _total_depth_ratio(run).mean()


@SECTION.metric("depth_worst_ratio", "ratio", "lowest total +/-1% depth over its starting value", HIGHER)
def depth_worst_ratio(run: Run) -> float:
    return _total_depth_ratio(run).min()


@SECTION.family("depth_mean_ratio", "venue", "ratio", "mean over steps of {member} +/-1% depth over its starting value",
                HIGHER)
def depth_mean_ratio_by_venue(run: Run) -> np.ndarray:
    return _depth_ratio(run).mean(axis=0)


@SECTION.family("depth_worst_ratio", "venue", "ratio", "lowest {member} +/-1% depth over its starting value", HIGHER)
def depth_worst_ratio_by_venue(run: Run) -> np.ndarray:
    return _depth_ratio(run).min(axis=0)

"""Open interest and market structure: derivatives open interest over the run (long side,
USD at venue prices; the spot venue is left out) and each venue's and the offshore
venues' shares of it and of derivatives volume. The offshore shares are measured over the
whole run (volume-weighted, time-weighted) and are neutral: a share that falls because
traders were excluded is not an improvement."""

from __future__ import annotations

import numpy as np

from policylab.metrics.api import NEUTRAL, Run, Section, ratio, shared

SECTION = Section("market_structure", "Open interest and market structure")


@shared
def _oi_path(run: Run) -> np.ndarray:
    """Derivatives open interest at the start and after every step, (steps + 1) x derivatives venues (USD)."""
    return np.vstack([run.start.open_interest, run.series["open_interest_usd"]])[:, run.deriv]


@shared
def _derivatives_volume(run: Run) -> float:
    return run.volume[run.deriv].sum()


@SECTION.metric("open_interest_start_usd", "USD", "derivatives open interest at the start", NEUTRAL)
def open_interest_start_usd(run: Run) -> float:
    return run.oi0


@SECTION.metric("open_interest_end_usd", "USD", "derivatives open interest at the end", NEUTRAL)
def open_interest_end_usd(run: Run) -> float:
    return _oi_path(run)[-1].sum()


@SECTION.metric("open_interest_change", "fraction", "end over start derivatives open interest, minus 1", NEUTRAL)
def open_interest_change(run: Run) -> float:
    return ratio(_oi_path(run)[-1].sum(), run.oi0) - 1.0


@SECTION.metric("open_interest_trough_change", "fraction", "lowest over start derivatives open interest, minus 1",
                NEUTRAL)
def open_interest_trough_change(run: Run) -> float:
    return ratio(_oi_path(run).sum(axis=1).min(), run.oi0) - 1.0


@SECTION.metric("open_interest_change_24h", "fraction",
                "derivatives open interest after the first 24 hours (at the end of a shorter run) over start, minus 1",
                NEUTRAL)
def open_interest_change_24h(run: Run) -> float:
    """The level after a day (MODEL.md section 8: BTC futures open interest ended 10 October
    2025 about 22% below its start), not liquidations over open interest."""
    oi = _oi_path(run).sum(axis=1)
    return ratio(oi[min(1440 // run.scenario.step_minutes, len(oi) - 1)], run.oi0) - 1.0


@SECTION.family("open_interest_change", "derivatives_venue", "fraction",
                "end over start open interest on {member}, minus 1", NEUTRAL, nan="none at the start")
def open_interest_change_by_venue(run: Run) -> np.ndarray:
    oi = _oi_path(run)
    return ratio(oi[-1], oi[0]) - 1.0


@SECTION.family("oi_share", "derivatives_venue", "fraction", "{member} share of starting derivatives open interest",
                NEUTRAL)
def oi_share(run: Run) -> np.ndarray:
    return ratio(_oi_path(run)[0], run.oi0)


@SECTION.family("volume_share", "derivatives_venue", "fraction", "{member} share of derivatives traded volume",
                NEUTRAL)
def volume_share(run: Run) -> np.ndarray:
    return ratio(run.volume[run.deriv], _derivatives_volume(run))


@SECTION.metric("offshore_oi_share", "fraction",
                "offshore venues' share of derivatives open interest over the run, time-weighted (open interest "
                "at the end of every step, summed)", NEUTRAL, nan="no derivatives open interest")
def offshore_oi_share(run: Run) -> float:
    oi = _oi_path(run)[1:]
    return ratio(oi[:, run.vb.offshore[run.deriv]].sum(), oi.sum())


@SECTION.metric("offshore_volume_share", "fraction", "offshore venues' share of derivatives traded volume over the run",
                NEUTRAL, nan="no derivatives volume")
def offshore_volume_share(run: Run) -> float:
    return ratio(run.volume[run.deriv][run.vb.offshore[run.deriv]].sum(), _derivatives_volume(run))

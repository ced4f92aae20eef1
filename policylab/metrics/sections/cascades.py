"""Cascades: rounds of liquidation within a step, and how far the index's move outran the
exogenous move that set it off (MODEL.md section 5)."""

from __future__ import annotations

from policylab.metrics.api import LOWER, Run, Section
from policylab.metrics.state import drawdown, running_amplification, shock_direction

SECTION = Section("cascades", "Cascades")


@SECTION.metric("cascade_rounds_max", "rounds", "most cascade rounds with activity in one step", LOWER)
def cascade_rounds_max(run: Run) -> float:
    return run.model.rounds.max(initial=0)


@SECTION.metric("cascade_rounds_total", "rounds", "cascade rounds with activity, summed over steps", LOWER)
def cascade_rounds_total(run: Run) -> float:
    return run.model.rounds.sum()


@SECTION.metric("amplification", "ratio",
                "index log move over the exogenous log move over the same steps, in the exogenous "
                "path's dominant direction: peak to trough when its largest fall exceeds its largest "
                "rise, trough to peak otherwise", LOWER, nan="the exogenous path or the index did not move that way")
def amplification(run: Run) -> float:
    index, exo = run.model.index_path, run.model.exo_log_path
    direction = shock_direction(exo)
    extreme = run.index_drawdown[2] if direction < 0 else drawdown(1.0 / index)[2]
    return running_amplification(index, exo, direction)[extreme]

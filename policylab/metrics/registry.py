"""The metric sections in report order, and the metrics of a run built from them.

The order of ``SECTIONS`` (and of the declarations within each section) is the column
order of the metrics table: append a new section rather than insert one, or the
reference hashes change.
"""

from __future__ import annotations

from policylab.inputs.scenario import Scenario
from policylab.metrics.api import Metric, Run, Section
from policylab.metrics.sections import (activity, by_jurisdiction, cascades, liquidations, loss_absorption,
                                        market_structure, prices, venue_choice, who_lost)
from policylab.metrics.state import Start

SECTIONS: tuple[Section, ...] = (
    liquidations.SECTION,
    venue_choice.SECTION,
    prices.SECTION,
    cascades.SECTION,
    loss_absorption.SECTION,
    who_lost.SECTION,
    market_structure.SECTION,
    activity.SECTION,
    by_jurisdiction.SECTION,
)


def _collect(scenario: Scenario | None) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for section in SECTIONS:
        for m in section.declared(scenario):
            if m.name in out:
                raise ValueError(f"metric {m.name}: declared twice (section {section.name})")
            out[m.name] = m
    return out


def definitions(scenario: Scenario) -> dict[str, Metric]:
    """Every metric of a run of ``scenario``, in report order."""
    return _collect(scenario)


def catalogue() -> dict[str, Metric]:
    """Every metric with venue families shown once, as ``<stem>.venue.<venue>``."""
    return _collect(None)


def compute(model, start: Start) -> dict[str, float]:
    """All metrics of a finished run, in :func:`definitions` order (floats, NaN where undefined).
    ``start``: :func:`~policylab.metrics.state.snapshot` of the model before it ran."""
    run = Run(model, start)
    values: dict[str, float] = {}
    for section in SECTIONS:
        part = section.compute(run)
        if values.keys() & part.keys():
            raise ValueError(f"metrics computed twice (section {section.name}): {sorted(values.keys() & part.keys())}")
        values.update(part)
    return values

"""The assumptions a comparison's robustness is checked over (``policylab sensitivity``),
each with the low and high of its range in docs/calibration.md.

None of these fields carries its range as metadata, so each is declared here once, with
the line of the doc it comes from (tests/test_sensitivity.py checks the two agree). The
sensitivity step (:mod:`policylab.experiments.sensitivity`) applies an assumption as the
sweep parameters its ``paths`` give; the brief reads the labels and ranges from here
without importing the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from policylab.inputs.scenario import Scenario


@dataclass(frozen=True)
class Assumption:
    """An assumption varied over its documented range: ``paths`` gives the sweep
    parameters (``scenario.PATH``) it sets in a scenario (none: it does not apply)."""

    name: str
    label: str
    low: float
    high: float
    doc: str  # where the range is documented
    paths: Callable[[Scenario], list[str]]
    unit: str = ""  # how the brief names the range's unit ("x": a multiple, written after each end)

    @property
    def span(self) -> str:
        """The range as the brief writes it: "0.05 to 0.4 share", "3x to 8x"."""
        if self.unit == "x":
            return f"{self.low:g}x to {self.high:g}x"
        return f"{self.low:g} to {self.high:g}" + (f" {self.unit}" if self.unit else "")


def _scenario_field(name: str, label: str, low: float, high: float, unit: str, *,
                    documented_in: str = "calm") -> Assumption:
    """An assumption that is one scenario field (``name``: its path in a scenario file),
    with its range from docs/calibration.md's table for the scenario ``documented_in``."""
    return Assumption(name, label, low, high, f"docs/calibration.md: {documented_in}: {name}",
                      lambda sc: [f"scenario.{name}"], unit)


def _leakage(kind: str) -> Callable[[Scenario], list[str]]:
    """The access entries through which blocked residents leak into venues of ``kind``
    (0 < share < 1: blocked, not refused; Scenario.access)."""
    def paths(sc: Scenario) -> list[str]:
        names = {v.name for v in sc.venues if v.kind == kind}
        return [f"scenario.access.{venue}.{j}" for venue, shares in sc.access.items() if venue in names
                for j, share in shares.items() if 0 < share < 1]
    return paths


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption("leakage.offshore_cex", "leakage into offshore exchanges", 0.05, 0.4,
               "docs/calibration.md: archetype offshore_cex: leakage", _leakage("offshore_cex"), "share"),
    Assumption("leakage.offshore_dex", "leakage into offshore DEXs", 0.2, 0.8,
               "docs/calibration.md: archetype offshore_dex: leakage", _leakage("offshore_dex"), "share"),
    Assumption("leakage.offshore_pool", "leakage into offshore pools", 0.2, 0.8,
               "docs/calibration.md: archetype offshore_pool: leakage", _leakage("offshore_pool"), "share"),
    _scenario_field("venue_choice.domestic_trust", "trust in domestic venues", 0.0, 2.0, "utility"),
    _scenario_field("venue_choice.evasion_friction", "cost of evading a block", 0.2, 1.5, "utility"),
    _scenario_field("venue_choice.switching_cost", "cost of switching venue", 0.0, 1.0, "utility"),
    _scenario_field("venue_choice.quit_utility", "value of quitting", -3.0, -0.5, "utility"),
    _scenario_field("market.mm_inventory_depths", "market makers' inventory, in book depths", 10.0, 100.0, "x"),
    _scenario_field("market.mm_min_health", "depth quoted out of margin", 0.0, 0.2, "share"),
    _scenario_field("market.impact_y", "price impact of a trade", 0.002, 0.008, "log move"),
    _scenario_field("classes.retail.leverage_median", "retail median leverage", 3.0, 8.0, "x",
                    documented_in="october-2025"),
    _scenario_field("classes.retail.leverage_sigma", "spread of retail leverage", 0.4, 0.8, "log sd"),
)
# What issue 14 names that docs/calibration.md gives no range for: not varied (the brief
# lists it). A range documented there later belongs in ASSUMPTIONS.
UNRANGED = ("the venues' own order-book depth (a range is documented for one small venue only)",)

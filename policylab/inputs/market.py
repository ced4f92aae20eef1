"""Market-wide parameters (not venue rules): price impact, resilience, arbitrage and the
cascade's rounds. A scenario's ``market:`` block sets them; :mod:`policylab.engine.market`
uses them. Every field carries its unit, meaning and source as metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

from policylab.inputs.values import setting


@dataclass
class MarketParams:
    """Market-wide parameters (not venue rules)."""

    impact_y: float = setting(
        0.004, unit="log move", lo=0,
        meaning="log move when a one-step net flow equals the +/-1% depth",
        source="square-root law, Y~1, sigma~2%/day, depth ~2.5% of daily volume")
    permanent_share: float = setting(
        0.1, unit="share", lo=0, meaning="share of spot impact that is permanent",
        source="assumption: forced flow carries little information")
    transient_half_life_minutes: float = setting(
        15.0, unit="minutes", lo=0, meaning="decay of the rest of the index dislocation (resilience)",
        source="assumption")
    basis_half_life_minutes: float = setting(
        10.0, unit="minutes", lo=0, meaning="decay of venue basis between steps", source="assumption")
    arb_gap_share: float = setting(
        0.5, unit="share", lo=0, meaning="share of a venue's basis arbitrageurs try to close per round",
        source="assumption")
    arb_min_gap: float = setting(
        0.0005, unit="log basis", lo=0, meaning="basis below which arbitrage does not pay (fees)",
        source="assumption")
    arb_capacity_usd_per_minute: float = setting(
        2e8, unit="USD per minute", lo=0, meaning="arbitrage notional per venue per minute", source="assumption")
    round_seconds: float = setting(
        5.0, unit="seconds", lo=0, meaning="notional duration of one cascade round (for cooldowns)",
        source="assumption")
    max_rounds: int = setting(
        500, unit="rounds", lo=0, meaning="safety bound on cascade rounds per step", source="")
    band: float = setting(
        0.05, unit="log distance", lo=0,
        meaning="distance from price within which accounts are re-checked each round "
                "(recomputed after a move of half of it)", source="")

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
    risk_off_threshold: float = setting(
        0.03, unit="fraction", lo=0, hi=1,
        meaning="risk-off: the market's risk-off level is its remembered drawdown from the run's peak "
                "beyond this (MarketModel.risk_off)",
        source="assumption: about 1.5 calm daily sd (2%), so ordinary days stay below it; range 0.02-0.05")
    risk_off_half_life_minutes: float = setting(
        2880.0, unit="minutes", lo=0,
        meaning="risk-off: half-life of the memory of the worst drawdown (0: no memory, the current drawdown only)",
        source="assumption: BTC futures open interest stayed near $70B from 11 Oct into November 2025 "
               "(MODEL.md s8), so the memory lasts days; range 720-10080")
    mm_inventory_depths: float = setting(
        40.0, unit="multiples of the venue's starting +/-1% depth", lo=0,
        meaning="market makers' inventory limit on a derivatives venue; beyond it they quote depth x "
                "limit / inventory (0: no limit)",
        source="assumption: market makers hold limited inventory (MODEL.md s3); range 10-100; with 40 the "
               "October crash's book inventory (several $B on the largest venues) binds it")
    mm_margin: float = setting(
        0.01, unit="share of inventory notional", lo=0, hi=1,
        meaning="market makers' maintenance margin on their inventory: with equity under twice this they "
                "withdraw depth in proportion, at or under it they quote only mm_min_health of their depth",
        source="assumption: a largely hedged book margined like the most levered tier (Binance 125x: 0.4%-0.8%), "
               "rounded up; range 0.005-0.05")
    mm_min_health: float = setting(
        0.2, unit="share of depth", lo=0, hi=1,
        meaning="depth a market maker out of margin still quotes (the venue's matching needs a book)",
        source="assumption: Kaiko: BTC books appeared empty for several minutes on 10 Oct 2025; range 0-0.2; "
               "below 0.2 the thinnest accepted books (tests/test_conservation.py) overflow their prices")
    mm_layoff_half_life_minutes: float = setting(
        30.0, unit="minutes", lo=0,
        meaning="market makers lay off their derivatives inventory with this half-life: their skewed quotes "
                "fill the take-profit orders of retail and professional traders in profit on the other side, "
                "each closing whole, at the venue's price (0: they keep it)",
        source="assumption: market makers mean-revert inventory (Ho and Stoll 1981); crypto market makers "
               "within the hour; range 15-240. Fitted: BTC open interest at the end of 10 Oct 2025 15-25% below "
               "its start (MODEL.md s8)")

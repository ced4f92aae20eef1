"""Venue rules: every rule a policy might change is a field here, not a constant in code.

Archetypes (:mod:`policylab.venues.archetypes`) provide defaults; a scenario picks
archetypes and may override any field. Units: money in USD, sizes in BTC, rates as fractions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policylab.inputs.values import Invalid, not_one_of, setting
from policylab.names import JURISDICTIONS


HOMES = (*JURISDICTIONS, "offshore")  # a venue's home: a jurisdiction's licensed venue, or offshore
ADL_RANKINGS = ("none", "hyperliquid", "binance", "pro_rata")
MARK_PRICES = ("book", "index")


@dataclass(frozen=True)
class Tier:
    """A notional tier: positions whose notional (USD, per real account) is at least
    ``from_notional`` may use at most ``max_leverage``."""

    from_notional: float = setting(unit="USD", meaning="notional per real account from which the tier applies",
                                   source="venue tier tables", lo=0)
    max_leverage: float = setting(unit="x", meaning="largest leverage in the tier", source="venue tier tables",
                                  lo=1, hi=2000)


_SRC = "archetype (venues.archetypes)"


@dataclass
class VenueRules:
    """The rules of one venue. Each field's metadata: unit, meaning, source."""

    name: str = setting(unit="name", meaning="the venue's name in the scenario", source="scenario")
    kind: str = setting(unit="archetype", meaning="the archetype the venue starts from", source="scenario")
    label: str = setting("", unit="text", meaning="readable name", source=_SRC)
    offshore: bool = setting(True, unit="yes/no", meaning="outside the reach of onshore regulators", source=_SRC)
    home: str = setting(
        "offshore", unit="jurisdiction",
        meaning='the jurisdiction whose regulator licenses the venue (one of HOMES; "offshore": none of them)',
        source=_SRC)
    kyc_required: bool = setting(False, unit="yes/no", meaning="identity verification required to trade",
                                 source=_SRC)
    blocked_jurisdictions: tuple[str, ...] = setting(
        (), unit="jurisdictions",
        meaning="jurisdictions whose residents the venue turns away: an offshore venue blocks them (a share "
                "``leakage`` still gets through), a licensed venue refuses them (see the scenario's access)",
        source=_SRC)
    leakage: float = setting(
        0.3, unit="share of blocked residents",
        meaning="share of residents of a blocked jurisdiction who still trade here (VPNs, foreign documents, "
                "front ends that do not check); no primary source: an assumption, range in docs/calibration.md",
        source="assumption", lo=0, hi=1)
    # --- margin -----------------------------------------------------------------
    tiers: tuple[Tier, ...] = setting(
        (Tier(0.0, 20.0),), unit="tiers", meaning="largest leverage by notional tier", source=_SRC)
    maintenance_ratio: float = setting(
        0.5, unit="share", meaning="maintenance margin as share of initial margin at the tier's max leverage",
        source=_SRC)
    # --- liquidation -------------------------------------------------------------
    partial_threshold_usd: float = setting(
        float("inf"), unit="USD", meaning="positions above this notional are liquidated in slices",
        source=_SRC, infinite=True)
    partial_fraction: float = setting(1.0, unit="share", meaning="share of the position closed per slice",
                                      source=_SRC)
    cooldown_seconds: float = setting(0.0, unit="seconds", meaning="wait between two slices of one account",
                                      source=_SRC)
    backstop_threshold: float = setting(
        0.0, unit="share of maintenance",
        meaning="vault takes over when equity < this share of maintenance (0: never, >=1: always)", source=_SRC)
    liquidation_fee: float = setting(
        0.0, unit="share of notional", meaning="penalty on liquidated notional, paid to the insurance fund / vault",
        source=_SRC)
    negative_balance_protection: bool = setting(
        True, unit="yes/no", meaning="losses beyond collateral go to the fund, not the trader", source=_SRC)
    insurance_fund_usd: float = setting(
        0.0, unit="USD", meaning="initial loss-absorbing capital (insurance fund, broker or clearing capital)",
        source=_SRC)
    vault_capital_usd: float = setting(
        0.0, unit="USD", meaning="capital of the backstop vault / liquidity pool that takes over positions",
        source=_SRC)
    adl_ranking: str = setting(
        "none", unit="ranking", meaning="auto-deleveraging ranking when the fund cannot cover bad debt", source=_SRC)
    mark_price: str = setting(
        "book", unit="price",
        meaning='price margin is checked at: "book" (the venue\'s own) or "index" (an oracle of spot prices); '
                "orders always fill in the book", source=_SRC)
    # --- costs and funding --------------------------------------------------------
    taker_fee: float = setting(0.0005, unit="share of notional", meaning="fee on traded notional", source=_SRC)
    funding_interval_minutes: int = setting(
        0, unit="minutes", meaning="funding interval (0: no funding: dated futures, spot)", source=_SRC)
    funding_interest_8h: float = setting(
        0.0001, unit="per 8 hours", meaning="interest component of funding", source="Binance and Hyperliquid funding docs")
    funding_clamp_8h: float = setting(
        0.0005, unit="per 8 hours", meaning="clamp on (interest - premium)", source="Binance and Hyperliquid funding docs")
    funding_cap_1h: float = setting(0.04, unit="per hour", meaning="cap on the hourly funding rate",
                                    source="Hyperliquid funding docs")
    # --- liquidity ------------------------------------------------------------------
    depth_usd: float = setting(1e8, unit="USD", meaning="resting depth within 1% of mid", source=_SRC)
    mm_recovery_half_life_minutes: float = setting(
        30.0, unit="minutes", meaning="market-maker depth recovery half-life", source="assumption")
    mm_vol_sensitivity: float = setting(
        0.15, unit="per unit of excess volatility",
        meaning="depth withdrawal per unit of excess volatility (see venue_agents.MarketMakers)", source="assumption")
    mm_adl_withdrawal: float = setting(
        0.5, unit="share", meaning="share of depth pulled when the market maker is auto-deleveraged",
        source="assumption")
    # --- collateral ------------------------------------------------------------------
    collateral_exposed_share: float = setting(
        0.0, unit="share of accounts", meaning="share of accounts margined in a stablecoin that can depeg",
        source="assumption")
    collateral_haircut: float = setting(
        0.0, unit="share", meaning="share of stablecoin collateral value not counted for margin", source="")
    fee_to_fund: float = setting(0.0, unit="share", meaning="share of taker fees paid into the insurance fund",
                                 source="")
    sources: tuple[str, ...] = setting(unit="citations", meaning="where the archetype's values come from",
                                       source="", factory=tuple)

    # ------------------------------------------------------------------------------
    @property
    def is_perpetual(self) -> bool:
        return self.funding_interval_minutes > 0

    @property
    def is_spot(self) -> bool:
        return self.kind == "spot_etf"

    @property
    def max_leverage(self) -> float:
        return self.tiers[0].max_leverage

    def tier_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Arrays (floors, max leverage, maintenance rate, deduction) with deductions
        making maintenance margin continuous in notional (Binance's convention:
        MM = notional x rate - deduction)."""
        floors = np.array([t.from_notional for t in self.tiers], dtype=float)
        lev = np.array([t.max_leverage for t in self.tiers], dtype=float)
        rate = self.maintenance_ratio / lev
        if self.is_spot:
            rate = np.zeros_like(rate)
        deduction = np.zeros_like(rate)
        for k in range(1, len(rate)):
            deduction[k] = deduction[k - 1] + floors[k] * (rate[k] - rate[k - 1])
        return floors, lev, rate, deduction

    def validate(self, where: str) -> None:
        """Raise ValueError ``where.field: got X; allowed: Y`` (see :meth:`check`)."""
        try:
            self.check()
        except Invalid as e:
            raise ValueError(f"{where}.{e.message()}") from None

    def check(self) -> None:
        """Raise Invalid naming the field (key path), what was found and what is allowed."""
        def bad(fname, value, allowed: str) -> None:
            raise Invalid(value, allowed, fname if isinstance(fname, tuple) else (fname,))

        from policylab.venues.archetypes import KINDS  # the archetypes are built from this class

        for fname, options in (("kind", KINDS), ("adl_ranking", ADL_RANKINGS), ("mark_price", MARK_PRICES)):
            if getattr(self, fname) not in options:
                raise not_one_of(getattr(self, fname), options, (fname,))
        if self.home not in HOMES:
            raise not_one_of(self.home, HOMES, ("home",))
        if not self.is_spot and self.offshore != (self.home == "offshore"):
            bad("home", self.home, '"offshore" exactly when the venue is offshore' if self.offshore
                else "the jurisdiction that licenses this onshore venue, not offshore")
        for i, j in enumerate(self.blocked_jurisdictions):
            if j not in JURISDICTIONS:
                raise not_one_of(j, JURISDICTIONS, ("blocked_jurisdictions", i))
        if not self.tiers:
            bad("tiers", [], "at least one tier")
        prev, prev_lev = -1.0, float("inf")
        for i, t in enumerate(self.tiers):
            if t.max_leverage > prev_lev:
                bad(("tiers", i, "max_leverage"), t.max_leverage, "non-increasing from tier to tier")
            prev_lev = t.max_leverage
            if not (1.0 <= t.max_leverage <= 2000):
                bad(("tiers", i, "max_leverage"), t.max_leverage, "1 to 2000")
            if t.from_notional <= prev:
                bad(("tiers", i, "from_notional"), t.from_notional, "strictly increasing, first tier from 0")
            prev = t.from_notional
        if self.tiers[0].from_notional != 0:
            bad(("tiers", 0, "from_notional"), self.tiers[0].from_notional, "first tier from 0")
        checks = {
            "maintenance_ratio": (0.0, 1.0, False),
            "partial_fraction": (0.0, 1.0, False),
            "liquidation_fee": (0.0, 0.2, True),
            "taker_fee": (0.0, 0.05, True),
            "backstop_threshold": (0.0, 10.0, True),
            "collateral_exposed_share": (0.0, 1.0, True),
            "collateral_haircut": (0.0, 1.0, True),
            "fee_to_fund": (0.0, 1.0, True),
            "mm_adl_withdrawal": (0.0, 1.0, True),
            "leakage": (0.0, 1.0, True),
        }
        for fname, (lo, hi, lo_inclusive) in checks.items():
            v = getattr(self, fname)
            ok = (lo <= v if lo_inclusive else lo < v) and v <= hi
            if not ok:
                bad(fname, v, f"{'[' if lo_inclusive else '('}{lo}, {hi}]")
        for fname in ("depth_usd", "mm_recovery_half_life_minutes"):
            if not getattr(self, fname) > 0:
                bad(fname, getattr(self, fname), "> 0")
        for fname in ("cooldown_seconds", "insurance_fund_usd", "vault_capital_usd", "partial_threshold_usd", "mm_vol_sensitivity"):
            if getattr(self, fname) < 0:
                bad(fname, getattr(self, fname), ">= 0")
        if self.funding_interval_minutes < 0:
            bad("funding_interval_minutes", self.funding_interval_minutes, ">= 0 (0: no funding)")

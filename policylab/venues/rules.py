"""Venue rules: every rule a policy might change is a field here, not a constant in code.

Archetypes (:mod:`policylab.venues.archetypes`) provide defaults; a scenario picks
archetypes and may override any field. Units: money in USD, sizes in BTC, rates as fractions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from policylab.names import JURISDICTIONS


ADL_RANKINGS = ("none", "hyperliquid", "binance", "pro_rata")
MARK_PRICES = ("book", "index")


@dataclass(frozen=True)
class Tier:
    """A notional tier: positions whose notional (USD, per real account) is at least
    ``from_notional`` may use at most ``max_leverage``."""

    from_notional: float
    max_leverage: float


@dataclass
class VenueRules:
    """The rules of one venue. Field metadata: unit and source."""

    name: str
    kind: str
    label: str = ""
    offshore: bool = True
    kyc_required: bool = False
    blocked_jurisdictions: tuple[str, ...] = ()
    # --- margin -----------------------------------------------------------------
    tiers: tuple[Tier, ...] = (Tier(0.0, 20.0),)
    maintenance_ratio: float = 0.5  # maintenance margin as share of initial margin at the tier's max leverage
    # --- liquidation -------------------------------------------------------------
    partial_threshold_usd: float = float("inf")  # positions above this notional are liquidated in slices
    partial_fraction: float = 1.0  # share of the position closed per slice
    cooldown_seconds: float = 0.0  # wait between two slices of one account
    backstop_threshold: float = 0.0  # vault takes over when equity < this share of maintenance (0: never, >=1: always)
    liquidation_fee: float = 0.0  # penalty on liquidated notional, paid to the insurance fund / vault
    negative_balance_protection: bool = True  # losses beyond collateral go to the fund, not the trader
    insurance_fund_usd: float = 0.0  # initial loss-absorbing capital (insurance fund, broker or clearing capital)
    vault_capital_usd: float = 0.0  # capital of the backstop vault / liquidity pool that takes over positions
    adl_ranking: str = "none"  # auto-deleveraging ranking when the fund cannot cover bad debt
    mark_price: str = "book"  # price margin is checked at: "book" (the venue's own) or "index" (an oracle of spot prices); orders always fill in the book
    # --- costs and funding --------------------------------------------------------
    taker_fee: float = 0.0005  # share of traded notional
    funding_interval_minutes: int = 0  # 0: no funding (dated futures, spot)
    funding_interest_8h: float = 0.0001  # interest component of funding per 8 hours
    funding_clamp_8h: float = 0.0005  # clamp on (interest - premium) per 8 hours
    funding_cap_1h: float = 0.04  # cap on the hourly funding rate
    # --- liquidity ------------------------------------------------------------------
    depth_usd: float = 1e8  # resting depth within 1% of mid (USD)
    mm_recovery_half_life_minutes: float = 30.0  # market-maker depth recovery half-life
    mm_vol_sensitivity: float = 0.15  # depth withdrawal per unit of excess volatility (see agents.MarketMakers)
    mm_adl_withdrawal: float = 0.5  # share of depth pulled when the market maker is auto-deleveraged
    # --- collateral ------------------------------------------------------------------
    collateral_exposed_share: float = 0.0  # share of accounts margined in a stablecoin that can depeg
    collateral_haircut: float = 0.0  # share of stablecoin collateral value not counted for margin
    fee_to_fund: float = 0.0  # share of taker fees paid into the insurance fund
    sources: tuple[str, ...] = field(default_factory=tuple)

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
        """Raise ValueError naming the field and what is allowed."""
        def bad(fname: str, value, allowed: str) -> None:
            raise ValueError(f"{where}.{fname}: got {value!r}; allowed: {allowed}")

        from policylab.venues.archetypes import KINDS  # the archetypes are built from this class

        if self.kind not in KINDS:
            bad("kind", self.kind, ", ".join(KINDS))
        if self.adl_ranking not in ADL_RANKINGS:
            bad("adl_ranking", self.adl_ranking, ", ".join(ADL_RANKINGS))
        if self.mark_price not in MARK_PRICES:
            bad("mark_price", self.mark_price, ", ".join(MARK_PRICES))
        for j in self.blocked_jurisdictions:
            if j not in JURISDICTIONS:
                bad("blocked_jurisdictions", j, ", ".join(JURISDICTIONS))
        if not self.tiers:
            bad("tiers", [], "at least one tier")
        prev, prev_lev = -1.0, float("inf")
        for t in self.tiers:
            if t.max_leverage > prev_lev:
                bad("tiers.max_leverage", t.max_leverage, "non-increasing from tier to tier")
            prev_lev = t.max_leverage
            if not (1.0 <= t.max_leverage <= 2000):
                bad("tiers.max_leverage", t.max_leverage, "1 to 2000")
            if t.from_notional <= prev:
                bad("tiers.from_notional", t.from_notional, "strictly increasing, first tier from 0")
            prev = t.from_notional
        if self.tiers[0].from_notional != 0:
            bad("tiers.from_notional", self.tiers[0].from_notional, "first tier from 0")
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

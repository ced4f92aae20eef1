"""Venue rules: every rule a policy might change is a field here, not a constant in code.

Six archetypes (MODEL.md section 2) provide defaults; a scenario picks archetypes
and may override any field. Units: money in USD, sizes in BTC, rates as fractions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .values import as_number

ADL_RANKINGS = ("none", "hyperliquid", "binance", "pro_rata")
MARK_PRICES = ("book", "index")
KINDS = ("offshore_dex", "offshore_pool", "offshore_cex", "eu_broker", "us_regulated", "spot_etf")
JURISDICTIONS = ("US", "EU", "UK", "JP", "other")


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


# Binance BTCUSDT perpetual notional tiers (announcement 2021-03-18), leverage by tier.
_BINANCE_TIERS = (
    Tier(0, 125), Tier(50_000, 100), Tier(250_000, 50), Tier(1_000_000, 20),
    Tier(10_000_000, 10), Tier(20_000_000, 5), Tier(50_000_000, 4),
    Tier(100_000_000, 3), Tier(200_000_000, 2), Tier(300_000_000, 1),
)

ARCHETYPES: dict[str, dict] = {
    "offshore_dex": dict(
        label="Offshore DEX (Hyperliquid-like)", offshore=True, kyc_required=False,
        tiers=(Tier(0, 40), Tier(150_000_000, 20)), maintenance_ratio=0.5,
        partial_threshold_usd=100_000, partial_fraction=0.2, cooldown_seconds=30,
        backstop_threshold=2 / 3, liquidation_fee=0.0, insurance_fund_usd=1e8, vault_capital_usd=3.5e8,
        adl_ranking="hyperliquid", mark_price="index", taker_fee=0.00045, funding_interval_minutes=60,
        depth_usd=1.5e8,
        sources=("Hyperliquid docs: trading/margin-tiers, liquidations, auto-deleveraging, funding; "
                 "margining uses the mark price built from the oracle (a weighted median of CEX spot prices)",),
    ),
    "offshore_pool": dict(
        label="Offshore extreme-leverage pool (Aster-like)", offshore=True, kyc_required=False,
        tiers=(Tier(0, 1001),), maintenance_ratio=0.5, backstop_threshold=1.0,
        liquidation_fee=0.0, insurance_fund_usd=2e7, vault_capital_usd=1e8, adl_ranking="none",
        taker_fee=0.0008, funding_interval_minutes=60, depth_usd=2e7,
        sources=("asterdex trading rules (1001x simple mode against the liquidity pool)",),
    ),
    "offshore_cex": dict(
        label="Offshore CEX (Binance-like)", offshore=True, kyc_required=True,
        blocked_jurisdictions=("US",), tiers=_BINANCE_TIERS, maintenance_ratio=0.5,
        partial_threshold_usd=1_000_000, partial_fraction=0.5, cooldown_seconds=0,
        liquidation_fee=0.005, insurance_fund_usd=6e8, adl_ranking="binance",
        taker_fee=0.0005, funding_interval_minutes=480, depth_usd=5.3e8,
        sources=("Binance futures announcement 2021-03-18 (tiers); Binance ADL FAQ; insurance fund ~$1.23B BTC/ETH/BNB",),
    ),
    "eu_broker": dict(
        label="EU regulated broker (ESMA rules)", offshore=False, kyc_required=True,
        blocked_jurisdictions=("US",), tiers=(Tier(0, 2),), maintenance_ratio=0.5,
        liquidation_fee=0.0, negative_balance_protection=True, insurance_fund_usd=2e8,
        adl_ranking="none", taker_fee=0.01, funding_interval_minutes=0, depth_usd=3e7,
        sources=("ESMA Decision (EU) 2018/796: 2:1 crypto, 50% close-out, negative balance protection",),
    ),
    "us_regulated": dict(
        label="US regulated futures (CME-like)", offshore=False, kyc_required=True,
        tiers=(Tier(0, 3.3),), maintenance_ratio=0.9, liquidation_fee=0.0,
        negative_balance_protection=False, insurance_fund_usd=5e9, adl_ranking="none",
        taker_fee=0.0003, funding_interval_minutes=0, depth_usd=1.5e8,
        sources=("CME Bitcoin futures margin (about 30% initial, maintenance about 90% of initial; unverified)",),
    ),
    "spot_etf": dict(
        label="Spot market and ETFs (unleveraged)", offshore=False, kyc_required=True,
        tiers=(Tier(0, 1),), maintenance_ratio=1.0, adl_ranking="none",
        negative_balance_protection=False, taker_fee=0.0002, funding_interval_minutes=0,
        depth_usd=1.5e8, mm_recovery_half_life_minutes=60,
        sources=("Binance BTCUSDT spot +/-1% depth median $61M before 10 Oct 2025; aggregated spot venues",),
    ),
}

_FIELDS = {f.name for f in dataclasses.fields(VenueRules)}
_TYPES = {f.name: {"float": float, "int": int, "bool": bool, "str": str}.get(f.type, object)
          for f in dataclasses.fields(VenueRules)}


def make_venue(name: str, kind: str, overrides: dict | None = None, where: str = "venue") -> VenueRules:
    """Build a venue from an archetype plus overrides; unknown fields raise ValueError."""
    if kind not in ARCHETYPES:
        raise ValueError(f"{where}.kind: got {kind!r}; allowed: {', '.join(KINDS)}")
    params = dict(ARCHETYPES[kind])
    for key, value in (overrides or {}).items():
        if key not in _FIELDS or key in ("name", "kind"):
            allowed = ", ".join(sorted(_FIELDS - {"name", "kind"}))
            raise ValueError(f"{where}.{key}: unknown venue field; allowed: {allowed}")
        if key == "tiers":
            try:
                value = tuple(Tier(float(t["from_notional"]), float(t["max_leverage"])) for t in value)
            except (TypeError, KeyError, ValueError):
                raise ValueError(f"{where}.tiers: expected a list of {{from_notional, max_leverage}}") from None
        elif key in ("blocked_jurisdictions", "sources"):
            value = tuple(value)
        else:
            expected = _TYPES[key]
            if expected is float:
                value = as_number(value)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
                kind_name = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}[expected]
                raise ValueError(f"{where}.{key}: got {value!r}; allowed: {kind_name}")
        params[key] = value
    rules = VenueRules(name=name, kind=kind, **params)
    rules.validate(where)
    return rules

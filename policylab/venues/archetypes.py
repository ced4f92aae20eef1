"""Venue archetypes (MODEL.md section 2): the defaults a scenario's venue starts from.

Add an archetype: one entry in :data:`ARCHETYPES`, with its sources. Which group a kind
belongs to (:data:`DERIVATIVE_KINDS`, :data:`OFFSHORE_KINDS`, :data:`SPOT_KINDS`) follows
from its venue's properties (``is_spot``, ``offshore``), not from a list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from policylab.inputs.values import coerce, field_types, not_one_of, unknown_key
from policylab.inputs.yaml import Where
from policylab.venues.rules import Tier, VenueRules

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
        depth_usd=1.5e8, leakage=0.5,
        sources=("Hyperliquid docs: trading/margin-tiers, liquidations, auto-deleveraging, funding; "
                 "margining uses the mark price built from the oracle (a weighted median of CEX spot prices)",),
    ),
    "offshore_pool": dict(
        label="Offshore extreme-leverage pool (Aster-like)", offshore=True, kyc_required=False,
        tiers=(Tier(0, 1001),), maintenance_ratio=0.5, backstop_threshold=1.0,
        liquidation_fee=0.0, insurance_fund_usd=2e7, vault_capital_usd=1e8, adl_ranking="none",
        taker_fee=0.0008, funding_interval_minutes=60, depth_usd=2e7, leakage=0.5,
        sources=("asterdex trading rules (1001x simple mode against the liquidity pool)",),
    ),
    "offshore_cex": dict(
        label="Offshore CEX (Binance-like)", offshore=True, kyc_required=True,
        blocked_jurisdictions=("US",), tiers=_BINANCE_TIERS, maintenance_ratio=0.5,
        partial_threshold_usd=1_000_000, partial_fraction=0.5, cooldown_seconds=0,
        liquidation_fee=0.005, insurance_fund_usd=6e8, adl_ranking="binance",
        taker_fee=0.0005, funding_interval_minutes=480, depth_usd=5.3e8, leakage=0.2,
        sources=("Binance futures announcement 2021-03-18 (tiers); Binance ADL FAQ; insurance fund ~$1.23B BTC/ETH/BNB",),
    ),
    "eu_broker": dict(
        label="EU regulated broker (eToro-like CFDs)", offshore=False, home="EU", kyc_required=True,
        blocked_jurisdictions=("US",), tiers=(Tier(0, 10),), maintenance_ratio=0.5,
        liquidation_fee=0.0, negative_balance_protection=False, insurance_fund_usd=2e8,
        adl_ranking="none", taker_fee=0.01, funding_interval_minutes=0, depth_usd=3e7, leakage=0.0,
        sources=("as licensed before ESMA's 2018 measures, which the baseline imposes (status-quo-2025: "
                 "ESMA Decision (EU) 2018/796, 2:1 crypto, 50% close-out, negative balance protection); "
                 "10x crypto CFD leverage before 2018: assumption, range 5-20 (docs/calibration.md)",),
    ),
    "us_regulated": dict(
        label="US regulated futures (CME-like)", offshore=False, home="US", kyc_required=True,
        tiers=(Tier(0, 3.3),), maintenance_ratio=0.9, liquidation_fee=0.0,
        negative_balance_protection=False, insurance_fund_usd=5e9, adl_ranking="none",
        taker_fee=0.0003, funding_interval_minutes=0, depth_usd=1.5e8, leakage=0.0,
        sources=("CME Bitcoin futures margin (about 30% initial, maintenance about 90% of initial; unverified)",),
    ),
    "eu_exchange": dict(
        label="EU-licensed exchange offering perpetuals (Kraken EU-like)", offshore=False, home="EU",
        kyc_required=True, blocked_jurisdictions=("US",), tiers=(Tier(0, 10),), maintenance_ratio=0.5,
        liquidation_fee=0.005, negative_balance_protection=False, insurance_fund_usd=5e7, adl_ranking="none",
        taker_fee=0.0005, funding_interval_minutes=480, depth_usd=2e7, leakage=0.0,
        sources=("perpetuals for EU clients under a MiFID licence, up to 10x (unverified); not under ESMA's 2018 "
                 "CFD measures until ESMA's February 2026 statement (the esma-2026-perpetuals rule set); "
                 "fee, fund and depth: assumptions (docs/calibration.md)",),
    ),
    "uk_firm": dict(
        label="UK FCA-authorised CFD firm (IG-like)", offshore=False, home="UK", kyc_required=True,
        blocked_jurisdictions=("US",), tiers=(Tier(0, 5),), maintenance_ratio=0.5,
        liquidation_fee=0.0, negative_balance_protection=False, insurance_fund_usd=5e7,
        adl_ranking="none", taker_fee=0.005, funding_interval_minutes=0, depth_usd=1e7, leakage=0.0,
        sources=("as authorised before the FCA's CFD rules (PS19/18, 2:1 crypto for retail from 2019) and its "
                 "2021 retail ban (PS20/10), which the baseline imposes (status-quo-2025); 5x for crypto CFDs: "
                 "assumption, range 2-20 (docs/calibration.md)",),
    ),
    "jp_exchange": dict(
        label="Japanese registered exchange (bitFlyer-like margin trading)", offshore=False, home="JP",
        kyc_required=True, blocked_jurisdictions=("US", "EU", "UK", "other"), tiers=(Tier(0, 25),),
        maintenance_ratio=0.5, liquidation_fee=0.0, negative_balance_protection=False, insurance_fund_usd=5e7,
        adl_ranking="none", taker_fee=0.001, funding_interval_minutes=1440, depth_usd=1e7, leakage=0.0,
        sources=("registered under the Payment Services Act / FIEA; 25x for individuals before the JVCEA's 4x "
                 "(October 2019) and the 2x cap of 1 May 2020, which the baseline imposes (status-quo-2025; "
                 "MODEL.md sections 3a, 5); serves Japanese residents only; loss-cut at 50% of required margin, "
                 "daily financing, fee and depth: assumptions (docs/calibration.md)",),
    ),
    "spot_etf": dict(
        label="Spot market and ETFs (unleveraged)", offshore=False, home="other", kyc_required=True,
        tiers=(Tier(0, 1),), maintenance_ratio=1.0, adl_ranking="none",
        negative_balance_protection=False, taker_fee=0.0002, funding_interval_minutes=0,
        depth_usd=1.5e8, mm_recovery_half_life_minutes=60,
        sources=("Binance BTCUSDT spot +/-1% depth median $61M before 10 Oct 2025; aggregated spot venues",),
    ),
}



def kinds_where(**properties) -> tuple[str, ...]:
    """The archetype kinds whose venue, built with the archetype's defaults, has all these
    ``VenueRules`` property values (e.g. ``kinds_where(is_spot=False, offshore=True)``)."""
    return tuple(kind for kind, params in ARCHETYPES.items()
                 if all(getattr(VenueRules(name=kind, kind=kind, **params), key) == value
                        for key, value in properties.items()))


class KindGroup(Sequence):
    """A named group of archetype kinds, defined by venue properties and read from
    :data:`ARCHETYPES` whenever it is used, so an archetype added later is in its groups."""

    def __init__(self, name: str, **properties):
        self.name, self.properties = name, properties

    def kinds(self) -> tuple[str, ...]:
        return kinds_where(**self.properties)

    def __getitem__(self, i):
        return self.kinds()[i]

    def __len__(self) -> int:
        return len(self.kinds())

    def __iter__(self):
        return iter(self.kinds())  # once, not once per item (Sequence's default indexes until IndexError)

    def __repr__(self) -> str:
        return f"KindGroup({self.name!r}: {', '.join(self.kinds())})"


KINDS = KindGroup("all")  # every archetype, including those registered after import
DERIVATIVE_KINDS = KindGroup("derivatives", is_spot=False)  # leveraged products: perpetuals and futures
OFFSHORE_KINDS = KindGroup("offshore", is_spot=False, offshore=True)  # derivatives venues outside the onshore regimes
SPOT_KINDS = KindGroup("spot", is_spot=True)  # unleveraged spot markets and ETFs

_FIELDS = {f.name: f for f in dataclasses.fields(VenueRules) if f.name not in ("name", "kind")}
_TYPES = field_types(VenueRules)


def make_venue(name: str, kind: str, overrides: dict | None = None, where: Where | str = "venue") -> VenueRules:
    """Build a venue from an archetype plus overrides, each coerced to its field's type
    (:func:`policylab.inputs.values.coerce`). Raises InputError naming the key path
    (and file and line when ``where`` is a :class:`~policylab.inputs.yaml.Where`)."""
    at = where if isinstance(where, Where) else Where(where)
    if kind not in ARCHETYPES:
        raise at.invalid(not_one_of(kind, KINDS, ("kind",)))
    params = dict(ARCHETYPES[kind])
    for key, value in (overrides or {}).items():
        if key not in _FIELDS:
            raise at.invalid(unknown_key(key, sorted(_FIELDS), "venue field"))
        params[key] = (at / key).check(coerce, value, _TYPES[key], dict(_FIELDS[key].metadata))
    rules = VenueRules(name=name, kind=kind, **params)
    at.check(rules.check)
    return rules

"""Access rules: who may trade where (product bans, listed-venue requirements, KYC, offshore blocking) and the venues a rule creates."""

from __future__ import annotations

import numpy as np

from policylab.names import JURISDICTIONS
from policylab.policies.api import Param, Policy
from policylab.policies.groups import DERIVATIVES, OFFSHORE
from policylab.venues import make_venue


class RetailProductBan(Policy):
    """Bans the targeted traders (retail by default) from the targeted products."""

    name, title = "retail_product_ban", "Retail product ban"
    source = "FCA PS20/10: crypto derivatives banned for UK retail from 6 January 2021"
    default_venues = DERIVATIVES
    default_classes = ("retail",)

    def denies(self, model, tb, idx, venue):
        return self.account_mask(tb, idx)


class ListedVenueRequirement(Policy):
    """Leveraged retail trades of the targeted jurisdictions only on registered
    (onshore) venues; offshore venues are off limits to them."""

    name, title = "listed_venue_requirement", "Listed-venue requirement"
    source = "US Commodity Exchange Act 2(c)(2)(D); CFTC interpretation 85 FR 37734 (2020), actual delivery within 28 days"
    default_venues = OFFSHORE
    binds = "residents"  # it reaches the jurisdiction's residents, on the offshore venues they use
    default_classes = ("retail",)
    min_leverage = Param(1.0, "x", "positions above this leverage count as leveraged", source, lo=1.0, hi=100.0)
    leakage = Param(0.3, "share of traders", "share of targeted traders who still reach offshore venues",
                    "assumption", lo=0.0, hi=1.0)

    def denies(self, model, tb, idx, venue):
        evades = model.choice_draw(idx, "geo_evasion") < self.leakage
        return self.account_mask(tb, idx) & (tb.leverage[idx] > self.min_leverage) & ~evades


class ListedLeveragedSpot(Policy):
    """A domestic regulated venue offers leveraged spot trading with a cap."""

    name, title = "listed_leveraged_spot", "Listed leveraged spot"
    source = "CFTC listed spot crypto initiative (announced 4 August 2025; leverage not published)"
    max_leverage = Param(10.0, "x", "leverage the listed venue offers", source + "; 10x assumed", lo=1.0, hi=100.0)
    depth_usd = Param(5e7, "USD", "depth within 1% of mid on the listed venue", "assumption", lo=1e5)
    taker_fee = Param(0.0005, "share of notional", "taker fee on the listed venue", "assumption", lo=0.0, hi=0.05)
    venue_name = Param("us_listed_spot", "name", "name of the new venue", "")

    def new_venues(self):
        return [make_venue(self.venue_name, "us_regulated", {
            "label": "US listed leveraged spot (DCM)", "sources": [self.source],
            "tiers": [{"from_notional": 0, "max_leverage": self.max_leverage}], "depth_usd": self.depth_usd,
            "taker_fee": self.taker_fee, "funding_interval_minutes": 480, "maintenance_ratio": 0.5,
            "negative_balance_protection": True})]


class KYCTravelRule(Policy):
    """The targeted venues must verify their customers. Unverified traders verify (at the
    scenario's KYC friction in their venue choice), or cannot or will not and go elsewhere."""

    name, title = "kyc", "KYC / travel rule"
    source = "EU Transfer of Funds Regulation 2023/1113 (from 30 December 2024)"
    default_venues = OFFSHORE
    refuse_share = Param(0.3, "share of traders", "share of unverified traders who cannot or will not verify",
                         "assumption", lo=0.0, hi=1.0)

    def venue_rules(self, venue):
        return {"kyc_required": True}

    def denies(self, model, tb, idx, venue):
        refuses = model.choice_draw(idx, "kyc_refuse") < self.refuse_share
        return self.account_mask(tb, idx) & ~tb.kyc[idx] & refuses


class OffshoreAccessEnforcement(Policy):
    """Stricter blocking on the targeted venues: residents of the named jurisdictions, and
    of those the venue already blocks (the scenario's access table), get through only at
    this module's leakage where it is lower than the scenario's. The same draw decides
    both (``geo_evasion``), so a trader who is stopped at the scenario's leakage is
    stopped here too."""

    name, title = "offshore_access_enforcement", "Offshore access enforcement"
    source = "geo-blocking practice of offshore venues (Binance blocks US persons)"
    default_venues = OFFSHORE
    binds = "residents"  # venues block by residence
    blocked = Param(("US",), "jurisdictions", "jurisdictions the venues must block", source,
                    choices=JURISDICTIONS)
    leakage = Param(0.3, "share of traders", "share of blocked traders who still reach the venue", "assumption",
                    lo=0.0, hi=1.0)

    def denies(self, model, tb, idx, venue):
        names = set(self.blocked) | set(model.scenario.access.get(venue.name, {}))  # plus the venue's own blocks
        blocked = np.isin(tb.juris[idx], [JURISDICTIONS.index(j) for j in names])
        evades = model.choice_draw(idx, "geo_evasion") < self.leakage
        return self.account_mask(tb, idx) & blocked & ~evades

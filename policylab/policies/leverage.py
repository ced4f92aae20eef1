"""Leverage rules: caps on the leverage accounts may take, and warnings that lower what they want."""

from __future__ import annotations

import numpy as np

from policylab.policies.api import Param, Policy
from policylab.policies.groups import DERIVATIVES
from policylab.venues import VenueRules


class LeverageCap(Policy):
    """Caps leverage on the targeted venues for the targeted traders. A jurisdiction's cap
    binds its domestic venues (Target): without a class restriction it caps those venues'
    own tiers too (so their maintenance margin follows); otherwise it caps the targeted
    accounts only. An offshore venue never applies another jurisdiction's cap."""

    name, title = "leverage_cap", "Leverage cap"
    source = "ESMA Decision (EU) 2018/796 (2:1 crypto CFDs); FSA Japan 2x from 1 May 2020; venue caps"
    default_venues = DERIVATIVES
    max_leverage = Param(2.0, "x", "largest leverage allowed (notional over margin)", source, lo=1.0, hi=2000.0)
    above_notional_usd = Param(0.0, "USD", "the cap applies to positions at least this large (per account)",
                               "notional tiers, e.g. Hyperliquid 20x above $150M", lo=0.0)

    def venue_rules(self, venue: VenueRules):
        if self.target.classes or self.above_notional_usd > 0:
            return {}
        return {"max_leverage": self.max_leverage}

    def leverage_cap(self):
        return self.max_leverage

    def account_mask(self, tb, idx):
        mask = super().account_mask(tb, idx)
        if self.above_notional_usd > 0:  # a notional tier: only positions at least this large (per real account)
            mask &= np.abs(tb.size[idx]) * tb.entry[idx] >= self.above_notional_usd * tb.weight[idx]
        return mask


class NewAccountCap(LeverageCap):
    """Caps leverage for accounts younger than an age."""

    name, title = "new_account_cap", "New-account leverage cap"
    source = "Binance futures announcement 2021-07-27: 20x for accounts under 60 days"
    max_leverage = Param(20.0, "x", "largest leverage for young accounts", source, lo=1.0, hi=2000.0)
    account_age_days = Param(60.0, "days", "accounts younger than this are capped", source, lo=1.0, hi=3650.0)

    def venue_rules(self, venue):
        return {}

    def account_mask(self, tb, idx):
        return super().account_mask(tb, idx) & (tb.age_days[idx] < self.account_age_days)


class RiskWarning(Policy):
    """A standard risk warning that shifts chosen leverage down."""

    name, title = "risk_warning", "Risk warning"
    source = "ESMA standard warning (74-89% of retail CFD accounts lost money before 2018)"
    default_venues = DERIVATIVES
    default_classes = ("retail",)
    leverage_factor = Param(0.85, "multiplier", "chosen leverage after the warning over before", "assumption",
                            lo=0.1, hi=1.0)

    def desired_leverage(self):
        return self.leverage_factor

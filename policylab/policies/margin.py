"""Margin and loss-absorption rules: close-out levels, negative balance protection, the liquidation engine, insurance funds, ADL and collateral haircuts."""

from __future__ import annotations

from policylab.policies.api import Param, Policy
from policylab.policies.groups import DERIVATIVES, OFFSHORE


class MarginCloseOut(Policy):
    """Closes out an account when its equity falls below a share of the margin its
    position requires at the allowed leverage."""

    name, title = "margin_closeout", "Margin close-out"
    source = "ESMA Decision (EU) 2018/796 and FCA PS19/18: close-out at 50% of required margin per account"
    default_venues = DERIVATIVES
    level = Param(0.5, "share of required margin", "close-out level", source, lo=0.01, hi=1.0)

    def venue_rules(self, venue):
        if self.target.classes:  # a jurisdiction's rule binds its domestic venues (Target): venue-wide there
            return {}
        return {"maintenance_ratio": self.level}

    def closeout_level(self):
        return self.level


class NegativeBalanceProtection(Policy):
    """A trader cannot lose more than their deposit: the venue's fund absorbs the rest. It
    is a venue's rule: on a targeted venue (a jurisdiction's domestic venues, Target) it
    protects every account there, the professionals a retail rule names not excepted."""

    name, title = "negative_balance_protection", "Negative balance protection"
    source = "ESMA Decision (EU) 2018/796; FCA PS19/18"
    default_venues = DERIVATIVES
    enabled = Param(True, "on/off", "protect traders' balances from going below zero", source)

    def venue_rules(self, venue):
        return {"negative_balance_protection": True} if self.enabled else {}


class LiquidationEngineRules(Policy):
    """Sets the targeted venues' liquidation engine; only the parameters given change."""

    name, title = "liquidation_engine", "Liquidation engine settings"
    source = "Hyperliquid, dYdX and Binance liquidation docs"
    default_venues = DERIVATIVES
    partial_threshold_usd = Param(100_000.0, "USD", "positions above this are liquidated in slices", source, lo=0.0)
    partial_fraction = Param(0.2, "share of position", "share closed per slice", source, lo=0.01, hi=1.0)
    cooldown_seconds = Param(30.0, "s", "wait between two slices of one account", source, lo=0.0, hi=3600.0)
    backstop_threshold = Param(0.0, "share of maintenance", "vault takes over below this", source, lo=0.0, hi=10.0)
    liquidation_fee = Param(0.005, "share of notional", "penalty on liquidated notional, to the fund", source,
                            lo=0.0, hi=0.2)

    def venue_rules(self, venue):
        return {k: v for k, v in self.values.items() if k in self.given}


class InsuranceFundRules(Policy):
    """Sizes the targeted venues' insurance funds and routes a share of fees to them."""

    name, title = "insurance_fund", "Insurance fund rules"
    source = "Binance insurance fund docs (fund position capped at 20% of fund, withdrawn after 7.5% loss in 8h)"
    default_venues = DERIVATIVES
    initial_usd = Param(0.0, "USD", "minimum initial fund", source, lo=0.0)
    fee_to_fund = Param(0.0, "share of fees", "share of taker fees paid into the fund", source, lo=0.0, hi=1.0)

    def venue_rules(self, venue):
        out = {}
        if "initial_usd" in self.given:  # a minimum: a venue's larger fund stays as it is
            out["insurance_fund_usd"] = max(self.initial_usd, venue.insurance_fund_usd)
        if "fee_to_fund" in self.given:
            out["fee_to_fund"] = self.fee_to_fund
        return out


class ADLRule(Policy):
    """Sets the auto-deleveraging ranking."""

    name, title = "adl_rule", "Auto-deleveraging rule"
    source = "Hyperliquid, Binance, BitMEX ADL docs; Chitra (2025), arXiv 2512.01112"
    default_venues = OFFSHORE
    ranking = Param("pro_rata", "ranking", "who is deleveraged first", source,
                    choices=("none", "hyperliquid", "binance", "pro_rata"))

    def venue_rules(self, venue):
        return {"adl_ranking": self.ranking}


class CollateralHaircut(Policy):
    """Values stablecoin collateral at a haircut for margin (a depeg deeper than the
    haircut still counts in full)."""

    name, title = "collateral_haircut", "Stablecoin collateral haircut"
    source = "Basel Committee SCO60 (cryptoasset exposures); CCP collateral haircut practice"
    default_venues = DERIVATIVES
    haircut = Param(0.1, "share of value", "haircut on stablecoin collateral", source, lo=0.0, hi=1.0)

    def venue_rules(self, venue):
        return {"collateral_haircut": self.haircut}

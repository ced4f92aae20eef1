"""Built-in policy modules: every row of MODEL.md section 5, plus collateral haircuts.

Each module declares its parameters with unit, bounds and source; see policy.py for
the hooks and how modules compose. ``BUILTIN`` maps module names to classes.
"""

from __future__ import annotations

import numpy as np

from .policy import Param, Policy
from .venues import VenueRules, make_venue

DERIVATIVES = ("offshore_dex", "offshore_pool", "offshore_cex", "eu_broker", "us_regulated")
OFFSHORE = ("offshore_dex", "offshore_pool", "offshore_cex")


class LeverageCap(Policy):
    """Caps leverage on the targeted venues for the targeted traders. Without a class or
    jurisdiction restriction it caps the venue's own tiers too (so its maintenance
    margin follows); otherwise it caps the targeted accounts only."""

    name, title = "leverage_cap", "Leverage cap"
    source = "ESMA Decision (EU) 2018/796 (2:1 crypto CFDs); FSA Japan 2x from 1 May 2020; venue caps"
    default_venues = DERIVATIVES
    max_leverage = Param(2.0, "x", "largest leverage allowed (notional over margin)", source, lo=1.0, hi=2000.0)
    above_notional_usd = Param(0.0, "USD", "the cap applies to positions at least this large (per account)",
                               "notional tiers, e.g. Hyperliquid 20x above $150M", lo=0.0)

    def venue_rules(self, venue: VenueRules):
        if self.target.classes or self.target.jurisdictions or self.above_notional_usd > 0:
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


class MarginCloseOut(Policy):
    """Closes out an account when its equity falls below a share of the margin its
    position requires at the allowed leverage."""

    name, title = "margin_closeout", "Margin close-out"
    source = "ESMA Decision (EU) 2018/796 and FCA PS19/18: close-out at 50% of required margin per account"
    default_venues = DERIVATIVES
    level = Param(0.5, "share of required margin", "close-out level", source, lo=0.01, hi=1.0)

    def venue_rules(self, venue):
        if self.target.classes or self.target.jurisdictions:
            return {}
        return {"maintenance_ratio": self.level}

    def closeout_level(self):
        return self.level


class NegativeBalanceProtection(Policy):
    """A trader cannot lose more than their deposit: the venue's fund absorbs the rest."""

    name, title = "negative_balance_protection", "Negative balance protection"
    source = "ESMA Decision (EU) 2018/796; FCA PS19/18"
    default_venues = DERIVATIVES
    enabled = Param(True, "on/off", "protect traders' balances from going below zero", source)

    def venue_rules(self, venue):
        return {"negative_balance_protection": True} if self.enabled else {}


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
    """Enforces the blocks of the targeted venues (the venues' own blocked jurisdictions
    plus those named); geo-blocking is only partly enforced, so a share of blocked
    traders still reach them."""

    name, title = "offshore_access_enforcement", "Offshore access enforcement"
    source = "geo-blocking practice of offshore venues (Binance blocks US persons)"
    default_venues = OFFSHORE
    blocked = Param(("US",), "jurisdictions", "jurisdictions the venues must block", source,
                    choices=("US", "EU", "UK", "JP", "other"))
    leakage = Param(0.3, "share of traders", "share of blocked traders who still reach the venue", "assumption",
                    lo=0.0, hi=1.0)

    def denies(self, model, tb, idx, venue):
        from .venues import JURISDICTIONS
        names = set(self.blocked) | set(venue.blocked_jurisdictions)  # plus the venue's own blocks
        blocked = np.isin(tb.juris[idx], [JURISDICTIONS.index(j) for j in names])
        evades = model.choice_draw(idx, "geo_evasion") < self.leakage
        return self.account_mask(tb, idx) & blocked & ~evades


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


class CircuitBreaker(Policy):
    """Halts trading (orders and liquidations) on the targeted venues when the index
    moves more than a trigger within a window."""

    name, title = "circuit_breaker", "Circuit breaker"
    source = "no crypto precedent; equity-market practice (NYSE Rule 7.12 market-wide halts)"
    default_venues = DERIVATIVES
    trigger_move = Param(0.07, "fraction", "index move over the window that triggers a halt", source, lo=0.001, hi=0.9)
    window_minutes = Param(60.0, "minutes", "window over which the move is measured", source, lo=1.0, hi=1440.0)
    halt_minutes = Param(15.0, "minutes", "length of the halt", source, lo=1.0, hi=1440.0)

    def on_step(self, model):
        if model.halted:
            return
        since = model.steps * model.scenario.step_minutes - model.resume_minute  # window restarts after a halt
        if since < model.scenario.step_minutes:
            return
        move = abs(model.index_return(int(min(self.window_minutes, since))))
        if move >= self.trigger_move:
            model.halt(self, self.halt_minutes)


class DynamicMargin(Policy):
    """Raises maintenance margin with realised volatility and open interest
    (anti-procyclical buffers are the opposite: set the sensitivities to zero)."""

    name, title = "dynamic_margin", "Dynamic margin"
    source = "dYdX v4: initial margin rising with open interest; CCP anti-procyclicality (EMIR RTS 153/2013 art. 28)"
    default_venues = DERIVATIVES
    vol_sensitivity = Param(0.5, "per unit of excess volatility", "margin multiplier slope on volatility over normal",
                            source, lo=0.0, hi=10.0)
    oi_sensitivity = Param(0.0, "per unit of OI growth", "margin multiplier slope on open interest growth", source,
                           lo=0.0, hi=10.0)
    max_multiplier = Param(3.0, "x", "largest margin multiplier", source, lo=1.0, hi=20.0)
    window_minutes = Param(60.0, "minutes", "realised volatility window", source, lo=5.0, hi=1440.0)

    def on_step(self, model):
        mult = 1.0 + self.vol_sensitivity * max(model.vol_ratio(int(self.window_minutes)) - 1.0, 0.0)
        mult += self.oi_sensitivity * max(model.open_interest_growth(), 0.0)
        model.set_margin_multiplier(self, min(mult, self.max_multiplier))


class OpenInterestLimits(Policy):
    """Caps each venue's open interest and each account's position."""

    name, title = "open_interest_limits", "Open-interest and position limits"
    source = "Hyperliquid open-interest caps; CFTC position limits (17 CFR Part 150)"
    default_venues = DERIVATIVES
    venue_cap_usd = Param(float("inf"), "USD", "largest open interest of a venue (long side)", source, lo=0.0)
    position_limit_usd = Param(float("inf"), "USD", "largest position of one account", source, lo=0.0)

    def open_interest_cap(self, venue):
        return self.venue_cap_usd if np.isfinite(self.venue_cap_usd) else None

    def position_limit(self):
        return self.position_limit_usd if np.isfinite(self.position_limit_usd) else None


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


class CollateralHaircut(Policy):
    """Values stablecoin collateral at a haircut for margin (a depeg deeper than the
    haircut still counts in full)."""

    name, title = "collateral_haircut", "Stablecoin collateral haircut"
    source = "Basel Committee SCO60 (cryptoasset exposures); CCP collateral haircut practice"
    default_venues = DERIVATIVES
    haircut = Param(0.1, "share of value", "haircut on stablecoin collateral", source, lo=0.0, hi=1.0)

    def venue_rules(self, venue):
        return {"collateral_haircut": self.haircut}


BUILTIN: dict[str, type[Policy]] = {cls.name: cls for cls in (
    LeverageCap, NewAccountCap, MarginCloseOut, NegativeBalanceProtection, RetailProductBan,
    ListedVenueRequirement, ListedLeveragedSpot, KYCTravelRule, OffshoreAccessEnforcement,
    LiquidationEngineRules, InsuranceFundRules, ADLRule, CircuitBreaker, DynamicMargin,
    OpenInterestLimits, RiskWarning, CollateralHaircut)}

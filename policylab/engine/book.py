"""Per-account state as NumPy arrays (struct of arrays) and per-venue state.

Accounting is cost-basis: an account's equity on its venue is
``cash + size * price - coin * (1 - coin_value)``, where ``cash`` already carries
``-size * entry``. A trade of ``dq`` BTC at price ``p`` moves ``dq * p`` of cash from
buyer to seller, so money is conserved trade by trade. Every trade has a counterparty
row (the venue's market maker for market orders), so each derivatives venue's sizes
sum to zero; spot BTC (holdings on the spot venue and hedges) is deposited at the start
and only changes hands afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policylab.names import ARB, BASIS, CLASSES, INST, MM, PRO, PROTOCOL_CLASSES, RETAIL, VAULT  # noqa: F401  (re-exported)
from policylab.venues import VenueRules


_FLOAT_FIELDS = ("weight", "cash", "size", "entry", "leverage", "stop", "stop_dist", "coin", "hedge",
                 "hedge_cash", "liq_price", "last_liq", "deposit", "age_days", "lev_cap", "mm_floor", "pos_limit",
                 "lev_chosen")


class TraderBook:
    """Arrays of length ``n`` (accounts). Units: USD for money, BTC for sizes.

    venue: venue index; cls: class code (CLASSES); juris: jurisdiction code; kyc: verified;
    weight: real accounts this row stands for; cash: USD on the venue (cost basis);
    size: signed BTC position; entry: average entry price; leverage: chosen leverage;
    stop: stop-loss trigger price (NaN: none); stop_dist: the account's stop distance
    from entry (NaN: uses no stops); coin: stablecoin units exposed to a depeg;
    hedge / hedge_cash: unleveraged spot BTC and the cash paid for it (basis traders,
    arbitrageurs); liq_price: price at which equity meets maintenance (prefilter);
    last_liq: time of the last liquidation slice (s); deposit: money put in (USD);
    age_days: account age; lev_cap: the rules' leverage cap for the account (x);
    mm_floor: the rules' maintenance floor (share of notional); pos_limit: the rules'
    position limit per real account (USD); lev_chosen: the leverage the account chose as
    drawn, before any policy module bound it (x); moved / quit: venue change or exit under
    the rules; blocked: turned away from its venue by the rules (a ban, a block, a KYC or
    listed-venue requirement), wherever it went then.
    """

    def __init__(self, n: int):
        self.n = n
        self.venue = np.zeros(n, dtype=np.int16)
        self.cls = np.zeros(n, dtype=np.int8)
        self.juris = np.zeros(n, dtype=np.int8)
        self.kyc = np.zeros(n, dtype=bool)
        self.liquidated = np.zeros(n, dtype=bool)
        self.moved = np.zeros(n, dtype=bool)  # changed venue because of the rules
        self.quit = np.zeros(n, dtype=bool)  # stopped trading because of the rules
        self.blocked = np.zeros(n, dtype=bool)  # turned away from its venue by the rules
        for name in _FLOAT_FIELDS:
            setattr(self, name, np.zeros(n, dtype=np.float64))
        self.stop[:] = np.nan
        self.stop_dist[:] = np.nan
        self.lev_cap[:] = np.inf
        self.pos_limit[:] = np.inf
        self.last_liq[:] = -np.inf

    def equity(self, idx, price_v: np.ndarray, coin_value_v: np.ndarray) -> np.ndarray:
        """Margin equity on the venue (USD) of accounts ``idx``; ``coin_value_v`` is the
        margin value of one unit of stablecoin collateral per venue (VenueBook.coin_value)."""
        v = self.venue[idx]
        return (self.cash[idx] + self.size[idx] * price_v[v]
                - self.coin[idx] * (1.0 - coin_value_v[v]))


@dataclass
class VenueBook:
    """Per-venue arrays (length = number of venues)."""

    rules: list[VenueRules]

    def __post_init__(self):
        k = len(self.rules)
        self.names = [r.name for r in self.rules]
        self.fund = np.array([r.insurance_fund_usd for r in self.rules], dtype=float)
        self.fees = np.zeros(k)  # fee revenue (USD)
        self.collateral_loss = np.zeros(k)  # realised depeg losses leaving the system (USD)
        self.basis = np.zeros(k)  # log dislocation of venue price from the index
        self.health = np.ones(k)  # market-maker depth health in (0, 1]
        self.liquidity_mult = np.ones(k)  # scenario depth multiplier
        self.coin_price = np.ones(k)  # market value of one unit of exposed collateral (USD)
        self.haircut = np.array([r.collateral_haircut for r in self.rules])
        self.fee_to_fund = np.array([r.fee_to_fund for r in self.rules])
        self.margin_mult = np.ones(k)  # dynamic margin multiplier on maintenance
        self.im_mult = np.ones(k)  # dynamic margin multiplier on initial margin (divides the tiers' leverage)
        self.premium_sum = np.zeros(k)  # accumulated premium since last funding
        self.premium_n = np.zeros(k)
        self.depth0 = np.array([r.depth_usd for r in self.rules], dtype=float)
        self.taker_fee = np.array([r.taker_fee for r in self.rules])
        self.liq_fee = np.array([r.liquidation_fee for r in self.rules])
        self.is_spot = np.array([r.is_spot for r in self.rules])
        self.mark_index = np.array([r.mark_price == "index" for r in self.rules])  # margin checked at the index
        self.offshore = np.array([r.offshore for r in self.rules])
        self.nbp = np.array([r.negative_balance_protection for r in self.rules])
        self.backstop = np.array([r.backstop_threshold for r in self.rules])
        self.partial_threshold = np.array([r.partial_threshold_usd for r in self.rules])
        self.partial_fraction = np.array([r.partial_fraction for r in self.rules])
        self.cooldown = np.array([r.cooldown_seconds for r in self.rules])
        self.mm_row = np.zeros(k, dtype=np.int64)  # account index of each venue's book
        self.vault_row = np.full(k, -1, dtype=np.int64)  # backstop vault account, -1: none
        self.arb_row = np.full(k, -1, dtype=np.int64)  # arbitrage desk account, -1: none
        self.refresh_tiers()

    def refresh_tiers(self) -> None:
        """Pad tier tables into (venues x tiers) arrays for vectorised lookup."""
        tables = [r.tier_table() for r in self.rules]
        t = max(len(tb[0]) for tb in tables)
        k = len(self.rules)
        self.tier_floor = np.full((k, t), np.inf)
        self.tier_lev = np.ones((k, t))
        self.tier_rate = np.zeros((k, t))
        self.tier_ded = np.zeros((k, t))
        for v, (floor, lev, rate, ded) in enumerate(tables):
            m = len(floor)
            self.tier_floor[v, :m], self.tier_lev[v, :m] = floor, lev
            self.tier_rate[v, :m], self.tier_ded[v, :m] = rate, ded
        self.tier_floor[:, 0] = 0.0

    @property
    def coin_value(self) -> np.ndarray:
        """Margin value of one unit of stablecoin collateral: its price, at most 1 - haircut."""
        return np.minimum(self.coin_price, 1.0 - self.haircut)

    def depth(self) -> np.ndarray:
        """Current depth within 1% of mid on each venue (USD)."""
        return self.depth0 * self.liquidity_mult * self.health

"""Margin arithmetic: tiers, maintenance margin, liquidation prices (the per-account loops
compiled in policylab.engine.kernels; ADL scores in policylab.engine.kernels_cascade)."""

from __future__ import annotations

import numpy as np

from policylab.engine import kernels
from policylab.engine.book import TraderBook, VenueBook


def _rows(idx) -> np.ndarray:
    """Account rows as an integer array (from indices or a boolean mask)."""
    idx = np.asarray(idx)
    return np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64, copy=False)


def tier_lookup(vb: VenueBook, venue: np.ndarray, notional_per_account: np.ndarray):
    """(maintenance rate, deduction, leverage cap) of the tier each account's notional falls in."""
    k = kernels.tier_index(np.asarray(venue), np.asarray(notional_per_account, dtype=float), vb.tier_floor)
    return vb.tier_rate[venue, k], vb.tier_ded[venue, k], vb.tier_lev[venue, k]


def maintenance(tb: TraderBook, vb: VenueBook, idx, price_v: np.ndarray) -> np.ndarray:
    """Maintenance margin (USD) of accounts ``idx`` at venue prices ``price_v``: the rate
    and deduction of the tier each account's notional per real account falls in, scaled
    by the dynamic margin multiplier, at least the rules' floor share of notional."""
    return kernels.maintenance(_rows(idx), tb.venue, tb.weight, tb.size, tb.mm_floor, np.asarray(price_v, dtype=float), vb.margin_mult,
                               vb.tier_floor, vb.tier_rate, vb.tier_ded)


def initial_margin_leverage(vb: VenueBook, venue: np.ndarray, notional: np.ndarray, weight: np.ndarray):
    """Largest leverage each venue allows for this notional (its tier's cap)."""
    return vb.tier_lev[venue, kernels.tier_index(np.asarray(venue), np.asarray(notional / weight, dtype=float),
                                                 vb.tier_floor)]


def liquidation_price(tb: TraderBook, vb: VenueBook, idx) -> np.ndarray:
    """Venue price at which equity meets maintenance margin, exactly, across tiers.

    Tiered maintenance with continuous deductions is the maximum of its tier lines
    ``notional * r_k - w * d_k`` (rates rise with notional; the dynamic margin multiplier
    scales them, and the rules' floor adds a line), so equity falls below it
    as soon as it falls below any line. Per line, long s>0 crosses at
    ``(H - w*d_k - cash) / (s * (1 - r_k))`` and short s<0 at ``(cash - H + w*d_k) / (|s| * (1 + r_k))``;
    a long is liquidated below the highest of these, a short above the lowest.
    Flat accounts get NaN. H is the depeg haircut on the account's stablecoin collateral.
    """
    return kernels.liquidation_price(_rows(idx), tb.venue, tb.size, tb.weight, tb.cash, tb.coin, tb.mm_floor,
                                     vb.coin_value, vb.margin_mult, vb.tier_rate, vb.tier_ded)

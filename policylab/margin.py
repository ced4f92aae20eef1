"""Vectorised margin arithmetic: tiers, maintenance margin, liquidation prices, ADL scores."""

from __future__ import annotations

import numpy as np

from .book import TraderBook, VenueBook


def tier_lookup(vb: VenueBook, venue: np.ndarray, notional_per_account: np.ndarray):
    """Maintenance rate and deduction of the tier each account's notional falls in."""
    tiers = vb.tier_floor.shape[1]
    k = np.zeros(len(venue), dtype=np.intp)
    floors = vb.tier_floor[venue]  # (accounts x tiers), tiers is small (<= 10)
    if tiers > 1:
        k = (notional_per_account[:, None] >= floors[:, 1:]).sum(axis=1)
    return vb.tier_rate[venue, k], vb.tier_ded[venue, k], vb.tier_lev[venue, k]


def maintenance(tb: TraderBook, vb: VenueBook, idx, price_v: np.ndarray) -> np.ndarray:
    """Maintenance margin (USD) of accounts ``idx`` at venue prices ``price_v``."""
    v = tb.venue[idx]
    w = tb.weight[idx]
    notional = np.abs(tb.size[idx]) * price_v[v]
    rate, ded, _ = tier_lookup(vb, v, notional / w)
    tiered = (notional * rate - w * ded) * vb.margin_mult[v]
    return np.maximum(np.maximum(tiered, notional * tb.mm_floor[idx]), 0.0)


def initial_margin_leverage(vb: VenueBook, venue: np.ndarray, notional: np.ndarray, weight: np.ndarray):
    """Largest leverage each venue allows for this notional (its tier's cap)."""
    return tier_lookup(vb, venue, notional / weight)[2]


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
    v = tb.venue[idx]
    size = tb.size[idx]
    s = size[:, None]
    w = tb.weight[idx][:, None]
    cash = tb.cash[idx]
    haircut = tb.coin[idx] * (1.0 - vb.coin_value[v])
    mult = vb.margin_mult[v][:, None]
    long = size > 0
    # (accounts x tiers): the tiers' lines (padding lines are the zero-equity line), scaled
    # by the dynamic margin multiplier
    rate = vb.tier_rate[v] * mult
    ded = vb.tier_ded[v] * mult
    L = long[:, None]
    num = np.where(L, haircut[:, None] - w * ded - cash[:, None], cash[:, None] - haircut[:, None] + w * ded)
    den = np.abs(s) * np.where(L, 1.0 - rate, 1.0 + rate)
    # the rules' maintenance floor line (no deduction)
    floor = tb.mm_floor[idx]
    f_num = np.where(long, haircut - cash, cash - haircut)
    f_den = np.abs(size) * np.where(long, 1.0 - floor, 1.0 + floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        lines = num / den
        f_line = f_num / f_den
    p = np.where(long, np.maximum(lines.max(axis=1), f_line), np.minimum(lines.min(axis=1), f_line))
    p[size == 0] = np.nan
    return p


def adl_scores(tb: TraderBook, idx, price_v: np.ndarray, coin_value_v: np.ndarray, ranking: str) -> np.ndarray:
    """Auto-deleveraging priority of accounts ``idx`` (higher goes first).

    hyperliquid: (mark/entry for longs, entry/mark for shorts) x notional / account value;
    binance: PnL% of margin x effective leverage; pro_rata: all equal.
    """
    v = tb.venue[idx]
    s = tb.size[idx]
    p = price_v[v]
    entry = np.where(tb.entry[idx] > 0, tb.entry[idx], p)
    equity = np.maximum(tb.equity(idx, price_v, coin_value_v), 1e-9)
    notional = np.abs(s) * p
    if ranking == "hyperliquid":
        ratio = np.where(s > 0, p / entry, entry / p)
        return ratio * notional / equity
    if ranking == "binance":
        upnl = s * (p - entry)
        margin = np.maximum(equity - upnl, 1e-9)
        return (upnl / margin) * (notional / equity)
    return np.ones(len(idx))

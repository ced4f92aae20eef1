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
    return np.maximum(notional * rate - w * ded, 0.0)


def initial_margin_leverage(vb: VenueBook, venue: np.ndarray, notional: np.ndarray, weight: np.ndarray):
    """Largest leverage each venue allows for this notional (its tier's cap)."""
    return tier_lookup(vb, venue, notional / weight)[2]


def liquidation_price(tb: TraderBook, vb: VenueBook, idx, price_v: np.ndarray) -> np.ndarray:
    """Venue price at which equity equals maintenance margin, holding the current tier.

    Long s>0:  P = (H - w*d - cash) / (s * (1 - r));  short s<0: P = (cash - H + w*d) / (|s| * (1 + r)).
    Flat accounts and protocol rows get NaN (never triggered). Used only to prefilter
    candidates; the engine re-checks equity against maintenance exactly.
    """
    v = tb.venue[idx]
    s = tb.size[idx]
    w = tb.weight[idx]
    notional = np.abs(s) * price_v[v]
    rate, ded, _ = tier_lookup(vb, v, notional / w)
    haircut = tb.coin[idx] * (1.0 - vb.coin_price[v])
    num = np.where(s > 0, haircut - w * ded - tb.cash[idx], tb.cash[idx] - haircut + w * ded)
    den = np.abs(s) * np.where(s > 0, 1.0 - rate, 1.0 + rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = num / den
    p[(s == 0) | (den <= 0)] = np.nan
    return p


def adl_scores(tb: TraderBook, idx, price_v: np.ndarray, coin_price_v: np.ndarray, ranking: str) -> np.ndarray:
    """Auto-deleveraging priority of accounts ``idx`` (higher goes first).

    hyperliquid: (mark/entry for longs, entry/mark for shorts) x notional / account value;
    binance: PnL% of margin x effective leverage; pro_rata: all equal.
    """
    v = tb.venue[idx]
    s = tb.size[idx]
    p = price_v[v]
    entry = np.where(tb.entry[idx] > 0, tb.entry[idx], p)
    equity = np.maximum(tb.equity(idx, price_v, coin_price_v), 1e-9)
    notional = np.abs(s) * p
    if ranking == "hyperliquid":
        ratio = np.where(s > 0, p / entry, entry / p)
        return ratio * notional / equity
    if ranking == "binance":
        upnl = s * (p - entry)
        margin = np.maximum(equity - upnl, 1e-9)
        return (upnl / margin) * (notional / equity)
    return np.ones(len(idx))

"""Draw the starting accounts of a scenario into a TraderBook.

Trader rows come first (``names.CONFIGURABLE_CLASSES``, in that order);
protocol rows follow: one market-maker book per venue, one arbitrage desk per
derivatives venue, one backstop vault per venue that has one. Each trader row stands
for ``weight`` real accounts with identical positions, so results do not depend on
how many rows represent the population. Starting positions are balanced per venue
(long and short open interest equal the scenario's open interest).
"""

from __future__ import annotations

import numpy as np

from policylab.engine.book import ARB, CLASSES, MM, VAULT, TraderBook, VenueBook
from policylab.engine.margin import initial_margin_leverage, liquidation_price, maintenance
from policylab.inputs.scenario import Scenario
from policylab.engine.streams import stream
from policylab.names import CONFIGURABLE_CLASSES, JURISDICTIONS, SPOT_CLASSES


ACCOUNT_AGE_MEAN_DAYS = 500.0  # exponential: about 11% of accounts are younger than 60 days


def geo_evasion_draw(seed: int, n: int) -> np.ndarray:
    """Each account's ``geo_evasion`` draw, exactly as ``MarketModel.choice_draw(idx,
    "geo_evasion")`` gives it: an account that starts on a venue blocking its jurisdiction
    is one whose draw is below the leakage, and stays one under the rules."""
    return np.clip(stream(seed, "choice:geo_evasion").random((1, n)), 1e-12, 1 - 1e-12)[0]


def _starting_venues(scenario: Scenario, vb: VenueBook, choices: dict[str, float], juris: np.ndarray,
                     geo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A starting venue for each account of one class, consistent with residence and access.

    An account may start only where it gets through (served, or blocked with its
    ``geo_evasion`` draw below the leakage: Scenario.access). A resident of a jurisdiction
    whose domestic venues its class uses starts on one of them with probability
    ``Scenario.domestic_share`` of its jurisdiction, otherwise on a venue licensed
    elsewhere; within either group, in proportion to the class's venue probabilities. An
    account with no reachable venue among its class's starts on a reachable derivatives
    venue in proportion to open interest (and, if none, as its class's probabilities say)."""
    from policylab.engine.apply_rules import reach  # the rule that decides access during the run, too

    names = vb.names
    cols = np.array([names.index(x) for x in choices])
    p = np.array([choices[x] for x in choices], dtype=float)
    ok = np.vstack([~reach(scenario, names[v], juris, geo)[0] for v in cols]).T  # accounts x choices
    home = np.array([[vb.rules[v].home == j for j in JURISDICTIONS] for v in cols]).T[juris]
    w = p * ok
    dom, foreign = w * home, w * ~home
    share = np.array([scenario.domestic_share.get(j, 0.0) for j in JURISDICTIONS])[juris]
    go_home = (rng.random(len(juris)) < share) & (dom.sum(axis=1) > 0) | (foreign.sum(axis=1) == 0)
    w = np.where(go_home[:, None], dom, foreign)
    venue = np.empty(len(juris), dtype=np.int64)
    u = rng.random(len(juris))
    stuck = w.sum(axis=1) == 0
    if stuck.any():  # nowhere in the class's list: any reachable derivatives venue, by open interest
        allv = np.array([v for v in range(len(names)) if not vb.rules[v].is_spot])
        oi = np.array([scenario.open_interest.get(names[v], 0.0) for v in allv])
        ok_all = np.vstack([~reach(scenario, names[v], juris[stuck], geo[stuck])[0] for v in allv]).T * oi
        ok_all[ok_all.sum(axis=1) == 0] = oi if oi.sum() > 0 else 1.0
        venue[stuck] = allv[_categorical(ok_all, u[stuck])]
    venue[~stuck] = cols[_categorical(w[~stuck], u[~stuck])]
    return venue


def _categorical(w: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Column index per row, drawn in proportion to the row's weights ``w`` with uniforms ``u``:
    how many of the row's cumulative shares are below its uniform (the shares added column
    by column, as ``np.cumsum`` along the row adds them; 4x faster than that over rows of a
    few columns)."""
    share = w / w.sum(axis=1, keepdims=True)
    cum = share[:, 0].copy()
    below = (cum < u).astype(np.int64)
    for j in range(1, w.shape[1]):
        cum += share[:, j]
        below += cum < u
    return np.minimum(below, w.shape[1] - 1)


def build(scenario: Scenario, seed: int, traders: int | None = None,
          own_tiers: Scenario | None = None) -> tuple[TraderBook, VenueBook, dict[str, np.ndarray]]:
    """Return the accounts, the venues and the row indices of each trader class.
    ``own_tiers``: the scenario before the rules; ``lev_chosen`` is capped by its venues'
    own tiers (a venue the rules created: its tiers), every other value by ``scenario``'s."""
    rng = stream(seed, "population")
    vb = VenueBook(list(scenario.venues))
    k = len(vb.rules)
    n_traders = traders or scenario.traders
    spot = int(np.flatnonzero(vb.is_spot)[0])
    perps = [v for v in range(k) if v != spot]
    names = vb.names
    counts = {c: int(round(spec.share * n_traders)) for c, spec in scenario.classes.items()}
    n_vault = int((vb.backstop > 0).sum())
    n = sum(counts.values()) + k + len(perps) + n_vault
    tb = TraderBook(n)
    p0 = scenario.start_price
    rows: dict[str, np.ndarray] = {}
    start = sum(counts[c] for c in CONFIGURABLE_CLASSES if c in counts)
    trader_rows = np.arange(start)
    # residence first: where an account may start depends on it (the scenario's access table)
    juris_names = list(scenario.jurisdictions)
    jp = np.array([scenario.jurisdictions[j] for j in juris_names], dtype=float)
    tb.juris[trader_rows] = np.array([JURISDICTIONS.index(j) for j in juris_names])[
        rng.choice(len(juris_names), size=start, p=jp / jp.sum())]
    geo = geo_evasion_draw(seed, n)[trader_rows]
    start = 0
    for cname in CONFIGURABLE_CLASSES:
        if cname not in counts:
            continue
        m, spec = counts[cname], scenario.classes[cname]
        idx = np.arange(start, start + m)
        start += m
        rows[cname] = idx
        tb.cls[idx] = CLASSES.index(cname)
        tb.weight[idx] = scenario.real_accounts * spec.share / max(m, 1)
        if cname in SPOT_CLASSES:
            tb.venue[idx] = spot
        else:
            choices = spec.venues or {names[v]: scenario.open_interest.get(names[v], 0) for v in perps}
            tb.venue[idx] = _starting_venues(scenario, vb, choices, tb.juris[idx], geo[idx], rng)
    tb.kyc[trader_rows] = rng.random(start) < scenario.kyc_share
    kyc_venues = np.array([r.kyc_required for r in vb.rules])
    tb.kyc[trader_rows[kyc_venues[tb.venue[trader_rows]]]] = True
    tb.age_days[trader_rows] = stream(seed, "account_age").exponential(ACCOUNT_AGE_MEAN_DAYS, start)

    # ------------------------------------------------------------ chosen leverage and stops
    lev = np.ones(start)
    for cname, idx in rows.items():
        spec = scenario.classes[cname]
        if cname in SPOT_CLASSES:
            continue
        median = np.full(len(idx), spec.leverage_median)
        for vname, med in spec.venue_leverage_median.items():  # venues whose accounts lever differently
            median[tb.venue[idx] == names.index(vname)] = med
        draw = np.exp(rng.normal(np.log(median), spec.leverage_sigma, len(idx)))
        lo, hi = spec.leverage_tail
        tail = rng.random(len(idx)) < spec.leverage_tail_share
        draw[tail] = np.exp(rng.uniform(np.log(lo), np.log(hi), tail.sum()))
        lev[idx] = np.maximum(draw, 1.0)
        if spec.stop_share > 0:
            uses = rng.random(len(idx)) < spec.stop_share
            a, b = spec.stop_distance
            tb.stop_dist[idx[uses]] = rng.uniform(a, b, uses.sum())
    # ------------------------------------------------------------ positions
    # relative notional of each row: small accounts take high leverage, so notional
    # falls with chosen leverage (elasticity ``size_leverage_elasticity``)
    raw = rng.lognormal(0.0, 1.0, size=start) * tb.weight[:start] * lev ** -scenario.size_leverage_elasticity
    side = np.ones(start)
    for cname, idx in rows.items():
        spec = scenario.classes[cname]
        if cname == "basis":
            side[idx] = -1.0
        elif cname not in SPOT_CLASSES:
            side[idx] = np.where(rng.random(len(idx)) < spec.long_share, 1.0, -1.0)
    notional = np.zeros(start)
    # per venue, the open-interest shares of the classes with accounts on it, summed in rows' order
    present = {c: np.bincount(tb.venue[idx], minlength=k) > 0 for c, idx in rows.items() if c not in SPOT_CLASSES}
    share_sum = {v: sum(scenario.classes[c].oi_share for c in present if present[c][v]) or 1.0 for v in perps}
    for cname, idx in rows.items():
        if cname in SPOT_CLASSES:
            notional[idx] = raw[idx] / raw[idx].sum() * scenario.classes[cname].holdings_usd
            continue
        venue = tb.venue[idx]
        for v in perps:
            sel = idx[venue == v]
            target = scenario.open_interest.get(names[v], 0.0) * scenario.classes[cname].oi_share / share_sum[v]
            if len(sel):
                part = raw[sel]
                total = part.sum()
                if total > 0:
                    notional[sel] = part / total * target
    # balance long and short open interest, then hit the target
    totals = side_totals(tb.venue[:start], side, notional, np.ones(start, dtype=bool), k)
    factor = np.ones((k, 2))
    for v in perps:
        lsum, ssum = totals[v]
        oi = scenario.open_interest.get(names[v], 0.0)
        if lsum > 0 and ssum > 0:
            factor[v] = oi / lsum, oi / ssum
    notional *= factor[tb.venue[:start], (side < 0).astype(np.int64)]
    for v in perps:
        if not (totals[v, 0] > 0 and totals[v, 1] > 0):
            notional[tb.venue[:start] == v] = 0.0  # a venue with one side only cannot hold open interest
    cap_use = np.ones(start)
    for cname, idx in rows.items():
        cap_use[idx] = scenario.classes[cname].cap_use
    own = {v.name: v for v in (own_tiers or scenario).venues}
    own_vb = VenueBook([own.get(r.name, r) for r in vb.rules])
    own_cap = initial_margin_leverage(own_vb, tb.venue[:start], notional, tb.weight[:start])
    tb.lev_chosen[:start] = np.maximum(np.minimum(lev, own_cap * cap_use), 1.0)  # as drawn, before any rule
    cap = initial_margin_leverage(vb, tb.venue[:start], notional, tb.weight[:start])
    lev = np.maximum(np.minimum(lev, cap * cap_use), 1.0)
    # the starting book is a snapshot of a stationary flow: an account holds a position
    # at the start with the share of time it would be in one (see ``occupancy``); the
    # others are flat with their deposit in cash and open when they next trade. The share
    # is the market's before any rule (the venues' own margins, the leverage as drawn), so
    # every rule set starts from the same book and the rules act on it (engine/choice.py)
    holds = stream(seed, "occupancy").random(start) < occupancy(scenario, own_vb, tb, rows, tb.lev_chosen[:start])
    rescale(tb, perps, notional, side, holds, scenario, names)
    size = np.where(holds, side, 0.0) * notional / p0
    collateral = np.where(notional > 0, notional / lev, 0.0)  # a flat account's cash: what it would post
    tb.leverage[:start] = lev
    tb.size[:start] = size
    # positions were opened over the past days, so entries disperse around the start
    # price; an adverse entry uses at most 70% of the distance from entry to liquidation,
    # and a draw still below 1.5x maintenance (high tiers) is opened at the start price
    to_liq = (1.0 - np.array([r.maintenance_ratio for r in vb.rules])[tb.venue[:start]]) / lev
    dev = rng.normal(0.0, scenario.entry_dispersion, start)
    dev = np.where(size > 0, np.minimum(dev, 0.7 * to_liq), np.maximum(dev, -0.7 * to_liq))
    entry = p0 * np.exp(dev)
    entry[size == 0] = 0.0
    tb.entry[:start] = entry
    tb.cash[:start] = collateral - size * entry
    trader = np.arange(start)
    price_v = np.full(k, p0)
    unsafe = trader[tb.equity(trader, price_v, vb.coin_value) < 1.5 * maintenance(tb, vb, trader, price_v)]
    tb.entry[unsafe] = np.where(size[unsafe] != 0, p0, 0.0)
    tb.cash[unsafe] = collateral[unsafe] - size[unsafe] * p0
    tb.deposit[:start] = collateral
    has_pos = size != 0
    # a stop sits its distance below the lower (for longs) of entry and start price: one
    # that would already have fired belongs to a position that no longer exists
    ref = np.where(size > 0, np.minimum(tb.entry[:start], p0), np.maximum(tb.entry[:start], p0))
    tb.stop[:start] = np.where(has_pos, ref * (1 - np.sign(size) * tb.stop_dist[:start]), np.nan)
    exposed = np.array([r.collateral_exposed_share for r in vb.rules])[tb.venue[:start]]
    tb.coin[:start] = np.where(rng.random(start) < exposed, collateral, 0.0)
    if "basis" in rows:  # the spot leg: BTC held outside the venue, part of the deposit
        b = rows["basis"]
        tb.hedge[b] = -size[b]
        tb.deposit[b] += tb.hedge[b] * p0

    # ------------------------------------------------------------ protocol rows
    r = start
    for v in range(k):
        tb.venue[r], tb.cls[r], tb.weight[r] = v, MM, 1.0
        tb.cash[r] = tb.deposit[r] = scenario.market_maker_capital_usd
        vb.mm_row[v] = r
        r += 1
    for v in perps:
        tb.venue[r], tb.cls[r], tb.weight[r] = v, ARB, 1.0
        tb.cash[r] = tb.deposit[r] = scenario.arbitrage_capital_usd
        tb.leverage[r] = 5.0
        vb.arb_row[v] = r
        r += 1
    for v in np.flatnonzero(vb.backstop > 0):
        tb.venue[r], tb.cls[r], tb.weight[r] = v, VAULT, 1.0
        tb.cash[r] = tb.deposit[r] = vb.rules[v].vault_capital_usd
        vb.vault_row[v] = r
        r += 1
    rows["market_maker"] = vb.mm_row.copy()
    rows["arbitrageur"] = vb.arb_row[vb.arb_row >= 0]
    rows["vault"] = vb.vault_row[vb.vault_row >= 0]
    tb.liq_price[:] = np.nan
    tb.liq_price[trader] = liquidation_price(tb, vb, trader)
    assert r == n
    return tb, vb, rows


def occupancy(scenario: Scenario, vb: VenueBook, tb: TraderBook, rows: dict[str, np.ndarray],
              lev: np.ndarray) -> np.ndarray:
    """Share of time each trader account (leverage ``lev``, x) holds a position in a stationary market: h / (h + w).

    h, the expected life of a position before liquidation, is the time the fundamental
    (``sigma_daily``) takes to cover the distance to liquidation d, (d / sigma)^2 days
    (the scale of a Brownian first passage); w, the wait until a flat account trades
    again, is 1 / its class's ``activity_per_minute``. A class that does not trade during
    the run (activity 0) holds its positions (share 1). With the calm defaults an 8x
    retail account holds a position 96% of the time, a 40x one on the DEX half the time
    and a 125x one a tenth of it: drawing every account in position at the start put
    the whole high-leverage tail at risk at once (a start-up burst of liquidations in
    the first hours) where a stationary market has only its share there.
    """
    start = len(lev)
    share = np.ones(start)
    d = (1.0 - np.array([r.maintenance_ratio for r in vb.rules])[tb.venue[:start]]) / lev
    life_min = (d / max(scenario.sigma_daily, 1e-12)) ** 2 * 1440.0
    for cname, idx in rows.items():
        a = scenario.classes[cname].activity_per_minute
        if a > 0 and cname not in SPOT_CLASSES:
            share[idx] = life_min[idx] / (life_min[idx] + 1.0 / a)
    return share


def rescale(tb: TraderBook, perps: list[int], notional: np.ndarray, side: np.ndarray, holds: np.ndarray,
            scenario: Scenario, names: list[str]) -> None:
    """Scale the notional of the accounts that hold positions so that each venue's long and
    short open interest is the scenario's again (in place); flat accounts keep the notional
    they would trade, which sets their cash."""
    venue = tb.venue[:len(notional)]
    totals = side_totals(venue, side, notional, holds, len(names))
    factor = np.ones((len(names), 2))
    for v in perps:
        oi = scenario.open_interest.get(names[v], 0.0)
        for j in range(2):
            if totals[v, j] > 0:
                factor[v, j] = oi / totals[v, j]
    notional *= factor[venue, (side < 0).astype(np.int64)]


def side_totals(venue: np.ndarray, side: np.ndarray, notional: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """(``k`` venues x long, short): ``notional`` (USD) summed over the rows of mask ``rows``
    on each venue and side (``side`` +1 or -1), each as ``notional[those rows].sum()`` adds
    them (NumPy's pairwise sum, in row order): one stable sort instead of a mask per venue
    and side."""
    at = np.flatnonzero(rows)
    group = venue[at].astype(np.int64) * 2 + (side[at] < 0)
    order = np.argsort(group, kind="stable")
    ordered = notional[at[order]]
    bounds = np.searchsorted(group[order], np.arange(2 * k + 1))
    return np.array([ordered[bounds[g]:bounds[g + 1]].sum() for g in range(2 * k)]).reshape(k, 2)

"""The traders' venue choice under the rules, before the scenario starts.

``settle``: each trader account is checked against the rules on its venue: may it trade
there (KYC, bans, access), and at what leverage (caps, risk warnings)? An account that is
turned away, or offered less leverage than it wants (or than its position carries),
chooses among the venues it can reach (or quitting) by utility:

    U(v) = w_lev * log(allowed / wanted) - w_fee * taker fee - KYC friction (if unverified)
           - switching cost (v != current) + onshore trust (regulated venues)
           + domestic trust (v licensed in the trader's own jurisdiction)
           - evasion friction (v blocks the trader's jurisdiction and the trader gets through)
           + Gumbel taste

and quitting is worth ``quit_utility``. A venue that turns the trader away (the
scenario's access table, a ban, a listed-venue requirement) cannot be chosen. So when a
rule binds at home the trader accepts it (stays, at the allowed leverage), goes offshore
where it can reach a venue (paying the evasion friction where it is blocked but leaks,
and giving up the domestic trust), or stops. Every weight is in ``Scenario.venue_choice``
and documented, with its range, in docs/calibration.md.

Its current venue is a revealed preference: its taste for it is raised until, under the
rules as they were, staying was its best choice; so only what the rules change moves
anyone.

The chosen venue takes the account's equity at its allowed leverage; an account that quits
keeps its money and holds no position. Each venue's book absorbs the change in net
positions. Accounts the rules do not touch are left exactly as the scenario drew them, so
a rule set that changes nothing reproduces the scenario.
"""

from __future__ import annotations

import numpy as np

from policylab.engine import apply_rules
from policylab.engine.book import CLASSES, VenueBook
from policylab.names import DERIVATIVES_CLASSES, JURISDICTIONS
from policylab.engine.margin import initial_margin_leverage, liquidation_price


def settle(model) -> None:
    """Venue choice and leakage under the rules, before the first step."""
    if not model.policies:
        return
    tb, vb, sc = model.tb, model.vb, model.scenario
    prm = sc.venue_choice
    traders = np.flatnonzero(np.isin(tb.cls, [CLASSES.index(c) for c in DERIVATIVES_CLASSES]))
    # holders, and accounts flat at the start with a deposit (they open during the run,
    # populations/draw.py: occupancy), for the position they would open
    traders = traders[(tb.size[traders] != 0) | (tb.cash[traders] > 0)]
    k = len(vb.rules)
    price = model.market.prices()
    choosable = np.array([not r.is_spot for r in vb.rules])
    equity = tb.equity(traders, price, vb.coin_value)
    wanted = tb.leverage[traders].copy()
    side = np.sign(tb.size[traders])
    notional = np.where(tb.size[traders] != 0, np.abs(tb.size[traders]) * price[tb.venue[traders]],
                        np.maximum(equity, 0.0) * wanted)
    # the rules on every venue, for every account
    denied = np.ones((k, len(traders)), dtype=bool)
    allowed = np.zeros((k, len(traders)))
    closeout = np.zeros((k, len(traders)))
    factor = np.ones((k, len(traders)))
    limit = np.full((k, len(traders)), np.inf)
    rule_cap = np.full((k, len(traders)), np.inf)
    juris, draw = tb.juris[traders], model.choice_draw(traders, "geo_evasion")
    for v in np.flatnonzero(choosable):
        denied[v], hooks = apply_rules.account_rules(model, traders, v, juris, draw)
        venue_cap = initial_margin_leverage(vb, np.full(len(traders), v), notional, tb.weight[traders])
        allowed[v] = np.minimum(hooks["leverage_cap"], venue_cap)
        closeout[v], factor[v], limit[v] = hooks["closeout_level"], hooks["desired_leverage"], hooks["position_limit"]
        rule_cap[v] = hooks["leverage_cap"]
    cur = tb.venue[traders].astype(int)
    col = np.arange(len(traders))
    wanted = wanted * factor[cur, col]
    # a position opened at a worse entry than the start price carries more leverage than was
    # chosen: a rule's cap binds on the leverage the position has
    with np.errstate(divide="ignore"):
        effective = np.where(equity > 0, notional / equity, np.inf)
    affected = denied[cur, col] | (allowed[cur, col] < wanted - 1e-12) | (factor[cur, col] != 1.0) \
        | (notional / tb.weight[traders] > limit[cur, col]) | (effective > rule_cap[cur, col] * (1 + 1e-12))
    # utility of each venue for each affected account (columns ``a``; the others stay as they
    # are whatever their utilities), under the rules and as it was before them
    a = np.flatnonzero(affected)
    acc = traders[a]
    cur_a, col_a = cur[a], np.arange(len(a))
    taste = prm.noise * -np.log(-np.log(model.choice_draw(acc, "gumbel", k)))
    kyc_venue = np.array([r.kyc_required for r in vb.rules])[:, None]
    juris, draw = juris[a], draw[a]  # the affected accounts'
    leaks = np.vstack([apply_rules.reach(sc, r.name, juris, draw)[1] for r in vb.rules])
    home = np.array([[r.home == j for j in JURISDICTIONS] for r in vb.rules])[:, juris]
    extra = prm.domestic_trust * home - prm.evasion_friction * leaks
    u = _utility(prm, vb.rules, allowed[:, a], wanted[a], tb.kyc[acc], cur_a, taste + extra)
    u[denied[:, a] | ~choosable[:, None]] = -np.inf
    # revealed preference: each account's venue was its best choice before the rules, so
    # its taste for it is raised until it was; only what the rules change moves anyone
    before = {v.name: v for v in model.unruled.venues}
    vb0 = VenueBook([before.get(r.name, r) for r in vb.rules])
    cap0 = np.vstack([initial_margin_leverage(vb0, np.full(len(a), v), notional[a], tb.weight[acc])
                      for v in range(k)])
    u0 = _utility(prm, vb0.rules, cap0, tb.leverage[acc], tb.kyc[acc], cur_a, taste + extra)
    u0[~choosable | ~np.array([r.name in before for r in vb.rules])] = -np.inf
    u[cur_a, col_a] += np.maximum(u0.max(axis=0) - u0[cur_a, col_a], 0.0)
    best = np.argmax(u, axis=0)
    quits = np.zeros(len(traders), dtype=bool)
    quits[a] = u[best, col_a] < prm.quit_utility
    moves = np.zeros(len(traders), dtype=bool)
    moves[a] = ~quits[a] & (best != cur_a)
    new_venue = cur.copy()
    new_venue[moves] = best[moves[a]]
    apply_rules.credit_accounts(model, acc, cur_a)
    # reposition affected accounts (``acc``) at the start price
    nv = new_venue[affected]
    lev = np.minimum(wanted[affected], allowed[nv, col[affected]])
    lim_usd = limit[nv, col[affected]] * tb.weight[acc]
    e = np.maximum(equity[affected], 0.0)
    size = side[affected] * np.minimum(e * lev, lim_usd) / price[nv]
    size[quits[affected]] = 0.0
    old_net = np.bincount(tb.venue, weights=tb.size, minlength=k)
    tb.venue[acc] = nv
    tb.size[acc] = size
    tb.entry[acc] = np.where(size != 0, price[nv], 0.0)
    tb.cash[acc] = equity[affected] + tb.coin[acc] * (1.0 - vb.coin_value[nv]) - size * price[nv]
    tb.leverage[acc] = np.where(quits[affected], tb.leverage[acc], lev)
    tb.stop[acc] = np.where(size != 0, price[nv] * (1 - np.sign(size) * tb.stop_dist[acc]), np.nan)
    tb.moved[traders[moves]] = True
    tb.quit[traders[quits]] = True
    tb.blocked[traders[denied[cur, col]]] = True
    # the rules that stay with each account during the run (on its final venue)
    tb.lev_cap[traders] = allowed[tb.venue[traders], col]
    tb.pos_limit[traders] = limit[tb.venue[traders], col]
    tb.mm_floor[traders] = closeout[tb.venue[traders], col] / tb.lev_cap[traders]
    tb.kyc[traders[kyc_venue[tb.venue[traders], 0]]] = True  # who trades on a KYC venue has verified
    # each book takes the other side of the change in its venue's net position
    delta = np.bincount(tb.venue, weights=tb.size, minlength=k) - old_net
    for v in np.flatnonzero(np.abs(delta) > 0):
        row = vb.mm_row[v]
        model.market.transfer(np.array([row]), np.array([-delta[v]]), np.array([price[v]]))
    model.engine.refresh(traders)
    tb.liq_price[traders] = liquidation_price(tb, vb, traders)
    apply_rules.credit_closeouts(model, traders)
    apply_rules.credit_new_venues(model, traders)


def _utility(prm, venues, allowed: np.ndarray, wanted: np.ndarray, verified: np.ndarray, cur: np.ndarray,
             taste: np.ndarray) -> np.ndarray:
    """(venues x accounts) utility of trading on each venue (see the module docstring);
    ``taste`` carries each account's own terms (Gumbel taste, domestic trust, evasion friction)."""
    fee = np.array([r.taker_fee for r in venues])[:, None]
    kyc = np.array([r.kyc_required for r in venues])[:, None]
    onshore = np.array([not r.offshore for r in venues])[:, None]
    with np.errstate(divide="ignore"):  # venues that cannot be chosen have no allowed leverage
        gain = np.log(np.minimum(allowed, wanted) / wanted)
    return (prm.leverage_weight * gain - prm.fee_weight * fee - prm.kyc_friction * (kyc & ~verified)
            - prm.switching_cost * (np.arange(len(venues))[:, None] != cur) + prm.onshore_trust * onshore + taste)

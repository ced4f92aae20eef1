"""How national rules reach traders (MODEL.md section 3a, issue 12): a rule binds its
jurisdiction's domestic venues for everyone they serve, never an offshore venue; offshore
venues serve, refuse or block residents, and blocking leaks; a trader a rule binds at home
accepts it, goes offshore or stops, as the documented utility says (engine/choice.py).

Runs use the calm 2025 scenario (domestic venues of the EU, UK, Japan and the US) with
3,000 simulated traders, settled before the first step, and short runs of it.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from policylab.engine.apply_rules import reach
from policylab.engine.book import CLASSES
from policylab.engine.margin import initial_margin_leverage
from policylab.experiments.compare import make_arm
from policylab.inputs.rulesets import load_rules, parse_rules
from policylab.inputs.scenario import load_scenario
from policylab.model import MarketModel
from policylab.names import JURISDICTIONS

TRADERS = 3000
RETAIL = CLASSES.index("retail")
JP = JURISDICTIONS.index("JP")
OFFSHORE = ("hyperliquid", "aster", "binance", "bybit", "okx")
TRADER_CLASSES = [CLASSES.index(c) for c in ("retail", "professional", "basis")]


def traders(m):
    return np.isin(m.tb.cls, TRADER_CLASSES)


@pytest.fixture(scope="module")
def calm():
    return load_scenario("calm")


def short(sc, minutes=60):
    return dataclasses.replace(sc, duration_minutes=minutes)


def model(sc, *rules, seed=0, audit=False):
    return MarketModel(sc, seed=seed, traders=TRADERS, rules=list(rules), audit=audit)


def vidx(m, *names):
    return [m.vb.names.index(n) for n in names]


def effective(m, idx):
    price = m.market.prices()
    return np.abs(m.tb.size[idx]) * price[m.tb.venue[idx]] / m.tb.equity(idx, price, m.vb.coin_value)


def rules_text(text, name="test"):
    return parse_rules(f"name: {name}\ntitle: {name}\n" + text, f"{name}.yaml", Path("."))


# ====================================================================== the Japanese cap
def test_japans_cap_binds_its_exchange_and_no_offshore_venue(calm):
    """Under the baseline no retail account on the Japanese exchange holds more than 2x, before
    or after an hour of trading; offshore venues keep their own tiers, and Japanese residents
    trade above 2x there. Without the cap (its repeal) the exchange's retail lever above 2x.
    (A strong domestic trust keeps enough of them at home to check.)"""
    calm = dataclasses.replace(calm, venue_choice=dataclasses.replace(calm.venue_choice, domestic_trust=2.0))
    m = model(short(calm), load_rules("status-quo-2025"))
    tb, jp = m.tb, vidx(m, "jp_exchange")[0]
    retail = np.flatnonzero((tb.cls == RETAIL) & (tb.size != 0))
    on_jp = retail[tb.venue[retail] == jp]
    assert len(on_jp) >= 5
    assert np.all(tb.lev_cap[on_jp] == 2) and np.all(effective(m, on_jp) <= 2 * (1 + 1e-9))
    rules = {r.name: r for r in m.vb.rules}
    before = {v.name: v for v in calm.venues}
    for name in OFFSHORE:
        assert rules[name].tiers == before[name].tiers  # never a foreign cap
    offshore_jp = retail[np.isin(tb.venue[retail], vidx(m, *OFFSHORE)) & (tb.juris[retail] == JP)]
    assert len(offshore_jp) > 10 and np.any(effective(m, offshore_jp) > 2) and np.all(tb.lev_cap[offshore_jp] >= 40)
    m.run()
    still = on_jp[(tb.size[on_jp] != 0) & (tb.venue[on_jp] == jp)]
    assert np.all(tb.leverage[still] <= 2 + 1e-9)
    repeal = model(short(calm), load_rules("repeal-japan-2020"))
    r = np.flatnonzero((repeal.tb.cls == RETAIL) & (repeal.tb.size != 0) & (repeal.tb.venue == jp))
    assert np.any(effective(repeal, r) > 2)


def test_the_cap_moves_japanese_retail_offshore_and_nobody_else(calm):
    """What the cap does at the start, baseline against its repeal: Japanese residents who
    wanted more than 2x leave the exchange (offshore or out); residents of elsewhere never
    trade there (it serves Japanese residents only)."""
    base, repeal = model(calm, load_rules("status-quo-2025")), model(calm, load_rules("repeal-japan-2020"))
    jp = vidx(base, "jp_exchange")[0]
    for m in (base, repeal):
        held = np.flatnonzero((m.tb.size != 0) & (m.tb.venue == jp) & traders(m))
        assert np.all(m.tb.juris[held] == JP)
    moved = lambda m: np.flatnonzero((m.tb.juris == JP) & m.tb.moved)  # noqa: E731
    assert len(moved(base)) > len(moved(repeal)) + 20
    wanted_more = np.flatnonzero((base.tb.juris == JP) & (base.tb.cls == RETAIL) & (base.tb.lev_chosen > 2))
    left = wanted_more[base.tb.moved[wanted_more] | base.tb.quit[wanted_more]]
    assert len(left) > 0 and np.all(base.tb.venue[left[base.tb.moved[left]]] != jp)


# ====================================================================== access
def blocked_scenario(sc, leakage):
    """``sc`` with every offshore venue blocking Japanese residents at ``leakage``."""
    access = {name: {**sc.access[name], "JP": leakage} for name in OFFSHORE}
    return dataclasses.replace(sc, access={**sc.access, **access})


def test_full_blocking_without_leakage_keeps_residents_off_the_venues_that_block_them(calm):
    sc = short(blocked_scenario(calm, 0.0))
    for rules in ((), (load_rules("status-quo-2025"),)):
        m = model(sc, *rules)
        held = lambda: np.flatnonzero((m.tb.size != 0) & (m.tb.juris == JP) & traders(m))  # noqa: E731
        assert len(held()) > 20
        assert not np.any(np.isin(m.tb.venue[held()], vidx(m, *OFFSHORE)))
        # and the US residents the calm scenario's venues refuse are nowhere near them
        us = np.flatnonzero((m.tb.size != 0) & (m.tb.juris == JURISDICTIONS.index("US")) & traders(m))
        assert not np.any(np.isin(m.tb.venue[us], vidx(m, "eu_broker", "eu_exchange", "uk_firm", "jp_exchange")))
        m.run()
        assert not np.any(np.isin(m.tb.venue[held()], vidx(m, *OFFSHORE)))


def test_blocked_residents_get_through_at_the_leakage(calm):
    """Every Japanese resident on a venue that blocks them is one whose geo_evasion draw is
    below the leakage; an enforcement module lowers the leakage and turns the rest away."""
    sc = blocked_scenario(calm, 0.5)
    m = model(sc)
    on = np.flatnonzero((m.tb.size != 0) & (m.tb.juris == JP) & np.isin(m.tb.venue, vidx(m, *OFFSHORE)))
    draw = m.choice_draw(on, "geo_evasion")
    assert len(on) > 10 and np.all(draw < 0.5)
    enforce = rules_text("modules:\n  - module: offshore_access_enforcement\n    params: {blocked: [JP], leakage: 0.1}\n")
    e = model(sc, enforce)
    stayed = on[np.isin(e.tb.venue[on], vidx(e, *OFFSHORE)) & (e.tb.size[on] != 0)]
    assert np.all(e.choice_draw(stayed, "geo_evasion") < 0.1)
    assert np.all(e.tb.blocked[on[draw >= 0.1]]) and len(stayed) < len(on)


# ====================================================================== the trader's choice
def expected_choice(m, base, acc):
    """The documented utility (docs/calibration.md, engine/choice.py) computed here for
    accounts turned away from their venue: (venue or -1 for quitting) per account."""
    prm, tb, vb = m.scenario.venue_choice, base.tb, m.vb
    k = len(vb.rules)
    price = base.market.prices()
    notional = np.abs(tb.size[acc]) * price[tb.venue[acc]]
    wanted = tb.leverage[acc]
    juris, draw = tb.juris[acc], m.choice_draw(acc, "geo_evasion")
    taste = prm.noise * -np.log(-np.log(m.choice_draw(acc, "gumbel", k)))
    out = np.full(len(acc), -1)
    best = np.full(len(acc), -np.inf)
    for v, r in enumerate(vb.rules):
        if r.is_spot:
            continue
        denied, leaks = reach(m.scenario, r.name, juris, draw)
        allowed = initial_margin_leverage(vb, np.full(len(acc), v), notional, tb.weight[acc])
        u = (prm.leverage_weight * np.log(np.minimum(allowed, wanted) / wanted) - prm.fee_weight * r.taker_fee
             - prm.kyc_friction * (r.kyc_required & ~tb.kyc[acc]) - prm.switching_cost * (tb.venue[acc] != v)
             + prm.onshore_trust * (not r.offshore) + prm.domestic_trust * (np.array(JURISDICTIONS)[juris] == r.home)
             - prm.evasion_friction * leaks + taste[v])
        u[denied | (tb.venue[acc] == v)] = -np.inf  # turned away there, or banned from its own venue
        better = u > best
        out[better], best[better] = v, u[better]
    out[best < prm.quit_utility] = -1
    return out


@pytest.mark.parametrize("leakage", [None, 0.5])
def test_a_domestic_ban_moves_residents_offshore_or_out_as_the_utility_says(calm, leakage):
    """A ban on Japan's domestic venue: its retail go offshore or stop. With no blocking they
    reach every offshore venue; with blocking at 50% only those whose draw gets them through,
    paying the evasion friction. Each account's choice is the documented utility's."""
    sc = calm if leakage is None else blocked_scenario(calm, leakage)
    ban = rules_text("modules:\n  - module: retail_product_ban\n    target: {classes: [retail], jurisdictions: [JP]}\n")
    base, m = model(sc), model(sc, ban)
    jp = vidx(m, "jp_exchange")[0]
    acc = np.flatnonzero((base.tb.cls == RETAIL) & (base.tb.venue == jp) & (base.tb.size != 0))
    assert len(acc) > 50
    expected = expected_choice(m, base, acc)
    quits = expected == -1
    assert np.array_equal(m.tb.quit[acc], quits) and np.all(m.tb.moved[acc] == ~quits)
    np.testing.assert_array_equal(m.tb.venue[acc[~quits]], expected[~quits])
    assert np.all(m.tb.venue[acc[~quits]] != jp) and (~quits).sum() > 0
    if leakage is not None:  # fewer reach offshore when blocked, and more stop
        free = expected_choice(model(calm, ban), model(calm), acc)
        assert (expected == -1).sum() > (free == -1).sum()
    # accounts flat at the start are settled too (they would open on the venue later): none stays
    flat = np.flatnonzero((base.tb.cls == RETAIL) & (base.tb.venue == jp) & (base.tb.size == 0))
    assert np.all((m.tb.venue[flat] != jp) | m.tb.quit[flat])
    # nobody else moved
    others = np.setdiff1d(np.flatnonzero(traders(base)), np.concatenate([acc, flat]))
    np.testing.assert_array_equal(m.tb.venue[others], base.tb.venue[others])


# ====================================================================== composition and conservation
def test_a_repeal_and_a_proposal_compose_on_one_baseline(calm):
    arm = make_arm("repeal-japan-2020+circuit-breaker-proposal", calm)
    ids = [(m.origin, m.id) for r in arm.rules for m in r.modules if m.id]
    assert len(ids) == len(set(ids))  # the shared baseline's modules run once
    assert ("status-quo-2025", "japan-2020-2x") not in ids and ("status-quo-2025", "fca-2021-retail-ban") in ids
    assert [m.module for r in arm.rules for m in r.modules].count("circuit_breaker") == 1
    assert arm.repeals and not make_arm("circuit-breaker-proposal", calm).repeals
    both = make_arm("status-quo-2025+repeal-japan-2020", calm)  # naming the base too: the repeal holds
    assert ("status-quo-2025", "japan-2020-2x") not in [(m.origin or r.name, m.id) for r in both.rules
                                                        for m in r.modules]
    policies = [p for r in arm.rules for p in r.policies()]
    assert {p.rule_set for p in policies} == {"status-quo-2025", "circuit-breaker-proposal"}


def test_money_is_conserved_under_the_baseline_and_its_repeals(calm):
    for name in ("status-quo-2025", "repeal-japan-2020", "repeal-fca-2021", "esma-2026-perpetuals"):
        m = model(short(calm, 30), load_rules(name), audit=True)
        m.run()  # the ledger asserts conservation after every step

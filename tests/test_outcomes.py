"""Outcome accounting (issues 12 item 5-6, 13 item 5): families by jurisdiction and by
leverage group add up to the totals, volume splits into voluntary and forced, PnL is net
of new money, events and timeseries carry the account's jurisdiction and pre-rule
leverage, and ``lev_chosen`` is the leverage drawn under the venues' own tiers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policylab import metrics
from policylab.experiments.run import run
from policylab.inputs.rulesets import load_rules
from policylab.inputs.scenario import load_scenario
from policylab.metrics import Run, headlines
from policylab.model import MarketModel
from policylab.names import (CLASSES, CONFIGURABLE_CLASSES, EVENT_KINDS, JURISDICTIONS, LEVERAGE_GROUPS, RETAIL,
                             VENUE_CLASSES)

VENUE_CAP = """name: venue-cap-{cap}
title: "Every derivatives venue caps leverage at {cap}x"
description: a venue-level cap, for tests
jurisdiction: global
effective_date: 2025-01-01
sources: []
modules:
  - module: leverage_cap
    params: {{max_leverage: {cap}}}
"""
OWN_ROWS = [CLASSES[i] for i in VENUE_CLASSES]


def _close(a, b, scale):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * max(scale, 1.0))


def _family(m, stem: str, over: str, members) -> float:
    return sum(m[f"{stem}.{over}.{x}"] for x in members)


@pytest.fixture(scope="module")
def venue_cap(tmp_path_factory):
    path = tmp_path_factory.mktemp("rules") / "venue-cap.yaml"
    path.write_text(VENUE_CAP.format(cap=3))
    return load_rules(str(path))


@pytest.fixture(scope="module")
def october():
    return load_scenario("october-2025")


# ------------------------------------------------------------------ members add up to totals
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), traders=st.integers(150, 500), minutes=st.integers(30, 150),
       rules=st.sampled_from([None, "venue-cap", "status-quo-2025", "repeal-japan-2020", "repeal-esma-2018"]),
       name=st.sampled_from(["october-2025", "calm", "short-squeeze"]))
def test_jurisdiction_and_leverage_families_add_up_to_the_totals(seed, traders, minutes, rules, name, venue_cap):
    sc = load_scenario(name)
    sc = dataclasses.replace(sc, duration_minutes=minutes)
    rule_sets = () if rules is None else [venue_cap if rules == "venue-cap" else load_rules(rules)]
    result = run(sc, seed=seed, traders=traders, rules=rule_sets)
    m, ts, ev = result.record(), result.timeseries, result.events
    J, G = JURISDICTIONS, LEVERAGE_GROUPS
    scale = max(m["volume_usd"], m["liquidated_usd"], abs(m["pnl_usd.class.retail"]), 1.0)

    # accounts: every resident counted once as active or quit; moves, exits, blocks, debts by residence
    for stem in ("accounts_moved", "accounts_quit", "accounts_blocked", "negative_balance_accounts"):
        assert _close(_family(m, stem, "jurisdiction", J), m[stem], m[stem]), stem
    population = sc.real_accounts * sum(c.share for c in sc.classes.values())
    assert _close(_family(m, "accounts_active", "jurisdiction", J) + m["accounts_quit"], population, population)

    # liquidations: residents by jurisdiction and by leverage group, plus the venues' own rows
    liq = ev[ev["kind"].isin(["liquidation", "partial", "backstop", "adl"])]
    own = liq["trader_class"].isin(OWN_ROWS)
    assert (liq["jurisdiction"] == "none").equals(own)
    for over, members in (("jurisdiction", J), ("leverage_group", G)):
        got = _family(m, "liquidated_usd", over, members) + liq.loc[own, "notional_usd"].sum()
        assert _close(got, m["liquidated_usd"], scale), over
    own_hit = liq.loc[own].drop_duplicates("account")["accounts"].sum()
    assert _close(_family(m, "liquidated_accounts", "jurisdiction", J) + own_hit, m["liquidated_accounts"], 1.0)

    # losses and PnL
    for over, members in (("jurisdiction", J), ("leverage_group", G)):
        assert _close(_family(m, "retail_loss_usd", over, members), m["retail_loss_usd"], scale), over
        pnl = sum(m[f"pnl_usd.class.{c}"] for c in CONFIGURABLE_CLASSES)
        assert _close(_family(m, "pnl_usd", over, members), pnl, scale), over

    # volume: by class, voluntary + forced, by residence (timeseries), domestic + offshore
    assert _close(_family(m, "volume_usd", "class", CLASSES), m["volume_usd"], scale)
    assert _close(m["volume_usd.voluntary"] + m["volume_usd.forced"], m["volume_usd"], scale)
    assert _close(ts["forced_volume_usd"].sum(), m["volume_usd.forced"], scale)
    resident = sum(ts[f"volume_usd_{j}"].sum() for j in J)
    assert _close(resident + sum(m[f"volume_usd.class.{c}"] for c in OWN_ROWS), m["volume_usd"], scale)
    deriv = ts[ts["venue"].isin([v.name for v in result.scenario.venues if not v.is_spot])]
    dom_off = (_family(m, "domestic_volume_usd", "jurisdiction", J)
               + _family(m, "offshore_volume_usd", "jurisdiction", J))
    assert _close(dom_off, sum(deriv[f"volume_usd_{j}"].sum() for j in J), scale)
    after = deriv[deriv["step"] > 0]
    for j in J:
        held = after[f"open_interest_usd_{j}"].sum() / after["step"].nunique()
        got = m[f"domestic_open_interest_usd.jurisdiction.{j}"] + m[f"offshore_open_interest_usd.jurisdiction.{j}"]
        assert _close(got, held, held), j
        for share in ("offshore_volume_share", "offshore_oi_share"):
            x = m[f"{share}.jurisdiction.{j}"]
            assert x is None or 0.0 <= x <= 1.0
    residents_oi = sum(ts[f"open_interest_usd_{j}"] for j in J)  # the venues' own rows hold the rest
    assert (ts["open_interest_usd"] >= residents_oi * (1 - 1e-9) - 1e-6).all()

    # fees: by venue, domestic + offshore
    fees = _family(m, "fee_revenue_usd", "venue", [v.name for v in result.scenario.venues])
    assert _close(m["fee_revenue_usd.domestic"] + m["fee_revenue_usd.offshore"], fees, fees)


# ------------------------------------------------------------------ forced and voluntary volume
def test_forced_volume_is_the_liquidations_stops_and_unwinds_filled_in_the_books(october):
    sc = dataclasses.replace(october, duration_minutes=600)
    result = run(sc, seed=0, traders=1500)
    m, ev = result.record(), result.events
    in_book = ev.loc[ev["kind"].isin(["liquidation", "partial", "stop"]), "notional_usd"].sum()
    assert in_book > 0 and m["volume_usd.voluntary"] > 0
    unwinds = m["volume_usd.class.vault"]
    assert in_book + unwinds <= m["volume_usd.forced"] * (1 + 1e-9)
    assert m["volume_usd.forced"] <= (in_book + unwinds + m["volume_usd.class.basis"]) * (1 + 1e-9)
    assert "volume_usd.voluntary" in headlines.flagged("core")
    assert "volume_usd" not in headlines.flagged("core")


# ------------------------------------------------------------------ PnL net of new money
def test_refills_are_new_money_not_profit():
    sc = load_scenario("leverage-study")
    sc = dataclasses.replace(sc, duration_minutes=min(sc.duration_minutes, 4 * 1440))
    model = MarketModel(sc, seed=0, traders=600)
    start = metrics.snapshot(model)
    model.run()
    refilled = sum(p.refills for p in model.populations)
    new_money = model.tb.deposit - start.deposit
    assert refilled > 0 and new_money.sum() > 0
    values = metrics.compute(model, start)
    raw = metrics.wealth(model) - start.wealth
    retail = model.tb.cls == RETAIL
    assert values["pnl_usd.class.retail"] == pytest.approx(raw[retail].sum() - new_money[retail].sum())
    # a refilled account's loss counts: its PnL is its raw wealth change less the new stake
    hit = np.flatnonzero(new_money > 0)
    assert np.all(Run(model, start).pnl[hit] < raw[hit])
    assert values["retail_loss_usd"] >= np.maximum(-raw[retail], 0).sum()
    # and an account whose new stake is all it has left at the end is wiped out
    w0, left = start.wealth, metrics.WIPED_OUT_LEFT * start.wealth
    traders = ~np.isin(model.tb.cls, [CLASSES.index("market_maker"), CLASSES.index("vault")]) & (w0 > 0)
    net = traders & (raw - new_money + w0 <= left)
    assert values["accounts_wiped_out"] == pytest.approx(model.tb.weight[net].sum())
    assert values["accounts_wiped_out"] >= model.tb.weight[traders & (raw + w0 <= left)].sum()


# ------------------------------------------------------------------ events and timeseries columns
def test_events_carry_residence_and_pre_rule_leverage(october):
    sc = dataclasses.replace(october, duration_minutes=300)
    model = MarketModel(sc, seed=1, traders=1500)
    start = metrics.snapshot(model)
    model.run()
    from policylab.experiments.run import _events, _timeseries
    ev = _events(model)
    assert len(ev) > 0
    tb = model.tb
    own = np.isin(tb.cls[ev["account"]], VENUE_CLASSES)
    expect = np.where(own, "none", np.array(JURISDICTIONS, dtype=object)[tb.juris[ev["account"]]])
    assert (ev["jurisdiction"].to_numpy() == expect).all()
    assert np.allclose(ev["leverage_chosen"][~own], tb.lev_chosen[ev["account"][~own]])
    assert ev["leverage_chosen"][own].isna().all()
    assert set(ev["kind"]) <= set(EVENT_KINDS)
    ts = _timeseries(model, start)
    first = ts[ts["step"] == 0]
    population = ~np.isin(tb.cls, VENUE_CLASSES)
    long0 = np.maximum(start.size, 0) * (population & (tb.juris == JURISDICTIONS.index("EU")))
    held = np.bincount(tb.venue, long0, minlength=len(model.vb.rules)) * sc.start_price
    assert np.allclose(first["open_interest_usd_EU"], held, rtol=1e-9)


# ------------------------------------------------------------------ lev_chosen is pre-rule
def test_lev_chosen_is_drawn_under_the_venues_own_tiers(october, venue_cap):
    plain = MarketModel(october, seed=3, traders=800)
    capped = MarketModel(october, seed=3, traders=800, rules=[venue_cap])
    pop = ~np.isin(plain.tb.cls, VENUE_CLASSES)
    assert np.array_equal(plain.tb.juris, capped.tb.juris)
    assert np.array_equal(plain.tb.lev_chosen[pop], capped.tb.lev_chosen[pop])
    derivs = pop & (capped.tb.size != 0)
    assert capped.tb.leverage[derivs].max() <= 3.0 + 1e-9  # the rule bound the leverage the accounts hold
    assert (plain.tb.lev_chosen[derivs] > 3.0).any()  # but not the leverage they chose


# ------------------------------------------------------------------ the columns are documented
def test_contracts_document_every_table_column():
    from pathlib import Path

    from policylab.experiments.backends import TIMESERIES_COLUMNS
    from policylab.experiments.run import COLUMNS

    def generic(col: str) -> str:  # open_interest_usd_EU -> open_interest_usd_<J>
        stem, _, last = col.rpartition("_")
        return f"{stem}_<J>" if last in JURISDICTIONS else col

    text = (Path(__file__).resolve().parent.parent / "docs" / "contracts.md").read_text()
    table = text[text.index("## Table columns of one run"):]
    for name in ("timeseries", "events"):
        part = table[table.index(f"`{name}` (one row"):]
        for col in COLUMNS[name]:
            assert generic(col) in part, f"docs/contracts.md: {name} column {col} undocumented"
    parquet = text[text.index("`timeseries.parquet`"):text.index("`events.parquet`")]
    for col in TIMESERIES_COLUMNS:
        assert generic(col) in parquet, col

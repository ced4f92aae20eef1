"""The mechanics behind the leverage study: professionals re-levering to target both
ways, wiped-out accounts replaced by new money, and fat-tailed (Student-t) news."""

import dataclasses

import numpy as np
import pytest
from pytest import approx

from policylab.engine import exogenous
from policylab.errors import InputError
from policylab.model import MarketModel
from policylab.inputs.scenario import load_scenario
from policylab.validation.stylized import excess_kurtosis


def _with_class(sc, cname, **changes):
    classes = dict(sc.classes)
    classes[cname] = dataclasses.replace(classes[cname], **changes)
    return dataclasses.replace(sc, classes=classes)


def _pros(model):
    return next(p for p in model.populations if type(p).__name__ == "Professionals")


def _retail(model):
    return next(p for p in model.populations if type(p).__name__ == "RetailSpeculators")


@pytest.mark.parametrize("relever_below, adds", [(0.9, True), (0.0, False)])
def test_professional_adds_back_to_target_leverage_after_gains(short_scenario, relever_below, adds):
    sc = _with_class(short_scenario, "professional", relever_below=relever_below)
    m = MarketModel(sc, seed=1, traders=400)
    pros, tb = _pros(m), m.tb
    price = m.market.prices()
    held = pros.rows[(tb.size[pros.rows] > 0) & (tb.leverage[pros.rows] >= 2)]
    i = held[0]
    notional = tb.size[i] * price[tb.venue[i]]
    tb.cash[i] += notional  # a gain: equity up by one notional, so leverage is below half the target
    eq = tb.equity(np.array([i]), price, m.vb.coin_value)[0]
    pros.active = lambda: np.array([i])
    idx, dq = pros.decide()
    if not adds:
        assert i not in idx
        return
    assert idx.tolist() == [i] and dq[0] > 0  # buys more of its long: procyclical
    target = min(tb.leverage[i], m.leverage_cap(np.array([i]), np.array([eq * tb.leverage[i]]))[0])
    assert (tb.size[i] + dq[0]) * price[tb.venue[i]] == approx(eq * target, rel=1e-9)


def test_wiped_out_account_is_replaced_with_its_starting_deposit_as_new_money(short_scenario):
    sc = _with_class(short_scenario, "retail", refill_half_life_minutes=1e-6)  # at once
    m = MarketModel(sc, seed=2, traders=400, audit=True)
    retail, tb = _retail(m), m.tb
    i = retail.rows[tb.size[retail.rows] != 0][0]
    stake, deposit = retail.stake[retail.rows == i][0], tb.deposit[i]
    # the account is wiped out: its position closed against its venue's book, all margin lost
    # (the book gains it), so money is conserved before the refill
    v = tb.venue[i]
    book = m.vb.mm_row[v]
    price = m.market.prices()[v]
    m.market.transfer(np.array([i, book]), np.array([-tb.size[i], tb.size[i]]), np.array([price, price]))
    tb.cash[book] += tb.cash[i]
    tb.cash[i] = 0.0
    m.audit.check("wiped out")
    retail.refill()
    assert tb.cash[i] == approx(stake) and tb.deposit[i] == approx(deposit + stake)
    assert retail.refills >= 1
    m.audit.check("after the refill")  # new money is counted, not a leak


def test_without_refill_a_wiped_out_account_stays_empty(short_scenario):
    m = MarketModel(short_scenario, seed=2, traders=400)
    retail, tb = _retail(m), m.tb
    i = retail.rows[0]
    tb.size[i], tb.cash[i] = 0.0, 0.0
    retail.refill()
    assert tb.cash[i] == 0.0 and retail.refills == 0


def test_leverage_study_run_with_refills_is_audited_and_deterministic():
    sc = dataclasses.replace(load_scenario("leverage-study"), duration_minutes=1440)
    sc = _with_class(_with_class(sc, "retail", refill_half_life_minutes=60.0), "professional",
                     refill_half_life_minutes=60.0, relever_below=0.9)
    runs = []
    for _ in range(2):
        m = MarketModel(sc, seed=4, traders=600, audit=True)  # raises on any leak
        m.run()
        runs.append((m.index_path.copy(), sum(getattr(p, "refills", 0) for p in m.populations)))
    assert runs[0][1] > 0  # high-leverage accounts were wiped out and replaced
    assert np.array_equal(runs[0][0], runs[1][0])


def test_student_t_innovations_have_fat_tails_and_the_scenario_volatility():
    sc = dataclasses.replace(load_scenario("leverage-study"), duration_minutes=43200 * 2 // 3)
    normal = exogenous.draw(sc, 5).log_return
    t3 = exogenous.draw(dataclasses.replace(sc, innovation_df=3.0), 5).log_return
    step_sd = sc.sigma_daily * np.sqrt(sc.step_minutes / 1440)
    assert normal.std() == approx(step_sd, rel=0.05) and t3.std() == approx(step_sd, rel=0.25)
    assert abs(excess_kurtosis(normal)) < 0.5 < 3 < excess_kurtosis(t3)
    assert np.array_equal(normal, exogenous.draw(sc, 5).log_return)  # normal draws unchanged by the option


@pytest.mark.parametrize("yaml_line, message", [
    ("innovation_df: 1.5", "innovation_df: got 1.5"),
    ("innovation_df: -3", "innovation_df: got -3"),
])
def test_bad_innovation_df_is_a_one_line_error(tmp_path, yaml_line, message):
    path = tmp_path / "s.yaml"
    path.write_text(f"extends: leverage-study\nname: s\n{yaml_line}\n")
    with pytest.raises(InputError, match=message):
        load_scenario(str(path))


def test_bad_relever_below_is_a_one_line_error(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("extends: leverage-study\nname: s\npopulation: {classes: {professional: {relever_below: 1.2}}}\n")
    with pytest.raises(InputError, match="relever_below: got 1.2"):
        load_scenario(str(path))


def test_a_higher_leverage_cap_gives_fat_tailed_clustered_returns():
    # Thurner, Farmer and Geanakoplos (2012), qualitatively: with thin-tailed, unclustered
    # news, speculators capped at 2x leave the index's 15-minute returns close to normal
    # and unclustered; capped at 25x, their margin calls and re-levering fatten the tails
    # and cluster volatility (policylab leverage-study; benchmarks and README give the
    # full curve over seeds).
    from policylab.validation.leverage_study import leverage_study

    seeds = 3
    table = leverage_study(caps=(2.0, 25.0), seeds=seeds, traders=2000, workers=1)
    fact = table.set_index(["fact", "cap"])["mean"]
    # "unclustered": within two standard errors of an unclustered series' sample
    # autocorrelation, 1/sqrt(bars), for the mean over seeds of 15-minute bars over the run
    bars = load_scenario("leverage-study").duration_minutes // 15 * seeds
    assert abs(fact["excess_kurtosis", 2.0]) < 0.5 and abs(fact["acf_abs_lag1", 2.0]) < 2 / np.sqrt(bars)
    assert fact["excess_kurtosis", 25.0] > fact["excess_kurtosis", 2.0] + 0.5
    assert fact["tail_index", 25.0] < fact["tail_index", 2.0] - 0.5
    assert fact["acf_abs_lag1", 25.0] > fact["acf_abs_lag1", 2.0] + 0.02


def test_refill_draws_every_step_even_during_a_halt():
    # Common random numbers: a rule set that halts trading (a circuit breaker) must not
    # shift the refill stream of the steps that follow.
    sc = dataclasses.replace(load_scenario("leverage-study"), duration_minutes=200)
    sc = _with_class(sc, "retail", refill_half_life_minutes=60.0)
    free, halted = (MarketModel(sc, seed=6, traders=300) for _ in range(2))
    halted.halt_until = 10  # trading halted for the first ten steps
    for m in (free, halted):
        for _ in range(20):
            m.step()
    assert _retail(halted)._refill_stream.bit_generator.state == _retail(free)._refill_stream.bit_generator.state


def test_refill_stream_is_keyed_by_the_population_name_not_its_class_name(monkeypatch):
    from policylab.engine.streams import stream
    from policylab.populations import POPULATIONS, RetailSpeculators

    sc = _with_class(load_scenario("leverage-study"), "retail", refill_half_life_minutes=60.0)

    class Renamed(RetailSpeculators):
        pass

    expected = stream(4, "refill:retail").random(8)
    for population in (RetailSpeculators, Renamed):
        monkeypatch.setitem(POPULATIONS, "retail", population)
        m = MarketModel(sc, seed=4, traders=300)
        retail = next(p for p in m.populations if isinstance(p, RetailSpeculators))
        assert np.array_equal(retail._refill_stream.random(8), expected)

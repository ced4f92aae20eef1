"""The invariants every run is checked against (policylab.experiments.invariants): every
shipped rule set on every built-in scenario breaks none, and each invariant, broken on
purpose, is reported (in the run's violations, runs.parquet, summary.csv and the CLI)."""

from __future__ import annotations

import dataclasses
import glob
import os
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import policylab
from builders import parts_since
from policylab import metrics
from policylab.cli import cli
from policylab.engine.liquidation import EventLog
from policylab.experiments import invariants
from policylab.experiments.compare import compare
from policylab.experiments.run import run
from policylab.inputs.rulesets import builtin_rule_sets, load_rules
from policylab.inputs.scenario import load_scenario
from policylab.model import MarketModel
from policylab.names import EVENT_KINDS

ROOT = os.path.dirname(os.path.dirname(policylab.__file__))
SCENARIOS = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(ROOT, "policylab", "scenarios", "*.yaml")))
TRADERS = 1000
LONG_MINUTES = 2880  # month-long scenarios are cut to their first two days (refills and re-entry included)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_shipped_rule_set_on_every_builtin_scenario_breaks_no_invariant(scenario):
    sc = load_scenario(scenario)
    sc = dataclasses.replace(sc, duration_minutes=min(sc.duration_minutes, LONG_MINUTES))
    assert len(builtin_rule_sets()) >= 9
    for name in builtin_rule_sets():
        result = run(sc, seed=0, traders=TRADERS, rules=[load_rules(name)])
        assert result.violations.empty, (name, result.violations.to_dict("records"))
        assert result.flagged == (0, "")


# ------------------------------------------------------------------ each invariant, broken on purpose
def checked(scenario, tamper, rules=()) -> pd.DataFrame:
    """Run ``scenario`` as ``run`` does, calling ``tamper(model)`` before every step; the violations."""
    m = MarketModel(scenario, seed=0, traders=400, rules=list(rules))
    start = metrics.snapshot(m)
    monitor = invariants.Monitor(m)
    while m.steps < m.scenario.steps:
        tamper(m)
        m.step()
        monitor.observe()
    return monitor.finish(metrics.compute(m, start), metrics.definitions(m.scenario))


@pytest.fixture(scope="module")
def flash(flash_path):
    return load_scenario(str(flash_path))


def only(violations: pd.DataFrame, invariant: str) -> pd.DataFrame:
    assert set(violations["invariant"]) <= set(invariants.INVARIANTS)
    return violations[violations["invariant"] == invariant]


def test_nothing_is_reported_when_nothing_is_broken(flash):
    assert checked(flash, lambda m: None).empty


def test_maintenance_above_initial_margin_is_reported(flash):
    def tamper(m):
        if m.steps == 40:  # a module writing the venue book itself, past the cap
            m.vb.margin_mult[0] = 1.2 / m.vb.rules[0].maintenance_ratio

    found = only(checked(flash, tamper), "maintenance_below_initial")
    assert len(found) == 1 and found.iloc[0]["venue"] == flash.venues[0].name
    assert found.iloc[0]["value"] == pytest.approx(1.2) and found.iloc[0]["limit"] == 1.0
    assert "from step 41" in found.iloc[0]["detail"]


def test_a_close_out_floor_above_initial_margin_is_reported(flash):
    def tamper(m):
        if m.steps == 0:
            i = m.rows["retail"][0]
            m.tb.lev_cap[i] = 5.0
            m.tb.mm_floor[i] = 0.3  # 1.5x the initial margin at 5x

    found = only(checked(flash, tamper), "maintenance_below_initial")
    assert len(found) == 1 and found.iloc[0]["value"] == pytest.approx(1.5)


def _dynamic(m):
    """The rule set's dynamic-margin module (after the baseline's modules it builds on)."""
    return next(p for p in m.policies if p.name == "dynamic_margin")


def test_the_margin_multiplier_is_capped_so_maintenance_stays_below_initial_margin(flash):
    def tamper(m):
        if m.steps == 40:
            m.set_margin_multiplier(_dynamic(m), 3.0, 50.0)

    m = MarketModel(flash, seed=0, traders=400, rules=[load_rules("dynamic-margin-proposal")])
    m.set_margin_multiplier(_dynamic(m), 3.0, 50.0)
    ratio = np.array([r.maintenance_ratio for r in m.vb.rules])
    deriv = ~m.vb.is_spot
    np.testing.assert_allclose(m.vb.margin_mult[deriv] * ratio[deriv], 1.0)
    assert only(checked(flash, tamper, [load_rules("dynamic-margin-proposal")]), "maintenance_below_initial").empty


def _liquidate(m, i, size):
    """Log a liquidation of ``size`` BTC of account ``i`` that never happened (a broken engine)."""
    m.events.add(m.steps - 1, 0, "liquidation", m.tb, np.array([i]), np.array([size]), m.market.prices()[m.tb.venue[i]])


def test_liquidating_more_than_a_venue_holds_and_opens_is_reported(flash):
    def tamper(m):
        if m.steps == 60:
            i = m.rows["retail"][0]
            _liquidate(m, i, 1e6)  # a million BTC

    found = only(checked(flash, tamper), "liquidated_within_open_interest")
    assert len(found) == 1 and found.iloc[0]["value"] > 1e6 > found.iloc[0]["limit"] > 0
    assert found.iloc[0]["unit"] == "BTC"


def test_liquidating_a_flat_account_again_without_reopening_is_reported(flash):
    marked = {}

    def tamper(m):
        if "i" not in marked and m.steps > 50:
            flat = m.rows["retail"][(m.tb.size[m.rows["retail"]] == 0) & m.tb.liquidated[m.rows["retail"]]]
            if len(flat):
                marked["i"] = int(flat[0])
                _liquidate(m, marked["i"], 1e-3)

    v = checked(flash, tamper)
    found = only(v, "liquidated_only_after_reopening")
    assert "i" in marked and len(found) == 1
    assert f"account {marked['i']} " in found.iloc[0]["detail"] and found.iloc[0]["limit"] == 0.0
    assert only(v, "liquidated_within_open_interest").empty  # within the venue's total: only the account is flagged


class ReopenOracle:
    """``liquidated_only_after_reopening`` as NumPy statements: every account's size and
    opened position copied after every step, the new events read with builders.parts_since,
    each account's closes added with np.bincount (what Monitor did before its compiled pass)."""

    def __init__(self, m):
        self.m, self.found, self.closed = m, [], np.zeros(len(m.vb.rules))
        self.size, self.opened, self.parts = m.tb.size.copy(), m.market.opened.copy(), int(m.events.n[1])

    def room(self, i: int) -> float:
        """What account ``i`` may close in the step just run (BTC)."""
        return abs(self.size[i]) + (self.m.market.opened[i] - self.opened[i])

    def observe(self) -> None:
        m = self.m
        if m.events.n[1] > self.parts:
            idx, size, lens, kinds = parts_since(m.events, self.parts)
            self.parts = int(m.events.n[1])
            forced = np.repeat(np.isin(kinds, [EVENT_KINDS.index(k) for k in invariants.FORCED_KINDS]), lens)
            np.add.at(self.closed, m.tb.venue[idx[forced]], np.abs(size[forced]))
            acc, inv = np.unique(idx, return_inverse=True)
            closed = np.bincount(inv, weights=np.abs(size))
            room = np.abs(self.size[acc]) + (m.market.opened[acc] - self.opened[acc])
            for j in np.flatnonzero(closed > room * (1 + 1e-9) + 1e-12)[:3]:
                self.found.append((m.steps, int(acc[j]), closed[j], room[j], abs(self.size[acc[j]])))
        self.size, self.opened = m.tb.size.copy(), m.market.opened.copy()


def test_reopening_check_flags_what_copying_every_account_every_step_flags(flash):
    """The compiled check (the event log read in place, the step's start kept by one pass)
    flags exactly the accounts, steps and amounts the NumPy statements flag. After each of
    the first twelve steps in which traders opened positions, two of them are logged as liquidated of just
    over and just under what they held at the step's start plus what they opened in it: the
    first must be flagged, the second not (a start taken at another step, or opened
    positions not counted, would flag the second or miss the first)."""
    m = MarketModel(flash, seed=0, traders=400)
    monitor, oracle = invariants.Monitor(m), ReopenOracle(m)
    over, under = [], []
    while m.steps < m.scenario.steps:
        m.step()
        opening = np.flatnonzero(monitor.trader & (m.market.opened > oracle.opened) & (m.tb.size != 0)).tolist()
        if len(over) < 12 and len(opening) >= 2:
            over.append((m.steps, opening[0]))
            under.append((m.steps, opening[1]))
            _liquidate(m, opening[0], oracle.room(opening[0]) * (1 + 1e-6))
            _liquidate(m, opening[1], oracle.room(opening[1]) * (1 - 1e-6))
        monitor.observe()
        oracle.observe()
    got = [(int(re.search(r"in step (\d+) ", v.detail)[1]), int(re.search(r"account (\d+) ", v.detail)[1]), v.value,
            v.limit, float(re.search(r"holding (\S+) ", v.detail)[1])) for v in monitor.reopen]
    assert [g[:4] for g in got] == [f[:4] for f in oracle.found]  # bit for bit
    assert all(f"{f[4]:.6g}" == f"{g[4]:.6g}" for f, g in zip(oracle.found, got))
    flagged = {(f[0], f[1]) for f in oracle.found}
    assert len(over) >= 5 and set(over) <= flagged and not set(under) & flagged
    assert np.array_equal(monitor.closed, oracle.closed)


def test_groups_that_do_not_add_up_are_reported(flash):
    m = MarketModel(flash, seed=0, traders=400)
    start = metrics.snapshot(m)
    monitor = invariants.Monitor(m)
    m.run(lambda done, total: monitor.observe())
    values = metrics.compute(m, start)
    definitions = metrics.definitions(m.scenario)
    assert monitor.finish(values, definitions).empty
    venue = f"liquidated_usd.venue.{flash.venues[0].name}"
    values[venue] += 1e6
    found = only(monitor.finish(values, definitions), "groups_add_up")
    assert list(found["detail"].str.split(" ").str[0]) == ["liquidated_usd.venue.*"]
    assert found.iloc[0]["value"] - found.iloc[0]["limit"] == pytest.approx(1e6)


@pytest.mark.parametrize("what, unit", [("cash", "USD"), ("size", "BTC")])
def test_money_or_positions_not_conserved_are_reported(flash, what, unit):
    def tamper(m):
        if m.steps == 70:
            getattr(m.tb, what)[m.rows["retail"][0]] += 1000.0 if what == "cash" else 1.0

    found = only(checked(flash, tamper), "money_conserved")
    assert list(found["unit"]) == [unit] and "from step 71 " in found.iloc[0]["detail"]


def no_events(n: int) -> tuple:
    """An empty event log (closed_out's arguments): its buffers, then the bundled arguments
    before the accounts' arrays (see ledger_pass)."""
    log = EventLog()
    return (log.ints, log.floats, log.starts), (log.n, np.zeros(1, np.int64), np.ones(len(EVENT_KINDS), bool),
                                                np.zeros(11), np.zeros(n), np.array([1.0, 0.0]))


def test_the_checks_position_sums_differ_from_numpys_far_below_the_tolerance():
    """kernels_passes.ledger_pass adds the sizes (per venue, and absolute) and hedges in its
    own order, not np.bincount's or np.sum's: they differ by under 2.3e-16 x accounts x the
    sum of absolute values (the order's rounding bound), which stays under the check's
    tolerance (1e-9 of that sum) up to 4 million accounts, so no drift flags at another step
    unless within that sliver of the tolerance. The venues' money it sums as np.sum does, bit
    for bit, and its largest drift is np.max's (NaN if any drift is)."""
    from policylab.engine import kernels, kernels_passes

    rng = np.random.default_rng(3)
    tiers = (np.zeros((1, 1)), np.zeros((1, 1)), np.ones((1, 1)), np.ones(1), np.zeros(1, bool), np.zeros(1),
             np.full(1, -1), 2.0)  # margin_check's arguments but the step (tests/test_kernels_passes.py)
    for n, k in [(7, 2), (20_023, 11), (300_001, 5), (20_023, 150)]:
        size, hedge = (rng.standard_cauchy(n) * rng.choice([1e-8, 1.0, 1e4], n) for _ in range(2))
        venue = rng.integers(0, k, n).astype(np.int16)
        opened = rng.normal(size=n)
        size_copy, opened_copy = np.empty(n), np.empty(n)
        net0 = rng.normal(size=k) * 1e3
        spot = int(rng.integers(k))
        money = [rng.normal(size=k) * 10.0 ** rng.integers(0, 9, k) for _ in range(3)]
        dnet, sums, found = np.empty(k), np.empty(6), np.empty((4, 3))
        log, events = no_events(n)
        assert kernels_passes.ledger_pass(*log, 0, kernels.bundle((
            *events, found, size, hedge, venue, opened, size_copy, opened_copy, net0, spot, *money, *tiers, dnet,
            sums))) == 0
        net = np.bincount(venue, weights=size, minlength=k)
        net[spot] += hedge.sum()
        bound = 2.3e-16 * n * (np.bincount(venue, weights=np.abs(size), minlength=k) + np.abs(hedge).sum())
        assert np.all(np.abs(dnet - (net - net0)) <= bound)
        assert sums[2] == np.abs(dnet).max()
        expect = [np.abs(size).sum(), np.abs(hedge).sum()]
        assert all(abs(s - e) <= 2.3e-16 * n * e for s, e in zip(sums[:2], expect))
        assert list(sums[3:]) == [m.sum() for m in money]  # bit for bit
        assert np.array_equal(size_copy, size) and np.array_equal(opened_copy, opened)
    net0[-1] = np.nan
    log, events = no_events(n)
    kernels_passes.ledger_pass(*log, 0, kernels.bundle((*events, found, size, hedge, venue, opened, size_copy,
                                                        opened_copy, net0, 0, *money, *tiers, dnet, sums)))
    assert np.isnan(sums[2])
    # the bound stays under the check's 1e-9 relative tolerance up to 4 million accounts (2.3e-16 x 4e6)


# ------------------------------------------------------------------ where violations are reported
BREAKS_MARGIN = '''
from policylab.policies.api import Policy


class Breaks(Policy):
    """Writes the venue book itself: maintenance twice the initial margin on every venue."""

    name, title, source = "breaks_margin", "Breaks the margin invariant", "a test"

    def on_step(self, model):
        model.vb.margin_mult[:] = 2.0 / 0.5
        model.effects.credit(self)
'''


def test_flagged_runs_are_reported_in_runs_summary_and_the_cli(flash_path, tmp_path):
    (tmp_path / "breaks.py").write_text(BREAKS_MARGIN)
    (tmp_path / "breaks.yaml").write_text("name: breaks\ntitle: Breaks\nmodules:\n  - module: breaks.py:Breaks\n")
    rules = str(tmp_path / "breaks.yaml")
    result = compare([rules], str(flash_path), seeds=2, traders=400, workers=1, allow_local_modules=True)
    runs = result.runs.drop_duplicates(["rule_set", "seed"]).set_index("rule_set")
    assert runs["invariant_violations"].dtype == "int64" and runs["invariant_detail"].dtype == "str"
    assert list(runs.loc["status-quo-2025", "invariant_violations"]) == [0, 0]
    assert list(runs.loc["status-quo-2025", "invariant_detail"]) == ["", ""]
    assert list(runs.loc["breaks", "invariant_violations"]) == [1, 1]
    assert all(d.startswith("maintenance_below_initial: maintenance 2x") for d in runs.loc["breaks", "invariant_detail"])
    flagged = result.summary.drop_duplicates("rule_set").set_index("rule_set")["flagged_runs"]
    assert flagged.to_dict() == {"status-quo-2025": 0, "breaks": 2}
    res = CliRunner().invoke(cli, ["compare", rules, "--scenario", str(flash_path), "--seeds", "1", "--traders", "400",
                                   "--workers", "1", "--no-brief", "--out", str(tmp_path / "out"),
                                   "--allow-local-modules"])
    assert res.exit_code == 0, res.output
    warning = [line for line in res.stderr.splitlines() if line.startswith("warning: flagged arms")]
    assert warning == ["warning: flagged arms (failed runs or invariant violations; see runs.parquet "
                       "invariant_detail): breaks (1 runs)"]
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary.drop_duplicates("rule_set").set_index("rule_set")["flagged_runs"].to_dict() == \
        {"status-quo-2025": 0, "breaks": 1}


def test_a_single_run_writes_its_violations_table(flash_path, tmp_path):
    result = run(load_scenario(str(flash_path)), seed=0, traders=400)
    paths = result.write(tmp_path)
    assert {p.name for p in paths} >= {"violations.parquet", "violations.csv"}
    table = pd.read_parquet(tmp_path / "violations.parquet")
    assert list(table.columns) == list(invariants.COLUMNS) and table.empty


# ------------------------------------------------------------------ dynamic margin (issue 13 item 4)
@pytest.mark.parametrize("seed", range(5))
def test_dynamic_margin_keeps_maintenance_below_initial_and_liquidates_no_more_than_a_venue_holds(seed):
    """October 2025: no violation; the US regulated venue (maintenance ratio 0.9) liquidates
    less than its open interest at the start (it once liquidated $44-64B of $20B)."""
    sc = load_scenario("october-2025")
    result = run(sc, seed=seed, traders=TRADERS, rules=[load_rules("dynamic-margin-proposal")])
    assert result.violations.empty, result.violations.to_dict("records")
    row = result.metrics.iloc[0]
    start = result.timeseries[(result.timeseries["step"] == 0) & (result.timeseries["venue"] == "cme")]
    assert row["liquidated_usd.venue.cme"] <= start["open_interest_usd"].iloc[0]
    assert row["liquidated_usd"] > 0  # the crash still liquidates elsewhere


@pytest.mark.parametrize("seed", range(5))
def test_dynamic_margin_adds_no_liquidation_in_the_first_hour_of_a_calm_day(seed):
    """No start-up burst: nothing changes before a full window is observed, so the first
    hour's events are the status quo's, event for event (common random numbers)."""
    sc = load_scenario("calm")
    rule = run(sc, seed=seed, traders=TRADERS, rules=[load_rules("dynamic-margin-proposal")])
    base = run(sc, seed=seed, traders=TRADERS, rules=[load_rules("status-quo-2025")])
    assert rule.violations.empty, rule.violations.to_dict("records")
    first = [r.events[r.events["minute"] <= 60].reset_index(drop=True) for r in (rule, base)]
    pd.testing.assert_frame_equal(*first)


def test_policylab_run_warns_of_violations(flash_path, tmp_path):
    (tmp_path / "breaks.py").write_text(BREAKS_MARGIN)
    (tmp_path / "breaks.yaml").write_text("name: breaks\ntitle: Breaks\nmodules:\n  - module: breaks.py:Breaks\n")
    args = ["run", "--scenario", str(flash_path), "--traders", "400", "--allow-local-modules"]
    res = CliRunner().invoke(cli, args + ["--rules", str(tmp_path / "breaks.yaml"), "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "warning: invariants violated (violations.csv): maintenance_below_initial: maintenance 2x" in res.stderr
    res = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "b")])
    assert res.exit_code == 0 and "invariants violated" not in res.stderr

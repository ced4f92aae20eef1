"""The compiled cascade round (policylab.engine.kernels_cascade) against the NumPy code it
replaced: sums in NumPy's order, the event buffers, and every round of a crash run checked
against the engine's Python path on the same state, bit for bit."""

import dataclasses

import numpy as np
import pytest

from policylab.engine.book import TraderBook
from policylab.engine.liquidation import EventLog
from policylab.inputs.scenario import load_scenario
from policylab.model import MarketModel
from policylab.names import EVENT_KINDS


def test_event_log_grows_and_gives_its_parts():
    tb = TraderBook(6)
    tb.venue[:] = [0, 1, 2, 0, 1, 2]
    tb.cls[:] = [1, 1, 2, 2, 3, 3]
    tb.juris[:] = [0, 1, 2, 3, 4, 5]
    tb.weight[:] = np.arange(6) + 1.5
    tb.lev_chosen[:] = np.arange(6) * 10.0
    log = EventLog(capacity=2)
    assert all(len(v) == 0 for v in log.arrays().values()) and all(len(x) == 0 for x in log.parts_since(0))
    log.add(3, 0, "liquidation", tb, np.array([4, 1]), np.array([0.5, -2.0]), np.array([100.0, 101.0]),
            np.array([7.0, 0.0]))
    log.add(3, 1, "stop", tb, np.array([], dtype=np.int64), np.zeros(0), 1.0)  # nothing: no part
    log.add(5, 2, "adl_counterparty", tb, np.array([0, 2, 5]), np.array([1.0, 2.0, 3.0]), 99.0)
    ev = log.arrays()
    np.testing.assert_array_equal(ev["step"], [3, 3, 5, 5, 5])
    np.testing.assert_array_equal(ev["round"], [0, 0, 2, 2, 2])
    np.testing.assert_array_equal(ev["kind"], [0, 0, 4, 4, 4])
    np.testing.assert_array_equal(ev["account"], [4, 1, 0, 2, 5])
    np.testing.assert_array_equal(ev["venue"], [1, 1, 0, 2, 2])
    np.testing.assert_array_equal(ev["price"], [100.0, 101.0, 99.0, 99.0, 99.0])
    np.testing.assert_array_equal(ev["deficit"], [7.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(ev["weight"], [5.5, 2.5, 1.5, 3.5, 6.5])
    np.testing.assert_array_equal(ev["lev_chosen"], [40.0, 10.0, 0.0, 20.0, 50.0])
    assert (ev["venue"].dtype, ev["cls"].dtype, ev["juris"].dtype, ev["account"].dtype) == \
        (tb.venue.dtype, tb.cls.dtype, tb.juris.dtype, np.int64)
    idx, size, lengths, kinds = log.parts_since(0)  # two parts: the empty add made none
    np.testing.assert_array_equal(idx, [4, 1, 0, 2, 5])
    np.testing.assert_array_equal(size, [0.5, -2.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(lengths, [2, 3])
    np.testing.assert_array_equal(kinds, [EVENT_KINDS.index("liquidation"), EVENT_KINDS.index("adl_counterparty")])
    idx, size, lengths, kinds = log.parts_since(1)
    assert idx.tolist() == [0, 2, 5] and size.tolist() == [1.0, 2.0, 3.0] and lengths.tolist() == [3]
    assert [len(x) for x in log.parts_since(2)] == [0, 0, 0, 0]


def _state(m) -> dict:
    """Every array the cascade can change (copies), by owner and name."""
    owners = {"tb": m.tb, "vb": m.vb, "market": m.market, "engine": m.engine, "events": m.events}
    return {(o, k): v.copy() for o, obj in owners.items() for k, v in vars(obj).items() if isinstance(v, np.ndarray)}


def _restore(m, state: dict) -> None:
    owners = {"tb": m.tb, "vb": m.vb, "market": m.market, "engine": m.engine, "events": m.events}
    for (o, k), v in state.items():
        setattr(owners[o], k, v.copy())


def _assert_same(a: dict, b: dict, where: str) -> None:
    """Equal states; of the growable buffers (their spare room may differ) the used part."""
    assert a.keys() == b.keys()
    n, parts = a["events", "n"]
    used = {("events", "ints"): n, ("events", "floats"): n, ("events", "starts"): parts,
            ("engine", "_changed"): a["engine", "_n_changed"][0]}
    for key in a:
        x, y = a[key], b[key]
        if key in used:
            x, y = x[..., :used[key]], y[..., :used[key]]
        np.testing.assert_array_equal(x, y, err_msg=f"{where}: {key}")


def test_compiled_rounds_equal_the_python_path():
    """Each round of the 10 October crash: the compiled round and the engine's Python path
    (which runs every mechanism in NumPy) from the same state give the same state, events,
    band-set changes and counts."""
    sc = dataclasses.replace(load_scenario("october-2025"), duration_minutes=480)
    m = MarketModel(sc, seed=0, traders=3000)
    engine = m.engine
    compiled = engine.run_round
    seen = {"acted": 0, "backstop": 0, "partial": 0, "stop": 0, "liquidation": 0}

    def both(near, time_s, step, rnd):
        before = _state(m)
        kinds_before = len(m.events.arrays()["kind"])
        out = compiled(near, time_s, step, rnd)
        after = _state(m)
        _restore(m, before)
        expected = engine._run_round_python(near, time_s, step, rnd)
        assert out == expected, (step, rnd)
        _assert_same(after, _state(m), f"step {step} round {rnd}")
        seen["acted"] += out[0] > 0
        for k in m.events.arrays()["kind"][kinds_before:].astype(int):
            if EVENT_KINDS[k] in seen:
                seen[EVENT_KINDS[k]] += 1
        return out

    engine.run_round = both
    m.run()
    assert seen["acted"] > 20 and all(seen[k] > 0 for k in ("backstop", "partial", "stop", "liquidation")), seen


class _ScannedBandSet:
    """The band set as the engine kept it before its members' triggers were sorted (main at
    06ef565): a full scan (``kernels.near``) when first asked, when the band changes or when
    the marks drift more than half the band from the scan's; else the accounts refreshed
    since the last call that are near, added to it."""

    def __init__(self, engine):
        self.engine, self.members, self.band, self.ref = engine, None, None, None

    def __call__(self, band: float, changed: np.ndarray) -> np.ndarray:
        from policylab.engine import kernels

        e, tb = self.engine, self.engine.tb
        mark = e.mkt.marks()
        if self.members is None or band != self.band or kernels.drifted(mark, self.ref, band / 2):
            self.band, self.ref = band, mark.copy()
            self.members = kernels.near(tb.size, tb.venue, tb.liq_price, tb.stop, e.always, self.ref * np.exp(-band),
                                        self.ref * np.exp(band))
        else:
            lo, hi = self.ref * np.exp(-self.band), self.ref * np.exp(self.band)
            new = [i for i in changed if kernels._is_near(i, tb.size, tb.venue, tb.liq_price, tb.stop, e.always, lo, hi)]
            self.members = np.union1d(self.members, np.array(new, dtype=np.int64))
        return self.members


@pytest.mark.parametrize("case", ["october", "leverage-study"])
def test_sorted_triggers_select_what_a_scan_of_the_band_set_selects(case):
    """In every cascade round, the accounts ``LiquidationEngine.near`` hands to the due check
    are ascending, members of the band set the old full scan kept (the same members), and
    the due check over them finds exactly what it finds over that whole band set; the
    band changes halfway, and the members changed since the last sort are exercised."""
    from policylab.engine import kernels

    if case == "october":
        m = MarketModel(load_scenario("october-2025"), seed=1, traders=3000)
    else:  # refills, re-levering professionals, 5-minute steps
        m = MarketModel(dataclasses.replace(load_scenario("leverage-study"), duration_minutes=1440), seed=3,
                        traders=1500)
    e, tb, vb = m.engine, m.tb, m.vb
    oracle, near = _ScannedBandSet(e), e.near
    seen = {"rounds": 0, "due": 0, "changed": 0, "resorted": 0, "band": 0}

    def checked(band):
        if m.steps > m.scenario.steps // 2:
            band *= 0.5
            seen["band"] += 1
        changed = e._changed[:e._n_changed[0]].copy()
        over = int(e._counts[1])
        out = near(band)
        members = oracle(band, changed)
        seen["resorted"] += int(e._counts[1]) < over
        seen["changed"] += int(e._counts[1])
        np.testing.assert_array_equal(np.sort(e._members[:e._counts[0]]), members)
        assert np.all(np.diff(out) > 0) and np.all(np.isin(out, members))
        args = (tb.size, tb.venue, tb.weight, tb.cash, tb.coin, tb.liq_price, tb.stop, tb.mm_floor, e.always,
                e.protocol, m.market.marks(), vb.coin_value, vb.margin_mult, vb.tier_floor, vb.tier_rate, vb.tier_ded,
                1e-9)
        expected = kernels.due(members, *args)
        np.testing.assert_array_equal(kernels.due(out, *args), expected)
        seen["rounds"] += 1
        seen["due"] += len(expected)
        return out

    e.near = checked
    m.run()
    assert seen["rounds"] > 500 and seen["due"] > 400 and seen["band"] > 0, seen
    assert seen["changed"] > 0 and seen["resorted"] > 0, seen

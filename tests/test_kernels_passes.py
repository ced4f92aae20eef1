"""The compiled per-step passes over every account (policylab/engine/kernels_passes.py) give
bit for bit what the NumPy statements they replace gave; the recorded open interest, whose
long positions are kept as sizes change (kernels.hold), within a few units in the last place.
The market makers' lay-off: tests/test_kernels_layoff.py."""

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest

from builders import parts_since
from policylab.engine import kernels, kernels_passes
from policylab.engine.liquidation import EventLog
from policylab.model import MarketModel
from policylab.names import EVENT_KINDS


SCRATCH = kernels.pairwise_scratch()  # shared by every call below: pairwise_sum_with leaves nothing behind


@pytest.mark.parametrize("n", [*range(0, 300), 1000, 1024, 1031, 8192, 8200, 20023, 100_003])
def test_pairwise_sum_is_numpys_sum(n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n + 5) * 10.0 ** rng.integers(-6, 12, n + 5)
    for lo in (0, 5):
        assert kernels.pairwise_sum(a, lo, n) == np.sum(a[lo:lo + n])
        assert kernels.pairwise_sum_with(a, lo, n, SCRATCH) == np.sum(a[lo:lo + n])


def test_pairwise_sum_is_not_a_sequential_sum():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, 1000) * rng.lognormal(0.0, 5.0, 1000)  # magnitudes far apart: order shows
    assert any(kernels.pairwise_sum(a, 0, n) != sum(a[:n].tolist()) for n in range(8, 1000))


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_copy_into_is_a_slice_assignment(dtype):
    src = np.array([5, -3, 7, 0, 2], dtype=dtype)
    for lo in (0, 4, 15):
        dst, expected = np.arange(20, dtype=dtype), np.arange(20, dtype=dtype)
        expected[lo:lo + 5] = src
        kernels.copy_into(dst, lo, src)
        np.testing.assert_array_equal(dst, expected)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 2000, 50_000])
@pytest.mark.parametrize("span", [1, 3, 2048, 2049, 900_000, 2**40])
def test_radix_sorted_and_unique_sorted_are_numpys(n, span):
    rng = np.random.default_rng(n + span)
    a = rng.integers(-(span // 3), span, n)  # negative values and ranges of one to four digits
    before = a.copy()
    np.testing.assert_array_equal(kernels.radix_sorted(a), np.sort(a))
    np.testing.assert_array_equal(kernels.unique_sorted(a), np.unique(a))
    np.testing.assert_array_equal(a, before)  # the input is left as it was


def _assert_sum(got, exact, rel=1e-13):
    """``got`` is a sum of positive numbers whose exact value is about ``exact`` (a sum in
    another order): within ``rel`` of it, and 0 exactly where it is."""
    assert np.array_equal(got == 0, exact == 0)
    assert np.all(np.abs(got - exact) <= rel * exact)


def test_recording_is_the_numpy_statements(short_scenario):
    from policylab.model import RESIDENT_COLUMNS, VENUE_COLUMNS
    from policylab.names import JURISDICTIONS

    m = MarketModel(copy.deepcopy(short_scenario), seed=2)
    for _ in range(40):  # through the crash
        m.step()
        t = m.steps - 1
        tb, vb, mkt = m.tb, m.vb, m.market
        price = mkt.prices()
        long = np.maximum(tb.size, 0.0)
        population = mkt.resident >= 0
        by_juris = np.zeros((len(JURISDICTIONS), len(price)))
        np.add.at(by_juris, (mkt.resident[population], tb.venue[population]), long[population])
        expect = {"price": price, "depth_usd": vb.depth(),
                  "open_interest_usd": np.bincount(tb.venue, weights=long, minlength=len(price)) * price,
                  "volume_usd": mkt.volume, "fund_usd": vb.fund, "mm_health": vb.health,
                  "coin_price": vb.coin_price, "forced_volume_usd": mkt.forced_volume}
        assert set(expect) == set(VENUE_COLUMNS)
        for c in VENUE_COLUMNS:
            if c == "open_interest_usd":  # summed as the sizes changed, not in row order (kernels.hold)
                _assert_sum(m.venue_series[c][t], expect[c])
            else:
                assert np.array_equal(m.venue_series[c][t], expect[c]), (t, c)
        assert set(RESIDENT_COLUMNS) == {"open_interest_usd", "volume_usd"}
        _assert_sum(m.resident_series["open_interest_usd"][t], by_juris * price)
        assert np.array_equal(m.resident_series["volume_usd"][t], mkt.resident_volume), t
        assert np.array_equal(m.open_interest_by_residence()[0], expect["open_interest_usd"])
    assert np.all(np.isnan(m.venue_series["price"][m.steps:]))  # steps not run yet stay unrecorded
    assert m.resident_series["volume_usd"][:m.steps].sum() > 0 and np.any(m.venue_series["forced_volume_usd"] > 0)


def _tally(size, venue, resident, k, jurisdictions):
    """``Market.tally`` for these accounts, its long positions counted from flat."""
    n = size.shape[0]
    tally = (np.zeros(n), venue, resident, np.zeros((3, jurisdictions + 1, k)), np.zeros(n, dtype=np.bool_),
             np.zeros(n + 1, dtype=np.int64))
    kernels.hold(np.arange(size.shape[0]), np.zeros(size.shape[0]), size, tally)
    return tally


def test_held_long_positions_are_the_exact_sums_and_leave_no_residue():
    rng = np.random.default_rng(5)
    n, k, jurisdictions = 400, 3, 2
    venue = rng.integers(0, k, n).astype(np.int16)
    resident = rng.integers(-1, jurisdictions, n).astype(np.int8)  # -1: a venue's own row
    size = rng.standard_normal(n) * 10.0 ** rng.integers(-4, 4, n)  # magnitudes far apart: rounding shows
    size[rng.random(n) < 0.3] = 0.0
    tally = _tally(size, venue, resident, k, jurisdictions)
    longs = tally[3]
    naive = longs[0, jurisdictions].copy()  # the same changes in a plain running sum
    residues = 0
    for step in range(300):
        if step % 50 == 49:  # every account of venue 0 closes
            idx = np.flatnonzero(venue == 0)
            after = np.zeros(len(idx))
        else:  # some close, flip or change size
            idx = np.unique(rng.integers(0, n, 40))
            u = rng.random(len(idx))
            after = np.where(u < 0.3, 0.0, np.where(u < 0.6, -size[idx], size[idx] * rng.lognormal(0, 2, len(idx))))
            after[size[idx] == 0] = rng.standard_normal((size[idx] == 0).sum())  # the flat ones open
        before = size[idx].copy()
        size[idx] = after
        kernels.hold(idx, before, size, tally)
        np.add.at(naive, venue[idx], np.maximum(size[idx], 0.0) - np.maximum(before, 0.0))
        residues += step % 50 == 49 and naive[0] != 0.0
        for r in range(jurisdictions + 1):
            for v in range(k):
                rows = (venue == v) & (size > 0) & ((resident == r) if r < jurisdictions else True)
                exact = math.fsum(size[rows])
                held = longs[0, r, v] + longs[1, r, v]
                assert longs[2, r, v] == rows.sum()
                if rows.any():
                    assert abs(held - exact) <= 2.3e-16 * exact, (step, r, v)
                else:
                    assert held == 0.0 and longs[0, r, v] == 0.0 and longs[1, r, v] == 0.0, (step, r, v)
    assert residues > 0  # a plain running sum would have left some


def test_held_long_positions_follow_every_size_change(short_scenario):
    from policylab.names import JURISDICTIONS

    m = MarketModel(copy.deepcopy(short_scenario), seed=1)
    J = len(JURISDICTIONS)
    for _ in range(m.scenario.steps):
        m.step()
        tb, longs = m.tb, m.market.longs
        total, by_juris = kernels_passes.long_positions(tb.size, tb.venue, m.market.resident, len(m.vb.rules), J)
        _assert_sum(longs[0, J] + longs[1, J], total, 1e-14)
        _assert_sum(longs[0, :J] + longs[1, :J], by_juris, 1e-14)
        count = np.zeros((J + 1, len(m.vb.rules)))
        long = tb.size > 0
        np.add.at(count[J], tb.venue[long], 1)
        population = long & (m.market.resident >= 0)
        np.add.at(count, (m.market.resident[population], tb.venue[population]), 1)
        assert np.array_equal(longs[2], count)
    assert set(np.unique(m.events.arrays()["kind"])) == set(range(len(EVENT_KINDS)))  # every kind of forced close


def test_invariants_pass_is_the_ledgers_drift(short_scenario):
    from policylab.experiments import invariants

    m = MarketModel(copy.deepcopy(short_scenario), seed=4)
    monitor = invariants.Monitor(m)
    rng = np.random.default_rng(0)
    for _ in range(50):
        m.step()
        m.tb.cash[rng.integers(m.tb.n)] += rng.standard_normal()  # a drift to measure
        m.tb.size[rng.integers(m.tb.n)] += 1e-3 * rng.standard_normal()
        dm, tol, dnet, ptol, worst = monitor._pass(m.steps)
        expect = monitor.ledger.drift()
        assert worst == np.abs(dnet).max()
        assert (dm, tol) == (expect[0], expect[1]) and dm != 0.0
        # positions summed in their own order (kernels_passes.ledger_pass): within its rounding bound
        bound = 2.3e-16 * m.tb.n * (np.abs(m.tb.size).sum() + np.abs(m.tb.hedge).sum())
        assert np.all(np.abs(dnet - expect[2]) <= bound) and abs(ptol - expect[3]) <= 1e-9 * bound
        assert np.array_equal(monitor.size, m.tb.size) and np.array_equal(monitor.opened, m.market.opened)


def test_margin_check_is_the_numpy_statements():
    rng = np.random.default_rng(5)
    k, tiers = 7, 4
    margin, step_seen = np.zeros(k), np.full(k, -1)
    expect_margin, expect_step = margin.copy(), step_seen.copy()
    is_spot = np.arange(k) == 6
    for step in range(40):
        floor = np.where(rng.random((k, tiers)) < 0.3, np.inf, rng.random((k, tiers)))
        rate, lev = rng.random((k, tiers)) * 0.05, rng.choice([5.0, 20.0, 50.0], (k, tiers))
        rate[rng.random((k, tiers)) < 0.03] = np.nan
        mult = rng.choice([1.0, 1.5, 3.0], k)
        kernels_passes.margin_check(floor, rate, lev, mult, is_spot, margin, step_seen, step, 1.0 + 1e-9)
        worst = np.where(np.isfinite(floor), rate * lev, 0.0).max(axis=1) * mult
        worst[is_spot] = 0.0
        expect_step[(worst > 1.0 + 1e-9) & (expect_step < 0)] = step
        expect_margin = np.maximum(expect_margin, worst)
        assert np.array_equal(margin, expect_margin, equal_nan=True) and np.array_equal(step_seen, expect_step)
    assert np.any(np.isnan(margin)) and np.any(step_seen > 0) and np.any(step_seen < 0)


def test_refill_is_the_numpy_statements():
    rng = np.random.default_rng(6)
    n = 5000
    rows = np.sort(rng.choice(2 * n, n, replace=False))
    size = np.where(rng.random(2 * n) < 0.5, 0.0, rng.standard_normal(2 * n))
    quit = rng.random(2 * n) < 0.1
    cash, deposit = rng.random(2 * n) * 100.0, rng.random(2 * n) * 1000.0
    stake = np.where(rng.random(n) < 0.1, 0.0, rng.random(n) * 1000.0)
    u, p = rng.random(n), 0.3
    expect_cash, expect_deposit = cash.copy(), deposit.copy()
    wiped = (size[rows] == 0) & (stake > 0) & ~quit[rows] & (cash[rows] < 0.1 * stake) & (u < p)
    expect_cash[rows[wiped]] += stake[wiped]
    expect_deposit[rows[wiped]] += stake[wiped]
    assert kernels_passes.refill(rows, u, p, size, stake, quit, cash, deposit, 0.1) == wiped.sum() > 0
    assert np.array_equal(cash, expect_cash) and np.array_equal(deposit, expect_deposit)


def test_closed_out_is_the_numpy_statements():
    """closed_out reads the event log's new parts itself (as builders.parts_since returns them)."""
    rng = np.random.default_rng(7)
    n, k = 300, 5
    venue = rng.integers(0, k, n).astype(np.int16)
    size_start, opened_start = rng.standard_normal(n), rng.random(n)
    opened = opened_start + np.where(rng.random(n) < 0.5, 0.0, rng.random(n))
    forced_kind = np.array([kind != "stop" for kind in EVENT_KINDS])
    log = EventLog(capacity=8)  # grows as parts are added
    tb = SimpleNamespace(venue=venue, cls=np.zeros(n, np.int8), juris=np.zeros(n, np.int8), weight=np.ones(n),
                         lev_chosen=np.ones(n))
    log.add(0, 0, "liquidation", tb, [1, 2], [0.5, 0.5], 1.0)  # an earlier step's part, already checked
    parts = log.n[1:].copy()
    for p in range(6):
        m = int(rng.integers(1, 40))
        log.add(1, p, EVENT_KINDS[rng.integers(len(EVENT_KINDS))], tb, rng.integers(0, n, m),
                rng.standard_normal(m) * 0.8, 1.0)
    closed_venue, expect_venue = np.zeros(k), np.zeros(k)
    scratch = np.zeros(n)
    got = kernels_passes.closed_out(log.ints, log.floats, log.starts, log.n, parts, forced_kind, venue, closed_venue,
                                    size_start, opened, opened_start, scratch, np.array([1 + 1e-9, 1e-12]), 3)
    idx, size, lens, kinds = parts_since(log, 1)
    assert parts[0] == log.n[1] == 7 and len(set(kinds)) > 1
    forced = np.repeat(forced_kind[kinds], lens)
    np.add.at(expect_venue, venue[idx[forced]], np.abs(size)[forced])
    acc, inv = np.unique(idx, return_inverse=True)
    closed = np.bincount(inv, weights=np.abs(size))
    room = np.abs(size_start[acc]) + (opened[acc] - opened_start[acc])
    over = np.flatnonzero(closed > room * (1 + 1e-9) + 1e-12)[:3]
    assert len(over) == 3 and np.array_equal(closed_venue, expect_venue) and not scratch.any()
    for a, b in zip(got, (acc[over], closed[over], room[over], np.abs(size_start[acc[over]]))):
        assert np.array_equal(a, b)
    again = kernels_passes.closed_out(log.ints, log.floats, log.starts, log.n, parts, forced_kind, venue,
                                      closed_venue, size_start, opened, opened_start, scratch,
                                      np.array([1 + 1e-9, 1e-12]), 3)
    assert all(len(a) == 0 for a in again) and np.array_equal(closed_venue, expect_venue)  # nothing new


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 8, 11, 12, 13, 20_023, 20_024, 20_027])
def test_ledger_pass_sums_in_its_documented_order(n):
    """The invariants pass adds the net positions in 8 interleaved per-venue sums (row i into
    sum i % 8) and |size|, |hedge| and hedge in 4 (row i into sum i % 4, the rows past the
    last multiple of 4 into the first), each in row order, combined as a tree: bit for bit
    (the order the check has always used, so a drift it reports is the same number)."""
    rng = np.random.default_rng(n)
    k, spot = 11, 4
    size, hedge = (rng.standard_normal(n) * (rng.random(n) < 0.9) for _ in range(2))  # sums that an order changes
    venue = rng.integers(0, k, n).astype(np.int16)
    opened, net0 = rng.random(n), rng.normal(size=k)
    size_copy, opened_copy, dnet, sums = np.empty(n), np.empty(n), np.empty(k), np.empty(6)
    log = EventLog()
    kernels_passes.ledger_pass(log.ints, log.floats, log.starts, 0, kernels.bundle((
        log.n, np.zeros(1, np.int64), np.ones(len(EVENT_KINDS), bool), np.zeros(k), np.zeros(n), np.array([1.0, 0.0]),
        np.empty((4, 3)), size, hedge, venue, opened, size_copy, opened_copy, net0, spot, np.zeros(k), np.zeros(k),
        np.zeros(k), np.zeros((k, 1)), np.zeros((k, 1)), np.ones((k, 1)), np.ones(k), np.zeros(k, bool), np.zeros(k),
        np.full(k, -1), 2.0, dnet, sums)))

    def in_order(x):  # a running sum from 0.0, row by row
        return float(np.cumsum(np.concatenate([[0.0], x]))[-1])

    def quarters(x):
        end4 = n - n % 4
        parts = [in_order(np.concatenate([x[lane:end4:4], x[end4:] if lane == 0 else []])) for lane in range(4)]
        return (parts[0] + parts[1]) + (parts[2] + parts[3])

    lanes = [np.bincount(venue[lane::8], weights=size[lane::8], minlength=k) for lane in range(8)]
    net = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    net[spot] += quarters(hedge)
    expect = net - net0
    assert np.array_equal(dnet.view(np.int64), expect.view(np.int64))
    assert sums[0] == quarters(np.abs(size)) and sums[1] == quarters(np.abs(hedge))
    assert sums[2] == np.abs(expect).max()
    assert np.array_equal(size_copy, size) and np.array_equal(opened_copy, opened)
    if n > 20_000:  # another order gives other bits
        assert sums[0] != in_order(np.abs(size)) and sums[1] != np.abs(hedge).sum()

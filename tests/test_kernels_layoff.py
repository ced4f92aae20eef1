"""The market makers' lay-off (policylab/engine/kernels_layoff.py, venue_agents.TakerPositions):
the candidates the sorted positions and the change log give are the full scan's at every
step of real runs; every size change is logged; the draw by count picks uniform subsets;
the compiled lay-off does what the NumPy statements over every row do with the same draws."""

import copy
import itertools

import numpy as np
import pytest

from policylab.engine import kernels, kernels_layoff
from policylab.inputs.scenario import load_scenario
from policylab.model import MarketModel

ROOM_REL = 1e-12  # room: the scan's sum of |size| in row order, here prefix sums less stale entries


def _scan(mm, price):
    """The full scan the sorted positions replace: per venue the takers holding a position
    in profit at ``price`` on the other side of the book's inventory (rows ascending), and
    the BTC they hold (summed in row order)."""
    tb, vb = mm.model.tb, mm.model.vb
    inv = np.where(mm.limited, tb.size[vb.mm_row], 0.0)
    v, s = tb.venue, tb.size
    cand = np.flatnonzero(mm.takers & (s * inv[v] < 0) & (s * (price[v] - tb.entry) > 0))
    return cand, np.bincount(v[cand], np.abs(s[cand]), minlength=len(inv))


def _candidates(pos, price, keep):
    """``kernels_layoff.candidates`` over the sorted positions ``pos`` as they are (the
    lay-off merges the log first when due: a test calling this does not count as a lay-off)."""
    return kernels_layoff.candidates(pos.rows, pos.key, pos.mag, pos.inc, pos.seg_lo, price, keep,
                                     pos._candidate_args)


def _at_ranks(ranks, off, rows, where):
    """``kernels_layoff.at_ranks`` into a new array."""
    out = np.full(len(ranks), -1, dtype=np.int64)
    kernels_layoff.at_ranks(ranks, off, rows, where, out)
    return out


def _highs(count, chosen):
    """``kernels_layoff.highs`` into a new array (with room for one more, which stays untouched)."""
    out = np.full(int(np.sum(chosen)) + 1, -1, dtype=np.int64)
    assert kernels_layoff.highs(count, chosen, out) == len(out) - 1 and out[-1] == -1
    return out[:-1]


def _subsets(count, chosen, t):
    """``kernels_layoff.subsets`` into new arrays: (ranks, off); its marks are all False after."""
    ranks = np.full(len(t), -1, dtype=np.int64)
    off = np.full(len(count) + 1, -1, dtype=np.int64)
    picked = np.zeros(int(np.max(count, initial=0)), dtype=np.bool_)
    kernels_layoff.subsets(count, chosen, t, ranks, off, picked)
    assert not picked.any()
    return ranks, off


def _check_against_scan(mm, keep=0.01):
    """The sorted positions' candidates (every rank of every venue) are the scan's, each once;
    the counts exact, the room within ``ROOM_REL``. Returns how many candidates."""
    m = mm.model
    price = m.market.prices()
    pos = mm.positions
    total = _candidates(pos, price, keep)
    count, room, share = pos.count, pos.room, pos.share
    cand, ref_room = _scan(mm, price)
    ranks = np.concatenate([np.arange(c) for c in count])
    rows = _at_ranks(ranks, np.concatenate([[0], np.cumsum(count)]), pos.rows, pos.where)
    assert np.array_equal(np.sort(rows), cand) and total == len(cand), m.steps
    assert np.array_equal(count, np.bincount(m.tb.venue[cand], minlength=len(count))), m.steps
    assert np.all(np.abs(room - ref_room) <= ROOM_REL * ref_room), m.steps
    assert np.all((share > 0) == (count > 0)) and np.all(share <= 1.0)
    return len(cand)


@pytest.mark.parametrize("merge_every_step", [False, True])
def test_candidates_are_the_full_scans_at_every_step_of_a_run(short_scenario, merge_every_step):
    m = MarketModel(copy.deepcopy(short_scenario), seed=2)
    mm = m.market_makers
    lay_off = mm.lay_off
    seen = []

    def checked(price):
        assert np.array_equal(price, m.market.prices())  # the step's prices, from its one exp of the basis
        if merge_every_step and m.steps > 1:
            mm.positions.merge()
        seen.append(_check_against_scan(mm))
        lay_off(price)

    mm.lay_off = checked
    m.run()
    assert len(seen) == m.scenario.steps and sum(seen) > 0
    assert np.count_nonzero(seen) > m.scenario.steps // 2  # the books held inventory most of the run


def test_candidates_are_the_full_scans_at_every_step_of_october():
    """The calibrated October day at 5,000 traders (its crash, recovery and refills), with the
    merges as the structure schedules them."""
    m = MarketModel(load_scenario("october-2025"), seed=1, traders=5000)
    mm = m.market_makers
    lay_off = mm.lay_off
    merges = []
    merge = mm.positions.merge
    mm.positions.merge = lambda: (merges.append(m.steps), merge())[1]
    seen = []

    def checked(price):
        seen.append(_check_against_scan(mm))
        lay_off(price)

    mm.lay_off = checked
    for _ in range(600):
        m.step()
    assert min(seen[1:]) > 0 and len(merges) > 5  # the log was merged in several times, and checked in between


def test_every_size_change_is_logged(short_scenario):
    m = MarketModel(copy.deepcopy(short_scenario), seed=4)
    tb, mkt = m.tb, m.market
    steps_with_changes = 0
    for _ in range(40):
        m.step()
        m.market_makers.positions.merge()
        size, entry = tb.size.copy(), tb.entry.copy()
        assert mkt.changes[0] == 0 and not mkt.changed.any()
        m.step()
        moved = np.flatnonzero((tb.size != size) | (tb.entry != entry))
        logged = mkt.changes[1:mkt.changes[0] + 1]
        assert np.all(mkt.changed[moved]), m.steps
        assert np.array_equal(np.sort(logged), np.flatnonzero(mkt.changed))  # each flagged row once
        steps_with_changes += len(moved) > 0
    assert steps_with_changes >= 30  # the check ran on steps that changed positions, not on idle ones



def test_merge_sorts_the_fresh_entries_as_lexsort():
    """kernels_layoff.lexical_order, which the merge sorts the fresh entries with: np.lexsort
    by segment, key and row, with many ties of key (positions opened at one fill price)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(0, 400))
        rows = rng.permutation(5000)[:n].astype(np.int64)
        seg = rng.integers(0, 22, n).astype(np.int64)
        key = np.round(rng.normal(1e5, 30, n), 0) * rng.choice([-1.0, 1.0], n)
        assert np.array_equal(kernels_layoff.lexical_order(rows, seg, key, 22), np.lexsort((rows, key, seg)))

def test_subsets_are_uniform_and_distinct():
    rng = np.random.default_rng(0)
    count = np.array([6, 0, 1, 40])
    chosen = np.array([3, 0, 1, 40])
    tally = {}
    for _ in range(20_000):
        t = rng.integers(0, _highs(count, chosen))
        ranks, off = _subsets(count, chosen, t)
        assert np.array_equal(off, [0, 3, 3, 4, 44])
        assert np.array_equal(ranks[4:], np.arange(40)) and ranks[3] == 0
        tally[tuple(ranks[:3])] = tally.get(tuple(ranks[:3]), 0) + 1
    assert sorted(tally) == list(itertools.combinations(range(6), 3))  # ascending, distinct, all 20 subsets
    expect = 20_000 / 20
    chi2 = sum((c - expect) ** 2 / expect for c in tally.values())
    assert chi2 < 43.8  # the chi-square's 99.9% quantile with 19 degrees of freedom


def _floyd(count, chosen, t):
    """Floyd's uniform subsets in plain Python: ``chosen[v]`` of ``count[v]`` per venue."""
    out, b = [], 0
    for c, k in zip(count, chosen):
        picked = set()
        for j in range(c - k, c):
            x = int(t[b + j - (c - k)])
            picked.add(j if x in picked else x)
        b += k
        out.append(sorted(picked))
    return out



def test_subsets_are_floyds_for_small_and_large_subsets():
    """Both ways of finding the ranks picked so far (a scan, marks) give Floyd's subsets."""
    rng = np.random.default_rng(1)
    sizes = []
    for _ in range(200):
        count = rng.integers(0, 120, size=5)
        chosen = rng.integers(0, count + 1)
        t = rng.integers(0, _highs(count, chosen))
        ranks, off = _subsets(count, chosen, t)
        for v, want in enumerate(_floyd(count, chosen, t)):
            assert ranks[off[v]:off[v + 1]].tolist() == want
        sizes.extend(chosen)
    assert any(1 < c <= kernels_layoff.SMALL_SUBSET for c in sizes) and max(sizes) > kernels_layoff.SMALL_SUBSET

def _lay_off_numpy(mm) -> None:
    """The market makers' lay-off as NumPy statements over every row: the scan's candidates,
    drawn by count with the same draws (how many per venue, then Floyd's subsets of the
    candidates as the sorted positions number them), closed through ``Market.transfer``."""
    m = mm.model
    hl = m.scenario.market.mm_layoff_half_life_minutes
    tb, vb = m.tb, m.vb
    price = m.market.prices()
    inv = np.where(mm.limited, tb.size[vb.mm_row], 0.0)
    cand, room = _scan(mm, price)
    if len(cand) == 0:
        return
    v = tb.venue
    count = np.bincount(v[cand], minlength=len(inv))
    want = np.abs(inv) * (1.0 - 0.5 ** (m.scenario.step_minutes / hl))
    share = np.divide(np.minimum(want, room), room, out=np.zeros(len(inv)), where=room > 0)
    # how the lay-off numbers them: the sorted positions' order, after the merge the lay-off
    # makes when due (the draws pick ranks in that order, by design; the scan has no order of its own)
    mm.positions.merge_if_due()
    _candidates(mm.positions, price, 0.0)
    numbered = _at_ranks(np.concatenate([np.arange(c) for c in count]),
                                       np.concatenate([[0], np.cumsum(count)]), mm.positions.rows,
                                       mm.positions.where)
    chosen = mm.stream.binomial(count, share)
    if not chosen.any():
        return
    t = mm.stream.integers(0, np.concatenate([np.arange(c - k + 1, c + 1) for c, k in zip(count, chosen)]))
    off = np.concatenate([[0], np.cumsum(count)])
    cand = np.sort(np.concatenate([numbered[off[u] + np.array(r, dtype=np.int64)]
                                   for u, r in enumerate(_floyd(count, chosen, t))]))
    dq = -tb.size[cand]
    px = price[v[cand]]
    book_dq = -np.bincount(v[cand], dq, minlength=len(inv))
    books = np.flatnonzero(book_dq != 0)
    m.market.transfer(np.concatenate([cand, vb.mm_row[books]]), np.concatenate([dq, book_dq[books]]),
                      np.concatenate([px, price[books]]))
    notional, mkt = np.abs(dq) * px, m.market  # the fills' volume and its attribution, per venue
    for u in np.unique(v[cand]):
        on = v[cand] == u
        mkt.volume[u] += notional[on].sum()
        kernels.attribute(cand[on], notional[on], int(u), False, mkt.resident, mkt.traded, mkt.forced_volume,
                          mkt.resident_volume)
    tb.stop[cand] = np.nan
    m.engine.refresh(cand)


def _with_inventory(short_scenario, half_life):
    """A model whose books hold inventory against traders in profit on several venues."""
    sc = copy.deepcopy(short_scenario)
    sc.market.mm_layoff_half_life_minutes = half_life
    m = MarketModel(sc, seed=3)
    tb, vb = m.tb, m.vb
    price = m.market.prices()
    for v, side in ((0, 1.0), (2, -1.0), (3, 1.0)):
        on = np.flatnonzero(tb.venue == v)
        tb.entry[on] = price[v] * (1.0 - 0.05 * np.sign(tb.size[on]) * side)  # the other side in profit
        tb.size[vb.mm_row[v]] += side * 0.2 * np.abs(tb.size[on]).sum()
    m.market.count_longs()  # sizes and entries set directly: logs every row
    return m


@pytest.mark.parametrize("half_life, full", [(1e-9, False), (5.0, False), (120.0, False), (5.0, True)])
def test_lay_off_kernels_do_what_the_numpy_statements_did(short_scenario, half_life, full):
    """``full``: the changed accounts' buffer has no room left, so the closes wait for it
    (kernels_layoff.close_chosen after the engine made room)."""
    a, b = _with_inventory(short_scenario, half_life), _with_inventory(short_scenario, half_life)
    for _ in range(3):
        if full:
            a.engine._changed = a.engine._changed[:a.engine._n_changed[0]].copy()
        a.market_makers.lay_off(a.market.prices())
        _lay_off_numpy(b.market_makers)
    assert np.any(np.isnan(a.tb.stop) & ~np.isnan(_with_inventory(short_scenario, half_life).tb.stop))  # some closed
    for name in ("size", "entry", "cash", "stop", "liq_price"):
        assert np.array_equal(getattr(a.tb, name), getattr(b.tb, name), equal_nan=True), name
    for name in ("opened", "traded", "volume", "resident_volume"):
        assert np.array_equal(getattr(a.market, name), getattr(b.market, name)), name
    assert a.market_makers.stream.random() == b.market_makers.stream.random()  # the same draws taken


def test_lay_off_without_inventory_draws_nothing(short_scenario):
    m = MarketModel(copy.deepcopy(short_scenario), seed=3)
    m.tb.size[m.vb.mm_row] = 0.0
    state = m.market_makers.stream.bit_generator.state
    before = m.tb.size.copy()
    m.market_makers.lay_off(m.market.prices())
    assert m.market_makers.stream.bit_generator.state == state and np.array_equal(m.tb.size, before)


def test_lay_off_closes_each_candidate_with_the_share():
    """By count, each candidate still closes with the venue's share: over many draws from one
    state, how often each closes is within sampling error of it."""
    rng = np.random.default_rng(7)
    count = np.array([50, 0, 8])
    share = np.array([0.1, 0.0, 0.6])
    hits = [np.zeros(50), np.zeros(1), np.zeros(8)]
    n = 20_000
    for _ in range(n):
        chosen = rng.binomial(count, share)
        ranks, off = _subsets(count, chosen, rng.integers(0, _highs(count, chosen)))
        for v in (0, 2):
            hits[v][ranks[off[v]:off[v + 1]]] += 1
    for v in (0, 2):
        sd = np.sqrt(share[v] * (1 - share[v]) / n)
        assert np.all(np.abs(hits[v] / n - share[v]) < 4.5 * sd), v


def test_lay_off_draws_are_numpys():
    """The compiled lay-off's draws from the market makers' Generator are the NumPy calls'
    they replaced (``rng.binomial(count, share)``, then ``rng.integers(0, bounds)``), value
    for value, and leave the stream where they did: by inversion and by BTPE (count x share
    over 30), with zero counts and shares and bounds of 1 (no draw)."""
    gen = np.random.default_rng(11)
    for _ in range(300):
        k = int(gen.integers(1, 12))
        count = gen.integers(0, [3, 60, 5000][int(gen.integers(0, 3))], k)
        share = np.where(gen.random(k) < 0.2, 0.0, gen.random(k) ** 3)
        share[gen.random(k) < 0.1] = 1.0
        seed = int(gen.integers(0, 2**32))
        ours, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
        chosen = np.zeros(k, dtype=np.int64)
        assert kernels_layoff.draw_chosen(ours, count, share, chosen) == chosen.sum()
        assert np.array_equal(chosen, theirs.binomial(count, share))
        bounds = _highs(count, chosen)
        t = bounds.copy()
        kernels_layoff.draw_below(ours, t, len(t))
        assert np.array_equal(t, theirs.integers(0, bounds))
        assert ours.random() == theirs.random()

"""The compiled cascade round (policylab.engine.kernels_cascade) against the NumPy code it
replaced: sums in NumPy's order, the event buffers, and every round of a crash run, those
that auto-deleverage included, checked against the NumPy round on the same state, bit for bit."""

import dataclasses

import numpy as np
import pytest
from numba import njit

from builders import parts_since, split_rounds
from policylab.engine import kernels
from policylab.engine import kernels_cascade as kc
from policylab.engine.book import TraderBook
from policylab.engine.liquidation import EventLog
from policylab.engine.margin import maintenance
from policylab.experiments.invariants import Monitor
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
    assert all(len(v) == 0 for v in log.arrays().values()) and all(len(x) == 0 for x in parts_since(log, 0))
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
    idx, size, lengths, kinds = parts_since(log, 0)  # two parts: the empty add made none
    np.testing.assert_array_equal(idx, [4, 1, 0, 2, 5])
    np.testing.assert_array_equal(size, [0.5, -2.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(lengths, [2, 3])
    np.testing.assert_array_equal(kinds, [EVENT_KINDS.index("liquidation"), EVENT_KINDS.index("adl_counterparty")])
    idx, size, lengths, kinds = parts_since(log, 1)
    assert idx.tolist() == [0, 2, 5] and size.tolist() == [1.0, 2.0, 3.0] and lengths.tolist() == [3]
    assert [len(x) for x in parts_since(log, 2)] == [0, 0, 0, 0]


def _state(m) -> dict:
    """Every array the cascade can change (copies), by owner and name."""
    owners = {"tb": m.tb, "vb": m.vb, "market": m.market, "engine": m.engine, "events": m.events}
    return {(o, k): v.copy() for o, obj in owners.items() for k, v in vars(obj).items() if isinstance(v, np.ndarray)}


def _restore(m, state: dict) -> None:
    """Put ``state`` back: in place (the compiled calls keep the run's arrays), except the
    growable buffers a round grew, which are replaced."""
    owners = {"tb": m.tb, "vb": m.vb, "market": m.market, "engine": m.engine, "events": m.events}
    for (o, k), v in state.items():
        now = getattr(owners[o], k)
        if now.shape == v.shape:
            np.copyto(now, v)
        else:
            setattr(owners[o], k, v.copy())


def _assert_same(a: dict, b: dict, where: str) -> None:
    """Equal states; of the growable buffers (their spare room may differ) the used part."""
    assert a.keys() == b.keys()
    n, parts = a["events", "n"]
    used = {("events", "ints"): n, ("events", "floats"): n, ("events", "starts"): parts,
            ("engine", "_changed"): a["engine", "_n_changed"][0], ("market", "changes"): a["market", "changes"][0] + 1}
    for key in a:
        x, y = a[key], b[key]
        if key in used:
            x, y = x[..., :used[key]], y[..., :used[key]]
        if key == ("market", "changes"):  # the same rows logged as changed (the NumPy round changes them in another order)
            x, y = np.concatenate([x[:1], np.sort(x[1:])]), np.concatenate([y[:1], np.sort(y[1:])])
        np.testing.assert_array_equal(x, y, err_msg=f"{where}: {key}")


def test_compiled_rounds_equal_the_numpy_round():
    """Each round of the 10 October crash: the compiled round and the NumPy round it
    replaced (:class:`_NumPyRound`) from the same state give the same state, events,
    band-set changes and counts, bit for bit, in rounds that auto-deleverage too."""
    m = MarketModel(load_scenario("october-2025"), seed=0, traders=3000)  # deleverages from step 1274 on
    engine = m.engine
    compiled, oracle = engine.run_round, _NumPyRound(engine)
    seen = {"acted": 0, "backstop": 0, "partial": 0, "stop": 0, "liquidation": 0, "adl": 0, "adl_counterparty": 0}

    def both(near, time_s, step, rnd):
        before = _state(m)
        kinds_before = len(m.events.arrays()["kind"])
        out = compiled(near, time_s, step, rnd)
        after = _state(m)
        _restore(m, before)
        expected = oracle(near, time_s, step, rnd)
        assert out == expected, (step, rnd)
        _assert_same(after, _state(m), f"step {step} round {rnd}")
        seen["acted"] += out[0] > 0
        for k in m.events.arrays()["kind"][kinds_before:].astype(int):
            if EVENT_KINDS[k] in seen:
                seen[EVENT_KINDS[k]] += 1
        return out

    engine.run_round = both
    split_rounds(engine)
    m.run()
    assert seen["acted"] > 20 and all(n > 0 for n in seen.values()), seen


@pytest.mark.parametrize("case", ["october", "dynamic-margin", "small-buffers"])
def test_cascade_round_is_the_band_set_then_the_round(case):
    """``LiquidationEngine.cascade_round`` (one compiled call) and ``run_round(near(band))``
    from the same state give the same state, events and counts, bit for bit, in every round
    of the 10 October crash: rounds that deleverage, that settle stale prices (dynamic
    margin), and that call the round again for more room (buffers of one event)."""
    from policylab.inputs.rulesets import load_rules

    rules = [load_rules("dynamic-margin-proposal")] if case == "dynamic-margin" else []
    m = MarketModel(load_scenario("october-2025"), seed=0, traders=3000, rules=rules)
    e = m.engine
    if case == "small-buffers":
        small = EventLog(capacity=1)
        m.events.ints, m.events.floats, m.events.starts = small.ints, small.floats, small.starts
    combined = e.cascade_round
    seen = {"rounds": 0, "acted": 0, "adl": 0, "settled": 0, "grew": 0}

    def both(band, time_s, step, rnd):
        before, flags = _state(m), (e._band, e._edges, e._any_stale)
        kinds_before, buffers = len(m.events.arrays()["kind"]), (m.events.ints, e._changed)
        out = combined(band, time_s, step, rnd)
        after, stale = _state(m), e._any_stale
        seen["grew"] += m.events.ints is not buffers[0] or e._changed is not buffers[1]  # the round called again
        _restore(m, before)
        e._band, e._edges, e._any_stale = flags
        expected = e.run_round(e.near(band), time_s, step, rnd)
        assert out == expected and stale == e._any_stale, (step, rnd)
        _assert_same(after, _state(m), f"step {step} round {rnd}")
        seen["rounds"] += 1
        seen["acted"] += out[0] > 0
        seen["settled"] += flags[2] and not stale
        seen["adl"] += EVENT_KINDS.index("adl") in m.events.arrays()["kind"][kinds_before:]
        return out

    e.cascade_round = both
    m.run()
    assert seen["rounds"] > 1000 and seen["acted"] > 20, seen
    assert (seen["settled"] > 0) == (seen["adl"] == 0) == (case == "dynamic-margin"), seen  # no ADL under it
    assert case != "small-buffers" or seen["grew"] > 10, seen


class _NumPyRound:
    """The cascade round as the engine ran it in NumPy before it was compiled
    (``LiquidationEngine._run_round_python`` and its mechanisms, main at 2b99544), on the
    engine's arrays: the due check, backstops, slices, the ADL choice and auto-deleveraging,
    market execution, loss absorption, events, the refresh and the vaults' solvency."""

    def __init__(self, engine):
        self.e, self.tb, self.vb, self.mkt = engine, engine.tb, engine.vb, engine.mkt

    def __call__(self, near, time_s, step, rnd):
        e, tb, vb, mkt = self.e, self.tb, self.vb, self.mkt
        price = mkt.marks()  # margin is checked at mark; orders fill at the book's price
        near = kernels.due(near, tb.size, tb.venue, tb.weight, tb.cash, tb.coin, tb.liq_price, tb.stop, tb.mm_floor,
                           e.always, e.protocol, price, vb.coin_value, vb.margin_mult, vb.tier_floor, vb.tier_rate,
                           vb.tier_ded, kc.DUE_TOL)
        if len(near) == 0:
            self.vault_solvency(step, rnd)
            return 0, 0
        v = tb.venue[near]
        s = tb.size[near]
        p = price[v]
        eq = tb.equity(near, price, vb.coin_value)
        mmr = maintenance(tb, vb, near, price)
        under = eq < mmr
        stop_hit = ~under & (((s > 0) & (p <= tb.stop[near])) | ((s < 0) & (p >= tb.stop[near])))
        bs = under & (vb.vault_row[v] >= 0) & (eq < vb.backstop[v] * mmr)
        if bs.any():
            self.backstop(near[bs], price, step, rnd)
        under &= ~bs
        per_account = np.abs(s) * p / tb.weight[near]
        big = under & (per_account * (1.0 - vb.partial_fraction[v]) > vb.partial_threshold[v]) & (eq > 0)
        waiting = big & (time_s - tb.last_liq[near] < vb.cooldown[v])
        under &= ~waiting
        liq = near[under]
        frac = np.where(big[under], vb.partial_fraction[v[under]], 1.0)
        stops = near[stop_hit]
        acted = int(bs.sum() + len(liq) + len(stops))
        if len(liq) + len(stops) == 0:
            self.vault_solvency(step, rnd)
            return acted, int(waiting.sum())
        idx = np.concatenate([liq, stops])
        share = np.concatenate([frac, np.ones(len(stops))])  # share of the position each order closes
        dq = -tb.size[idx] * share
        is_liq = np.concatenate([np.ones(len(liq), bool), np.zeros(len(stops), bool)])
        whole = share >= 1.0
        adl_set = self.adl_selection(idx, dq, is_liq & whole)
        if len(adl_set):
            keep = ~np.isin(idx, adl_set)
            remainder = self.adl(adl_set, price, step, rnd)
            idx = np.concatenate([idx[keep], remainder])
            share = np.concatenate([share[keep], np.ones(len(remainder))])
            is_liq = np.concatenate([is_liq[keep], np.ones(len(remainder), bool)])
            whole = np.concatenate([whole[keep], np.ones(len(remainder), bool)])
            dq = -tb.size[idx] * share  # ADL may have reduced orders' positions (counterparties)
            live = dq != 0
            idx, share, is_liq, whole, dq = idx[live], share[live], is_liq[live], whole[live], dq[live]
        pre_size = tb.size[idx].copy()
        fill = mkt.execute(idx, dq, liquidation=is_liq, forced=True)
        fv = fill[tb.venue[idx]]
        done = idx[is_liq]
        tb.last_liq[done] = time_s
        tb.liquidated[done] = True
        flat = tb.size[idx] == 0
        closed = idx[flat]
        self.realise_coin(closed)
        d_all = np.where(flat, np.maximum(-tb.cash[idx], 0.0), 0.0)
        e.cover_negative(closed)
        tb.stop[closed] = np.nan
        liq_whole = is_liq & whole
        liq_part = is_liq & ~whole
        e.events.add(step, rnd, "liquidation", tb, idx[liq_whole], pre_size[liq_whole], fv[liq_whole], d_all[liq_whole])
        e.events.add(step, rnd, "partial", tb, idx[liq_part], -dq[liq_part], fv[liq_part])
        e.events.add(step, rnd, "stop", tb, idx[~is_liq], pre_size[~is_liq], fv[~is_liq])
        e.refresh(idx)
        self.vault_solvency(step, rnd)
        return acted, int(waiting.sum())

    def realise_coin(self, idx):
        tb, vb = self.tb, self.vb
        idx = idx[tb.coin[idx] > 0]
        if len(idx) == 0:
            return
        loss = tb.coin[idx] * (1.0 - vb.coin_price[tb.venue[idx]])
        tb.cash[idx] -= loss
        tb.coin[idx] = 0.0
        vb.collateral_loss += np.bincount(tb.venue[idx], weights=loss, minlength=len(vb.rules))

    def vault_solvency(self, step, rnd):
        tb, vb = self.tb, self.vb
        rows = self.e.vault_rows
        if len(rows) == 0:
            return
        price = self.mkt.marks()
        broke = kernels.under_water(rows, tb.cash, tb.size, tb.venue, price)
        broke = broke[np.array([vb.rules[u].adl_ranking != "none" for u in tb.venue[broke]], dtype=bool)]
        if len(broke):
            self.adl(broke, price, step, rnd)

    def backstop(self, idx, price, step, rnd):
        tb, vb = self.tb, self.vb
        self.realise_coin(idx)
        v = tb.venue[idx]
        vault = vb.vault_row[v]
        size = tb.size[idx].copy()
        for row in np.unique(vault):
            sel = idx[vault == row]
            px = price[tb.venue[sel]]
            dq = tb.size[sel].copy()
            self.mkt.transfer(sel, -dq, px)
            total = dq.sum()
            if total != 0:
                self.mkt.transfer(np.array([row]), np.array([total]), np.array([(dq * px).sum() / total]))
            else:  # offsetting positions: only cash changes hands
                tb.cash[row] -= (dq * px).sum()
            tb.cash[row] += tb.cash[sel].sum()
            tb.cash[sel] = 0.0
        tb.stop[idx] = np.nan
        tb.liquidated[idx] = True
        self.e.events.add(step, rnd, "backstop", tb, idx, size, price[v])
        self.e.refresh(idx)

    def adl_selection(self, idx, dq, whole_liq):
        tb, vb, mkt = self.tb, self.vb, self.mkt
        cand = idx[whole_liq]
        if len(cand) == 0:
            return cand
        v = tb.venue[cand]
        venues = [u for u in np.unique(v) if vb.rules[u].adl_ranking != "none" and vb.nbp[u]]
        if not venues:
            return np.zeros(0, dtype=np.int64)
        book = mkt.prices()  # the orders' average fill prices
        net = np.bincount(tb.venue[idx], weights=dq, minlength=len(book))
        c = kc.coefficients(float(mkt.params.impact_y), vb.depth0, vb.liquidity_mult, vb.health)
        fill = book * np.exp(kernels.impact(c, mkt.flow, net * book)[1])
        eq_after = tb.cash[cand] + tb.size[cand] * fill[v] - tb.coin[cand] * (1 - vb.coin_price[v])  # realised value
        deficit = np.maximum(-eq_after, 0.0)
        chosen = []
        for u in venues:
            sel = v == u
            d = deficit[sel]
            total = d.sum()
            if total <= max(vb.fund[u], 0.0):
                continue
            order = np.argsort(-d, kind="stable")
            remaining = total - np.cumsum(d[order])
            j = int(np.searchsorted(-remaining, -max(vb.fund[u], 0.0))) + 1  # first j with remaining <= fund
            chosen.append(cand[sel][order[:j]][d[order[:j]] > 0])
        return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)

    def scores(self, idx, price, ranking):
        tb, vb = self.tb, self.vb
        v = tb.venue[idx]
        s = tb.size[idx]
        p = price[v]
        entry = np.where(tb.entry[idx] > 0, tb.entry[idx], p)
        equity = np.maximum(tb.equity(idx, price, vb.coin_value), 1e-9)
        notional = np.abs(s) * p
        if ranking == "hyperliquid":
            return np.where(s > 0, p / entry, entry / p) * notional / equity
        upnl = s * (p - entry)
        return (upnl / np.maximum(equity - upnl, 1e-9)) * (notional / equity)

    def adl(self, bankrupt, price, step, rnd):
        e, tb, vb, mkt = self.e, self.tb, self.vb, self.mkt
        self.realise_coin(bankrupt)
        leftover = []
        for u in np.unique(tb.venue[bankrupt]):
            ranking = vb.rules[u].adl_ranking
            on_venue = np.flatnonzero(tb.venue == u)
            for sd in (1.0, -1.0):
                b = bankrupt[(tb.venue[bankrupt] == u) & (np.sign(tb.size[bankrupt]) == sd)]
                if len(b) == 0:
                    continue
                need = np.abs(tb.size[b]).sum()
                cp = on_venue[(tb.size[on_venue] * sd < 0)]
                cp = cp[~np.isin(cp, bankrupt)]
                cp = cp[tb.size[cp] * (price[u] - tb.entry[cp]) > 0]
                if len(cp) == 0:
                    leftover.append(b)
                    continue
                avail = np.abs(tb.size[cp])
                if ranking == "pro_rata":
                    take = avail * min(1.0, need / avail.sum())
                else:
                    order = np.argsort(-self.scores(cp, price, ranking), kind="stable")
                    cp, avail = cp[order], avail[order]
                    before = np.concatenate([[0.0], np.cumsum(avail)[:-1]])  # sizes ranked above each
                    take = np.clip(need - before, 0.0, avail)
                    take[take <= 1e-12 * need] = 0.0  # rounding dust below the need
                f = 1.0 if take.sum() >= need * (1 - 1e-12) else take.sum() / need
                cp, take = cp[take > 0], take[take > 0]
                if len(cp) == 0:
                    leftover.append(b)
                    continue
                closed = tb.size[b] * f
                p_bk = -tb.cash[b] / tb.size[b]
                pbar = (closed * p_bk).sum() / closed.sum()
                mkt.transfer(b, -closed, p_bk)
                mkt.transfer(cp, sd * take, np.full(len(cp), pbar))
                if vb.nbp[u]:  # a counterparty the ADL price takes below zero is made whole by the fund
                    short = np.maximum(-tb.equity(cp, price, vb.coin_value), 0.0)
                    tb.cash[cp] += short
                    vb.fund[u] -= short.sum()
                e.adl_volume[u] += np.abs(closed * p_bk).sum()
                tb.liquidated[b] = True
                if vb.mm_row[u] in cp:
                    vb.health[u] *= 1.0 - vb.rules[u].mm_adl_withdrawal
                e.events.add(step, rnd, "adl", tb, b, closed, p_bk)
                e.events.add(step, rnd, "adl_counterparty", tb, cp, -sd * take, pbar)
                e.refresh(cp)
                if f < 1.0:
                    leftover.append(b)
        tb.stop[bankrupt[tb.size[bankrupt] == 0]] = np.nan
        e.refresh(bankrupt)
        return np.concatenate(leftover) if leftover else np.zeros(0, dtype=np.int64)


class _ScannedBandSet:
    """The band set as the engine kept it before its members' triggers were sorted (main at
    06ef565): a full scan (``kernels.near``) when first asked, when the band changes or when
    the marks drift more than half the band from the scan's; else the accounts refreshed
    since the last call that are near, added to it."""

    def __init__(self, engine):
        self.engine, self.members, self.band, self.ref = engine, None, None, None

    def __call__(self, band: float, changed: np.ndarray) -> np.ndarray:
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
    split_rounds(e)
    m.run()
    assert seen["rounds"] > 500 and seen["due"] > 400 and seen["band"] > 0, seen
    assert seen["changed"] > 0 and seen["resorted"] > 0, seen


@pytest.mark.parametrize("seed", [0, 1])
def test_the_band_scan_is_numpys_selection(seed):
    """``kernels.near`` (the band set's full scan) keeps what a NumPy selection keeps: the
    ``always`` accounts, longs whose largest trigger (stop, liquidation price; NaN: none) is
    above their venue's ``lo``, shorts whose smallest is below its ``hi``; flat ones never."""
    rng = np.random.default_rng(seed)
    n, k = 5000, 4
    size = rng.choice([-1.0, 0.0, 1.0], size=n) * rng.uniform(0.1, 2.0, size=n)
    venue = rng.integers(0, k, size=n).astype(np.int16)
    liq = np.where(rng.random(n) < 0.2, np.nan, rng.uniform(80.0, 120.0, size=n))
    stop = np.where(rng.random(n) < 0.5, np.nan, rng.uniform(80.0, 120.0, size=n))
    always = rng.random(n) < 0.02
    lo, hi = rng.uniform(90.0, 100.0, size=k), rng.uniform(100.0, 110.0, size=k)
    up, down = np.fmax(liq, stop), np.fmin(liq, stop)
    expected = np.flatnonzero(always | ((size > 0) & (up > lo[venue])) | ((size < 0) & (down < hi[venue])))
    np.testing.assert_array_equal(kernels.near(size, venue, liq, stop, always, lo, hi), expected)
    assert all(kernels._is_near(i, size, venue, liq, stop, always, lo, hi) == (i in set(expected)) for i in range(200))


@pytest.mark.parametrize("n", [0, 1, 3, 50])
def test_venues_are_numpys_unique_venues_of_the_accounts(n):
    """``_venues`` (the venues ADL and its room walk) gives ``np.unique(venue[accounts])``."""
    rng = np.random.default_rng(n)
    venue = rng.integers(0, 6, size=100).astype(np.int16)
    accounts = rng.choice(100, size=n, replace=False)
    got = kc._venues(accounts, venue, 6)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.unique(venue[accounts]))


@pytest.mark.parametrize("n, need", [(0, 1.0), (1, 0.5), (7, 3.0), (500, 40.0), (500, 1e9), (2000, 0.0)])
def test_ranked_prefix_is_the_stable_sort_cut_where_the_need_is_covered(n, need):
    """The heap ADL ranks counterparties with takes what ``np.argsort(key, kind="stable")``
    orders first, ties (many here) in position order, up to and including the first
    position where the sizes ranked before it stop being below the need."""
    rng = np.random.default_rng(n)
    key = np.round(rng.normal(size=n), 1)  # ties
    avail = rng.uniform(0.0, 1.0, size=n)
    order = np.argsort(key, kind="stable")
    before = np.concatenate([[0.0], np.cumsum(avail[order])])[:n]  # the sizes ranked before each
    expected = order[before < need]
    np.testing.assert_array_equal(kc._ranked_prefix(key, avail, need), expected)


def test_stale_prices_under_dynamic_margin_never_change_what_is_due():
    """Under dynamic margin (its maintenance multiplier changes most steps), the accounts a
    change cannot bring within the band keep a stale liquidation price
    (``LiquidationEngine.set_maintenance``). In every cascade round: the band set's members
    hold exact prices (but the arbitrage desks', whose equity the due check always tests), no other account's exact trigger is within the band, and the due
    check over what ``near`` hands over finds exactly what it finds over every account at
    exact prices; and the stale prices, the rescans that refresh them, and the sorts of
    changed members all happened."""
    from policylab.engine import kernels
    from policylab.engine.margin import liquidation_price
    from policylab.inputs.rulesets import load_rules

    m = MarketModel(load_scenario("october-2025"), seed=2, traders=3000, rules=[load_rules("dynamic-margin-proposal")])
    e, tb, vb = m.engine, m.tb, m.vb
    near, settle = e.near, kc.settle_bundled
    seen = {"rounds": 0, "due": 0, "stale": 0, "settled": 0, "sorted": 0}

    def counted(*args):
        done = settle(*args)
        seen["settled"] += done
        return done

    def checked(band):
        seen["stale"] += int(np.sum(e._stale))
        over = int(e._counts[1])
        out = near(band)
        seen["sorted"] += int(e._counts[1]) < over
        rows = np.arange(tb.n)
        exact = liquidation_price(tb, vb, rows)
        exact[e.protocol] = tb.liq_price[e.protocol]  # books and vaults: never refreshed, never due
        members = np.sort(e._members[:e._counts[0]])
        held = members[(tb.size[members] != 0) & ~e.protocol[members] & ~e.always[members]]  # always: checked whole
        np.testing.assert_array_equal(tb.liq_price[held], exact[held])
        _assert_runs_sorted_by_trigger(e)
        lo, hi = e._near_mark * e._edges[0], e._near_mark * e._edges[1]
        assert np.all(np.isin(kernels.near(tb.size, tb.venue, exact, tb.stop, e.always, lo, hi), members))
        args = (tb.size, tb.venue, tb.weight, tb.cash, tb.coin, tb.liq_price, tb.stop, tb.mm_floor, e.always,
                e.protocol, m.market.marks(), vb.coin_value, vb.margin_mult, vb.tier_floor, vb.tier_rate, vb.tier_ded,
                kc.DUE_TOL)
        expected = kernels.due(rows, *args[:5], exact, *args[6:])
        np.testing.assert_array_equal(kernels.due(out, *args), expected)
        seen["rounds"] += 1
        seen["due"] += len(expected)
        return out

    kc.settle_bundled, e.near = counted, checked
    split_rounds(e)
    try:
        m.run()
    finally:
        kc.settle_bundled = settle
    assert seen["rounds"] > 500 and seen["due"] > 100 and seen["stale"] > 500, seen
    assert seen["settled"] > 0 and seen["sorted"] > 0, seen


def _assert_runs_sorted_by_trigger(e):
    """Each venue's run of the band set's sorted longs and shorts is ascending, and the key
    of each entry not changed since the sort is its account's trigger (``kc._trigger``)."""
    tb = e.tb
    for acc, key, start, side in ((e._lacc, e._lkey, e._lstart, 1), (e._sacc, e._skey, e._sstart, -1)):
        rows, keys = acc[:start[-1]], key[:start[-1]]
        for v in range(len(start) - 1):
            run = key[start[v]:start[v + 1]]
            assert np.all(run[1:] >= run[:-1])
        liq = tb.liq_price[rows] * (1.0 + side * kc.DUE_TOL)
        trigger = np.fmax(tb.stop[rows], liq) if side > 0 else np.fmin(tb.stop[rows], liq)
        trigger = np.where(np.isnan(trigger), -side * np.inf, trigger)
        clean = ~e._dirty[rows]
        np.testing.assert_array_equal(keys[clean], trigger[clean])


@pytest.mark.parametrize("seed", range(3))
def test_rekey_sets_fresh_keys_and_sorts_the_run_again(seed):
    """``kc._rekey``: the run's keys become the accounts' fresh triggers (the entries changed
    since the sort excepted), the run is ascending again and holds the same accounts; keys
    moved far as well as a little."""
    rng = np.random.default_rng(seed)
    n, a, b = 1000, 7, 407
    acc = rng.permutation(n).astype(np.int64)
    key = np.full(n, np.nan)
    key[a:b] = np.sort(rng.uniform(90.0, 110.0, b - a))
    trig = np.full(n, np.nan)
    trig[acc[a:b]] = key[a:b] * np.exp(rng.normal(0.0, 1e-3, b - a))
    far = rng.choice(np.arange(a, b), 20, replace=False)
    trig[acc[far]] = rng.uniform(80.0, 120.0, 20)
    dirty = np.zeros(n, dtype=bool)
    dirty[rng.choice(acc[a:b], 80, replace=False)] = True
    before_acc, before_key = acc.copy(), key.copy()
    kc._rekey(a, b, acc, key, dirty, trig)
    assert np.all(key[a + 1:b] >= key[a:b - 1])
    np.testing.assert_array_equal(np.sort(acc[a:b]), np.sort(before_acc[a:b]))
    clean = ~dirty[acc[a:b]]
    np.testing.assert_array_equal(key[a:b][clean], trig[acc[a:b][clean]])
    np.testing.assert_array_equal(acc[:a], before_acc[:a])  # outside the run: untouched
    np.testing.assert_array_equal(key[b:], before_key[b:])


@pytest.mark.parametrize("seed", range(3))
def test_liquidation_prices_skip_only_the_repeated_trailing_tiers(seed):
    """``kernels.liquidation_price`` skips a venue's trailing tiers that repeat the one before
    (``kernels.distinct_tiers``) and gives what it gives over every tier, bit for bit (a last
    tier whose huge deduction no line of it can win with makes every tier distinct): tiers
    padded with zeros, repeated inside, all distinct, all zero, a NaN rate; flat accounts,
    NaN cash, collateral, rates x multiplier above 1."""
    rng = np.random.default_rng(seed)
    rate = np.array([[0.004, 0.005, 0.01, 0.025, 0.05, 0.1], [0.0125, 0.025, 0.0, 0.0, 0.0, 0.0],
                     [0.01, 0.01, 0.02, 0.02, 0.02, 0.02], [0.0] * 6, [0.05, np.nan, 0.0, 0.0, 0.0, 0.0]])
    ded = np.array([[0.0, 50.0, 1300.0, 16300.0, 266300.0, 1266300.0], [0.0, 1.875e6, 0.0, 0.0, 0.0, 0.0],
                    [0.0, 0.0, 5e4, 5e4, 5e4, 5e4], [0.0] * 6, [0.0] * 6])
    np.testing.assert_array_equal(kernels.distinct_tiers(rate, ded), [6, 3, 3, 1, 3])
    np.testing.assert_array_equal(kernels.distinct_tiers(rate[:, :0], ded[:, :0]), [0] * 5)
    n, k = 6000, rate.shape[0]
    venue = rng.integers(0, k, n).astype(np.int16)
    size = rng.choice([-1.0, 0.0, 1.0], n) * 10 ** rng.uniform(-3, 3, n)
    weight = rng.uniform(0.0, 5.0, n)
    cash = np.abs(size) * 1e5 / rng.uniform(1.0, 100.0, n) - size * 1e5 * rng.uniform(0.5, 1.5, n)
    cash[rng.random(n) < 0.01] = np.nan
    coin = np.where(rng.random(n) < 0.3, rng.uniform(0, 1e5, n), 0.0)
    mm_floor = rng.uniform(0.0, 0.01, n)
    cv, mult = rng.uniform(0.9, 1.0, k), rng.uniform(0.5, 20.0, k)
    rows = np.arange(n)
    got = kernels.liquidation_price(rows, venue, size, weight, cash, coin, mm_floor, cv, mult, rate, ded)
    every = np.column_stack([rate, np.zeros(k)]), np.column_stack([ded, np.full(k, 1e290)])
    np.testing.assert_array_equal(kernels.distinct_tiers(*every), [7] * k)
    want = kernels.liquidation_price(rows, venue, size, weight, cash, coin, mm_floor, cv, mult, *every)
    assert np.isnan(want).sum() > 0.2 * n and (want < 0).any()
    np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))


@pytest.mark.parametrize("seed", range(4))
def test_the_multiplier_bound_holds_for_random_accounts_and_tiers(seed):
    """``kernels_cascade._reach``: from any multiplier at or above ``m_lo`` to ``m_now``, a
    long's liquidation price rises at most x ``up`` and a short's falls at most x ``down``
    (Binance-like tiers with continuous deductions, accounts over all tiers, stablecoin
    collateral, the rules' floor); a deduction on tier 0, a negative rate or a rate x
    multiplier at ``MAX_RATE`` is not bounded."""
    from policylab.engine import kernels

    rng = np.random.default_rng(seed)
    tiers = 6
    rate = np.sort(rng.uniform(0.002, 0.15, tiers))
    floor = np.concatenate([[0.0], np.sort(rng.uniform(1e4, 1e8, tiers - 1))])
    ded = np.zeros(tiers)
    for t in range(1, tiers):  # continuous: maintenance is the same from either side of a floor
        ded[t] = ded[t - 1] + floor[t] * (rate[t] - rate[t - 1])
    tier_rate, tier_ded = rate[None, :], ded[None, :]
    n = 4000
    size = rng.choice([-1.0, 1.0], n) * 10 ** rng.uniform(-3, 3, n)
    weight = rng.uniform(1.0, 5.0, n)
    entry = 100_000.0
    lev = rng.uniform(1.0, 100.0, n)
    cash = np.abs(size) * entry / lev - size * entry
    coin = np.where(rng.random(n) < 0.3, rng.uniform(0, 1e5, n), 0.0)
    mm_floor = rng.uniform(0.0, 0.01, n)
    venue = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    cv = np.array([0.97])

    def price(mult):
        return kernels.liquidation_price(rows, venue, size, weight, cash, coin, mm_floor, cv, np.array([mult]),
                                         tier_rate, tier_ded)

    checked = 0
    for _ in range(30):
        m_lo = rng.uniform(1.0, 3.0)
        m_then, m_now = m_lo + rng.uniform(0.0, 2.0), rng.uniform(m_lo, m_lo + 2.0)
        up, down, bounded = kc._reach(0, m_lo, m_now, tier_rate, tier_ded)
        assert bounded and up >= 1.0 and down <= 1.0
        then, now = price(m_then), price(m_now)
        long, short = (size > 0) & (then > 0), (size < 0) & (then > 0)
        assert np.all(now[long] <= then[long] * up * (1 + 1e-12))
        assert np.all(now[short] >= then[short] * down * (1 - 1e-12))
        assert np.all(now[(size > 0) & (then <= 0)] <= 1e-9 * entry)  # no headroom lost below zero
        checked += int(np.sum(now[long] > then[long] * (1 + 1e-6)))  # the bound is exercised, not idle
    assert checked > 100
    for bad_rate, bad_ded in ((np.array([[-0.01, 0.02]]), np.zeros((1, 2))),
                              (np.array([[0.01, 0.02]]), np.array([[5.0, 10.0]])),
                              (np.array([[0.01, 0.5]]), np.array([[0.0, 1e6]]))):
        assert not kc._reach(0, 1.0, 1.8, bad_rate, bad_ded)[2]


def test_coin_values_are_numpys_minimum_nan_included():
    price = np.array([np.nan, 0.95, 1.0, 0.9, 0.97])
    haircut = np.array([0.1, np.nan, 0.05, 0.05, 0.0])
    np.testing.assert_array_equal(kc.coin_values(price, haircut), np.minimum(price, 1.0 - haircut))


@njit
def _bundled(bundle):
    return bundle.items


def _arrays(items):
    """The arrays of a tuple of arguments, those of nested tuples included."""
    for a in items:
        if isinstance(a, tuple):
            yield from _arrays(a)
        elif isinstance(a, np.ndarray):
            yield a


def test_the_bundled_arguments_stay_the_models_arrays():
    """The argument bundles (the cascade's band set, remargin, round and arbitrage; the step's voluntary
    orders and bookkeeping; the market makers' depth, lay-off candidates and closes; the
    invariants check's pass), built once per run, hold the model's own arrays at every step: a
    run updates them in place and never replaces one (the growable buffers, passed apart,
    excepted)."""
    m = MarketModel(load_scenario("october-2025"), seed=0, traders=500)
    monitor = Monitor(m)
    for _ in range(60):
        m.step()
        monitor.observe()
    pos = m.market_makers.positions
    live = [*vars(m.tb).values(), *vars(m.vb).values(), *vars(m.market).values(), *vars(m.engine).values(),
            *vars(m).values(), *vars(m.market_makers).values(), *vars(pos).values(), *pos.where,
            *_arrays(m.market_makers._close_scratch), *vars(monitor).values(), m.events.n, monitor.ledger.net0]
    bundles = {"band set": m.engine._band_args, "remargin": m.engine._remargin_args, "round": m.engine._round_args,
               "arbitrage": m.market._arbitrage_args, "voluntary": m._voluntary_args,
               "close step": m._close_step_args,
               "depth health": m.market_makers._depth_args,
               "lay-off candidates": pos._candidate_args, "lay-off close": m.market_makers._close_args,
               "invariants": monitor._pass_args}
    for name, bundle in bundles.items():
        arrays = list(_arrays(_bundled(bundle)))
        assert len(arrays) > 5 and all(any(a is b for b in live) for a in arrays), name


def test_bundle_types_have_short_distinct_symbol_names():
    """A Bundle's type names compiled symbols by a digest (its full name spells out every
    item's type): short, and distinct for bundles of other item types, so two specialisations
    of a kernel never share a symbol."""
    from numba import typeof
    from numba.core.itanium_mangler import mangle_type_or_value

    items = tuple(np.zeros(3) for _ in range(30))
    names = {mangle_type_or_value(typeof(kernels.bundle(x)))
             for x in (items, (*items, 1.0), (*items[:-1], np.zeros(3, dtype=np.int64)))}
    assert len(names) == 3 and all(len(n) < 40 for n in names), names


def test_trade_one_books_a_trade_as_trade_does():
    """``kernels.trade_one`` (a book's side of a fill, without one-element arrays) moves size,
    entry and cash as the average-entry rules say and as ``kernels.trade`` does for one row:
    opened, grown (averaged in), reduced (entry kept), flipped (entry at the price), closed
    (entry 0), a short grown."""
    cases = [(0.0, 0.0, 2.0, 100.0, 100.0), (2.0, 50.0, 1.0, 110.0, (50.0 * 2.0 + 1.0 * 110.0) / 3.0),
             (2.0, 50.0, -1.0, 120.0, 50.0), (2.0, 50.0, -3.0, 90.0, 90.0), (2.0, 50.0, -2.0, 80.0, 0.0),
             (-1.5, 70.0, -0.5, 60.0, (70.0 * -1.5 + -0.5 * 60.0) / -2.0)]
    for s0, e0, dq, px, e1 in cases:
        size, entry, cash = np.array([s0]), np.array([e0]), np.array([1000.0])
        kernels.trade_one(0, dq, px, size, entry, cash)
        assert (size[0], entry[0], cash[0]) == (s0 + dq, e1, 1000.0 - dq * px)
        s2, e2, c2 = np.array([s0]), np.array([e0]), np.array([1000.0])
        kernels.trade(np.array([0]), np.array([dq]), np.array([px]), s2, e2, c2)
        assert (s2[0], e2[0], c2[0]) == (size[0], entry[0], cash[0])

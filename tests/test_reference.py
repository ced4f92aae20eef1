"""The vectorised engine (``replay.Replay``) against the per-trader Mesa reference
(``reference.ReferenceModel``): on the same book and exogenous price path both must
give the same liquidation events (step, round, kind, account, size, price, deficit),
the same rounds and price paths, and the same final equity of every account.

The minimal books at the end each reproduce an engine defect the reference exposed,
now fixed: they guard against its return.
"""

import numpy as np
import pytest

from builders import acct, build, venue
from policylab.populations import draw as population
from policylab.names import EVENT_KINDS
from policylab.engine.market import MarketParams
from policylab.engine.reference import ReferenceModel
from policylab.engine.replay import Replay
from policylab.inputs.scenario import load_scenario

P0 = 100_000.0
DUST = 1e-9  # BTC, below one satoshi: rounding residue, not a trade
KEYS = ("step", "round", "kind", "account")


def run_both(tb, vb, params, start_price, path, seed=7):
    """The reference copies the book; the replay then runs on it in place."""
    ref = ReferenceModel(tb, vb, params, start_price, path, rng=seed).run()
    rep = Replay(tb, vb, params, start_price, path).run()
    return rep, ref


def table(ev: dict) -> dict:
    """Events without dust, sorted by (step, round, kind, account)."""
    keep = np.abs(ev["size"]) > DUST
    ev = {c: np.asarray(ev[c])[keep] for c in KEYS + ("size", "price", "deficit")}
    order = np.lexsort(tuple(ev[c] for c in reversed(KEYS)))
    return {c: x[order] for c, x in ev.items()}


def kinds(ev: dict) -> dict[str, int]:
    return {k: int((ev["kind"] == i).sum()) for i, k in enumerate(EVENT_KINDS)}


def assert_same(rep: Replay, ref: ReferenceModel) -> dict:
    """Both implementations agree; returns the (dust-free) event table."""
    a, b = table(rep.events.arrays()), table(ref.event_arrays())
    for c in KEYS:
        np.testing.assert_array_equal(a[c], b[c].astype(a[c].dtype), err_msg=c)
    np.testing.assert_allclose(a["size"], b["size"], rtol=1e-9, atol=1e-12, err_msg="size")
    np.testing.assert_allclose(a["price"], b["price"], rtol=1e-11, err_msg="price")
    np.testing.assert_allclose(a["deficit"], b["deficit"], rtol=1e-9, atol=1e-6, err_msg="deficit")
    np.testing.assert_array_equal(rep.rounds, ref.rounds)
    np.testing.assert_allclose(rep.index_path, ref.index_path, rtol=1e-12)
    np.testing.assert_allclose(rep.price_path, np.array(ref.price_path), rtol=1e-12)
    np.testing.assert_allclose(rep.equity(), ref.equity(), rtol=1e-9, atol=1e-4)
    np.testing.assert_array_equal(rep.tb.liquidated, [x.liquidated for x in ref.accounts])
    for name in ("fund", "fees", "collateral_loss", "health"):
        np.testing.assert_allclose(getattr(rep.vb, name), [getattr(v, name) for v in ref.venues],
                                   rtol=1e-9, atol=1e-4, err_msg=name)
    return a


def crash_path(steps=120, fall=0.4, seed=0):
    """Calm noise, a fall of ``fall`` (log) over 30 minutes, a partial rebound."""
    r = np.random.default_rng(seed).normal(0.0, 0.001, steps)
    r[20:50] -= fall / 30
    r[50:70] += 0.12 / 20
    return r


def test_october_population_crash():
    sc = load_scenario("october-2025")
    tb, vb, _ = population.build(sc, 0, 500)  # enough rows for a position large enough to be sliced
    money0 = tb.cash.sum() + tb.hedge_cash.sum() + vb.fund.sum()
    rep, ref = run_both(tb, vb, sc.market, sc.start_price, crash_path())
    ev = assert_same(rep, ref)
    fired = kinds(ev)
    assert all(fired[k] > 0 for k in EVENT_KINDS), fired
    assert rep.index_path.min() < 0.7 * sc.start_price
    # the reference conserves money on its own (cash, funds, fees, realised depeg losses)
    money = (sum(a.cash for a in ref.accounts) + tb.hedge_cash.sum()
             + sum(v.fund + v.fees + v.collateral_loss for v in ref.venues))
    assert money == pytest.approx(money0, rel=1e-12)


def hand_book(cex_ranking: str = "binance"):
    """Three venues plus spot, each account placed to trigger one mechanism.

    dex (Hyperliquid-like, thin book, tiny vault): a 10 BTC long sliced 20% with a 30 s
    cooldown then backstopped; 25x longs liquidated or backstopped; stops on both sides;
    the vault turns insolvent and is auto-deleveraged against the shorts.
    cex (Binance-like tiers, small fund, depegged coin): 50x longs go bankrupt beyond
    the fund and are auto-deleveraged against shorts and the book (which then pulls
    depth); one is covered by the fund; a $3M long is sliced, then closed.
    us (no negative balance protection): a 20x long closes below bankruptcy and owes it.
    """
    venues = [
        # marked to its book, so its own liquidation flow moves its margin price (the
        # index-marked DEX: test_index_mark_fills_in_the_book_and_deleverages)
        venue("offshore_dex", "dex", quiet=False, depth_usd=5e6, insurance_fund_usd=2e4, vault_capital_usd=1e3,
              mark_price="book"),
        venue("offshore_cex", "cex", quiet=False, depth_usd=2e7, insurance_fund_usd=1.5e3, adl_ranking=cex_ranking),
        venue("us_regulated", "us", quiet=False, depth_usd=1e6, tiers=[{"from_notional": 0, "max_leverage": 20}]),
    ]
    accounts = [acct(0, 10.0, margin=1.18e5)]
    accounts += [acct(0, 1.0, entry=P0 * (1 + 0.002 * i), margin=4e3) for i in range(4)]
    accounts += [acct(0, 0.5, margin=1e4, stop=96_500.0), acct(0, -0.8, margin=2e4, stop=101_500.0)]
    accounts += [acct(0, -2.0, entry=101_000.0, margin=2e4), acct(0, -1.0, entry=100_500.0, margin=5e4, weight=2.0)]
    accounts += [acct(1, 1.0 + 0.1 * i, margin=2e3 * (1 + 0.1 * i)) for i in range(8)]
    accounts += [acct(1, 1.0, margin=3e3, coin=3e3), acct(1, 30.0, margin=3e5)]
    accounts += [acct(1, -3.0, entry=101_000.0, margin=3e4), acct(1, -1.0, entry=100_200.0, margin=4e4, weight=3.0),
                 acct(1, -0.5, margin=1e4, stop=104_000.0)]
    accounts += [acct(2, 100.0, margin=7.8e5, weight=50.0), acct(2, -100.0, margin=5e6, weight=50.0)]
    sim = build(venues, accounts, price=P0)
    sim.vb.coin_price[1] = 0.9  # the cex's stablecoin trades at 0.9 throughout
    return sim


HAND_PATH = [0.0, -0.01, -0.02, -0.03, -0.03, -0.02, -0.01, 0.0, 0.0, 0.05, 0.05, 0.05, 0.0, 0.0]
HAND_PARAMS = MarketParams(impact_y=0.02)  # thin books: liquidations move prices a lot


@pytest.mark.parametrize("cex_ranking", ["binance", "pro_rata"])
def test_hand_built_book_every_mechanism(cex_ranking):
    sim = hand_book(cex_ranking)
    big, vault, cex_book, us_long = 0, sim.vault(0), sim.mm(1), 22
    rep, ref = run_both(sim.tb, sim.vb, HAND_PARAMS, P0, HAND_PATH)
    ev = assert_same(rep, ref)
    fired = kinds(ev)
    assert all(fired[k] > 0 for k in EVENT_KINDS), fired
    mine = ev["account"] == big
    # two 20% slices 30 s (six 5 s rounds) apart in one step, then the vault takes the rest
    assert list(ev["kind"][mine]) == [EVENT_KINDS.index(k) for k in ("partial", "partial", "backstop")]
    assert list(ev["round"][mine][:2]) == [0, 6] and ev["step"][mine][0] == ev["step"][mine][1]
    np.testing.assert_allclose(ev["size"][mine], [2.0, 1.6, 6.4])
    assert vault in ev["account"][ev["kind"] == EVENT_KINDS.index("adl")]
    assert cex_book in ev["account"][ev["kind"] == EVENT_KINDS.index("adl_counterparty")]
    assert rep.vb.health[1] == ref.venues[1].health == 0.5
    assert rep.vb.collateral_loss[1] > 0
    assert ref.equity()[us_long] < -1e5  # debt kept: no negative balance protection


def test_reference_activation_order_is_irrelevant():
    sim = hand_book()
    a, b = (ReferenceModel(sim.tb, sim.vb, HAND_PARAMS, P0, HAND_PATH, rng=seed).run() for seed in (1, 2))
    assert len(a.events) > 20
    assert a.events == b.events
    assert a.equity() == b.equity()


# ---------------------------------------------------------------- engine defects found by the reference
def test_gap_beyond_band_is_liquidated():
    """A one-step move larger than the prefilter band still liquidates the accounts (and
    fires the stops) it jumps past."""
    sim = build([venue("offshore_cex", "cex")], [acct(0, 1.0, margin=5e3), acct(0, 1.0, margin=5e4, stop=97_000.0)])
    rep, ref = run_both(sim.tb, sim.vb, MarketParams(), P0, [-0.10])
    fired = kinds(table(ref.event_arrays()))
    assert fired["liquidation"] == fired["stop"] == 1
    assert_same(rep, ref)


def test_vault_insolvent_after_backstop_only_round_is_deleveraged():
    """A vault made insolvent by a round with backstops only is auto-deleveraged in that round."""
    sim = build([venue("offshore_dex", "dex", backstop_threshold=2 / 3, vault_capital_usd=0.0)],
                [acct(0, 1.0, margin=2.5e3), acct(0, -1.0, entry=105_000.0, margin=2e4)])
    rep, ref = run_both(sim.tb, sim.vb, MarketParams(), P0, [-0.04])
    assert kinds(table(ref.event_arrays()))["adl"] == 1
    assert_same(rep, ref)


def test_vault_made_insolvent_by_the_price_is_deleveraged_at_once():
    """A vault that a price move (not a backstop) makes insolvent is auto-deleveraged in
    that round, even when no account is due."""
    sim = build([venue("offshore_dex", "dex", backstop_threshold=2 / 3, vault_capital_usd=0.0)],
                [acct(0, 1.0, margin=2.5e3), acct(0, -1.0, entry=105_000.0, margin=2e4)])
    rep, ref = run_both(sim.tb, sim.vb, MarketParams(), P0, [-0.018, -0.01])  # backstop, then the vault's loss
    assert kinds(table(ref.event_arrays()))["adl"] == 1
    assert_same(rep, ref)


def test_adl_counterparty_with_a_stop_in_the_same_round_ends_flat():
    """An account whose stop fires in the round it is also an ADL counterparty closes what
    ADL left it, instead of sending its pre-ADL size and flipping side."""
    sim = build([venue("offshore_cex", "cex", insurance_fund_usd=0.0)],
                [acct(0, 0.5, margin=1e3), acct(0, -1.0, entry=105_000.0, margin=2e4, stop=96_000.0)])
    rep, ref = run_both(sim.tb, sim.vb, MarketParams(), P0, [-0.03])
    assert ref.accounts[1].size == 0.0
    assert_same(rep, ref)


def test_adl_counterparty_below_the_need_gets_no_dust():
    """Counterparties ranked after the need is covered take nothing (the size ranked above
    one is the exact sum of those before it, not cumsum - own size)."""
    sim = build([venue("offshore_cex", "cex", insurance_fund_usd=0.0)],
                [acct(0, 2.0, margin=4e3), acct(0, -2.0, entry=105_000.0, margin=2e4),
                 acct(0, -0.8, entry=101_000.0, margin=8e4)])
    rep, ref = run_both(sim.tb, sim.vb, MarketParams(), P0, [-0.03])
    assert_same(rep, ref)
    ev = rep.events.arrays()
    assert not np.any(np.abs(ev["size"]) <= DUST), ev["size"]


def test_fully_covered_adl_closes_the_whole_position():
    """Counterparties covering the need exactly (0.7 + 0.2 + 0.1 against 1.0) close the
    whole bankrupt position: no 1e-16 BTC remainder goes to market."""
    sim = build([venue("offshore_cex", "cex", insurance_fund_usd=0.0)],
                [acct(0, 1.0, margin=2e3), acct(0, -0.7, entry=110_000.0, margin=1e4),
                 acct(0, -0.2, entry=106_000.0, margin=1e4), acct(0, -0.1, entry=103_000.0, margin=1e4)])
    rep, ref = run_both(sim.tb, sim.vb, MarketParams(), P0, [-0.03])
    assert_same(rep, ref)
    ev = rep.events.arrays()
    assert not np.any(np.abs(ev["size"]) <= DUST), ev["size"]


def test_index_mark_fills_in_the_book_and_deleverages():
    # A DEX marked to the index (an oracle of spot prices): its longs are liquidated when
    # the index reaches their liquidation prices, but their orders fill in its own thin
    # book, far below the mark and their bankruptcy prices; the deficits exceed the fund
    # and the largest are auto-deleveraged against the profitable shorts.
    dex = venue("offshore_dex", "dex", quiet=False, depth_usd=3e5, insurance_fund_usd=1e2, vault_capital_usd=1e6,
                backstop_threshold=0.0, partial_threshold_usd=1e9, mark_price="index")
    longs = [acct(0, 1.0, entry=P0 * (1 + 0.001 * i), margin=4e3) for i in range(6)]
    shorts = [acct(0, -3.0, entry=101_000.0, margin=3e4), acct(0, -3.0, entry=100_500.0, margin=3e4)]
    sim = build([dex], longs + shorts, price=P0)
    liq_price = sim.engine.tb.liq_price[:6].copy()
    path = [0.0] + [-0.004] * 8 + [0.0] * 3
    rep, ref = run_both(sim.tb, sim.vb, HAND_PARAMS, P0, path)
    ev = assert_same(rep, ref)
    fired = kinds(ev)
    assert fired["liquidation"] + fired["adl"] == 6  # every long is closed, one way or the other
    assert fired["adl"] > 0 and fired["adl_counterparty"] > 0
    liq = ev["kind"] == EVENT_KINDS.index("liquidation")
    index_before = np.array([rep.index_path[s + 1] for s in ev["step"][liq]])  # the index (mark) in that step
    assert np.all(index_before <= liq_price[ev["account"][liq]] * (1 + 1e-9))  # triggered by the mark
    assert np.all(ev["price"][liq] < index_before)  # filled below it, in the book

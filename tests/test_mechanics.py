"""Each mechanic against a case computed by hand (MODEL.md sections 2 and 4).

Unless a test says otherwise, fees are zero, orders fill exactly at the venue price
(impact_y = 0) and the venue has one tier, so every expected number below follows from
the account's cash, size and entry with pencil arithmetic.
"""

import numpy as np
import pytest
from pytest import approx

from builders import acct, build, venue
from policylab.engine.margin import liquidation_price, maintenance
from policylab.engine.market import MarketParams

X20 = [{"from_notional": 0, "max_leverage": 20}]  # maintenance rate 0.5 / 20 = 2.5%
X40 = [{"from_notional": 0, "max_leverage": 40}]  # maintenance rate 0.5 / 40 = 1.25%
ALL = np.array([0])


# ------------------------------------------------------------------ liquidation price
@pytest.mark.parametrize("side", [1.0, -1.0])
def test_20x_position_liquidates_exactly_at_hand_computed_price(side):
    # 1 BTC opened at 100,000 with 5,000 of margin (20x); maintenance = 2.5% of notional.
    #   long:  equity = P - 95,000   = 0.025 P  =>  P = 95,000 / 0.975  (~97,435.90)
    #   short: equity = 105,000 - P  = 0.025 P  =>  P = 105,000 / 1.025 (~102,439.02)
    p_liq = 95_000 / 0.975 if side > 0 else 105_000 / 1.025
    sim = build([venue(tiers=X20, maintenance_ratio=0.5)], [acct(size=side, entry=100_000, margin=5_000)])
    assert liquidation_price(sim.tb, sim.vb, ALL)[0] == approx(p_liq, rel=1e-12)

    sim.set_price(p_liq + side * 0.01)  # one cent on the safe side
    assert sim.round() == (0, 0)
    assert sim.tb.size[0] == side

    crossed = p_liq - side * 0.01
    sim.set_price(crossed)
    assert sim.round() == (1, 0)
    assert sim.tb.size[0] == 0
    assert sim.tb.cash[0] == approx(5_000 + side * (crossed - 100_000))  # closed at mark, no fee
    assert sim.events_of("liquidation")["account"].tolist() == [0]
    assert sim.tb.size[sim.mm()] == 0  # the book took the position back


@pytest.mark.parametrize("price, fee", [(97_000, 0.005 * 97_000), (95_200, 200.0)])
def test_liquidation_fee_goes_to_the_fund_up_to_remaining_equity(price, fee):
    # the 20x long above closed at 97,000 keeps 2,000 and pays 0.5% x 97,000 = 485;
    # at 95,200 it keeps only 200, less than 0.5% x 95,200 = 476: the fee takes what is left
    sim = build([venue(tiers=X20, liquidation_fee=0.005, insurance_fund_usd=1e6)],
                [acct(size=1.0, entry=100_000, margin=5_000)])
    sim.set_price(price)
    sim.round()
    assert sim.tb.cash[0] == approx(price - 95_000 - fee)
    assert sim.vb.fund[0] == approx(1e6 + fee) and sim.vb.fees[0] == 0


# ------------------------------------------------------------------ tiers
def test_binance_tiers_maintenance_is_notional_times_rate_minus_deduction():
    # Binance BTCUSDT tiers, maintenance ratio 0.5: rates 0.5/125 = 0.4%, 0.5/100 = 0.5%,
    # 0.5/50 = 1%, 0.5/20 = 2.5%. Deduction_k = deduction_{k-1} + floor_k x (rate_k - rate_{k-1}):
    #   from 50k:  50,000 x 0.1%             = 50
    #   from 250k: 50 + 250,000 x 0.5%       = 1,300
    #   from 1M:   1,300 + 1,000,000 x 1.5%  = 16,300   (Binance publishes 0 / 50 / 1,300 / 16,300)
    sim = build([venue("offshore_cex", maintenance_ratio=0.5)], [
        acct(size=0.3),               # 30k    -> 0.4% x 30,000              = 120
        acct(size=-5.0),              # 500k   -> 1% x 500,000 - 1,300       = 3,700
        acct(size=20.0),              # 2M     -> 2.5% x 2,000,000 - 16,300  = 33,700
        acct(size=200.0, weight=10),  # 10 accounts of 2M each               = 10 x 33,700
    ])
    mm = maintenance(sim.tb, sim.vb, np.arange(4), sim.market.prices())
    assert mm == approx([120.0, 3_700.0, 33_700.0, 337_000.0], rel=1e-12)
    # continuity at a boundary: 1M in the 50x tier and in the 20x tier give the same margin
    assert 1e6 * 0.01 - 1_300 == approx(1e6 * 0.025 - 16_300)


def test_tier_deduction_moves_the_liquidation_price():
    # 20 BTC at 100,000 with 100,000 margin (20x), in the 1M-10M tier while P > 50,000:
    #   equity 20 P - 1,900,000 = maintenance 0.025 x 20 P - 16,300  =>  19.5 P = 1,883,700
    p_liq = 1_883_700 / 19.5  # 96,600 (without the deduction it would be 97,435.90)
    sim = build([venue("offshore_cex", maintenance_ratio=0.5)], [acct(size=20.0, entry=100_000, margin=100_000)])
    assert liquidation_price(sim.tb, sim.vb, ALL)[0] == approx(p_liq, rel=1e-12)
    sim.set_price(p_liq + 0.01)
    assert sim.round() == (0, 0)
    sim.set_price(p_liq - 0.01)
    assert sim.round() == (1, 0) and sim.tb.size[0] == 0


# ------------------------------------------------------------------ slices and cooldown
def test_partial_slices_respect_threshold_fraction_and_cooldown():
    # 10 BTC at 100,000 with 50,000 margin; at 96,000 equity = 10,000 < maintenance 24,000.
    # Account 0 is one account (960k notional > 100k threshold): loses 20% per slice, one
    # slice per 30 s. Account 1 is the same book spread over 10 accounts of 96k each: below
    # the threshold, so it is closed whole at once.
    rules = venue(tiers=X20, partial_threshold_usd=100_000, partial_fraction=0.2, cooldown_seconds=30)
    sim = build([rules], [acct(size=10.0, entry=100_000, margin=50_000),
                          acct(size=10.0, entry=100_000, margin=50_000, weight=10)])
    sim.set_price(96_000)
    # equity stays 10,000 (fills at mark, no fee) while maintenance 0.025 x 96,000 x size
    # stays above it for sizes 8, 6.4, 5.12 (19,200, 15,360, 12,288): it keeps slicing
    expected = {0: 8.0, 10: 8.0, 29.9: 8.0, 30: 6.4, 45: 6.4, 59.9: 6.4, 60: 5.12}
    for t, size in expected.items():
        acted, waiting = sim.round(time_s=t)
        assert sim.tb.size[0] == approx(size, rel=1e-12), t
        assert sim.tb.size[1] == 0
        assert waiting == (0 if t in (0, 30, 60) else 1)
    assert sim.events_of("partial")["size"] == approx([2.0, 1.6, 1.28])
    assert sim.events_of("liquidation")["account"].tolist() == [1]


def test_slices_stop_when_equity_is_gone():
    # the same 960k-notional account gapped to 94,000 has equity 50,000 - 60,000 < 0: closed whole
    rules = venue(tiers=X20, partial_threshold_usd=100_000, partial_fraction=0.2, cooldown_seconds=30)
    sim = build([rules], [acct(size=10.0, entry=100_000, margin=50_000)])
    sim.set_price(94_000)
    sim.round()
    assert sim.tb.size[0] == 0 and len(sim.events_of("partial")["account"]) == 0


# ------------------------------------------------------------------ backstop
@pytest.mark.parametrize("price, backstop", [(96_000, True), (97_000, False)])
def test_backstop_vault_takes_position_and_margin_below_threshold(price, backstop):
    # 1 BTC at 100,000, 5,000 margin, 2.5% maintenance. Backstop when equity < 2/3 x maintenance:
    #   P - 95,000 < (2/3)(0.025 P) = P / 60  =>  P < 95,000 x 60/59 (~96,610)
    # At 96,000: equity 1,000 < 1,600 (backstop). At 97,000: 2,000 >= 1,616.7 but < 2,425 (market).
    sim = build([venue(tiers=X20, backstop_threshold=2 / 3, vault_capital_usd=1e7)],
                [acct(size=1.0, entry=100_000, margin=5_000)])
    vault = sim.vault()
    sim.set_price(price)
    sim.round()
    assert sim.tb.size[0] == 0 and sim.tb.cash[0] == (0.0 if backstop else approx(price - 95_000))
    if backstop:
        assert sim.tb.size[vault] == 1.0 and sim.tb.entry[vault] == approx(price)  # position at mark
        assert sim.equity(vault) == approx(1e7 + (price - 95_000))  # plus the remaining margin
        assert sim.tb.size[sim.mm()] == -1.0  # nothing went through the book
        assert sim.events_of("backstop")["account"].tolist() == [0]
    else:
        assert sim.tb.size[vault] == 0 and sim.tb.cash[vault] == 1e7
        assert sim.events_of("liquidation")["account"].tolist() == [0]


# ------------------------------------------------------------------ fund, then ADL
def _gap_book(fund, extra=()):
    # account 0: 1 BTC long at 100,000 with 5,000 margin; at 90,000 its equity is -5,000
    #            (bankruptcy price 95,000). Account 1: a profitable 2 BTC short, 50,000 margin.
    rules = venue(tiers=X20, adl_ranking="hyperliquid", insurance_fund_usd=fund)
    sim = build([rules], [acct(size=1.0, entry=100_000, margin=5_000),
                          acct(size=-2.0, entry=100_000, margin=50_000), *extra])
    sim.set_price(90_000)
    return sim


def test_fund_pays_a_deficit_it_can_cover_and_no_adl_happens():
    sim = _gap_book(fund=10_000)
    sim.round()
    assert sim.tb.size[0] == 0 and sim.tb.cash[0] == 0.0  # made whole by the fund
    assert sim.vb.fund[0] == approx(10_000 - 5_000)
    assert sim.tb.size[1] == -2.0 and len(sim.events_of("adl")["account"]) == 0
    assert sim.events_of("liquidation")["deficit"] == approx([5_000.0])


def test_deficit_larger_than_fund_is_auto_deleveraged_at_bankruptcy_price():
    sim = _gap_book(fund=1_000)
    mm_size = sim.tb.size[sim.mm()]
    sim.round()
    # the short buys the long's 1 BTC at its bankruptcy price 95,000 (not at 90,000)
    assert sim.tb.size[0] == 0 and sim.tb.cash[0] == approx(0.0, abs=1e-6)
    assert sim.tb.size[1] == -1.0 and sim.tb.cash[1] == approx(50_000 + 200_000 - 95_000)
    assert sim.vb.fund[0] == 1_000  # untouched
    assert sim.tb.size[sim.mm()] == mm_size  # nothing went to market
    assert sim.events_of("adl")["price"] == approx([95_000.0])


def test_fund_covers_what_it_can_and_adl_takes_the_largest_deficit():
    # add account 2: 1 BTC long with 9,200 margin -> equity at 90,000 is -800. Deficits
    # 5,000 + 800 exceed the 1,000 fund; ADL of the 5,000 one leaves 800 <= 1,000 for the fund.
    sim = _gap_book(fund=1_000, extra=[acct(size=1.0, entry=100_000, margin=9_200)])
    sim.round()
    assert sim.events_of("adl")["account"].tolist() == [0]
    assert sim.events_of("liquidation")["account"].tolist() == [2]
    assert sim.tb.cash[2] == 0.0 and sim.vb.fund[0] == approx(1_000 - 800)
    assert sim.tb.size[1] == -1.0


# ------------------------------------------------------------------ ADL ranking
@pytest.mark.parametrize("ranking, order, takes", [
    # need 1.5 BTC; X: short 1 from 96,000 with 2,000 margin; Y: short 1 from 100,000 with 1,000
    # margin; Z: short 1 from 93,500 with 2,000 margin, losing. At mark 94,000:
    #   equity X 4,000, Y 7,000, Z 1,500
    #   hyperliquid (entry/mark) x notional/equity: X 96/94 x 94,000/4,000 = 24.0,
    #       Y 100/94 x 94,000/7,000 = 14.3 (Z 62.3, but it is not in profit)
    #   binance PnL/margin x notional/equity: X 2,000/2,000 x 23.5 = 23.5,
    #       Y 6,000/1,000 x 13.43 = 80.6
    ("hyperliquid", [1, 2], {1: 1.0, 2: 0.5}),
    ("binance", [2, 1], {1: 0.5, 2: 1.0}),
    ("pro_rata", None, {1: 0.75, 2: 0.75}),  # 1.5 spread over the 2 BTC of profitable shorts
])
def test_adl_takes_highest_ranked_profitable_opposite_positions_first(ranking, order, takes):
    rules = venue(tiers=X40, adl_ranking=ranking, insurance_fund_usd=0.0)
    sim = build([rules], [
        acct(size=1.5, entry=100_000, margin=7_500),  # bankruptcy price 142,500 / 1.5 = 95,000
        acct(size=-1.0, entry=96_000, margin=2_000),   # X
        acct(size=-1.0, entry=100_000, margin=1_000),  # Y
        acct(size=-1.0, entry=93_500, margin=2_000),   # Z
    ])
    sim.set_price(94_000)  # bankrupt long: equity 94,000 x 1.5 - 142,500 = -1,500
    cash0 = sim.tb.cash.copy()
    sim.round()
    assert sim.tb.size[0] == 0 and sim.tb.cash[0] == approx(0.0, abs=1e-6)
    for i, q in takes.items():
        assert sim.tb.size[i] == approx(-1.0 + q)
        assert sim.tb.cash[i] == approx(cash0[i] - q * 95_000)  # bought at the bankruptcy price
    assert sim.tb.size[3] == -1.0 and sim.tb.cash[3] == cash0[3]  # losing position spared
    cp = sim.events_of("adl_counterparty")
    assert cp["account"].tolist() == (order or [1, 2])
    assert cp["price"] == approx(95_000.0)


# ------------------------------------------------------------------ ADL in the compiled round
def _bankrupt_longs(long_1: dict):
    # at 94,000: long 0 (1 BTC from 100,000, margin 3,000) has equity -3,000, bankruptcy price
    # 97,000; long 1 is ``long_1``. Profitable shorts: 2 (2 BTC from 96,000, equity 8,000,
    # hyperliquid score 96/94 x 188,000/8,000 = 24.0) and 3 (2 BTC from 100,000, equity
    # 14,000, score 100/94 x 188,000/14,000 = 14.3); 4 is short at a loss. No fund.
    rules = venue(tiers=X40, adl_ranking="hyperliquid", insurance_fund_usd=0.0)
    sim = build([rules], [acct(size=1.0, entry=100_000, margin=3_000), long_1,
                          acct(size=-2.0, entry=96_000, margin=4_000), acct(size=-2.0, entry=100_000, margin=2_000),
                          acct(size=-1.0, entry=93_000, margin=5_000)])
    sim.set_price(94_000)
    return sim


def _count_rounds(monkeypatch, sim) -> list:
    """The outcomes of every call to the compiled round of ``sim``, whose list of changed
    accounts is first given room for every account (the model's band set empties it every
    round; the test's rounds do not)."""
    from policylab.engine import kernels_cascade as kc

    sim.engine._room(sim.tb.n)

    outcomes, compiled = [], kc.run_round

    def counted(*args):
        out = compiled(*args)
        outcomes.append(out[0])
        return out

    monkeypatch.setattr(kc, "run_round", counted)
    return outcomes


@pytest.mark.parametrize("capacity", [4096, 1])
def test_a_round_that_deleverages_is_one_compiled_call(monkeypatch, capacity):
    from policylab.engine import kernels_cascade as kc
    from policylab.engine.liquidation import EventLog

    sim = _bankrupt_longs(acct(size=2.0, entry=100_000, margin=10_000))  # equity -2,000: bankrupt at 95,000
    sim.events = sim.engine.events = EventLog(capacity)  # too small: the round asks for room first
    outcomes = _count_rounds(monkeypatch, sim)
    mm, mm_size, cash0 = sim.mm(), sim.tb.size[sim.mm()], sim.tb.cash.copy()
    assert sim.round() == (2, 0)
    assert outcomes == ([kc.DONE] if capacity > 100 else [kc.NEED_ROOM, kc.DONE])
    # need 3 BTC: short 2 (ranked first) takes 2, short 3 takes 1, at the longs' average
    # bankruptcy price (97,000 + 2 x 95,000) / 3; each long closes at its own
    pbar = (97_000 + 2 * 95_000) / 3
    assert sim.tb.size[:5].tolist() == [0.0, 0.0, 0.0, -1.0, -1.0]
    assert sim.tb.cash[:2] == approx([0.0, 0.0], abs=1e-6)
    assert sim.tb.cash[2] == approx(cash0[2] - 2 * pbar) and sim.tb.cash[3] == approx(cash0[3] - pbar)
    assert sim.tb.cash[4] == cash0[4] and sim.tb.entry[3] == 100_000
    assert sim.tb.size[mm] == mm_size and sim.vb.fund[0] == 0.0  # nothing went to market, no fund
    assert sim.engine.adl_volume[0] == approx(97_000 + 190_000)
    adl, cp = sim.events_of("adl"), sim.events_of("adl_counterparty")
    assert adl["account"].tolist() == [0, 1] and adl["size"].tolist() == [1.0, 2.0]
    assert adl["price"] == approx([97_000.0, 95_000.0])
    assert cp["account"].tolist() == [2, 3] and cp["size"].tolist() == [-2.0, -1.0] and cp["price"] == approx(pbar)
    assert len(sim.events_of("liquidation")["account"]) == 0
    assert sim.tb.liquidated[:5].tolist() == [True, True, False, False, False]


@pytest.mark.parametrize("margin_1, calls, order", [(2_000.0, 1, [1, 0]), (3_000.0 + 1e-7, 2, [0, 1]),
                                                    (3_000.0, 1, [0, 1])])
def test_near_tied_deficits_ask_for_numpys_exponential(monkeypatch, margin_1, calls, order):
    """Two 1 BTC longs from 100,000 with deficits 3,000 and 6,000 - ``margin_1`` at 94,000:
    deficits closer than 1e-11 of the accounts' scale could rank the other way with
    NumPy's exponential of the fill prices, so the round asks for it (a second call), then
    deleverages the larger first. Equal deficits of identical accounts are equal with
    either exponential (the first goes first), and so is the order of clearly different
    ones: one call."""
    from policylab.engine import kernels_cascade as kc

    sim = _bankrupt_longs(acct(size=1.0, entry=100_000, margin=margin_1))
    outcomes = _count_rounds(monkeypatch, sim)
    assert sim.round() == (2, 0)
    assert outcomes == [kc.NEED_FILL] * (calls - 1) + [kc.DONE]
    assert sim.events_of("adl")["account"].tolist() == order
    assert sim.events_of("adl_counterparty")["account"].tolist() == [2]  # the 2 BTC needed, from the top-ranked
    assert sim.tb.size[:3].tolist() == [0.0, 0.0, 0.0]


# ------------------------------------------------------------------ negative balance protection
@pytest.mark.parametrize("nbp, fund", [(True, 1e6), (False, 1e6), (True, 1_000.0)])
def test_negative_balance_protection(nbp, fund):
    # 1 BTC long at 100,000, 5,000 margin, gapped to 90,000: closed with equity -5,000
    rules = venue(tiers=X20, adl_ranking="none", insurance_fund_usd=fund, negative_balance_protection=nbp)
    sim = build([rules], [acct(size=1.0, entry=100_000, margin=5_000)])
    sim.set_price(90_000)
    sim.round()
    assert sim.tb.size[0] == 0
    if nbp:  # the trader ends at zero; the fund pays, going negative (the venue owes) if short
        assert sim.tb.cash[0] == 0.0 and sim.vb.fund[0] == approx(fund - 5_000)
    else:
        assert sim.tb.cash[0] == approx(-5_000) and sim.vb.fund[0] == fund


# ------------------------------------------------------------------ funding
def _funding_book(interval=60):
    rules = venue(tiers=X20, funding_interval_minutes=interval)
    return build([rules], [acct(size=2.0, margin=1e5), acct(size=-1.0, margin=1e5), acct(size=0.5, margin=1e5)])


@pytest.mark.parametrize("premium, f8", [
    (0.002, 0.002 - 0.0005),    # interest - P = -0.0019, clamped to -0.0005
    (0.0002, 0.0001),           # interest - P = -0.0001 within the clamp: F = interest 0.01%
    (-0.003, -0.003 + 0.0005),  # interest - P = 0.0031, clamped to +0.0005: shorts pay
])
def test_funding_rate_formula_and_payments_sum_to_zero(premium, f8):
    sim = _funding_book()
    sim.vb.premium_sum[0], sim.vb.premium_n[0] = 3 * premium, 3  # average premium P
    cash0 = sim.tb.cash.copy()
    rate, accounts = sim.market.settle_funding(0, 60)
    assert rate == approx(f8 / 8)  # hourly: 1/8 of the 8h rate
    assert accounts.tolist() == np.flatnonzero(sim.tb.size != 0).tolist()  # every holder on the venue, the book's row too
    paid = cash0 - sim.tb.cash
    assert paid[:3] == approx(np.array([2.0, -1.0, 0.5]) * 100_000 * rate)
    assert paid.sum() == approx(0.0, abs=1e-9)  # including the book's -1.5 BTC
    assert np.all(np.sign(paid[[0, 2]]) == np.sign(premium))  # longs pay when the premium is positive
    assert sim.vb.premium_sum[0] == 0 and sim.vb.premium_n[0] == 0


def test_funding_clip_is_numpys():
    # the funding rate's clamps (market._clip) give np.clip's value, signed zeros and NaN included
    from policylab.engine.market import _clip

    for x, lo, hi in [(0.0, -0.0, 1.0), (-0.0, 0.0, 1.0), (0.0, -1.0, -0.0), (-0.0, -1.0, 0.0), (2.0, -1.0, 1.0),
                      (-2.0, -1.0, 1.0), (0.3, -1.0, 1.0), (np.nan, -1.0, 1.0), (0.5, 1.0, -1.0)]:
        got, want = _clip(np.float64(x), lo, hi), np.clip(np.float64(x), lo, hi)
        assert np.array_equal(got, want, equal_nan=True) and np.signbit(got) == np.signbit(want), (x, lo, hi)


@pytest.mark.parametrize("interval, cap", [(60, 0.04), (480, 0.32)])
def test_funding_is_capped_per_hour(interval, cap):
    sim = _funding_book(interval)
    sim.vb.premium_sum[0], sim.vb.premium_n[0] = 0.5, 1  # F = 0.4995 per 8h
    assert sim.market.settle_funding(0, interval)[0] == approx(min(0.4995 * interval / 480, cap))


# ------------------------------------------------------------------ stops
def test_stop_loss_fires_when_crossed_and_clears():
    rules = venue(tiers=X20, taker_fee=0.0005)
    sim = build([rules], [acct(size=1.0, entry=100_000, margin=50_000, stop=98_000),
                          acct(size=-1.0, entry=100_000, margin=50_000, stop=102_000)])
    sim.set_price(98_000.01)
    assert sim.round() == (0, 0)
    sim.set_price(97_900)
    assert sim.round() == (1, 0)
    # sold at 97,900: 50,000 - 2,100 of loss - 0.05% taker fee on 97,900
    assert sim.tb.size[0] == 0 and sim.tb.cash[0] == approx(50_000 - 2_100 - 48.95)
    assert np.isnan(sim.tb.stop[0]) and not sim.tb.liquidated[0]
    assert sim.vb.fees[0] == approx(48.95)
    assert sim.tb.size[1] == -1.0  # the short's stop is above
    sim.set_price(102_000)
    sim.round()
    assert sim.tb.size[1] == 0 and np.isnan(sim.tb.stop[1])
    assert sim.events_of("stop")["account"].tolist() == [0, 1]


# ------------------------------------------------------------------ collateral haircut
def test_depeg_lowers_equity_and_triggers_liquidation():
    # 1 BTC at 100,000 with 10,000 margin posted in a stablecoin (coin = 10,000 units)
    sim = build([venue(tiers=X20)], [acct(size=1.0, entry=100_000, margin=10_000, coin=10_000)])
    sim.set_coin_price(0.65)
    assert sim.equity(0) == approx(10_000 - 10_000 * 0.35)
    sim.set_price(96_000)  # equity 6,000 at par vs maintenance 2,400
    sim.set_coin_price(1.0)
    assert sim.round() == (0, 0)
    sim.set_coin_price(0.5)  # haircut 5,000: equity 1,000 < 2,400
    # liquidation price with the haircut: (5,000 + 90,000) / 0.975 instead of 90,000 / 0.975
    assert liquidation_price(sim.tb, sim.vb, ALL)[0] == approx(95_000 / 0.975)
    assert sim.round() == (1, 0)
    assert sim.tb.size[0] == 0 and sim.tb.coin[0] == 0
    assert sim.tb.cash[0] == approx(6_000 - 5_000)  # the collateral is sold at its value
    assert sim.vb.collateral_loss[0] == approx(5_000)


# ------------------------------------------------------------------ square-root impact
def _impact_book():
    params = MarketParams(impact_y=0.01)
    return build([venue(depth_usd=1e8)], [acct(margin=1e9)], params=params, price=100_000)


def test_order_of_one_depth_moves_price_by_impact_y_and_fills_at_two_thirds():
    # impact I(F) = y sqrt(F / D); an order F = D moves the price by y = 1% (log); the
    # average over the segment is (1/D) int_0^D y sqrt(f/D) df = (2/3) y
    sim = _impact_book()
    fill = sim.market.execute(ALL, np.array([1e8 / 100_000]))[0]
    assert np.log(sim.price() / 100_000) == approx(0.01, rel=1e-12)
    assert np.log(fill / 100_000) == approx(0.01 * 2 / 3, rel=1e-12)
    assert sim.tb.entry[0] == fill and sim.tb.size[sim.mm()] == -1_000
    assert sim.market.index == approx(100_000)  # a derivatives venue moves its basis, not the index


def test_rounds_in_one_step_walk_one_impact_curve():
    # D/4 then 3D/4 (USD at the then-current price) in two rounds of one step: the price moves
    # y sqrt(1/4) = 0.5% and then to y sqrt(1) = 1% in total, as one order of D would.
    # Round 2 fills at (1/(3D/4)) int_{D/4}^{D} y sqrt(f/D) df - 0.5% = y (7/9 - 1/2) above p1.
    sim = _impact_book()
    sim.market.execute(ALL, np.array([0.25e8 / 100_000]))
    p1 = sim.price()
    assert np.log(p1 / 100_000) == approx(0.005, rel=1e-12)
    fill2 = sim.market.execute(ALL, np.array([0.75e8 / p1]))[0]
    assert np.log(sim.price() / 100_000) == approx(0.01, rel=1e-12)
    assert np.log(fill2 / p1) == approx(0.01 * (7 / 9 - 1 / 2), rel=1e-12)
    # a new step: the book has refilled, the next D moves the price by a full 1% again
    sim.new_step()
    p2 = sim.price()
    sim.market.execute(ALL, np.array([1e8 / p2]))
    assert np.log(sim.price() / p2) == approx(0.01, rel=1e-12)


def test_spot_flow_moves_the_index_and_leaves_other_venues():
    sim = _impact_book()
    spot = sim.market.spot
    sim.tb.venue[0] = spot
    depth = sim.vb.depth()[spot]
    sim.market.execute(ALL, np.array([-depth / 100_000]))  # sell one depth on spot
    assert np.log(sim.market.index / 100_000) == approx(-0.01, rel=1e-12)
    assert sim.price(0) == approx(100_000)


# ------------------------------------------------------------------ off-book transfers
def test_market_transfer_moves_position_and_cash_at_the_given_price_without_fees_or_impact():
    # two accounts, 1 BTC long at 100,000 and flat; the first passes 0.5 BTC to the second at
    # 110,000, then buys 0.5 BTC back in at 90,000 (average entry (0.5 x 100,000 + 0.5 x 90,000) / 1)
    sim = build([venue(taker_fee=0.01)], [acct(size=1.0, entry=100_000, margin=10_000), acct(cash=60_000)])
    tb, mkt = sim.tb, sim.market
    cash0, price0, volume0 = tb.cash[:2].copy(), mkt.prices().copy(), mkt.volume.copy()
    mkt.transfer(np.array([0, 1]), np.array([-0.5, 0.5]), np.array([110_000.0, 110_000.0]))
    assert list(tb.size[:2]) == [0.5, 0.5] and list(tb.entry[:2]) == [100_000, 110_000]
    assert list(tb.cash[:2] - cash0) == [55_000, -55_000]  # no fee although the venue charges one
    mkt.transfer(np.array([0]), np.array([0.5]), np.array([90_000.0]))
    assert tb.size[0] == 1.0 and tb.entry[0] == approx(95_000) and tb.cash[0] - cash0[0] == 10_000
    assert np.array_equal(mkt.prices(), price0) and np.array_equal(mkt.volume, volume0)


def test_a_book_row_cannot_place_an_order_through_market_execute():
    """A venue's book takes the net of the orders; an order of its own would be counted twice
    in the long positions, so Market.execute refuses it and leaves the books untouched."""
    sim = build([venue("offshore_dex", tiers=[{"from_notional": 0, "max_leverage": 20}])],
                [acct(size=1.0, entry=100_000, margin=5_000)])
    book = int(sim.vb.mm_row[0])
    size, cash = sim.tb.size.copy(), sim.tb.cash.copy()
    with pytest.raises(ValueError, match=rf"book rows \[{book}\] cannot place orders"):
        sim.market.execute(np.array([0, book]), np.array([0.5, -0.5]))
    assert np.array_equal(sim.tb.size, size) and np.array_equal(sim.tb.cash, cash)
    sim.market.execute(np.array([0]), np.array([0.5]))  # a trader's order still fills against the book
    assert sim.tb.size[0] == approx(1.5) and sim.tb.size[book] == approx(size[book] - 0.5)

"""The base class of trader populations: a Mesa agent that owns rows of the shared arrays
and acts on them in one vectorised step; no agent loops over traders.

``decide()`` returns market orders ``(accounts, BTC)``; the model nets and executes
all populations' orders together, so their order does not matter.
"""

from __future__ import annotations

from typing import ClassVar

import mesa
import numpy as np

from policylab.engine import kernels_decide as kd
from policylab.engine import kernels_passes
from policylab.inputs.scenario import ClassSpec
from policylab.engine.streams import stream

EMPTY = (np.zeros(0, dtype=np.int64), np.zeros(0))
NO_DRAWS = np.zeros(0)
NEG_LN2 = -np.log(2.0)  # as NumPy computes it (see TraderPopulation.willing)


class TraderPopulation(mesa.Agent):
    """A group of accounts (rows of the arrays) sharing one behaviour and random stream.

    Replacement of wiped-out accounts (``refill_half_life_minutes`` > 0): an account that
    is flat with less than ``WIPED_SHARE`` of its starting deposit left is, after a
    waiting time with that half-life, taken over by a new trader who deposits what the
    account started with (new money, recorded in ``deposit``). In Thurner, Farmer and
    Geanakoplos (2012) a fund whose wealth falls below a minimum is likewise replaced,
    after a delay, by a new fund with the initial wealth; without it a market that wipes
    out its leveraged traders de-levers for the rest of the run and the effect of
    leverage fades with time. The waiting times come from their own stream, one draw
    per account and step, so they are common across rule sets; the stream is keyed by the
    population's ``name`` ("refill:retail"), so renaming its Python class changes nothing.
    """

    name: ClassVar[str] = ""  # the trader class it plays, as in scenario files (one of names.CONFIGURABLE_CLASSES)

    WIPED_SHARE = 0.1  # an account with less than this share of its starting deposit is wiped out

    ACTIVITY_VOL_WINDOW = 15  # minutes of realised volatility that activity responds to

    def __init__(self, model, rows: np.ndarray, spec: ClassSpec, rng: np.random.Generator):
        super().__init__(model)
        self.rows, self.spec, self.stream = rows, spec, rng
        self.stake = model.tb.deposit[rows].copy()  # each account's starting deposit (USD)
        self.refills = 0  # accounts replaced so far
        if spec.refill_half_life_minutes > 0:
            self._refill_stream = stream(model.seed, f"refill:{self.name}")

    def refill(self) -> None:
        """Replace wiped-out accounts by new traders with the starting deposit (see the class docstring)."""
        if self.spec.refill_half_life_minutes <= 0 or len(self.rows) == 0:
            return
        tb = self.model.tb
        u = self._refill_stream.random(len(self.rows))  # drawn every step: common random numbers
        p = (1.0 - 0.5 ** (self.model.scenario.step_minutes / self.spec.refill_half_life_minutes)) * self.caution()
        self.refills += kernels_passes.refill(self.rows, u, p, tb.size, self.stake, tb.quit, tb.cash, tb.deposit,
                                              self.WIPED_SHARE)

    def active(self) -> np.ndarray:
        """Accounts that reconsider their position this step. With an activity elasticity,
        flat accounts come to trade more often when the market moves (volume rises with
        volatility); holders keep reconsidering at the usual rate (adverse moves make
        them close, see ``decide``)."""
        tb = self.model.tb
        p = self.spec.activity_per_minute * self.model.scenario.step_minutes
        surge = 1.0
        if self.spec.activity_vol_elasticity > 0:
            surge += self.spec.activity_vol_elasticity * max(self.model.vol_ratio(self.ACTIVITY_VOL_WINDOW) - 1.0, 0.0)
        k = self.stream.binomial(len(self.rows), min(1.0, p * surge)) if len(self.rows) else 0
        # k draws with replacement; the size as a tuple gives the same draws as ``k`` (NumPy's
        # bounded integers take a faster path for it)
        idx = kd.active_rows(self.rows, self.stream.integers(0, len(self.rows), (k,))) if k else self.rows[:0]
        if surge > 1.0 and len(idx):
            # holders: thinned back to the usual rate. k draws with replacement select an
            # account with probability about 1 - exp(-k / n), so keep each holder with the
            # ratio of that probability at the usual rate to the one at the surged rate
            usual, surged = np.expm1([-min(1.0, p), -min(1.0, p * surge)])  # elementwise as two calls
            idx = kd.thin(idx, tb.size, self.stream.random(len(idx)), -usual / -surged)
        return idx

    def caution(self) -> float:
        """Risk-off damping of new risk-taking, in (0, 1]: 1 / (1 + ``risk_off_sensitivity`` x
        the market's risk-off level (MarketModel.risk_off))."""
        return 1.0 / (1.0 + self.spec.risk_off_sensitivity * self.model.risk_off)

    def willing(self, idx: np.ndarray) -> np.ndarray:
        """Probability that each flat account ``idx`` opens when it trades: the market's
        caution times, for an account liquidated before, 1 - 0.5^(minutes since its last
        liquidation / ``reentry_half_life_minutes``): traders who were liquidated come back
        slowly, and a risk-off market takes less new risk."""
        hl = self.spec.reentry_half_life_minutes
        if hl <= 0:
            return np.full(len(idx), self.caution())
        now_s = (self.model.steps - 1) * self.model.scenario.step_minutes * 60.0
        return self.caution() * -np.expm1(kd.reentry_exponent(idx, self.model.tb.last_liq, now_s, NEG_LN2, float(hl)))

    def _reentry(self) -> tuple:
        """What :func:`kernels_decide.open_candidates` reads after the accounts' sizes and cash:
        quits, last liquidations, now (s), -ln 2 and the re-entry half-life (minutes)."""
        tb = self.model.tb
        now_s = (self.model.steps - 1) * self.model.scenario.step_minutes * 60.0
        return tb.quit, tb.last_liq, now_s, NEG_LN2, float(self.spec.reentry_half_life_minutes)

    def open_orders(self, idx: np.ndarray, side: np.ndarray):
        """Open positions with the account's cash at its chosen leverage, within the venue's
        and the rules' caps and the rules' position limit."""
        m, vb = self.model, self.model.vb
        return kd.open_orders(idx, side, m.market.prices(), vb.coin_value, *self._accounts())

    def with_opens(self, idx: np.ndarray, dq: np.ndarray, at: np.ndarray, u_side: np.ndarray,
                   u_follow: np.ndarray = NO_DRAWS, move: float = 0.0, growth: np.ndarray | None = None):
        """The orders ``dq`` of accounts ``idx`` with positions ``at`` (in ``idx``) opening
        (:meth:`open_orders`): long with draw ``u_side`` below ``long_share``, or with draws
        ``u_follow``, in the direction of ``move`` with one below ``momentum_share``; less the
        zero orders: ``(accounts, BTC)``. ``growth``: NumPy's exp of the basis, if at hand."""
        m, vb, spec = self.model, self.model.vb, self.spec
        growth = np.exp(vb.basis) if growth is None else growth
        return kd.opens(idx, dq, at, u_side, float(spec.long_share), u_follow, float(spec.momentum_share), move,
                        growth, m.market.lm, vb.coin_price, vb.haircut, *self._accounts())

    def _accounts(self) -> tuple:
        """The arrays the opening kernels read after the prices and collateral values: the
        accounts' state, the dynamic initial margin and the tiers."""
        tb, vb = self.model.tb, self.model.vb
        return (tb.venue, tb.size, tb.cash, tb.coin, tb.leverage, tb.weight, tb.lev_cap, tb.pos_limit, tb.stop_dist,
                tb.stop, vb.im_mult, vb.tier_floor, vb.tier_lev)

"""The base class of trader populations: a Mesa agent that owns rows of the shared arrays
and acts on them in one vectorised step; no agent loops over traders.

``decide()`` returns market orders ``(accounts, BTC)``; the model nets and executes
all populations' orders together, so their order does not matter.
"""

from __future__ import annotations

from typing import ClassVar

import mesa
import numpy as np

from policylab.engine import kernels
from policylab.engine import kernels_decide as kd
from policylab.engine import kernels_passes
from policylab.inputs.scenario import ClassSpec
from policylab.engine.decay import left
from policylab.engine.streams import stream

EMPTY = (np.zeros(0, dtype=np.int64), np.zeros(0))
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
        tb, vb = model.tb, model.vb
        self.step_minutes = model.scenario.step_minutes  # the model's step (minutes)
        self._activity = spec.activity_per_minute * self.step_minutes  # chance to reconsider in a step (no surge)
        # the trailing arguments of the decision kernels (kernels_decide), built once: the
        # spec's values as the model was built and the run's arrays, which are updated in
        # place, never reallocated; kernels_decide.opens's in one kernels.Bundle
        self._accounts = (tb.venue, tb.size, tb.cash, tb.coin, tb.leverage, tb.weight, tb.lev_cap, tb.pos_limit,
                          tb.stop_dist, tb.stop, vb.im_mult, vb.tier_floor, vb.tier_lev)
        self._reentry = (tb.quit, tb.last_liq, NEG_LN2, float(spec.reentry_half_life_minutes))
        self._opens = kernels.bundle((float(spec.long_share), float(spec.momentum_share), model.market.lm,
                                      vb.coin_price, vb.haircut, *self._accounts))
        # the kernels that draw from the stream hold it in their bundles (a NumPy Generator
        # costs about 6 us to pass to a compiled call)
        self._active_args = kernels.bundle((rng, rows, tb.size))
        self._open_args = kernels.bundle((rng, self._opens))

    def refill(self) -> None:
        """Replace wiped-out accounts by new traders with the starting deposit (see the class docstring)."""
        if self.spec.refill_half_life_minutes <= 0 or len(self.rows) == 0:
            return
        tb = self.model.tb
        u = self._refill_stream.random(len(self.rows))  # drawn every step: common random numbers
        p = (1.0 - left(self.step_minutes, self.spec.refill_half_life_minutes)) * self.caution()
        self.refills += kernels_passes.refill(self.rows, u, p, tb.size, self.stake, tb.quit, tb.cash, tb.deposit,
                                              self.WIPED_SHARE)

    def active(self) -> np.ndarray:
        """Accounts that reconsider their position this step (``kernels_decide.draw_active``
        with :meth:`activity`)."""
        return kd.active(*self.activity(), self._active_args)

    def activity(self) -> tuple[float, bool, float]:
        """This step's chance that an account reconsiders, whether it surged, and the share
        of holders drawn that keep it. With an activity elasticity, flat accounts come to
        trade more often when the market moves (volume rises with volatility); holders keep
        reconsidering at the usual rate (adverse moves make them close, see ``decide``)."""
        p = self._activity
        surge = 1.0
        if self.spec.activity_vol_elasticity > 0:
            surge += self.spec.activity_vol_elasticity * max(self.model.vol_ratio(self.ACTIVITY_VOL_WINDOW) - 1.0, 0.0)
        chance = min(1.0, p * surge)
        if not surge > 1.0 or chance == 0.0:  # no holders to thin back
            return chance, False, 1.0
        # holders: thinned back to the usual rate. k draws with replacement out of n select an
        # account with probability about 1 - exp(-k / n), so keep each holder with the ratio
        # of that probability at the usual rate to the one at the surged rate
        minus_chance = np.expm1(np.array((-min(1.0, p), -min(1.0, p * surge))))  # elementwise as two calls
        return chance, True, -minus_chance[0] / -minus_chance[1]

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
        return self.caution() * -np.expm1(kd.reentry_exponent(idx, self.model.tb.last_liq, self.now_s(), NEG_LN2,
                                                              float(hl)))

    def now_s(self) -> float:
        """The step's time (s since the run's start), as liquidations record it (``tb.last_liq``)."""
        return (self.model.steps - 1) * self.step_minutes * 60.0

    def open_orders(self, idx: np.ndarray, side: np.ndarray):
        """Open positions with the account's cash at its chosen leverage, within the venue's
        and the rules' caps and the rules' position limit."""
        return kd.open_orders(idx, side, self.model.market.prices(), self.model.vb.coin_value, *self._accounts)

"""The exogenous path of a scenario, drawn once per seed and independent of policy.

Fundamental log returns follow GARCH(1,1) with normal innovations, or Student-t
innovations scaled to unit variance when the scenario sets ``innovation_df`` (fat-tailed
news: GARCH-t is the usual model of BTC returns, e.g. Katsiampa 2017, Economics Letters
158; Conrad, Custovic and Ghysels 2018, J. Risk Financial Manag. 11(2)), scaled by the
scenario's volatility regimes,
plus the scenario's price shocks spread evenly over their duration. Liquidity shocks
multiply venue depth during their window and recover with a half-life afterwards;
collateral shocks set the value of a venue's depeggable stablecoin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from policylab.inputs.scenario import Scenario
from policylab.engine.decay import left
from policylab.engine.streams import stream


@dataclass
class ExogenousPath:
    log_return: np.ndarray  # (steps,) fundamental log return of each step, shocks included
    shock_return: np.ndarray  # (steps,) the scenario's price-shock part of it
    sigma: np.ndarray  # (steps,) conditional volatility per step
    liquidity: np.ndarray  # (steps, venues) depth multiplier
    coin_price: np.ndarray  # (steps, venues) value of one unit of depeggable collateral


def draw(scenario: Scenario, seed: int) -> ExogenousPath:
    rng = stream(seed, "exogenous")
    n, dt = scenario.steps, scenario.step_minutes
    k = len(scenario.venues)
    minutes = np.arange(n) * dt  # start minute of each step
    vol_mult = np.ones(n)
    drift = np.zeros(n)
    liquidity = np.ones((n, k))
    coin = np.ones((n, k))
    names = [v.name for v in scenario.venues]
    for s in scenario.shocks:
        inside = (minutes >= s.start_minute) & (minutes < s.start_minute + s.duration_minutes)
        cols = [names.index(x) for x in s.venues] if s.venues else list(range(k))
        if s.kind == "volatility":
            vol_mult[inside] *= s.multiplier
        elif s.kind == "price":
            steps_in = max(int(inside.sum()), 1)
            drift[inside] += s.size / steps_in
        elif s.kind == "liquidity":
            after = minutes >= s.start_minute + s.duration_minutes
            mult = np.ones(n)
            mult[inside] = s.depth_multiplier
            since = minutes[after] - (s.start_minute + s.duration_minutes)
            mult[after] = 1.0 - (1.0 - s.depth_multiplier) * left(since, s.recovery_half_life_minutes)
            liquidity[:, cols] *= mult[:, None]
        elif s.kind == "collateral":
            ramp = max(s.ramp_minutes, dt)
            t0, t1 = s.start_minute, s.start_minute + s.duration_minutes
            down = np.clip((minutes - t0) / ramp, 0.0, 1.0)
            up = np.clip((minutes - t1) / ramp, 0.0, 1.0)
            value = 1.0 - (1.0 - s.price) * (down - up)
            coin[:, cols] = np.minimum(coin[:, cols], value[:, None])
    # GARCH(1,1) per step, long-run variance = sigma_daily^2 scaled to the step
    var_lr = scenario.sigma_daily ** 2 * dt / 1440.0
    a, b = scenario.garch_alpha, scenario.garch_beta
    omega = var_lr * (1.0 - a - b)
    df = scenario.innovation_df
    z = rng.standard_t(df, n) * np.sqrt((df - 2.0) / df) if df > 0 else rng.standard_normal(n)
    sigma, eps = [], []
    var = var_lr
    # sequential recursion over steps (not over traders), in Python floats: the same IEEE
    # operations as on NumPy's scalars, which took several times as long
    for m, zt in zip(vol_mult.tolist(), z.tolist()):
        s = math.sqrt(var) * m
        e = s * zt
        sigma.append(s)
        eps.append(e)
        u = e / m
        var = omega + a * (u * u) + b * var  # u * u: NumPy's square of a scalar (** 2), not C's pow
    eps = np.array(eps)
    return ExogenousPath(log_return=eps + drift, shock_return=drift, sigma=np.array(sigma), liquidity=liquidity,
                         coin_price=coin)

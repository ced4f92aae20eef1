"""Market-wide stability rules that act during the run: circuit breakers, dynamic margin and open-interest limits."""

from __future__ import annotations

import numpy as np

from policylab.policies.api import Param, Policy
from policylab.policies.groups import DERIVATIVES


class CircuitBreaker(Policy):
    """Halts trading (orders and liquidations) on the targeted venues when the index
    moves more than a trigger within a window."""

    name, title = "circuit_breaker", "Circuit breaker"
    source = "no crypto precedent; equity-market practice (NYSE Rule 7.12 market-wide halts)"
    default_venues = DERIVATIVES
    trigger_move = Param(0.07, "fraction", "index move over the window that triggers a halt", source, lo=0.001, hi=0.9)
    window_minutes = Param(60.0, "minutes", "window over which the move is measured", source, lo=1.0, hi=1440.0)
    halt_minutes = Param(15.0, "minutes", "length of the halt", source, lo=1.0, hi=1440.0)

    def on_step(self, model):
        if model.halted:
            return
        since = model.steps * model.scenario.step_minutes - model.resume_minute  # window restarts after a halt
        if since < model.scenario.step_minutes:
            return
        move = abs(model.index_return(int(min(self.window_minutes, since))))
        if move >= self.trigger_move:
            model.halt(self, self.halt_minutes)


class DynamicMargin(Policy):
    """Raises maintenance margin with realised volatility and open interest
    (anti-procyclical buffers are the opposite: set the sensitivities to zero)."""

    name, title = "dynamic_margin", "Dynamic margin"
    source = "dYdX v4: initial margin rising with open interest; CCP anti-procyclicality (EMIR RTS 153/2013 art. 28)"
    default_venues = DERIVATIVES
    vol_sensitivity = Param(0.5, "per unit of excess volatility", "margin multiplier slope on volatility over normal",
                            source, lo=0.0, hi=10.0)
    oi_sensitivity = Param(0.0, "per unit of OI growth", "margin multiplier slope on open interest growth", source,
                           lo=0.0, hi=10.0)
    max_multiplier = Param(3.0, "x", "largest margin multiplier", source, lo=1.0, hi=20.0)
    window_minutes = Param(60.0, "minutes", "realised volatility window", source, lo=5.0, hi=1440.0)

    def on_step(self, model):
        mult = 1.0 + self.vol_sensitivity * max(model.vol_ratio(int(self.window_minutes)) - 1.0, 0.0)
        mult += self.oi_sensitivity * max(model.open_interest_growth(), 0.0)
        model.set_margin_multiplier(self, min(mult, self.max_multiplier))


class OpenInterestLimits(Policy):
    """Caps each venue's open interest and each account's position."""

    name, title = "open_interest_limits", "Open-interest and position limits"
    source = "Hyperliquid open-interest caps; CFTC position limits (17 CFR Part 150)"
    default_venues = DERIVATIVES
    venue_cap_usd = Param(float("inf"), "USD", "largest open interest of a venue (long side)", source, lo=0.0)
    position_limit_usd = Param(float("inf"), "USD", "largest position of one account", source, lo=0.0)

    def open_interest_cap(self, venue):
        return self.venue_cap_usd if np.isfinite(self.venue_cap_usd) else None

    def position_limit(self):
        return self.position_limit_usd if np.isfinite(self.position_limit_usd) else None

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
    """Volatility- and open-interest-scaled margin: raises initial margin (lowers the
    leverage allowed on new and increased positions) when realised volatility or
    derivatives open interest rises; maintenance follows as the venue's ratio of it,
    capped. Procyclical by design (margin rises in a fall, as with exchange and CCP margin
    increases after volatility spikes): it is not an anti-procyclicality tool.

    Multiplier m = 1 + vol_sensitivity x (volatility over normal - 1)+ + oi_sensitivity x
    (open-interest growth)+, at most ``max_multiplier``. Initial margin is m times the tier's;
    maintenance margin is m times the tier's too, but at most ``maintenance_cap`` of the
    tier's initial margin before any increase (never below the venue's own maintenance),
    so a position opened at the venue's largest leverage is not closed out merely
    because margin rose. No rise before a full window has been observed;
    rises are phased in at most ``max_rise_per_hour`` (real increases are announced ahead:
    CME's take effect after the next day's close); falls apply at once. Stateless: each
    step starts from the multiplier in force before the step (``model.margin_multipliers``)."""

    name, title = "dynamic_margin", "Dynamic margin"
    source = ("CME Clearing performance bond advisories (margins reset on review of market volatility, "
              "effective after the next close); dYdX v4 open-interest-based initial margin fraction; "
              "Brunnermeier and Pedersen (2009) on margins that rise with volatility")
    default_venues = DERIVATIVES
    vol_sensitivity = Param(0.5, "per unit of excess volatility", "margin multiplier slope on volatility over normal",
                            source, lo=0.0, hi=10.0)
    oi_sensitivity = Param(0.0, "per unit of OI growth", "margin multiplier slope on open interest growth", source,
                           lo=0.0, hi=10.0)
    max_multiplier = Param(3.0, "x", "largest initial margin multiplier", source, lo=1.0, hi=20.0)
    window_minutes = Param(60.0, "minutes", "realised volatility window", source, lo=5.0, hi=1440.0)
    maintenance_cap = Param(0.75, "share of initial margin",
                            "largest maintenance margin, as a share of the tier's initial margin before any increase",
                            "assumption (0.5-0.9; CME maintenance is about 90% of initial margin for speculators)",
                            lo=0.1, hi=1.0)
    max_rise_per_hour = Param(0.5, "x per hour", "fastest rise of the multiplier",
                              "assumption (0.25-1 per hour): compresses CME's next-day phase-in into a one-day "
                              "scenario", lo=0.01, hi=100.0)

    def on_step(self, model):
        dt = model.scenario.step_minutes
        phased = model.margin_multipliers()[0] + self.max_rise_per_hour * dt / 60.0  # the most each may rise to
        target = 1.0
        if model.steps * dt >= self.window_minutes:  # reviewed on a full window: a partial one is too noisy to act on
            target += self.vol_sensitivity * max(model.vol_ratio(int(self.window_minutes)) - 1.0, 0.0)
            # open interest can only raise the target: not read (a pass over the accounts) when the phase-in
            # or the cap binds without it
            if min(target, self.max_multiplier) < phased.max():
                target += self.oi_sensitivity * max(model.open_interest_growth(), 0.0)
        target = min(target, self.max_multiplier)
        initial = np.minimum(target, phased)
        highest = np.maximum(self.maintenance_cap / model.maintenance_ratio, 1.0)
        model.set_margin_multiplier(self, initial, np.minimum(np.maximum(initial, 1.0), highest))


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

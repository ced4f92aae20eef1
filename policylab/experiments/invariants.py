"""Invariants every run is checked against (issue 13), reported in the run's results.

No rule set may break these; a run that does is flagged (``RunResult.violations``, and in
an experiment ``runs.parquet`` ``invariant_violations`` / ``invariant_detail`` and
``summary.csv`` ``flagged_runs``), never stopped: a violation is a finding about the
model or the rule set, and the other runs of the experiment still count.

- ``maintenance_below_initial``: on every derivatives venue, maintenance margin (each
  tier's rate times the dynamic maintenance multiplier) never exceeds the tier's initial
  margin before any multiplier (1 / the tier's leverage: the least margin an open
  position may have posted), and an account's close-out floor never exceeds the initial
  margin at its rules' leverage cap (``mm_floor x lev_cap <= 1``). Where it could come
  from: ``VenueRules.maintenance_ratio`` and a close-out ``level`` above 1 are rejected
  when the inputs are read (one-line error); the dynamic multiplier is capped at
  ``1 / maintenance_ratio`` by ``MarketModel.set_margin_multiplier``; anything else (a
  module writing the venue book itself) is reported here.
- ``liquidated_within_open_interest``: per venue, the position closed by liquidations,
  partial slices, backstop takeovers and auto-deleveraging (both the bankrupt side and
  its counterparties) is at most what accounts that can be liquidated held there at the
  start (long and short: twice the open interest, less the market makers' books) plus
  what they opened during the run. In BTC, so that price moves do not count.
- ``liquidated_only_after_reopening``: per account and step, what events closed
  (liquidations, ADL, stops) is at most the position held at the step's start plus what
  the account opened during the step: an account closed out flat is liquidated again
  only after it has reopened.
- ``groups_add_up``: every metric family (registry ``Family``) whose stem is also a
  metric of the run, in an additive unit (USD, accounts, BTC), sums over its members to
  that metric (per venue, side, class, and whatever families later sections add); a family
  over jurisdictions of residence or leverage groups covers the population only, so it
  must not exceed the total (see RESIDENT_FAMILIES).
- ``money_conserved``: the conservation audit (:mod:`policylab.engine.audit`) after every
  step: money, less new deposits, and net positions stay as at the start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from policylab.engine import kernels, kernels_passes
from policylab.engine.audit import Ledger
from policylab.engine.liquidation import EVENT_KINDS
from policylab.metrics.api import Family
from policylab.metrics.registry import SECTIONS
from policylab.names import PROTOCOL_CLASSES

INVARIANTS = ("maintenance_below_initial", "liquidated_within_open_interest", "liquidated_only_after_reopening",
              "groups_add_up", "money_conserved")
FORCED_KINDS = ("liquidation", "partial", "backstop", "adl", "adl_counterparty")  # closes the rules force
ADDITIVE_UNITS = ("USD", "accounts", "BTC")
# Families over the population's residents or chosen leverage: the venues' own rows (books,
# arbitrage desks, vaults) have neither, so members add up to the total less those rows'
# part; checked here as never above the total (non-negative quantities), and exactly, with
# the venues' rows added back, by tests/test_outcomes.py.
RESIDENT_FAMILIES = ("jurisdiction", "leverage_group")
COLUMNS = {"invariant": "str", "venue": "str", "detail": "str", "value": "float64", "limit": "float64", "unit": "str"}
_REL = 1e-9  # relative tolerance of the sums (floating point only)


@dataclass
class Violation:
    """One broken invariant: where (venue, "" if market-wide), what, the value found and its limit."""

    invariant: str
    venue: str
    detail: str
    value: float
    limit: float
    unit: str


def table(violations: list[Violation]) -> pd.DataFrame:
    """The violations as a DataFrame with :data:`COLUMNS` (no rows if none)."""
    rows = {c: pd.Series([getattr(v, c) for v in violations], dtype=t) for c, t in COLUMNS.items()}
    return pd.DataFrame(rows)


def summary(violations: pd.DataFrame) -> tuple[int, str]:
    """(number of violated invariants, "; "-separated "<invariant>: <detail>" items, "" if none)."""
    if violations.empty:
        return 0, ""
    return int(violations["invariant"].nunique()), "; ".join(f"{i}: {d}" for i, d in
                                                             zip(violations["invariant"], violations["detail"]))


class Monitor:
    """Watches a model from its start (call :meth:`observe` after every step, :meth:`finish`
    once with the run's metrics)."""

    def __init__(self, model):
        self.model = model
        tb, vb = model.tb, model.vb
        self.ledger = Ledger(model)
        self.trader = ~np.isin(tb.cls, PROTOCOL_CLASSES)  # accounts that can be liquidated
        self.held0 = np.bincount(tb.venue[self.trader], weights=np.abs(tb.size[self.trader]), minlength=len(vb.rules))
        self.opened0 = model.market.opened.copy()
        self.size = tb.size.copy()  # at the start of the step being observed
        self.opened = self.opened0.copy()
        self.parts = model.events.n[1:].copy()  # parts of the event log already checked
        self.forced = np.isin(np.arange(len(EVENT_KINDS)), [EVENT_KINDS.index(k) for k in FORCED_KINDS])
        self.closed = np.zeros(len(vb.rules))  # forced closes per venue (BTC)
        self.margin = np.zeros(len(vb.rules))  # worst maintenance over unscaled initial margin per venue
        self.margin_step = np.full(len(vb.rules), -1)  # first step it went above 1
        self.reopen: list[Violation] = []
        self._scratch = np.zeros(tb.n)  # per account, for closed_out (left at zero)
        self._slack = np.array([1 + _REL, 1e-12])  # an account may close room x [0] + [1] BTC
        self._found = np.zeros((4, 3))  # per account flagged in a step (at most 3): account, closed, room, held
        self._dnet = np.zeros(len(vb.rules))  # ledger_pass's outputs: net position drift per venue (BTC)
        self._sums = np.zeros(6)  # and its sums (see ledger_pass)
        self.money: tuple[float, float, int] | None = None  # worst drift, its tolerance, first step over it
        self.positions: tuple[float, float, int] | None = None
        self._money_tol = self.ledger.rel_tol * self.ledger.gross  # USD (Ledger.drift's)
        events, mkt = model.events, model.market
        # ledger_pass's arguments but the event log's growable buffers and the step (arrays fixed for the run)
        self._pass_args = kernels.bundle((
            events.n, self.parts, self.forced, self.closed, self._scratch, self._slack, self._found, tb.size, tb.hedge,
            tb.venue, mkt.opened, self.size, self.opened, self.ledger.net0, mkt.spot, vb.fund, vb.fees,
            vb.collateral_loss, vb.tier_floor, vb.tier_rate, vb.tier_lev, vb.margin_mult, vb.is_spot, self.margin,
            self.margin_step, 1.0 + _REL, self._dnet, self._sums))
        self._pass(0)

    def observe(self) -> None:
        """Check the step just run."""
        step = self.model.steps
        dm, tol, _, ptol, worst = self._pass(step)
        if abs(dm) > tol and (self.money is None or abs(dm) > abs(self.money[0])):
            self.money = (dm, tol, step if self.money is None else self.money[2])
        if worst > ptol and (self.positions is None or worst > self.positions[0]):
            self.positions = (worst, ptol, step if self.positions is None else self.positions[2])

    def _pass(self, step: int) -> tuple[float, float, np.ndarray, float, float]:
        """One compiled call (``kernels_passes.ledger_pass``): the event log's new parts
        (forced closes per venue; what each account closed against what it held at the
        step's start and opened during it, each over its room a ``liquidated_only_after_reopening``
        violation); each venue's worst maintenance over unscaled initial margin so far and the
        first step above 1; ``Ledger.drift`` (money drift USD, its tolerance, per-venue net
        position drift BTC, its tolerance) and the largest net position drift; every
        account's size and opened position kept for the next step's check. The money sums are
        ``np.sum``'s (the large ones here, the venues' in the kernel in its order); the net
        positions and the positions' tolerance are summed in the kernel's own order (see
        ``ledger_pass``); the deposits are summed only in a run that refills (``MarketModel.refilling``:
        they change only then). The net drift is the monitor's buffer, overwritten by the next pass."""
        tb, led, events = self.model.tb, self.ledger, self.model.events
        flagged = kernels_passes.ledger_pass(events.ints, events.floats, events.starts, step, self._pass_args)
        if flagged:
            self._reopened(step, flagged)
        abs_size, abs_hedge, worst, fund, fees, collateral_loss = self._sums.tolist()
        money = float(tb.cash.sum() + tb.hedge_cash.sum() + fund + fees + collateral_loss)  # audit.money
        m = money - (float(tb.deposit.sum()) - led.deposit0) if self.model.refilling else money  # less new deposits
        return m - led.money0, self._money_tol, self._dnet, led.rel_tol * (abs_size + abs_hedge + 1.0), worst

    def _reopened(self, step: int, flagged: int) -> None:
        """Record the ``liquidated_only_after_reopening`` violations of the first ``flagged``
        accounts the pass found in ``step``."""
        tb, vb = self.model.tb, self.model.vb
        for a, c, r, h in self._found[:, :flagged].T.tolist():
            a = int(a)
            self.reopen.append(Violation(
                "liquidated_only_after_reopening", vb.names[tb.venue[a]],
                f"account {a} closed out of {c:.6g} BTC in step {step} holding {h:.6g} and opening {r - h:.6g}",
                c, r, "BTC"))

    def finish(self, values: dict[str, float], definitions) -> pd.DataFrame:
        """The run's violations (:data:`COLUMNS`), given its metric values and definitions."""
        model, tb, vb = self.model, self.model.tb, self.model.vb
        out: list[Violation] = []
        for v in np.flatnonzero(self.margin > 1.0 + _REL):
            r = vb.rules[v]
            out.append(Violation("maintenance_below_initial", r.name,
                                 f"maintenance {self.margin[v]:.3g}x the unscaled initial margin on {r.name} from "
                                 f"step {self.margin_step[v]} (maintenance_ratio {r.maintenance_ratio:g}, "
                                 f"multiplier up to {self.margin[v] / max(r.maintenance_ratio, 1e-300):.3g})",
                                 float(self.margin[v]), 1.0, "share of initial margin"))
        with np.errstate(invalid="ignore"):
            floor = np.where(np.isfinite(tb.lev_cap), tb.mm_floor * tb.lev_cap, 0.0)
        bad = np.flatnonzero(self.trader & (floor > 1.0 + _REL))
        for v in np.unique(tb.venue[bad]):
            on = bad[tb.venue[bad] == v]
            out.append(Violation("maintenance_below_initial", vb.names[v],
                                 f"{len(on)} accounts' close-out floor above their initial margin at the rules' "
                                 f"leverage cap (worst {floor[on].max():.3g}x)", float(floor[on].max()), 1.0,
                                 "share of initial margin"))
        opened = np.bincount(tb.venue[self.trader], weights=(model.market.opened - self.opened0)[self.trader],
                             minlength=len(vb.rules))
        limit = self.held0 + opened
        for v in np.flatnonzero(self.closed > limit * (1 + _REL) + 1e-9):
            out.append(Violation("liquidated_within_open_interest", vb.names[v],
                                 f"{self.closed[v]:.6g} BTC closed out on {vb.names[v]} > {self.held0[v]:.6g} held "
                                 f"at the start + {opened[v]:.6g} opened", float(self.closed[v]), float(limit[v]),
                                 "BTC"))
        out += self.reopen
        out += _groups(values, definitions)
        if self.money is not None:
            dm, tol, step = self.money
            out.append(Violation("money_conserved", "", f"money drifted by up to {dm:+.6g} USD from step {step} "
                                 f"(tolerance {tol:.3g})", dm, tol, "USD"))
        if self.positions is not None:
            d, tol, step = self.positions
            out.append(Violation("money_conserved", "", f"net positions drifted by up to {d:.6g} BTC from step "
                                 f"{step} (tolerance {tol:.3g})", d, tol, "BTC"))
        return table(out)


def _groups(values: dict[str, float], definitions) -> list[Violation]:
    """``groups_add_up`` over every family of the metrics registry (see the module docstring)."""
    out = []
    for section in SECTIONS:
        for item, _ in section.entries:
            if not isinstance(item, Family) or item.unit not in ADDITIVE_UNITS:
                continue
            total = definitions.get(item.stem)
            if total is None or total.unit != item.unit or math.isnan(values.get(item.stem, math.nan)):
                continue
            prefix = f"{item.stem}.{item.label}."
            members = [values[k] for k in values if k.startswith(prefix)]
            if not members:
                continue
            s = float(np.nansum(members))
            t = values[item.stem]
            tol = _REL * max(abs(s), abs(t), float(np.nansum(np.abs(members)))) + 1e-6
            if item.over in RESIDENT_FAMILIES:  # the population's share of a total the venues' own rows add to
                if min(members) >= 0 and s > t + tol:
                    out.append(Violation("groups_add_up", "", f"{prefix}* sums to {s:.10g}, above {item.stem} "
                                         f"({t:.10g})", s, t, item.unit))
                continue
            if abs(s - t) > tol:
                out.append(Violation("groups_add_up", "", f"{prefix}* sums to {s:.10g}, {item.stem} is {t:.10g}",
                                     s, t, item.unit))
    return out

"""What a metric section is made of: typed metric declarations, each bound to the
function that computes it (EMA Workbench's ``ScalarOutcome(name, function=..., kind=...)``),
and :class:`Run`, the finished run those functions read.

A section file creates one :class:`Section` and declares its metrics on it, in report
order, with the decorators :meth:`Section.metric` (one value) and
:meth:`Section.family` (one value per venue, trader class or side)::

    SECTION = Section("liquidations", "Liquidations")

    @SECTION.metric("stopped_usd", "USD", "notional closed by triggered stop-loss orders", LOWER)
    def stopped_usd(run: Run) -> float:
        return run.events["notional"][run.events["kind"] == EVENT_KINDS.index("stop")].sum()

A value several metrics share is a function decorated with :func:`shared` (computed
once per run); values several sections share are properties of :class:`Run`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from policylab.inputs.scenario import Scenario
from policylab.metrics.state import Start, drawdown, event_arrays, venue_series, wealth
from policylab.names import (CLASSES, JURISDICTIONS, LEVERAGE_GROUP_FLOORS, LEVERAGE_GROUPS, LIQUIDABLE_CLASSES,
                             PROTOCOL_CLASSES, VENUE_CLASSES)

DIRECTIONS = ("lower_is_better", "higher_is_better", "neutral")
LOWER, HIGHER, NEUTRAL = DIRECTIONS
SIDES = ("long", "short")
TRADER_CLASSES = LIQUIDABLE_CLASSES  # every class an account can be liquidated in
# what a family has one metric per
OVER = ("venue", "derivatives_venue", "class", "trader_class", "side", "jurisdiction", "leverage_group")


def _with_nan(description: str, nan: str) -> str:
    clause = f" (NaN: {nan})"
    return description if not nan or description.endswith(clause) else description + clause


@dataclass(frozen=True)
class Metric:
    """One scalar outcome of a run. ``direction``: one of DIRECTIONS (whether a rule set
    that lowers it is doing better). ``nan``: when the value is undefined (NaN), appended
    to the description as ``(NaN: ...)``; empty for a value that is finite in any run
    with derivatives open interest, volume and depth."""

    name: str
    unit: str
    description: str
    direction: str
    nan: str = ""

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name}: direction {self.direction!r}; allowed: {', '.join(DIRECTIONS)}")
        object.__setattr__(self, "description", _with_nan(self.description, self.nan))


@dataclass(frozen=True)
class Family:
    """A template for one metric per member: the scenario's venues (``over="venue"``), its
    derivatives venues (``"derivatives_venue"``), account classes (``"class"``), trader
    classes (``"trader_class"``), sides, jurisdictions of residence (``"jurisdiction"``:
    names.JURISDICTIONS) or groups of the leverage chosen before any rule
    (``"leverage_group"``: names.LEVERAGE_GROUPS). Named ``<stem>.venue.<venue>``,
    ``<stem>.class.<class>``, ``<stem>.side.<side>``, ``<stem>.jurisdiction.<J>`` or
    ``<stem>.leverage_group.<group>``; ``description`` may use ``{member}``."""

    stem: str
    over: str  # one of OVER
    unit: str
    description: str
    direction: str
    nan: str = ""

    def __post_init__(self):
        if self.over not in OVER:
            raise ValueError(f"metric family {self.stem}: over {self.over!r}; allowed: {', '.join(OVER)}")

    @property
    def label(self) -> str:
        return {"derivatives_venue": "venue", "trader_class": "class"}.get(self.over, self.over)

    def members(self, scenario: Scenario | None) -> tuple[str, ...]:
        """Member names; without a scenario, venues are the placeholder ``<venue>``."""
        fixed = {"class": CLASSES, "trader_class": TRADER_CLASSES, "side": SIDES, "jurisdiction": JURISDICTIONS,
                 "leverage_group": LEVERAGE_GROUPS}
        if self.over in fixed:
            return fixed[self.over]
        if scenario is None:
            return ("<venue>",)
        return tuple(v.name for v in scenario.venues if self.over == "venue" or not v.is_spot)

    def expand(self, scenario: Scenario | None) -> list[Metric]:
        return list(_family_metrics(self, self.members(scenario)))


@functools.lru_cache(maxsize=4096)
def _family_metrics(family: Family, members: tuple[str, ...]) -> tuple[Metric, ...]:
    """A family's metrics for these members (built once: every run asks twice, Metric is frozen)."""
    return tuple(Metric(f"{family.stem}.{family.label}.{m}", family.unit, family.description.format(member=m),
                        family.direction, family.nan) for m in members)


# ------------------------------------------------------------------------ the finished run
class Run:
    """A finished model and its starting snapshot, with the quantities several sections
    read, each computed once: venue masks and names, the event arrays, the venue table,
    starting derivatives open interest, end wealth, the index drawdown."""

    def __init__(self, model, start: Start):
        self.model, self.start = model, start
        self.scenario, self.tb, self.vb = model.scenario, model.tb, model.vb
        self.memo: dict[Callable, object] = {}

    @cached_property
    def names(self) -> np.ndarray:
        """Venue names, in venue order."""
        return np.array(self.vb.names)

    @cached_property
    def deriv(self) -> np.ndarray:
        """Per venue: a derivatives venue (not spot)."""
        return ~self.vb.is_spot

    @property
    def k(self) -> int:
        """Number of venues."""
        return len(self.names)

    @cached_property
    def series(self) -> dict[str, np.ndarray]:
        """The per-step venue table, (steps x venues) arrays by column."""
        return venue_series(self.model)

    @cached_property
    def events(self) -> dict[str, np.ndarray]:
        """The event log's arrays (see :func:`policylab.metrics.state.event_arrays`)."""
        return event_arrays(self.model)

    @cached_property
    def oi0(self) -> float:
        """Derivatives open interest at the start (USD)."""
        return self.start.open_interest[self.deriv].sum()

    @cached_property
    def traders(self) -> np.ndarray:
        """Per account: a trader (not a market maker's book or a backstop vault)."""
        return ~np.isin(self.tb.cls, PROTOCOL_CLASSES)

    @cached_property
    def residents(self) -> np.ndarray:
        """Per account: one of the scenario's population (it has a jurisdiction of residence
        and a chosen leverage), not a venue's own row (book, arbitrage desk, backstop vault)."""
        return ~np.isin(self.tb.cls, VENUE_CLASSES)

    @cached_property
    def leverage_group(self) -> np.ndarray:
        """Per account: index in names.LEVERAGE_GROUPS of the leverage it chose before any rule."""
        return np.maximum(np.searchsorted(LEVERAGE_GROUP_FLOORS, self.tb.lev_chosen, side="right") - 1, 0)

    def by_jurisdiction(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Per jurisdiction of residence: the sum of per-account ``values`` over the
        population's accounts (within ``mask``)."""
        keep = self.residents if mask is None else self.residents & mask
        return np.bincount(self.tb.juris[keep], np.broadcast_to(values, keep.shape)[keep], minlength=len(JURISDICTIONS))

    def by_leverage_group(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Per leverage group: the sum of per-account ``values`` over the population's
        accounts (within ``mask``)."""
        keep = self.residents if mask is None else self.residents & mask
        return np.bincount(self.leverage_group[keep], np.broadcast_to(values, keep.shape)[keep],
                           minlength=len(LEVERAGE_GROUPS))

    @cached_property
    def resident_series(self) -> dict[str, np.ndarray]:
        """The per-step state of the population's accounts by jurisdiction of residence,
        (steps x jurisdictions x venues) arrays by column (open_interest_usd, volume_usd)."""
        return {c: a[:self.model.steps] for c, a in self.model.resident_series.items()}

    @cached_property
    def pnl(self) -> np.ndarray:
        """Per account: wealth at the end minus wealth at the start, less the money deposited
        during the run (new traders refilling wiped-out accounts: new money, not profit) (USD)."""
        return self.wealth_end - self.start.wealth - (self.tb.deposit - self.start.deposit)

    @cached_property
    def wealth_end(self) -> np.ndarray:
        """Per account: wealth at the end (USD)."""
        return wealth(self.model)

    @cached_property
    def volume(self) -> np.ndarray:
        """Per venue: traded notional over the run (USD)."""
        return self.series["volume_usd"].sum(axis=0)

    @cached_property
    def index_drawdown(self) -> tuple[float, int, int]:
        """The index's largest fall from a running peak (fraction), its peak and trough steps."""
        return drawdown(self.model.index_path)


def shared(fn: Callable[[Run], object]) -> Callable[[Run], object]:
    """Decorate a value several metrics of a section use: computed once per run."""
    @functools.wraps(fn)
    def once(run: Run):
        if fn not in run.memo:
            run.memo[fn] = fn(run)
        return run.memo[fn]
    return once


def ratio(a, b):
    """a / b, NaN where b is zero."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / b, np.nan)


# ------------------------------------------------------------------------ sections
class Section:
    """One file's metrics, each declared with the function that computes it, in report order.

    A metric's function returns a float; a family's returns one value per member, in the
    order of :meth:`Family.members`.
    """

    def __init__(self, name: str, title: str):
        self.name, self.title = name, title
        self.entries: list[tuple[Metric | Family, Callable[[Run], object]]] = []

    def _declare(self, item: Metric | Family):
        def bind(fn):
            self.entries.append((item, fn))
            return fn
        return bind

    def metric(self, name: str, unit: str, description: str, direction: str, nan: str = ""):
        """Decorate the function computing metric ``name`` (see :class:`Metric`)."""
        return self._declare(Metric(name, unit, description, direction, nan))

    def family(self, stem: str, over: str, unit: str, description: str, direction: str, nan: str = ""):
        """Decorate the function computing family ``stem`` over ``over`` (see :class:`Family`)."""
        return self._declare(Family(stem, over, unit, description, direction, nan))

    def declared(self, scenario: Scenario | None) -> list[Metric]:
        """This section's metrics for ``scenario``; without one, venue families once as ``<venue>``."""
        return [m for item, _ in self.entries for m in _expand(item, scenario)]

    def compute(self, run: Run) -> dict[str, float]:
        """This section's metrics of a finished run, in declaration order."""
        out: dict[str, float] = {}
        for item, fn in self.entries:
            if isinstance(item, Metric):
                out[item.name] = float(fn(run))
                continue
            metrics, values = item.expand(run.scenario), list(fn(run))
            if len(values) != len(metrics):
                raise ValueError(f"metric family {item.stem}.{item.label}: {len(values)} values for "
                                 f"{len(metrics)} members")
            out.update((m.name, float(v)) for m, v in zip(metrics, values))
        return out


def _expand(item: Metric | Family, scenario: Scenario | None) -> Iterable[Metric]:
    return item.expand(scenario) if isinstance(item, Family) else [item]

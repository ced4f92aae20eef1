"""The policy module API.

A policy module is a class with declared, typed parameters (``Param``: unit, bounds,
default, description, real-world source), a target (which venues, by kind or name;
which traders, by class, jurisdiction and account age) and hooks where its rule acts.
Every hook is optional; the model composes the hooks of all configured modules:

=====================  ===========================================  =========================
hook                   what it returns                              composition
=====================  ===========================================  =========================
``venue_rules``        proposed VenueRules fields for a target venue  per field, see MERGE
``new_venues``         venues the rule creates (listed leveraged spot)  all are added
``leverage_cap``       largest leverage for targeted accounts         the lowest wins
``closeout_level``     close-out at this share of required margin     the highest wins
``denies``             who may not trade on a venue (mask)            any denial denies
``desired_leverage``   multiplier on targeted traders' chosen leverage  factors multiply
``position_limit``     largest position per real account (USD)        the lowest wins
``open_interest_cap``  largest open interest of a venue (USD)          the lowest wins
``on_step``            market-wide interventions each step            all act
=====================  ===========================================  =========================

Two modules that set the same venue field to values that cannot both hold (two ADL
rankings) contradict each other: that is an error naming both. The account-level hooks
combine as declared in ACCOUNT_HOOKS, the venue fields as declared in MERGE.

Hooks are pure: a module holds its configuration only, never run state. Whether it took
effect is counted by the model in its effects ledger (policylab.engine.effects); a module
that is configured but never takes effect during a run is reported in the run's warnings.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from policylab.inputs.values import Invalid, coerce, did_you_mean, shown
from policylab.names import CLASSES, CONFIGURABLE_CLASSES, JURISDICTIONS

TRADER_CLASS_NAMES = CONFIGURABLE_CLASSES  # the classes a target may name

# How proposals for the same VenueRules field combine: the most restrictive wins.
MERGE = {
    "max_leverage": min,  # caps every tier's leverage
    "maintenance_ratio": max,
    "kyc_required": any,
    "negative_balance_protection": any,
    "insurance_fund_usd": max,
    "liquidation_fee": max,
    "partial_threshold_usd": min,
    "partial_fraction": min,
    "cooldown_seconds": max,
    "backstop_threshold": max,
    "taker_fee": max,
    "collateral_haircut": max,
    "fee_to_fund": max,
    "adl_ranking": "equal",  # two different rankings contradict
}

# How the account-level hooks of all modules covering an account combine: hook ->
# (NumPy function folding one module's value into the running value, the value when no
# module sets it). The engine applies exactly these hooks, in this order.
ACCOUNT_HOOKS = {
    "leverage_cap": (np.minimum, np.inf),  # the lowest cap wins
    "closeout_level": (np.maximum, 0.0),  # the highest close-out level wins
    "desired_leverage": (np.multiply, 1.0),  # factors multiply
    "position_limit": (np.minimum, np.inf),  # the lowest limit (USD per real account) wins
}


class PolicyError(ValueError):
    """A policy configuration that cannot hold (bad parameter, contradiction)."""


@dataclass(frozen=True)
class Param:
    """A declared parameter of a policy module."""

    default: Any
    unit: str
    description: str
    source: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    name: str = ""

    def __set_name__(self, owner, name):
        object.__setattr__(self, "name", name)

    def __get__(self, instance, owner):
        return self if instance is None else instance.values[self.name]

    @property
    def kind(self) -> type:
        return bool if isinstance(self.default, bool) else type(self.default)

    def check(self, value, where: str):
        """Return ``value`` converted to the parameter's type (the input layer's coercion:
        numeric strings read as numbers, lists as tuples, NaN refused, infinity only where
        the default is infinite), or raise PolicyError."""
        kind = self.kind
        infinite = kind is float and math.isinf(self.default)
        try:
            value = coerce(value, tuple[Any, ...] if kind is tuple else kind, {"infinite": infinite})
        except Invalid:
            raise PolicyError(f"{where}: got {value!r}; allowed: {self.allowed()}") from None
        if self.choices is not None:
            items = value if kind is tuple else (value,)
            bad = [x for x in items if x not in self.choices]
            if bad:
                raise PolicyError(f"{where}: got {bad[0]!r}; allowed: {self.allowed()}")
        if kind in (int, float) and ((self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi)):
            raise PolicyError(f"{where}: got {value!r}; allowed: {self.allowed()}")
        return value

    def allowed(self) -> str:
        if self.choices is not None:
            return ("a list of " if self.kind is tuple else "one of ") + ", ".join(map(str, self.choices))
        if self.kind is bool:
            return "true or false"
        if self.kind in (int, float):
            what = "an integer" if self.kind is int else "a number"
            lo = "-inf" if self.lo is None else f"{self.lo:g}"
            if self.hi is not None or math.isinf(self.default):
                hi = "inf" if self.hi is None else f"{self.hi:g}"
                return f"{what} from {lo} to {hi} ({self.unit})"
            finite = f"a finite {what.split()[-1]}"
            return f"{finite} >= {lo} ({self.unit})" if self.lo is not None else f"{finite} ({self.unit})"
        return f"a {self.kind.__name__}"


@dataclass(frozen=True)
class Target:
    """Where a module applies. Empty tuples mean all.

    ``jurisdictions`` names whose rule it is, and a rule binds where that jurisdiction
    reaches (MODEL.md section 3a). A module that binds venues (``Policy.binds`` =
    "domestic": caps, close-out, protections, bans) binds the venues licensed there
    (``VenueRules.home`` in the list) for everyone they serve in the targeted classes, and
    never an offshore venue. A module that reaches residents (``Policy.binds`` =
    "residents": access rules, which offshore venues apply by serving, refusing or
    blocking) covers the accounts resident there, on the targeted venues.
    """

    venues: tuple[str, ...] = ()  # venue kinds or names
    classes: tuple[str, ...] = ()  # trader classes
    jurisdictions: tuple[str, ...] = ()
    max_account_age_days: float | None = None  # only accounts younger than this
    by_residence: bool = False  # jurisdictions select accounts by residence (set from Policy.binds)

    def venue_matches(self, venue) -> bool:
        if self.venues and venue.kind not in self.venues and venue.name not in self.venues:
            return False
        return self.by_residence or not self.jurisdictions or venue.home in self.jurisdictions

    def account_mask(self, tb, idx: np.ndarray) -> np.ndarray:
        """Which of accounts ``idx`` this target covers (venue not considered)."""
        ok = np.ones(len(idx), dtype=bool)
        if self.classes:
            ok &= np.isin(tb.cls[idx], [CLASSES.index(c) for c in self.classes])
        if self.jurisdictions and self.by_residence:
            ok &= np.isin(tb.juris[idx], [JURISDICTIONS.index(j) for j in self.jurisdictions])
        if self.max_account_age_days is not None:
            ok &= tb.age_days[idx] < self.max_account_age_days
        return ok

    @classmethod
    def parse(cls, data, where: str) -> "Target":
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise PolicyError(f"{where}: expected a mapping with venues, classes, jurisdictions")
        allowed = {"venues", "classes", "jurisdictions", "max_account_age_days"}
        for key in data:
            if key not in allowed:
                raise PolicyError(f"{where}.{key}: unknown target field; allowed: {', '.join(sorted(allowed))}")
        def names(key, valid):
            value = data.get(key, ())
            kinds = f"a list of {', '.join(valid)}" if valid is not None else "a list of venue kinds or names"
            if not isinstance(value, (str, list, tuple)):
                raise PolicyError(f"{where}.{key}: got {shown(value)}; allowed: {kinds}")
            value = (value,) if isinstance(value, str) else tuple(value)
            for x in value:
                if not isinstance(x, str) or (valid is not None and x not in valid):
                    hint = did_you_mean(x, valid or ()) if isinstance(x, str) else ""
                    raise PolicyError(f"{where}.{key}: got {shown(x)}{hint}; allowed: {kinds}")
            return value
        venues = names("venues", None)
        age = data.get("max_account_age_days")
        if age is not None and (isinstance(age, bool) or not isinstance(age, (int, float)) or not math.isfinite(age)
                                or age <= 0):
            raise PolicyError(f"{where}.max_account_age_days: got {shown(age)}; allowed: a finite number of days "
                              "above 0")
        return cls(venues=venues, classes=names("classes", TRADER_CLASS_NAMES),
                   jurisdictions=names("jurisdictions", JURISDICTIONS),
                   max_account_age_days=None if age is None else float(age))


class Policy:
    """Base class of policy modules. Subclasses declare ``Param`` class attributes,
    ``name``, ``title``, ``source`` and implement the hooks they need."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    source: ClassVar[str] = ""
    default_venues: ClassVar[Sequence[str]] = ()  # venue kinds targeted when the rule set names none (read at construction)
    default_classes: ClassVar[tuple[str, ...]] = ()  # trader classes targeted when the rule set names none
    # where a target's jurisdictions reach (Target): "domestic" (the venues licensed there)
    # or "residents" (the accounts resident there, on whichever targeted venue)
    binds: ClassVar[str] = "domestic"

    def __init__(self, target: Target | None = None, rule_set: str = "", **params):
        target = target or Target()
        if self.binds not in ("domestic", "residents"):
            raise PolicyError(f"{self.name}.binds: got {self.binds!r}; allowed: domestic, residents")
        self.target = dataclasses.replace(target, venues=target.venues or tuple(self.default_venues),
                                          classes=target.classes or self.default_classes,
                                          by_residence=self.binds == "residents")
        self.rule_set = rule_set
        self.where = ""  # where the module is configured (file:line: modules[i]), for messages
        declared = self.params()
        for key in params:
            if key not in declared:
                raise PolicyError(f"{self.name}.{key}: unknown parameter; allowed: {', '.join(declared) or 'none'}")
        self.given = set(params)
        self.values = {k: p.check(params.get(k, p.default), f"{self.name}.{k}") for k, p in declared.items()}

    @classmethod
    def params(cls) -> dict[str, Param]:
        out = {}
        for klass in reversed(cls.__mro__):
            out.update({k: v for k, v in vars(klass).items() if isinstance(v, Param)})
        return out

    def account_mask(self, tb, idx: np.ndarray) -> np.ndarray:
        """Which of accounts ``idx`` the module covers (its target's classes, jurisdictions, age)."""
        return self.target.account_mask(tb, idx)

    def describe(self) -> dict:
        return {"module": self.name, "title": self.title, "params": dict(self.values), "binds": self.binds,
                "target": {k: v for k, v in dataclasses.asdict(self.target).items() if v and k != "by_residence"}}

    # ------------------------------------------------------------------ hooks
    def venue_rules(self, venue) -> dict[str, Any]:
        return {}

    def new_venues(self) -> list:
        return []

    def leverage_cap(self) -> float | None:
        return None

    def closeout_level(self) -> float | None:
        return None

    def denies(self, model, tb, idx: np.ndarray, venue) -> np.ndarray | None:
        """Mask over accounts ``idx`` that may not trade on ``venue`` (None: no rule)."""
        return None

    def desired_leverage(self) -> float | None:
        return None

    def position_limit(self) -> float | None:
        return None

    def open_interest_cap(self, venue) -> float | None:
        return None

    def on_step(self, model) -> None:
        return None


def merge_venue_rules(venue, modules: list[Policy]) -> tuple[dict[str, Any], list[Policy]]:
    """Compose the modules' proposals for one venue: (fields to set, modules that changed it).
    Raises PolicyError on a contradiction."""
    proposals: dict[str, list[tuple[Any, Policy]]] = {}
    for mod in modules:
        if not mod.target.venue_matches(venue):
            continue
        for key, value in mod.venue_rules(venue).items():
            if key not in MERGE:
                raise PolicyError(f"{mod.name}: venue_rules proposes {key!r}, which has no merge rule; allowed: {', '.join(MERGE)}")
            proposals.setdefault(key, []).append((value, mod))
    fields, changed = {}, []
    for key, items in proposals.items():
        rule = MERGE[key]
        values = [v for v, _ in items]
        if rule == "equal":
            if len(set(values)) > 1:
                a, b = items[0], next(i for i in items if i[0] != items[0][0])
                raise PolicyError(f"venue {venue.name}: {key} is {a[0]!r} in {_who(a[1])} "
                                  f"but {b[0]!r} in {_who(b[1])}; they contradict")
            value = values[0]
        elif rule is any:
            value = any(values)
        else:
            value = rule(values)
        current = venue.max_leverage if key == "max_leverage" else getattr(venue, key)
        if value != current:
            fields[key] = value
            changed += [m for v, m in items if v == value]
    return fields, changed


def _who(mod: Policy) -> str:
    """rule set:module, and where it is configured if known."""
    where = getattr(mod, "where", "")
    return f"{mod.rule_set or '?'}:{mod.name}" + (f" ({where})" if where else "")


def describe_class(cls: type[Policy]) -> dict:
    """Parameters, units, defaults and sources of a module class (for listings)."""
    return {"module": cls.name, "title": cls.title, "source": cls.source,
            "doc": inspect.cleandoc(cls.__doc__ or ""),
            "params": {k: dataclasses.asdict(p) for k, p in cls.params().items()}}


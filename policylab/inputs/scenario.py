"""Scenarios: everything that is not policy, loaded from YAML by name or path.

A scenario names its venues (archetype plus overrides, starting open interest), its
population, its starting price, market parameters and exogenous shocks. Built-in
scenarios live in ``policylab/scenarios/*.yaml`` and ship with the package.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from policylab.errors import InputError
from policylab.engine.market import MarketParams
from policylab.inputs.values import as_number
from policylab.names import CONFIGURABLE_CLASSES, JURISDICTIONS
from policylab.venues import VenueRules, make_venue

TRADER_CLASSES = CONFIGURABLE_CLASSES  # the population classes a scenario may configure
SIGNED_FIELDS = ("size", "quit_utility", "onshore_trust")  # numeric fields that may be negative


@dataclass
class ClassSpec:
    """One trader population. Leverage is lognormal (median, sigma) with a share drawn
    log-uniformly from the tail range; every draw is capped by the venue's tier."""

    share: float  # share of simulated accounts
    oi_share: float = 0.0  # share of each venue's open interest held by this class
    venues: dict[str, float] = field(default_factory=dict)  # venue name -> probability
    leverage_median: float = 5.0
    leverage_sigma: float = 0.5
    venue_leverage_median: dict[str, float] = field(default_factory=dict)  # venue name -> median for accounts there (default: leverage_median)
    leverage_tail_share: float = 0.0
    leverage_tail: tuple[float, float] = (50.0, 1000.0)
    cap_use: float = 1.0  # largest share of the venue's leverage cap the class uses (risk buffer)
    long_share: float = 0.5
    stop_share: float = 0.0  # share of accounts with a stop-loss order
    stop_distance: tuple[float, float] = (0.02, 0.10)  # stop distance range from entry (fraction)
    activity_per_minute: float = 0.0  # share of accounts reconsidering each minute
    activity_vol_elasticity: float = 0.0  # flat accounts trade more: activity x (1 + this x (15-minute realised vol / normal vol - 1)); 0: constant
    panic_move: float = 0.03  # adverse 15-minute index move that makes active holders close
    dip_move: float = 0.02  # 15-minute move after which active flat accounts trade on it
    momentum_share: float = 0.5  # share of those who follow the move (the rest fade it)
    risk_limit: float = 1.5  # professionals cut back when leverage exceeds this multiple of their target
    relever_below: float = 0.0  # professionals add back to target when leverage falls below this share of it (0: never)
    refill_half_life_minutes: float = 0.0  # wiped-out accounts are replaced by new money with this half-life (0: never)
    holdings_usd: float = 0.0  # institutional spot/ETF holdings (USD)
    outflow_per_minute: float = 0.0  # institutional selling per minute in a drawdown (share of holdings)


@dataclass
class ShockSpec:
    kind: str  # price | liquidity | collateral | volatility
    start_minute: float
    duration_minutes: float
    size: float = 0.0  # price: total log move over the duration
    depth_multiplier: float = 1.0  # liquidity: depth multiplier during the window
    recovery_half_life_minutes: float = 60.0  # liquidity: recovery after the window
    venues: tuple[str, ...] = ()  # liquidity/collateral: venues hit (empty: all)
    price: float = 1.0  # collateral: value of one stablecoin unit during the depeg
    ramp_minutes: float = 10.0  # collateral: minutes to reach the depeg price and to recover
    multiplier: float = 1.0  # volatility: multiplier on fundamental volatility


@dataclass
class VenueChoice:
    """Utility weights of the venue choice traders make under new rules (policylab.engine.choice)."""

    leverage_weight: float = 2.0  # per unit of log(allowed / wanted leverage)
    fee_weight: float = 100.0  # per unit of taker fee (share of notional)
    kyc_friction: float = 0.5  # cost of verifying identity for an unverified trader
    switching_cost: float = 0.3  # cost of moving to another venue
    onshore_trust: float = 0.0  # preference for regulated venues
    quit_utility: float = -1.5  # utility of not trading at all
    noise: float = 0.5  # scale of idiosyncratic (Gumbel) tastes


@dataclass
class Scenario:
    name: str
    title: str
    description: str
    venues: list[VenueRules]
    open_interest: dict[str, float]  # venue -> starting open interest (USD)
    classes: dict[str, ClassSpec]
    start_price: float
    duration_minutes: int = 1440
    step_minutes: int = 1
    traders: int = 20_000
    real_accounts: float = 2_000_000
    jurisdictions: dict[str, float] = field(default_factory=lambda: {"US": 0.15, "EU": 0.2, "UK": 0.05, "JP": 0.05, "other": 0.55})
    kyc_share: float = 0.6
    sigma_daily: float = 0.025  # fundamental volatility per day (log)
    entry_dispersion: float = 0.03  # spread (log sd) of open positions' entry prices around the start price
    size_leverage_elasticity: float = 1.0  # account notional ~ leverage^-elasticity (small accounts lever more)
    garch_alpha: float = 0.05  # GARCH(1,1) weight of the last squared step return (per step)
    garch_beta: float = 0.90  # GARCH(1,1) weight of the last conditional variance (per step)
    innovation_df: float = 0.0  # Student-t degrees of freedom of the fundamental's innovations (0: normal)
    market_maker_capital_usd: float = 5e8  # per venue
    arbitrage_capital_usd: float = 5e8  # per derivatives venue
    market: MarketParams = field(default_factory=MarketParams)
    venue_choice: VenueChoice = field(default_factory=VenueChoice)
    shocks: list[ShockSpec] = field(default_factory=list)
    sources: tuple[str, ...] = ()
    path: str = ""

    @property
    def steps(self) -> int:
        return self.duration_minutes // self.step_minutes


# ------------------------------------------------------------------------ loading
def builtin_dir():
    return resources.files("policylab") / "scenarios"


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in builtin_dir().iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path. Raises InputError."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise InputError(f"{name_or_path}: scenario file not found")
        text, where = path.read_text(), str(path)
    else:
        names = builtin_names()
        if name_or_path not in names:
            close = difflib.get_close_matches(name_or_path, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"unknown scenario {name_or_path!r}{hint}; allowed: {', '.join(names)} or a path to a .yaml file")
        text = (builtin_dir() / f"{name_or_path}.yaml").read_text()
        where = f"{name_or_path}.yaml"
    return parse_scenario(_resolve(text, where, seen=()), where)


def _read_yaml(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as e:  # ValueError: a scalar YAML cannot construct (2021-02-30)
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise InputError(f"{where}:{line} not valid YAML ({getattr(e, 'problem', e)})") from None


def _resolve(text: str, where: str, seen: tuple[str, ...]):
    """Parse YAML and apply ``extends: NAME``: the named built-in scenario, deep-merged
    with this file's keys (mappings merge, everything else replaces)."""
    data = _read_yaml(text, where)
    if not isinstance(data, dict) or "extends" not in data:
        return data
    base_name = str(data.pop("extends"))
    if base_name not in builtin_names():
        raise InputError(f"{where}.extends: unknown scenario {base_name!r}; allowed: {', '.join(builtin_names())}")
    if base_name in seen:
        raise InputError(f"{where}.extends: circular extends through {base_name!r}")
    base = _resolve((builtin_dir() / f"{base_name}.yaml").read_text(), f"{base_name}.yaml", seen + (base_name,))
    return _merge(base, data)


def _merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return over


def _check_keys(d: dict, allowed, where: str) -> None:
    for key in d:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"{where}.{key}: unknown field{hint}; allowed: {', '.join(sorted(allowed))}")


def _num(d: dict, key: str, where: str, lo=None, hi=None, default=None, integer=False):
    if key not in d:
        if default is None:
            raise InputError(f"{where}.{key}: missing; required")
        return default
    v = as_number(d[key])
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
        raise InputError(f"{where}.{key}: got {v!r}; allowed: {'an integer' if integer else 'a number'}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        allowed = f"{lo:g} to {hi:g}" if hi is not None else f">= {lo:g}"
        raise InputError(f"{where}.{key}: got {v!r}; allowed: {allowed}")
    return int(v) if integer else float(v)


def _dataclass_from(cls, d: dict, where: str, required=(), skip=()):
    """Fill a dataclass from a dict, checking names and numeric types."""
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    _check_keys(d, fields, where)
    kwargs = {}
    for name in required:
        if name not in d:
            raise InputError(f"{where}.{name}: missing; required")
    for name, value in d.items():
        default = fields[name].default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            kwargs[name] = _num(d, name, where, lo=None if name in SIGNED_FIELDS else 0)
            if isinstance(default, int) and not isinstance(default, float):
                kwargs[name] = _num(d, name, where, lo=0, integer=True)
        elif isinstance(default, tuple) or name in ("leverage_tail", "stop_distance", "venues", "venue_leverage_median"):
            if isinstance(value, dict):
                kwargs[name] = {str(k): _num(value, k, f"{where}.{name}", lo=0) for k in value}
            elif isinstance(value, (list, tuple)):
                kwargs[name] = tuple(value)
            else:
                raise InputError(f"{where}.{name}: got {value!r}; allowed: a list")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def parse_scenario(data, where: str) -> Scenario:
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping at the top level")
    top = {f.name for f in dataclasses.fields(Scenario)} - {
        "venues", "open_interest", "classes", "path", "traders", "real_accounts", "jurisdictions", "kyc_share"}
    _check_keys(data, top | {"venues", "population"}, where)
    for key in ("name", "start_price", "venues", "population"):
        if key not in data:
            raise InputError(f"{where}.{key}: missing; required")
    # venues
    venues, oi = [], {}
    if not isinstance(data["venues"], list) or not data["venues"]:
        raise InputError(f"{where}.venues: expected a non-empty list of venues")
    for i, vd in enumerate(data["venues"]):
        w = f"{where}.venues[{i}]"
        if not isinstance(vd, dict) or "name" not in vd or "kind" not in vd:
            raise InputError(f"{w}: each venue needs 'name' and 'kind'")
        vd = dict(vd)
        name, kind = str(vd.pop("name")), str(vd.pop("kind"))
        oi[name] = _num(vd, "open_interest_usd", w, lo=0, default=0.0)
        vd.pop("open_interest_usd", None)
        try:
            venues.append(make_venue(name, kind, vd, where=w))
        except ValueError as e:
            raise InputError(str(e)) from None
    names = [v.name for v in venues]
    if len(set(names)) != len(names):
        raise InputError(f"{where}.venues: venue names must be unique, got {names}")
    if sum(v.is_spot for v in venues) != 1:
        raise InputError(f"{where}.venues: exactly one venue of kind spot_etf is required (it carries the index)")
    # population
    pop = data["population"]
    if not isinstance(pop, dict):
        raise InputError(f"{where}.population: expected a mapping")
    _check_keys(pop, {"traders", "real_accounts", "jurisdictions", "kyc_share", "classes"}, f"{where}.population")
    classes = {}
    cdata = pop.get("classes") or {}
    _check_keys(cdata, TRADER_CLASSES, f"{where}.population.classes")
    for cname, cd in cdata.items():
        w = f"{where}.population.classes.{cname}"
        spec = _dataclass_from(ClassSpec, cd, w, required=("share",))
        for vname in spec.venues:
            if vname not in names:
                raise InputError(f"{w}.venues.{vname}: unknown venue; allowed: {', '.join(names)}")
        for vname, med in spec.venue_leverage_median.items():
            if vname not in names:
                raise InputError(f"{w}.venue_leverage_median.{vname}: unknown venue; allowed: {', '.join(names)}")
            if med < 1:
                raise InputError(f"{w}.venue_leverage_median.{vname}: got {med}; allowed: >= 1")
        for fname in ("long_share", "stop_share", "leverage_tail_share", "share", "oi_share", "activity_per_minute",
                      "outflow_per_minute", "cap_use", "momentum_share"):
            if not 0 <= getattr(spec, fname) <= 1:
                raise InputError(f"{w}.{fname}: got {getattr(spec, fname)}; allowed: 0 to 1")
        if spec.relever_below >= 1:
            raise InputError(f"{w}.relever_below: got {spec.relever_below}; allowed: 0 (never) up to below 1")
        if spec.leverage_median < 1:
            raise InputError(f"{w}.leverage_median: got {spec.leverage_median}; allowed: >= 1")
        classes[cname] = spec
    if not classes:
        raise InputError(f"{where}.population.classes: at least one trader class is required")
    total = sum(c.share for c in classes.values())
    if abs(total - 1) > 1e-6:
        raise InputError(f"{where}.population.classes: shares sum to {total:g}; allowed: 1")
    juris = pop.get("jurisdictions", Scenario.__dataclass_fields__["jurisdictions"].default_factory())
    _check_keys(juris, JURISDICTIONS, f"{where}.population.jurisdictions")
    market = _dataclass_from(MarketParams, data.get("market", {}), f"{where}.market")
    choice = _dataclass_from(VenueChoice, data.get("venue_choice", {}), f"{where}.venue_choice")
    shocks = []
    for i, sd in enumerate(data.get("shocks") or []):
        w = f"{where}.shocks[{i}]"
        s = _dataclass_from(ShockSpec, sd, w, required=("kind", "start_minute", "duration_minutes"))
        if s.kind not in ("price", "liquidity", "collateral", "volatility"):
            raise InputError(f"{w}.kind: got {s.kind!r}; allowed: price, liquidity, collateral, volatility")
        for vname in s.venues:
            if vname not in names:
                raise InputError(f"{w}.venues: unknown venue {vname!r}; allowed: {', '.join(names)}")
        if s.kind == "collateral" and not 0 < s.price <= 1:
            raise InputError(f"{w}.price: got {s.price}; allowed: above 0 up to 1")
        shocks.append(s)
    sc = Scenario(
        name=str(data["name"]), title=str(data.get("title", data["name"])),
        description=str(data.get("description", "")).strip(), venues=venues, open_interest=oi,
        classes=classes, start_price=_num(data, "start_price", where, lo=1),
        duration_minutes=_num(data, "duration_minutes", where, lo=1, hi=60 * 24 * 30, default=1440, integer=True),
        step_minutes=_num(data, "step_minutes", where, lo=1, hi=60, default=1, integer=True),
        traders=_num(pop, "traders", f"{where}.population", lo=100, hi=10_000_000, default=20_000, integer=True),
        real_accounts=_num(pop, "real_accounts", f"{where}.population", lo=1, default=2_000_000.0),
        jurisdictions={k: float(v) for k, v in juris.items()},
        kyc_share=_num(pop, "kyc_share", f"{where}.population", lo=0, hi=1, default=0.6),
        sigma_daily=_num(data, "sigma_daily", where, lo=0, hi=1, default=0.025),
        entry_dispersion=_num(data, "entry_dispersion", where, lo=0, hi=0.5, default=0.03),
        size_leverage_elasticity=_num(data, "size_leverage_elasticity", where, lo=0, hi=3, default=1.0),
        garch_alpha=_num(data, "garch_alpha", where, lo=0, hi=1, default=0.05),
        garch_beta=_num(data, "garch_beta", where, lo=0, hi=1, default=0.90),
        innovation_df=_num(data, "innovation_df", where, lo=0, hi=1000, default=0.0),
        market_maker_capital_usd=_num(data, "market_maker_capital_usd", where, lo=0, default=5e8),
        arbitrage_capital_usd=_num(data, "arbitrage_capital_usd", where, lo=0, default=5e8),
        market=market, venue_choice=choice, shocks=shocks, sources=tuple(data.get("sources") or ()), path=where,
    )
    if sc.garch_alpha + sc.garch_beta >= 1:
        raise InputError(f"{where}.garch_alpha + garch_beta: got {sc.garch_alpha + sc.garch_beta:g}; allowed: below 1")
    if 0 < sc.innovation_df <= 2:
        raise InputError(f"{where}.innovation_df: got {sc.innovation_df:g}; allowed: 0 (normal) or above 2 (finite variance)")
    if sc.duration_minutes % sc.step_minutes:
        raise InputError(f"{where}.duration_minutes: {sc.duration_minutes} is not a multiple of step_minutes {sc.step_minutes}")
    return sc

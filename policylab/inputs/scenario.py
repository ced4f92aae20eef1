"""Scenarios: everything that is not policy, loaded from YAML by name or path.

A scenario names its venues (archetype plus overrides, starting open interest), its
population, its starting price, market parameters and exogenous shocks. Built-in
scenarios live in ``policylab/scenarios/*.yaml`` and ship with the package. Every
configurable field declares its unit, meaning, source and bounds as metadata
(:func:`policylab.inputs.values.setting`); the loader checks values against them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from policylab.errors import InputError
from policylab.inputs.limits import (USD_PER_VENUE_FIELDS, USD_SCENARIO_FIELDS, at_most, bound, usd_problem,
                                     venue_name_problem)
from policylab.inputs.market import MarketParams
from policylab.inputs.values import as_number, build, coerce, did_you_mean, field_types, missing, not_one_of, setting, unknown_key
from policylab.inputs.yaml import Lines, Where, parse, read_text
from policylab.names import CONFIGURABLE_CLASSES, JURISDICTIONS
from policylab.venues import VenueRules, make_venue

TRADER_CLASSES = CONFIGURABLE_CLASSES  # the population classes a scenario may configure
SHOCK_KINDS = ("price", "liquidity", "collateral", "volatility")

@dataclass
class ClassSpec:
    """One trader population. Leverage is lognormal (median, sigma) with a share drawn
    log-uniformly from the tail range; every draw is capped by the venue's tier."""

    share: float = setting(unit="share", meaning="share of simulated accounts", source="scenario", lo=0, hi=1)
    oi_share: float = setting(0.0, unit="share", meaning="share of each venue's open interest held by this class",
                              source="scenario", lo=0, hi=1)
    venues: dict[str, float] = setting(unit="probability by venue", meaning="venue name -> probability",
                                       source="scenario", lo=0, factory=dict)
    leverage_median: float = setting(5.0, unit="x", meaning="median chosen leverage (lognormal)",
                                     source="scenario", lo=1)
    leverage_sigma: float = setting(0.5, unit="log sd", meaning="dispersion of chosen leverage (lognormal sigma)",
                                    source="scenario", lo=0)
    venue_leverage_median: dict[str, float] = setting(
        unit="x by venue", meaning="venue name -> median for accounts there (default: leverage_median)",
        source="scenario", lo=1, factory=dict)
    leverage_tail_share: float = setting(0.0, unit="share", meaning="share of accounts drawn from the tail range",
                                         source="scenario", lo=0, hi=1)
    leverage_tail: tuple[float, float] = setting(
        (50.0, 1000.0), unit="x", meaning="tail range of leverage (log-uniform, low and high)", source="scenario", lo=1)
    cap_use: float = setting(1.0, unit="share of the cap",
                             meaning="largest share of the venue's leverage cap the class uses (risk buffer)",
                             source="scenario", lo=0, hi=1)
    long_share: float = setting(0.5, unit="share", meaning="share of accounts that are long", source="scenario",
                                lo=0, hi=1)
    stop_share: float = setting(0.0, unit="share", meaning="share of accounts with a stop-loss order",
                                source="scenario", lo=0, hi=1)
    stop_distance: tuple[float, float] = setting(
        (0.02, 0.10), unit="fraction of entry", meaning="stop distance range from entry", source="scenario", lo=0)
    activity_per_minute: float = setting(0.0, unit="share per minute",
                                         meaning="share of accounts reconsidering each minute", source="scenario",
                                         lo=0, hi=1)
    activity_vol_elasticity: float = setting(
        0.0, unit="elasticity",
        meaning="flat accounts trade more: activity x (1 + this x (15-minute realised vol / normal vol - 1)); "
                "0: constant", source="scenario", lo=0)
    panic_move: float = setting(0.03, unit="fraction",
                                meaning="adverse 15-minute index move that makes active holders close",
                                source="scenario", lo=0)
    dip_move: float = setting(0.02, unit="fraction", meaning="15-minute move after which active flat accounts trade on it",
                              source="scenario", lo=0)
    momentum_share: float = setting(0.5, unit="share", meaning="share of those who follow the move (the rest fade it)",
                                    source="scenario", lo=0, hi=1)
    risk_limit: float = setting(1.5, unit="multiple of target",
                                meaning="professionals cut back when leverage exceeds this multiple of their target",
                                source="scenario", lo=0)
    relever_below: float = setting(
        0.0, unit="share of target",
        meaning="professionals add back to target when leverage falls below this share of it (0: never)",
        source="scenario", lo=0)
    refill_half_life_minutes: float = setting(
        0.0, unit="minutes", meaning="wiped-out accounts are replaced by new money with this half-life (0: never)",
        source="scenario", lo=0)
    risk_off_sensitivity: float = setting(
        0.0, unit="per unit of excess drawdown",
        meaning="risk-off: flat accounts open (and wiped-out ones are refilled) with probability x "
                "1 / (1 + this x the market's risk-off level, see market.risk_off_threshold); professionals "
                "target that share of their leverage; 0: no effect",
        source="assumption (see docs/calibration.md)", lo=0)
    risk_off_close: float = setting(
        0.0, unit="probability per unit of excess drawdown",
        meaning="risk-off: extra chance an active retail holder closes, x the market's risk-off level; 0: none",
        source="assumption (see docs/calibration.md)", lo=0)
    reentry_half_life_minutes: float = setting(
        0.0, unit="minutes",
        meaning="a liquidated account opens again with probability x (1 - 0.5^(minutes since its last "
                "liquidation / this)); 0: at once", source="assumption (see docs/calibration.md)", lo=0)
    holdings_usd: float = setting(0.0, unit="USD", meaning="institutional spot/ETF holdings", source="scenario", lo=0)
    outflow_per_minute: float = setting(0.0, unit="share of holdings per minute",
                                        meaning="institutional selling per minute in a drawdown",
                                        source="scenario", lo=0, hi=1)


@dataclass
class ShockSpec:
    """One exogenous shock: a window of time and what it does (by kind)."""

    kind: str = setting(unit="kind", meaning="price | liquidity | collateral | volatility", source="scenario")
    start_minute: float = setting(unit="minutes", meaning="start of the window, from the start of the run",
                                  source="scenario", lo=0)
    duration_minutes: float = setting(unit="minutes", meaning="length of the window", source="scenario", lo=0)
    size: float = setting(0.0, unit="log move", meaning="price: total log move over the duration", source="scenario")
    depth_multiplier: float = setting(1.0, unit="multiple", meaning="liquidity: depth multiplier during the window",
                                      source="scenario", lo=0)
    recovery_half_life_minutes: float = setting(60.0, unit="minutes", meaning="liquidity: recovery after the window",
                                                source="scenario", lo=0)
    venues: tuple[str, ...] = setting((), unit="venue names", meaning="liquidity/collateral: venues hit (empty: all)",
                                      source="scenario")
    price: float = setting(1.0, unit="USD per stablecoin",
                           meaning="collateral: value of one stablecoin unit during the depeg", source="scenario", lo=0)
    ramp_minutes: float = setting(10.0, unit="minutes",
                                  meaning="collateral: minutes to reach the depeg price and to recover",
                                  source="scenario", lo=0)
    multiplier: float = setting(1.0, unit="multiple", meaning="volatility: multiplier on fundamental volatility",
                                source="scenario", lo=0)


@dataclass
class VenueChoice:
    """Utility weights of the venue choice traders make under new rules (policylab.engine.choice)."""

    leverage_weight: float = setting(2.0, unit="utility per log unit",
                                     meaning="per unit of log(allowed / wanted leverage)", source="assumption", lo=0)
    fee_weight: float = setting(100.0, unit="utility per unit of fee",
                                meaning="per unit of taker fee (share of notional)", source="assumption", lo=0)
    kyc_friction: float = setting(0.5, unit="utility", meaning="cost of verifying identity for an unverified trader",
                                  source="assumption", lo=0)
    switching_cost: float = setting(0.3, unit="utility", meaning="cost of moving to another venue",
                                    source="assumption", lo=0)
    onshore_trust: float = setting(0.0, unit="utility", meaning="preference for regulated venues", source="assumption")
    domestic_trust: float = setting(
        0.3, unit="utility",
        meaning="preference for a venue licensed in the trader's own jurisdiction (its protections, its courts)",
        source="assumption", lo=0)
    evasion_friction: float = setting(
        0.5, unit="utility",
        meaning="cost of trading where one's jurisdiction is blocked (VPN, foreign documents, risk of a frozen account)",
        source="assumption", lo=0)
    quit_utility: float = setting(-1.5, unit="utility", meaning="utility of not trading at all", source="assumption")
    noise: float = setting(0.5, unit="utility", meaning="scale of idiosyncratic (Gumbel) tastes", source="assumption",
                           lo=0)


_DEFAULT_JURISDICTIONS = {"US": 0.15, "EU": 0.2, "UK": 0.05, "JP": 0.05, "other": 0.55}
# Share of a jurisdiction's residents who start on its domestic venues, where their class
# trades there (assumptions, ranges in docs/calibration.md).
_DEFAULT_DOMESTIC = {"US": 0.5, "EU": 0.3, "UK": 0.3, "JP": 0.7, "other": 0.0}
ACCESS_STATUSES = ("served", "refused", "blocked")


@dataclass
class Scenario:
    """A scenario as run. Scalar fields carry unit, meaning, source and bounds; ``traders``,
    ``real_accounts``, ``jurisdictions`` and ``kyc_share`` are written under ``population:``."""

    name: str = setting(unit="name", meaning="the scenario's name", source="scenario")
    title: str = setting(unit="text", meaning="readable title", source="scenario")
    description: str = setting(unit="text", meaning="what the scenario stands for", source="scenario")
    venues: list[VenueRules] = setting(unit="venues", meaning="the venues and their rules", source="scenario")
    open_interest: dict[str, float] = setting(unit="USD by venue", meaning="venue -> starting open interest",
                                              source="scenario", lo=0)
    classes: dict[str, ClassSpec] = setting(unit="populations", meaning="trader class -> its population",
                                            source="scenario")
    start_price: float = setting(unit="USD", meaning="starting price", source="scenario", lo=1)
    duration_minutes: int = setting(1440, unit="minutes", meaning="length of the run", source="scenario",
                                    lo=1, hi=60 * 24 * 30)
    step_minutes: int = setting(1, unit="minutes", meaning="length of one step", source="scenario", lo=1, hi=60)
    traders: int = setting(20_000, unit="accounts", meaning="simulated accounts", source="scenario",
                           lo=100, hi=10_000_000)
    real_accounts: float = setting(2_000_000.0, unit="accounts", meaning="real accounts the simulated ones stand for",
                                   source="scenario", lo=1)
    jurisdictions: dict[str, float] = setting(unit="share by jurisdiction",
                                              meaning="share of accounts resident in each jurisdiction",
                                              source="assumption", lo=0, hi=1,
                                              factory=lambda: dict(_DEFAULT_JURISDICTIONS))
    kyc_share: float = setting(0.6, unit="share", meaning="share of accounts willing to verify identity",
                               source="assumption", lo=0, hi=1)
    domestic_share: dict[str, float] = setting(
        unit="share by jurisdiction",
        meaning="share of a jurisdiction's residents who start on its domestic venues, where their class trades there",
        source="assumption", lo=0, hi=1, factory=lambda: dict(_DEFAULT_DOMESTIC))
    access: dict[str, dict[str, float]] = setting(
        unit="share by venue and jurisdiction",
        meaning="venue -> jurisdiction -> share of its residents who still get through (0: refused; a share: "
                "blocked, leaking); a jurisdiction not listed is served. From each venue's blocked_jurisdictions "
                "and leakage, then the scenario's access table", source="assumption", factory=dict)
    sigma_daily: float = setting(0.025, unit="log per day", meaning="fundamental volatility", source="scenario",
                                 lo=0, hi=1)
    entry_dispersion: float = setting(
        0.03, unit="log sd", meaning="spread of open positions' entry prices around the start price",
        source="assumption", lo=0, hi=0.5)
    size_leverage_elasticity: float = setting(
        1.0, unit="elasticity", meaning="account notional ~ leverage^-elasticity (small accounts lever more)",
        source="assumption", lo=0, hi=3)
    garch_alpha: float = setting(0.05, unit="per step", meaning="GARCH(1,1) weight of the last squared step return",
                                 source="scenario", lo=0, hi=1)
    garch_beta: float = setting(0.90, unit="per step", meaning="GARCH(1,1) weight of the last conditional variance",
                                source="scenario", lo=0, hi=1)
    innovation_df: float = setting(
        0.0, unit="degrees of freedom", meaning="Student-t degrees of freedom of the fundamental's innovations "
                                               "(0: normal)", source="scenario", lo=0, hi=1000)
    market_maker_capital_usd: float = setting(
        2e9, unit="USD", meaning="market-maker capital per venue (their margin, see engine.venue_agents.MarketMakers)",
        source="assumption: the large BTC market makers' balance sheets run to billions of USD; range 0.5e9-5e9",
        lo=0)
    arbitrage_capital_usd: float = setting(5e8, unit="USD", meaning="arbitrage capital per derivatives venue",
                                           source="assumption", lo=0)
    market: MarketParams = setting(unit="parameters", meaning="market-wide parameters", source="scenario",
                                   factory=MarketParams)
    venue_choice: VenueChoice = setting(unit="parameters", meaning="utility weights of venue choice",
                                        source="scenario", factory=VenueChoice)
    shocks: list[ShockSpec] = setting(unit="shocks", meaning="exogenous shocks", source="scenario", factory=list)
    sources: tuple[str, ...] = setting(unit="citations", meaning="where the scenario's values come from",
                                       source="scenario", factory=tuple)
    path: str = setting("", unit="path", meaning="the file the scenario was read from", source="")

    @property
    def steps(self) -> int:
        return self.duration_minutes // self.step_minutes


# Scalars written at the top level and under ``population:``.
TOP_SCALARS = ("name", "title", "description", "start_price", "duration_minutes", "step_minutes", "sigma_daily",
               "entry_dispersion", "size_leverage_elasticity", "garch_alpha", "garch_beta", "innovation_df",
               "market_maker_capital_usd", "arbitrage_capital_usd", "sources")
POPULATION_KEYS = ("traders", "real_accounts", "jurisdictions", "kyc_share", "domestic_share", "classes")
TOP_KEYS = (*TOP_SCALARS, "venues", "access", "population", "market", "venue_choice", "shocks")


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
        text, where = read_text(path, str(path)), str(path)
    else:
        names = builtin_names()
        if name_or_path not in names:
            raise InputError(f"unknown scenario {name_or_path!r}{did_you_mean(name_or_path, names)}; "
                             f"allowed: {', '.join(names)} or a path to a .yaml file")
        text = (builtin_dir() / f"{name_or_path}.yaml").read_text(encoding="utf-8")
        where = f"{name_or_path}.yaml"
    data, lines = _resolve(text, where, seen=())
    return parse_scenario(data, lines)


def _resolve(text: str, where: str, seen: tuple[str, ...]) -> tuple[object, Lines]:
    """Parse YAML and apply ``extends: NAME``: the named built-in scenario, deep-merged
    with this file's keys (mappings merge, everything else replaces)."""
    data, lines = parse(text, where)
    if not isinstance(data, dict) or "extends" not in data:
        return data, lines
    at = Where(lines) / "extends"
    base_name = data.pop("extends")
    if base_name not in builtin_names():
        raise Where(lines).invalid(not_one_of(base_name, builtin_names(), ("extends",)))
    if base_name in seen:
        raise at.fail(f"circular extends through {base_name!r}")
    base, base_lines = _resolve((builtin_dir() / f"{base_name}.yaml").read_text(encoding="utf-8"),
                                f"{base_name}.yaml", seen + (base_name,))
    return _merge(base, data), lines.over(base_lines)


def _merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return over


def _keys(d, allowed, at: Where, what: str = "field") -> None:
    """``d`` is a mapping whose keys are all in ``allowed``."""
    if not isinstance(d, dict):
        raise at.bad(d, "a mapping")
    for key in d:
        if key not in allowed:
            raise at.invalid(unknown_key(key, allowed, what))


_TYPES = field_types(Scenario)


def _scalar(name: str, d: dict, at: Where):
    """``d[name]`` coerced to Scenario field ``name`` (type and bounds), or its default."""
    f = Scenario.__dataclass_fields__[name]
    if name not in d:
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise at.invalid(missing(name))
        return f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return (at / name).check(coerce, d[name], _TYPES[name], dict(f.metadata))


def _build(cls, d, at: Where):
    """Dataclass ``cls`` from mapping ``d`` (absent: all defaults), errors located under ``at``."""
    return at.check(build, cls, d if d is not None else {})


def parse_scenario(data, lines: Lines | str) -> Scenario:
    """A Scenario from parsed YAML; ``lines`` locates key paths (or is the file name)."""
    top = Where(lines)
    if not isinstance(data, dict) or not any(key in TOP_KEYS for key in data):
        raise top.fail(f"not a scenario; allowed: a mapping with {', '.join(TOP_KEYS)}")
    _keys(data, TOP_KEYS, top)
    for key in ("name", "start_price", "venues", "population"):
        if key not in data:
            raise top.invalid(missing(key))
    scalars = {k: _scalar(k, data, top) for k in TOP_SCALARS if k not in ("title", "description", "sources")}
    scalars["title"] = _scalar("title", data, top) if "title" in data else scalars["name"]
    scalars["description"] = (_scalar("description", data, top) if "description" in data else "").strip()
    scalars["sources"] = _scalar("sources", data, top) if data.get("sources") is not None else ()
    venues, oi = _venues(data["venues"], top / "venues")
    names = [v.name for v in venues]
    pop, at_pop = data["population"], top / "population"
    _keys(pop, POPULATION_KEYS, at_pop)
    classes = _classes(pop.get("classes") or {}, at_pop / "classes", names)
    juris = _scalar("jurisdictions", pop, at_pop)
    _keys(juris, JURISDICTIONS, at_pop / "jurisdictions")
    domestic = {**_DEFAULT_DOMESTIC, **_scalar("domestic_share", pop, at_pop)}
    _keys(domestic, JURISDICTIONS, at_pop / "domestic_share")
    shocks = data.get("shocks") or []
    if not isinstance(shocks, list):
        raise (top / "shocks").bad(shocks, "a list of shocks")
    sc = Scenario(
        **scalars, venues=venues, open_interest=oi, classes=classes,
        traders=_scalar("traders", pop, at_pop), real_accounts=_scalar("real_accounts", pop, at_pop),
        jurisdictions=juris, kyc_share=_scalar("kyc_share", pop, at_pop), domestic_share=domestic,
        access=access_table(venues, data.get("access"), top / "access"),
        market=_build(MarketParams, data.get("market"), top / "market"),
        venue_choice=_build(VenueChoice, data.get("venue_choice"), top / "venue_choice"),
        shocks=[_shock(sd, top / "shocks" / i, names) for i, sd in enumerate(shocks)],
        path=lines if isinstance(lines, str) else lines.file,
    )
    if sc.garch_alpha + sc.garch_beta >= 1:
        raise (top / "garch_beta").fail(f"garch_alpha + garch_beta: got {sc.garch_alpha + sc.garch_beta:g}; allowed: below 1")
    if 0 < sc.innovation_df <= 2:
        raise (top / "innovation_df").bad(sc.innovation_df, "0 (normal) or above 2 (finite variance)")
    if sc.duration_minutes % sc.step_minutes:
        raise (top / "duration_minutes").fail(
            f"{sc.duration_minutes} is not a multiple of step_minutes {sc.step_minutes}")
    check_meaningful(sc, top)
    return sc


def check_meaningful(sc: Scenario, top: Where) -> None:
    """Well-typed but meaningless configurations, refused (bounds: policylab.inputs.limits):
    money per venue beyond the accepted scale, books too thin for what trades on them, and
    shocks that can never act. Also for scenarios changed after loading (sweeps)."""
    at_v = top / "venues"
    for i, v in enumerate(sc.venues):
        for fname in USD_PER_VENUE_FIELDS:
            value = sc.open_interest[v.name] if fname == "open_interest_usd" else getattr(v, fname)
            if usd_problem(value):
                raise (at_v / i / fname).fail(usd_problem(value))
        if not v.depth_usd >= bound("depth_usd_min"):  # NaN too
            raise (at_v / i / "depth_usd").bad(v.depth_usd, f"at least {bound('depth_usd_min'):g} USD")
        oi = sc.open_interest[v.name]
        if not oi <= bound("usd_per_depth") * v.depth_usd:
            raise (at_v / i / "open_interest_usd").fail(
                f"got {oi:g}, {oi / v.depth_usd:,.0f} times the venue's depth_usd {v.depth_usd:g}; "
                f"allowed: at most {bound('usd_per_depth'):,.0f} times its depth")
    for fname in USD_SCENARIO_FIELDS:
        if usd_problem(getattr(sc, fname)):
            raise (top / fname).fail(usd_problem(getattr(sc, fname)))
    for cname, c in sc.classes.items():
        if usd_problem(c.holdings_usd):
            raise (top / "population" / "classes" / cname / "holdings_usd").fail(usd_problem(c.holdings_usd))
    i, spot = next((i, v) for i, v in enumerate(sc.venues) if v.is_spot)
    load = sum(sc.open_interest.values()) + sum(c.holdings_usd for c in sc.classes.values())
    if not load <= bound("usd_per_spot_depth") * spot.depth_usd:
        raise (at_v / i / "depth_usd").fail(
            f"got {spot.depth_usd:g}, a {load / spot.depth_usd:,.0f}th of all open interest plus institutional "
            f"holdings ({load:g} USD); allowed: at least a {bound('usd_per_spot_depth'):,.0f}th of them")
    for j, s in enumerate(sc.shocks):
        if not s.duration_minutes > 0:
            raise (top / "shocks" / j / "duration_minutes").bad(
                s.duration_minutes, "above 0 minutes (a shock of zero length never acts)")
        if not s.start_minute < sc.duration_minutes:
            raise (top / "shocks" / j / "start_minute").bad(
                s.start_minute, f"below the run's duration_minutes {sc.duration_minutes} (a shock that starts "
                                "after the end never acts)")


def _venues(data, at: Where) -> tuple[list[VenueRules], dict[str, float]]:
    """The venue list: each an archetype (``kind``) plus overrides, with its open interest."""
    if not isinstance(data, list) or not data:
        raise at.fail("expected a non-empty list of venues")
    if len(data) > bound("venues"):
        raise at.fail(f"{len(data):,} venues; allowed: {at_most('venues')}")
    venues, oi = [], {}
    for i, vd in enumerate(data):
        w = at / i
        if not isinstance(vd, dict) or "name" not in vd or "kind" not in vd:
            raise w.fail("each venue needs 'name' and 'kind'")
        vd = dict(vd)
        name = (w / "name").check(coerce, vd.pop("name"), str)
        if venue_name_problem(name):
            raise (w / "name").fail(venue_name_problem(name))
        if name in oi:
            raise (w / "name").bad(name, "a name no other venue has")
        kind = (w / "kind").check(coerce, vd.pop("kind"), str)
        oi[name] = float((w / "open_interest_usd").check(coerce, vd.pop("open_interest_usd", 0.0), float, {"lo": 0}))
        venues.append(make_venue(name, kind, vd, where=w))
    if sum(v.is_spot for v in venues) != 1:
        raise at.fail("exactly one venue of kind spot_etf is required (it carries the index)")
    return venues, oi


def access_table(venues: list[VenueRules], data, at: Where) -> dict[str, dict[str, float]]:
    """Who gets through to each venue (Scenario.access): first each venue's own
    ``blocked_jurisdictions``, each at the venue's ``leakage`` (licensed venues: 0, refused);
    then the scenario's ``access:`` table, keyed by venue name or archetype kind (a name
    overrides its kind), each jurisdiction ``served``, ``refused``, ``blocked`` (at the
    venue's leakage) or a share in [0, 1] (blocked, with that share still getting through)."""
    table = {v.name: {j: v.leakage for j in v.blocked_jurisdictions} for v in venues}
    if data is None:
        return table
    if not isinstance(data, dict):
        raise at.bad(data, "a mapping of venue name or kind -> {jurisdiction: served | refused | blocked | share}")
    names, kinds = [v.name for v in venues], sorted({v.kind for v in venues})
    keys = sorted(data, key=lambda key: key in names)  # kinds first, so that a venue's own entry wins
    for key in keys:
        w = at / key
        if key not in names and key not in kinds:
            raise w.fail(f"no venue or venue kind of that name in the scenario{did_you_mean(key, names + kinds)}; "
                         f"allowed: {', '.join(names + kinds)}")
        entry = data[key]
        if not isinstance(entry, dict):
            raise w.bad(entry, "a mapping of jurisdiction -> served | refused | blocked | share in [0, 1]")
        for j, status in entry.items():
            if j not in JURISDICTIONS:
                raise w.invalid(unknown_key(j, JURISDICTIONS, "jurisdiction"))
            for v in venues:
                if v.name != key and v.kind != key:
                    continue
                if isinstance(status, str) and not isinstance(as_number(status), float):
                    if status not in ACCESS_STATUSES:
                        raise (w / j).invalid(not_one_of(status, ACCESS_STATUSES))
                    if status == "served":
                        table[v.name].pop(j, None)
                    else:
                        table[v.name][j] = 0.0 if status == "refused" else v.leakage
                else:
                    share = as_number(status)
                    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
                        raise (w / j).bad(status, "served, refused, blocked or a share of blocked residents "
                                                  "who still get through, from 0 to 1")
                    table[v.name][j] = float(share)
    return table


def _classes(data, at: Where, venue_names: list[str]) -> dict[str, ClassSpec]:
    """The trader populations, their shares summing to 1."""
    _keys(data, TRADER_CLASSES, at)
    classes = {}
    for cname, cd in data.items():
        w = at / cname
        spec = _build(ClassSpec, cd, w)
        for key in ("venues", "venue_leverage_median"):
            for vname in getattr(spec, key):
                if vname not in venue_names:
                    raise (w / key / vname).fail(f"unknown venue{did_you_mean(vname, venue_names)}; "
                                                 f"allowed: {', '.join(venue_names)}")
        if spec.relever_below >= 1:
            raise (w / "relever_below").bad(spec.relever_below, "0 (never) up to below 1")
        classes[cname] = spec
    if not classes:
        raise at.fail("at least one trader class is required")
    total = sum(c.share for c in classes.values())
    if abs(total - 1) > 1e-6:
        raise at.fail(f"shares sum to {total:g}; allowed: 1")
    return classes


def _shock(data, at: Where, venue_names: list[str]) -> ShockSpec:
    s = _build(ShockSpec, data, at)
    if s.kind not in SHOCK_KINDS:
        raise at.invalid(not_one_of(s.kind, SHOCK_KINDS, ("kind",)))
    for i, vname in enumerate(s.venues):
        if vname not in venue_names:
            raise at.invalid(not_one_of(vname, venue_names, ("venues", i)))
    if s.kind == "collateral" and not 0 < s.price <= 1:
        raise (at / "price").bad(s.price, "above 0 up to 1")
    return s

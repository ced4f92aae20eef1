"""What every run reports (MODEL.md section 7): typed metric definitions and their values.

Each metric is a scalar outcome of one run, in the spirit of EMA Workbench's
``ScalarOutcome``: a name, a unit, a description and a direction (whether a rule set
that lowers it is doing better). Families generate one metric per venue, trader class
or side from a template, named ``<stem>.venue.<venue>``, ``<stem>.class.<class>`` or
``<stem>.side.<long|short>``; :func:`definitions` expands them for a scenario and
:func:`catalogue` lists them with a ``<venue>`` placeholder.

Conventions:

- open interest is the long side of derivatives positions (USD at venue prices); the
  spot venue holds unleveraged holdings and is left out of open-interest totals and
  market shares;
- *liquidated* means closed by a venue's liquidation machinery: whole and partial
  liquidations, backstop takeovers and the bankrupt side of auto-deleveraging (ADL).
  Stop-losses and the profitable positions closed by ADL are reported separately;
- an account's *wealth* is its margin equity on its venue plus the value of its spot
  hedge; profit and loss (PnL) is the change in wealth over the run (fees, funding,
  liquidation penalties and depeg losses included);
- drawdowns are the largest fall from a running peak, as a fraction of that peak.

:func:`snapshot` records what the metrics need from before the first step;
:func:`compute` turns a finished model plus that snapshot into ``{name: value}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from policylab.engine.book import CLASSES, PROTOCOL_CLASSES, RETAIL, VAULT
from policylab.names import LIQUIDABLE_CLASSES
from policylab.engine.liquidation import EVENT_KINDS
from policylab.inputs.scenario import Scenario

DIRECTIONS = ("lower_is_better", "higher_is_better", "neutral")
SIDES = ("long", "short")
TRADER_CLASSES = LIQUIDABLE_CLASSES
LIQUIDATION_KINDS = ("liquidation", "partial", "backstop", "adl")
WIPED_OUT_LEFT = 0.05  # an account is wiped out when it ends with at most this share of its starting wealth
MINUTES_PER_YEAR = 365 * 1440


@dataclass(frozen=True)
class Metric:
    """One scalar outcome of a run."""

    name: str
    unit: str
    description: str
    direction: str  # one of DIRECTIONS

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name}: direction {self.direction!r}; allowed: {', '.join(DIRECTIONS)}")


@dataclass(frozen=True)
class Family:
    """A template for one metric per member: the scenario's venues (``over="venue"``), its
    derivatives venues (``"derivatives_venue"``), trader classes or sides.
    ``description`` may use ``{member}``."""

    stem: str
    over: str  # venue | derivatives_venue | class | trader_class | side
    unit: str
    description: str
    direction: str

    @property
    def label(self) -> str:
        return {"derivatives_venue": "venue", "trader_class": "class"}.get(self.over, self.over)

    def members(self, scenario: Scenario | None) -> tuple[str, ...]:
        """Member names; without a scenario, venues are the placeholder ``<venue>``."""
        fixed = {"class": CLASSES, "trader_class": TRADER_CLASSES, "side": SIDES}
        if self.over in fixed:
            return fixed[self.over]
        if scenario is None:
            return ("<venue>",)
        return tuple(v.name for v in scenario.venues if self.over == "venue" or not v.is_spot)

    def expand(self, scenario: Scenario | None) -> list[Metric]:
        return [Metric(f"{self.stem}.{self.label}.{m}", self.unit, self.description.format(member=m), self.direction)
                for m in self.members(scenario)]


LOWER, HIGHER, NEUTRAL = DIRECTIONS
REGISTRY: tuple[Metric | Family, ...] = (
    # --- liquidations -------------------------------------------------------------
    Metric("liquidated_usd", "USD", "notional liquidated (whole, partial, backstop, bankrupt side of ADL)", LOWER),
    Family("liquidated_usd", "derivatives_venue", "USD", "notional liquidated on {member}", LOWER),
    Family("liquidated_usd", "side", "USD", "notional of {member} positions liquidated", LOWER),
    Family("liquidated_usd", "trader_class", "USD", "notional liquidated from {member} accounts", LOWER),
    Metric("long_share_liquidated", "fraction",
           "share of liquidated notional that was long (NaN: none liquidated)", NEUTRAL),
    Metric("liquidated_share_of_oi", "fraction", "liquidated notional over starting open interest", LOWER),
    Metric("forced_closed_usd", "USD", "liquidated notional plus profitable positions closed by ADL", LOWER),
    Metric("forced_closed_share_of_oi", "fraction", "forced-closed notional over starting open interest", LOWER),
    Metric("stopped_usd", "USD", "notional closed by triggered stop-loss orders", LOWER),
    Metric("liquidated_accounts", "accounts", "real accounts liquidated at least once", LOWER),
    Family("liquidated_accounts", "trader_class", "accounts", "real {member} accounts liquidated at least once", LOWER),
    Metric("liquidated_accounts_share", "fraction",
           "liquidated accounts over accounts holding a derivatives position at the start", LOWER),
    Metric("accounts_wiped_out", "accounts",
           f"real trader accounts ending with at most {WIPED_OUT_LEFT:.0%} of their starting wealth", LOWER),
    Metric("accounts_moved", "accounts", "real trader accounts that changed venue because of the rules", NEUTRAL),
    Metric("accounts_quit", "accounts",
           "real trader accounts that stopped trading because of the rules (excluded, or no venue worth it)", NEUTRAL),
    # --- prices -------------------------------------------------------------------
    Metric("index_drawdown", "fraction", "largest peak-to-trough fall of the index", LOWER),
    Family("drawdown", "venue", "fraction", "largest peak-to-trough fall of the {member} price", LOWER),
    Metric("index_low_usd", "USD", "lowest index price", HIGHER),
    Metric("index_close_usd", "USD", "index price at the end of the run", NEUTRAL),
    Metric("index_low_return", "fraction", "lowest index price over the starting price, minus 1", HIGHER),
    Metric("index_close_return", "fraction", "closing index price over the starting price, minus 1", NEUTRAL),
    Metric("index_low_vs_close", "fraction",
           "lowest index price over the closing price, minus 1 (how far the low overshot the close)", HIGHER),
    Metric("realised_volatility", "annualised log-return sd",
           "realised volatility of the index: sqrt(mean squared step log return x steps per year)", LOWER),
    Metric("volatility_amplification", "ratio",
           "realised volatility of the index over that of the exogenous path", LOWER),
    Metric("recovery_half_minutes", "minutes",
           "minutes from the index trough until half the drawdown was recovered (NaN: never)", LOWER),
    # --- cascades -----------------------------------------------------------------
    Metric("cascade_rounds_max", "rounds", "most cascade rounds with activity in one step", LOWER),
    Metric("cascade_rounds_total", "rounds", "cascade rounds with activity, summed over steps", LOWER),
    Metric("amplification", "ratio",
           "index log move over the exogenous log move over the same steps, in the exogenous "
           "path's dominant direction: peak to trough when its largest fall exceeds its largest "
           "rise, trough to peak otherwise (NaN: the exogenous path or the index did not move that way)", LOWER),
    # --- loss absorption ------------------------------------------------------------
    Metric("fund_drawdown_usd", "USD",
           "largest fall of insurance funds from a running peak, summed over venues", LOWER),
    Family("fund_drawdown_usd", "derivatives_venue", "USD",
           "largest fall of the {member} insurance fund from a running peak", LOWER),
    Family("fund_drawdown_share", "derivatives_venue", "fraction",
           "largest fall of the {member} insurance fund over its starting size (NaN: no fund)", LOWER),
    Metric("funds_exhausted", "venues",
           "venues whose insurance fund (positive at the start) reached zero or below", LOWER),
    Metric("bad_debt_usd", "USD",
           "at the end: funds below zero, backstop vaults below zero and negative trader balances", LOWER),
    Family("bad_debt_usd", "derivatives_venue", "USD", "bad debt left on {member} at the end", LOWER),
    Metric("adl_usd", "USD", "notional closed by auto-deleveraging (bankrupt side, at bankruptcy prices)", LOWER),
    Family("adl_usd", "derivatives_venue", "USD", "notional closed by auto-deleveraging on {member}", LOWER),
    # --- who lost -----------------------------------------------------------------
    Family("pnl_usd", "class", "USD", "net profit and loss of {member} accounts", NEUTRAL),
    Metric("retail_loss_usd", "USD", "gross losses of the retail accounts that lost money", LOWER),
    Metric("retail_losers_share", "fraction", "share of real retail accounts that lost money", LOWER),
    # --- open interest and market structure -----------------------------------------
    Metric("open_interest_start_usd", "USD", "derivatives open interest at the start", NEUTRAL),
    Metric("open_interest_end_usd", "USD", "derivatives open interest at the end", NEUTRAL),
    Metric("open_interest_change", "fraction", "end over start derivatives open interest, minus 1", NEUTRAL),
    Metric("open_interest_trough_change", "fraction", "lowest over start derivatives open interest, minus 1", NEUTRAL),
    Family("open_interest_change", "derivatives_venue", "fraction",
           "end over start open interest on {member}, minus 1 (NaN: none at the start)", NEUTRAL),
    Family("oi_share", "derivatives_venue", "fraction",
           "{member} share of starting derivatives open interest", NEUTRAL),
    Family("volume_share", "derivatives_venue", "fraction", "{member} share of derivatives traded volume", NEUTRAL),
    Metric("offshore_oi_share", "fraction", "offshore venues' share of starting derivatives open interest", LOWER),
    Metric("offshore_volume_share", "fraction", "offshore venues' share of derivatives traded volume", LOWER),
    # --- the cost side: activity and liquidity -------------------------------------------
    Metric("volume_usd", "USD", "traded notional on all venues (spot included)", HIGHER),
    Family("volume_usd", "venue", "USD", "traded notional on {member}", HIGHER),
    Metric("depth_mean_ratio", "ratio", "mean over steps of total +/-1% depth over its starting value", HIGHER),
    Metric("depth_worst_ratio", "ratio", "lowest total +/-1% depth over its starting value", HIGHER),
    Family("depth_mean_ratio", "venue", "ratio",
           "mean over steps of {member} +/-1% depth over its starting value", HIGHER),
    Family("depth_worst_ratio", "venue", "ratio", "lowest {member} +/-1% depth over its starting value", HIGHER),
)


def definitions(scenario: Scenario) -> dict[str, Metric]:
    """Every metric of a run of ``scenario``, in report order."""
    out: dict[str, Metric] = {}
    for item in REGISTRY:
        for m in item.expand(scenario) if isinstance(item, Family) else [item]:
            out[m.name] = m
    return out


def catalogue() -> dict[str, Metric]:
    """Every metric with venue families shown once, as ``<stem>.venue.<venue>``."""
    out: dict[str, Metric] = {}
    for item in REGISTRY:
        for m in item.expand(None) if isinstance(item, Family) else [item]:
            out[m.name] = m
    return out


# ------------------------------------------------------------------------ state helpers
@dataclass(frozen=True)
class Start:
    """The state before the first step that metrics and tables compare with."""

    wealth: np.ndarray  # per account (USD)
    size: np.ndarray  # per account (BTC)
    open_interest: np.ndarray  # per venue (USD)
    depth: np.ndarray  # per venue (USD)
    fund: np.ndarray  # per venue (USD)
    health: np.ndarray  # per venue: market makers' depth health
    coin_price: np.ndarray  # per venue (USD per stablecoin unit)


def wealth(model) -> np.ndarray:
    """Per account: margin equity on its venue plus the value of its spot hedge (USD)."""
    tb, mkt = model.tb, model.market
    equity = tb.equity(np.arange(tb.n), mkt.prices(), model.vb.coin_price)
    return equity + tb.hedge * mkt.index + tb.hedge_cash


def open_interest(model) -> np.ndarray:
    """Per venue: long open interest at current venue prices (USD)."""
    tb = model.tb
    long = np.bincount(tb.venue, weights=np.maximum(tb.size, 0.0), minlength=len(model.vb.rules))
    return long * model.market.prices()


def snapshot(model) -> Start:
    """Record the starting state; call after constructing the model, before it runs."""
    vb = model.vb
    return Start(wealth=wealth(model), size=model.tb.size.copy(), open_interest=open_interest(model),
                 depth=vb.depth().copy(), fund=vb.fund.copy(), health=vb.health.copy(),
                 coin_price=vb.coin_price.copy())


def venue_series(model) -> dict[str, np.ndarray]:
    """The model's per-step venue table as (steps x venues) arrays, by column."""
    return {c: a[:model.steps] for c, a in model.venue_series.items()}


def event_arrays(model) -> dict[str, np.ndarray]:
    """The event log's arrays with integer codes as integers, plus ``notional`` (USD)
    and ``liquidation`` (the event closed a position by liquidation)."""
    ev = model.events.arrays()
    out = {c: ev[c].astype(np.int64) for c in ("step", "round", "kind", "account", "venue", "cls")}
    out.update({c: ev[c].astype(float) for c in ("size", "price", "weight", "deficit")})
    out["notional"] = np.abs(out["size"]) * out["price"]
    out["liquidation"] = np.isin(out["kind"], [EVENT_KINDS.index(k) for k in LIQUIDATION_KINDS])
    return out


def drawdown(path: np.ndarray) -> tuple[float, int, int]:
    """Largest fall of a positive series from its running peak, as a fraction of the
    peak, with the positions of that peak (first reaching it) and of the trough."""
    peak = np.maximum.accumulate(path)
    dd = 1.0 - path / peak
    t = int(np.argmax(dd))
    return float(dd[t]), int(np.argmax(path[: t + 1])), t


def shock_direction(exo_log_path: np.ndarray) -> int:
    """-1 if the exogenous path's largest fall exceeds its largest rise, else +1."""
    fall = np.max(np.maximum.accumulate(exo_log_path) - exo_log_path)
    rise = np.max(exo_log_path - np.minimum.accumulate(exo_log_path))
    return -1 if fall >= rise else 1


def running_amplification(index_path: np.ndarray, exo_log_path: np.ndarray, direction: int = -1) -> np.ndarray:
    """Per step: the index's log move from its running peak (direction -1; running
    trough for +1) to this step over the exogenous log move over the same steps; NaN
    where either did not move that way. At the extreme of the largest such move it
    equals ``amplification``."""
    if direction > 0:
        return running_amplification(1.0 / index_path, -exo_log_path, -1)
    logi = np.log(index_path)
    pos = np.arange(len(logi))
    prev_max = np.concatenate([[-np.inf], np.maximum.accumulate(logi)[:-1]])
    peak = np.maximum.accumulate(np.where(logi > prev_max, pos, 0))
    move = logi - logi[peak]
    exo = exo_log_path - exo_log_path[peak]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((move < 0) & (exo < 0), move / exo, np.nan)


def _ratio(a, b):
    """a / b, NaN where b is zero."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / b, np.nan)


def _by_venue(values: dict[str, float], stem: str, names: Iterable[str], arr) -> None:
    for name, x in zip(names, arr):
        values[f"{stem}.venue.{name}"] = x


# ------------------------------------------------------------------------ computation
def compute(model, start: Start) -> dict[str, float]:
    """All metrics of a finished run, in :func:`definitions` order (floats, NaN where undefined)."""
    sc, tb, vb = model.scenario, model.tb, model.vb
    names = np.array(vb.names)
    deriv = ~vb.is_spot
    dnames = names[deriv]
    k = len(names)
    values: dict[str, float] = {}
    series = venue_series(model)
    ev = event_arrays(model)
    oi0 = start.open_interest[deriv].sum()

    # liquidations
    liq = ev["liquidation"]
    notional = ev["notional"]
    liq_usd = notional[liq].sum()
    values["liquidated_usd"] = liq_usd
    _by_venue(values, "liquidated_usd", dnames, np.bincount(ev["venue"][liq], notional[liq], minlength=k)[deriv])
    long_usd = notional[liq & (ev["size"] > 0)].sum()
    values["liquidated_usd.side.long"] = long_usd
    values["liquidated_usd.side.short"] = notional[liq & (ev["size"] < 0)].sum()
    by_cls = np.bincount(ev["cls"][liq], notional[liq], minlength=len(CLASSES))
    for c in TRADER_CLASSES:
        values[f"liquidated_usd.class.{c}"] = by_cls[CLASSES.index(c)]
    values["long_share_liquidated"] = _ratio(long_usd, liq_usd)
    values["liquidated_share_of_oi"] = _ratio(liq_usd, oi0)
    forced = liq_usd + notional[ev["kind"] == EVENT_KINDS.index("adl_counterparty")].sum()
    values["forced_closed_usd"] = forced
    values["forced_closed_share_of_oi"] = _ratio(forced, oi0)
    values["stopped_usd"] = notional[ev["kind"] == EVENT_KINDS.index("stop")].sum()
    hit = np.unique(ev["account"][liq])
    values["liquidated_accounts"] = tb.weight[hit].sum()
    hit_by_cls = np.bincount(tb.cls[hit], tb.weight[hit], minlength=len(CLASSES))
    for c in TRADER_CLASSES:
        values[f"liquidated_accounts.class.{c}"] = hit_by_cls[CLASSES.index(c)]
    holders = (start.size != 0) & deriv[tb.venue] & ~np.isin(tb.cls, PROTOCOL_CLASSES)
    values["liquidated_accounts_share"] = _ratio(tb.weight[hit].sum(), tb.weight[holders].sum())
    w1 = wealth(model)
    traders = ~np.isin(tb.cls, PROTOCOL_CLASSES)
    wiped = traders & (start.wealth > 0) & (w1 <= WIPED_OUT_LEFT * start.wealth)
    values["accounts_wiped_out"] = tb.weight[wiped].sum()
    values["accounts_moved"] = tb.weight[tb.moved].sum()
    values["accounts_quit"] = tb.weight[tb.quit].sum()

    # prices
    index = model.index_path
    dd, peak, trough = drawdown(index)
    values["index_drawdown"] = dd
    _by_venue(values, "drawdown", names, [drawdown(model.price_path[:, v])[0] for v in range(k)])
    low, close, p0 = index.min(), index[-1], index[0]
    values["index_low_usd"] = low
    values["index_close_usd"] = close
    values["index_low_return"] = low / p0 - 1.0
    values["index_close_return"] = close / p0 - 1.0
    values["index_low_vs_close"] = low / close - 1.0
    per_year = MINUTES_PER_YEAR / sc.step_minutes
    rv = np.sqrt(np.mean(np.diff(np.log(index)) ** 2) * per_year)
    values["realised_volatility"] = rv
    values["volatility_amplification"] = _ratio(rv, np.sqrt(np.mean(model.exo.log_return ** 2) * per_year))
    half = index[trough] + 0.5 * (index[peak] - index[trough])
    back = np.flatnonzero(index[trough:] >= half)
    values["recovery_half_minutes"] = back[0] * sc.step_minutes if len(back) else np.nan

    # cascades
    values["cascade_rounds_max"] = model.rounds.max(initial=0)
    values["cascade_rounds_total"] = model.rounds.sum()
    direction = shock_direction(model.exo_log_path)
    extreme = trough if direction < 0 else drawdown(1.0 / index)[2]
    values["amplification"] = running_amplification(index, model.exo_log_path, direction)[extreme]

    # loss absorption
    fund = np.vstack([start.fund, series["fund_usd"]])
    fund_dd = np.max(np.maximum.accumulate(fund, axis=0) - fund, axis=0)
    values["fund_drawdown_usd"] = fund_dd[deriv].sum()
    _by_venue(values, "fund_drawdown_usd", dnames, fund_dd[deriv])
    _by_venue(values, "fund_drawdown_share", dnames, _ratio(fund_dd, start.fund)[deriv])
    values["funds_exhausted"] = np.sum((start.fund > 0) & (fund.min(axis=0) <= 0))
    equity = tb.equity(np.arange(tb.n), model.market.marks(), vb.coin_price)  # as the venues judge it
    owed = np.maximum(-equity, 0.0)
    bad = (np.maximum(-vb.fund, 0.0)
           + np.bincount(tb.venue[traders], owed[traders], minlength=k)
           + np.bincount(tb.venue[tb.cls == VAULT], owed[tb.cls == VAULT], minlength=k))
    values["bad_debt_usd"] = bad.sum()
    _by_venue(values, "bad_debt_usd", dnames, bad[deriv])
    adl = model.engine.adl_volume
    values["adl_usd"] = adl.sum()
    _by_venue(values, "adl_usd", dnames, adl[deriv])

    # who lost
    pnl = w1 - start.wealth
    by_cls = np.bincount(tb.cls, pnl, minlength=len(CLASSES))
    for i, c in enumerate(CLASSES):
        values[f"pnl_usd.class.{c}"] = by_cls[i]
    retail = tb.cls == RETAIL
    values["retail_loss_usd"] = np.maximum(-pnl[retail], 0.0).sum()
    values["retail_losers_share"] = _ratio(tb.weight[retail & (pnl < 0)].sum(), tb.weight[retail].sum())

    # open interest and market structure
    oi_path = np.vstack([start.open_interest, series["open_interest_usd"]])[:, deriv]
    oi1 = oi_path[-1]
    values["open_interest_start_usd"] = oi0
    values["open_interest_end_usd"] = oi1.sum()
    values["open_interest_change"] = _ratio(oi1.sum(), oi0) - 1.0
    values["open_interest_trough_change"] = _ratio(oi_path.sum(axis=1).min(), oi0) - 1.0
    _by_venue(values, "open_interest_change", dnames, _ratio(oi1, oi_path[0]) - 1.0)
    _by_venue(values, "oi_share", dnames, _ratio(oi_path[0], oi0))
    volume = series["volume_usd"].sum(axis=0)
    dvol = volume[deriv].sum()
    _by_venue(values, "volume_share", dnames, _ratio(volume[deriv], dvol))
    off = vb.offshore[deriv]
    values["offshore_oi_share"] = _ratio(oi_path[0][off].sum(), oi0)
    values["offshore_volume_share"] = _ratio(volume[deriv][off].sum(), dvol)

    # activity and liquidity
    values["volume_usd"] = volume.sum()
    _by_venue(values, "volume_usd", names, volume)
    depth = series["depth_usd"]
    total = _ratio(depth.sum(axis=1), start.depth.sum())
    values["depth_mean_ratio"] = total.mean()
    values["depth_worst_ratio"] = total.min()
    rel = _ratio(depth, start.depth)
    _by_venue(values, "depth_mean_ratio", names, rel.mean(axis=0))
    _by_venue(values, "depth_worst_ratio", names, rel.min(axis=0))

    defs = definitions(sc)
    assert values.keys() == defs.keys(), f"metrics computed and defined differ: {set(values) ^ set(defs)}"
    return {name: float(values[name]) for name in defs}

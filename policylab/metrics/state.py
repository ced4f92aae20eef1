"""What the metrics read from a model: the starting snapshot (:class:`Start`, taken by
:func:`snapshot` before the first step), wealth and open interest, the venue table and
event log as arrays, and the path measures (drawdown, amplification) that the
timeseries table also uses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policylab.names import EVENT_KINDS

LIQUIDATION_KINDS = ("liquidation", "partial", "backstop", "adl")  # event kinds that count as liquidated


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
    deposit: np.ndarray  # per account: money put in so far (USD)
    resident_open_interest: np.ndarray  # jurisdictions x venues: the population's long open interest (USD)


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
                 coin_price=vb.coin_price.copy(), deposit=model.tb.deposit.copy(),
                 resident_open_interest=model.open_interest_by_residence()[1])


def venue_series(model) -> dict[str, np.ndarray]:
    """The model's per-step venue table as (steps x venues) arrays, by column."""
    return {c: a[:model.steps] for c, a in model.venue_series.items()}


def event_arrays(model) -> dict[str, np.ndarray]:
    """The event log's arrays with integer codes as integers (``juris``: jurisdiction of
    residence, meaningless for the venues' own rows), plus ``notional`` (USD) and
    ``liquidation`` (the event closed a position by liquidation)."""
    ev = model.events.arrays()
    out = {c: ev[c].astype(np.int64) for c in ("step", "round", "kind", "account", "venue", "cls")}
    out["juris"] = ev["juris"].astype(np.int64)
    out.update({c: ev[c].astype(float) for c in ("size", "price", "weight", "deficit", "lev_chosen")})
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

"""Loading real price files: common OHLCV and close-price CSV shapes, with real quirks.

Accepted shapes: a time column (``Open time``, ``timestamp``, ``date``, ``Date``, ``time``,
...; text dates or Unix seconds / milliseconds) and a price column (``Close``,
``close``, ``price``, ``BTC_USD``, ...). Quirks handled rather than crashed on: trailing
spaces in cells and headers, duplicate rows, gaps, an unfinished last row (empty
timestamp or price), newest-first order, thousands separators.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from policylab.errors import InputError

TIME_COLUMNS = ("open time", "timestamp", "date", "datetime", "time", "open_time", "close time")
PRICE_COLUMNS = ("close", "adj close", "price", "btc_usd", "last", "close_price")


def load_prices(path: str | Path) -> pd.Series:
    """Close prices indexed by UTC timestamp, oldest first, one row per timestamp.
    Raises InputError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: price file not found")
    try:
        raw = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    lower = {c.lower(): c for c in raw.columns}
    tcol = next((lower[c] for c in TIME_COLUMNS if c in lower), None)
    pcol = next((lower[c] for c in PRICE_COLUMNS if c in lower), None)
    if tcol is None or pcol is None:
        missing = "a time column" if tcol is None else "a price column"
        allowed = TIME_COLUMNS if tcol is None else PRICE_COLUMNS
        raise InputError(f"{path}: no {missing} found in {list(raw.columns)}; allowed names: {', '.join(allowed)}")
    when = raw[tcol].astype("str").str.strip()
    price = pd.to_numeric(raw[pcol].astype("str").str.strip().str.replace(",", "", regex=False), errors="coerce")
    stamps = _parse_times(when)
    frame = pd.DataFrame({"t": stamps, "p": price}).dropna()
    frame = frame[frame["p"] > 0]
    if len(frame) < 3:
        raise InputError(f"{path}: fewer than 3 usable rows of {tcol!r} and {pcol!r}")
    frame = frame.drop_duplicates("t", keep="last").sort_values("t", kind="stable")
    return pd.Series(frame["p"].to_numpy(dtype=float), index=pd.DatetimeIndex(frame["t"], name="time"), name="close")


def _parse_times(text: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().mean() > 0.9:  # Unix epoch: milliseconds above ~1e11, else seconds
        unit = "ms" if numeric.dropna().median() > 1e11 else "s"
        return pd.to_datetime(numeric, unit=unit, utc=True, errors="coerce")
    return pd.to_datetime(text.replace({"": None, "nan": None}), utc=True, errors="coerce", format="mixed")


def log_returns(prices: pd.Series, every: str | None = None) -> np.ndarray:
    """Log returns, optionally of bars resampled to ``every`` (e.g. "1h", "4h", "1D");
    a return spanning a gap in the data is dropped rather than counted as one move."""
    s = prices
    if every is not None:
        s = prices.resample(every).last().dropna()
        step = pd.Timedelta(every)
    else:
        step = pd.Series(s.index).diff().median()
    r = np.diff(np.log(s.to_numpy()))
    gaps = (pd.Series(s.index).diff().iloc[1:] > 1.5 * step).to_numpy()
    return r[~gaps]

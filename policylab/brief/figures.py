"""The brief's figures (seaborn on matplotlib's Agg backend), as inline PNG data URIs.

:data:`FIGURES` is the registry, in reading order: one :class:`FigureSpec` per figure
(anchor id, title, caption, the results files it reads, the function drawing it and,
optionally, when it applies). A drawing function takes a :class:`FigureData` (the
results folder's tables, the rule sets with a finished run and their colours) and
returns the matplotlib figure and the table of exactly what it plots, in the results'
units (USD, fractions), ready to be saved as the figure's CSV. To add a figure, write
such a function and add one line to :data:`FIGURES`; the brief's figure section and
the smoke test in tests/test_brief_registries.py pick it up.

Every figure keeps rule sets in comparison order with one colour each (the baseline
grey), is sized for a printed A4 or Letter page at 100% width, and labels every
quantitative axis with its unit. Money axes are scaled to thousands, millions or
billions of USD by the size of the numbers shown.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.lines  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from policylab.brief.results import Results  # noqa: E402

WIDTH_IN = 6.8  # printed text width of an A4/Letter portrait page with 18 mm margins
DPI = 150
BASELINE_COLOUR = "#6b6b6b"
JITTER_SEED = 0  # seed of the strip plots' jitter
RC = {"font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8,
      "xtick.labelsize": 7.5, "ytick.labelsize": 7.5, "legend.fontsize": 7.5, "legend.title_fontsize": 7.5,
      "text.parse_math": False, "svg.fonttype": "none"}


@dataclass(frozen=True)
class FigureData:
    """What a figure is drawn from: a results folder's tables, the rule sets with at least
    one finished run (comparison order, baseline first) and one colour per rule set."""

    summary: pd.DataFrame
    runs: pd.DataFrame
    timeseries: pd.DataFrame
    order: list[str]
    baseline: str
    colours: dict[str, str]
    labels: dict[str, str] = dataclasses.field(default_factory=dict)  # venue name -> how the brief names it
    rule_sets: dict = dataclasses.field(default_factory=dict)  # rule_sets.json: targets, repeal markers
    flagged: tuple[str, ...] = ()  # arms with a failed run, flagged runs or invariant violations
    sensitivity: pd.DataFrame | None = None  # sensitivity.csv when present

    @classmethod
    def of(cls, res: Results) -> FigureData:
        from policylab.brief.summary import flags

        order = res.finished
        return cls(res.summary, res.runs, res.timeseries, order, res.baseline, palette(order, res.baseline),
                   dict(res.labels), res.rule_sets, tuple(flags(res)), res.sensitivity)


Drawing = Callable[[FigureData], "tuple[matplotlib.figure.Figure, pd.DataFrame]"]


def _always(data: FigureData) -> bool:
    return True


@dataclass(frozen=True)
class FigureSpec:
    """One registry entry: the figure's anchor id, title, caption, the results files and
    columns it reads, the function drawing it and the condition under which it is shown."""

    id: str
    title: str
    caption: str
    source: str
    draw: Drawing
    when: Callable[[FigureData], bool] = _always
    section: str = "figures"  # the brief section (sections.SECTIONS name) that shows it


@dataclass(frozen=True)
class Figure:
    """One drawn figure: its registry entry's texts, the PNG as a data URI and the table it plots."""

    id: str
    title: str
    caption: str
    source: str  # results file and columns or metrics
    uri: str  # data:image/png;base64,...
    data: pd.DataFrame
    section: str = "figures"


# Okabe and Ito's colour-blind-safe palette (yellow dropped: too pale on white), then Paul
# Tol's muted scheme for more arms; every colour distinct from the baseline's grey.
SAFE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#882255",
                "#44AA99", "#999933", "#332288", "#AA4499", "#000000")
OUTLIER_FACTOR = 4.0  # an arm whose effect is this many times the median arm's gets its own panel


def palette(rule_sets: list[str], baseline: str) -> dict[str, str]:
    """One colour per rule set from :data:`SAFE_COLOURS`; the baseline grey (past twelve
    arms, evenly spaced hues)."""
    others = [r for r in rule_sets if r != baseline]
    colours = list(SAFE_COLOURS) if len(others) <= len(SAFE_COLOURS) else sns.color_palette("husl", len(others)).as_hex()
    return {baseline: BASELINE_COLOUR, **dict(zip(others, colours))}


def split_outliers(sizes: dict[str, float], factor: float = OUTLIER_FACTOR) -> tuple[list[str], list[str]]:
    """(ordinary, outliers): an arm is an outlier when its size is over ``factor`` times the
    median size of the arms and at least two arms stay ordinary. Order is kept."""
    vals = sorted(abs(v) for v in sizes.values() if np.isfinite(v))
    if len(vals) < 3:
        return list(sizes), []
    med = float(np.median(vals))
    out = [a for a, v in sizes.items() if np.isfinite(v) and med > 0 and abs(v) > factor * med]
    keep = [a for a in sizes if a not in out]
    return (keep, out) if len(keep) >= 2 else (list(sizes), [])


def label_ends(ax, lines: dict[str, tuple[np.ndarray, np.ndarray]], colours: dict[str, str]) -> None:
    """Direct labels: each line's name at its right end, nudged apart so none overlap."""
    if not lines:
        return
    ends = sorted(((float(y[-1]), name) for name, (x, y) in lines.items() if len(y)), key=lambda t: t[0])
    lo, hi = ax.get_ylim()
    gap = 0.085 * (hi - lo)
    placed: list[float] = []
    for y, name in ends:
        y = max(y, placed[-1] + gap) if placed else y
        placed.append(y)
        x = lines[name][0][-1]
        ax.annotate(name, xy=(x, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=6.8,
                    color=colours[name], annotation_clip=False)


def usd_scale(values) -> tuple[float, str]:
    """Divisor and axis unit for money of this size."""
    a = np.nanmax(np.abs(np.asarray(values, dtype=float))) if np.size(values) else 0.0
    for scale, unit in ((1e9, "USD billions"), (1e6, "USD millions"), (1e3, "USD thousands")):
        if a >= scale:
            return scale, unit
    return 1.0, "USD"


def _uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _bands(frame: pd.DataFrame, value: str, cumulative: bool = False) -> pd.DataFrame:
    """Per minute: the 5th, 50th and 95th percentile over seeds of ``value`` (optionally
    cumulated over time first), with the time in hours."""
    wide = frame.pivot_table(index="minute", columns="seed", values=value, aggfunc="sum").sort_index()
    arr = wide.to_numpy(dtype=float)
    if cumulative:
        arr = np.nancumsum(arr, axis=0)
    quantile = np.nanquantile if np.isnan(arr).any() else np.quantile  # a seed may lack a sample
    lo, med, hi = quantile(arr, [0.05, 0.5, 0.95], axis=1)
    return pd.DataFrame({"hours": wide.index.to_numpy() / 60.0, "lo": lo, "med": med, "hi": hi})


def _quantiles(bands: pd.DataFrame, stem: str) -> pd.DataFrame:
    """A band table (rule_set, hours, lo, med, hi) with columns named for the CSV."""
    return bands.rename(columns={"lo": f"{stem}_p05", "med": f"{stem}_median", "hi": f"{stem}_p95"})


WINDOW_BEFORE_MINUTES, WINDOW_AFTER_MINUTES = 120, 240  # the crash window around the baseline's trough


LABEL_OFFSETS = ((4, 3), (4, -9), (-4, 3), (-4, -9), (4, 12), (4, -18), (-4, 12), (-4, -18), (4, 21), (4, -27))


def label_points(ax, points: list[tuple[str, float, float, str]], fontsize: float = 6.8) -> None:
    """Direct labels for scatter points (text, x, y, colour): each at the first offset of
    LABEL_OFFSETS whose box (estimated from the text's length) overlaps no label placed before."""
    fig = ax.figure
    fig.canvas.draw()  # fixes the axes' limits and transform
    to_pt = 72.0 / fig.dpi
    placed: list[tuple[float, float, float, float]] = []
    for text, x, y, colour in points:
        px, py = (v * to_pt for v in ax.transData.transform((x, y)))
        w, h = 0.6 * fontsize * len(text), fontsize
        for dx, dy in LABEL_OFFSETS:
            left = px + dx - (w if dx < 0 else 0)
            box = (left, py + dy, left + w, py + dy + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, color=colour,
                    ha="right" if dx < 0 else "left")


def _index_rows(ts: pd.DataFrame) -> pd.DataFrame:
    return ts[ts["venue"] == ts["venue"].iloc[0]]  # the index is the same on every venue's rows


def crash_window(d: FigureData) -> tuple[float, float]:
    """(first, last) minute of the crash window: from WINDOW_BEFORE_MINUTES before the
    baseline's median index low to WINDOW_AFTER_MINUTES after it, within the run."""
    idx = _index_rows(d.timeseries)
    base = idx[idx["rule_set"] == d.baseline].groupby("minute")["index_usd"].median()
    trough = float(base.idxmin())
    return (max(float(base.index.min()), trough - WINDOW_BEFORE_MINUTES),
            min(float(base.index.max()), trough + WINDOW_AFTER_MINUTES))


def _panels(n: int, height: float, ratios=None):
    fig, axes = plt.subplots(n, 1, figsize=(WIDTH_IN, height * n + 0.5), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": ratios} if ratios else None)
    return fig, list(axes[:, 0])


def price_paths(d: FigureData) -> tuple[matplotlib.figure.Figure, pd.DataFrame]:
    """The crash window: the baseline's index (top) and each rule set's index minus the
    baseline's on the same seed, in % of the baseline's price (median over seeds, 5-95%
    band); arms whose difference is far larger than the others' on a panel of their own."""
    idx = _index_rows(d.timeseries)
    lo_min, hi_min = crash_window(d)
    idx = idx[(idx["minute"] >= lo_min) & (idx["minute"] <= hi_min)]
    wide = {name: idx[idx["rule_set"] == name].pivot_table(index="minute", columns="seed", values="index_usd",
                                                           aggfunc="first").sort_index() for name in d.order}
    base = wide[d.baseline]
    bands, sizes = {}, {}
    for name in d.order:
        if name == d.baseline:
            continue
        seeds = [c for c in wide[name].columns if c in base.columns]
        if not seeds:
            continue
        diff = 100 * (wide[name][seeds] - base[seeds]) / base[seeds]
        arr = diff.to_numpy(dtype=float)
        lo, med, hi = np.nanquantile(arr, [0.05, 0.5, 0.95], axis=1)
        bands[name] = pd.DataFrame({"hours": diff.index.to_numpy() / 60.0, "lo": lo, "med": med, "hi": hi})
        sizes[name] = float(np.nanmax(np.abs(med))) if np.isfinite(med).any() else 0.0
    ordinary, outliers = split_outliers(sizes)
    groups = [g for g in (ordinary, outliers) if g]
    fig, axes = _panels(1 + len(groups), 1.55, [0.8] + [1.2] * len(groups))
    level = base.median(axis=1)
    scale, unit = usd_scale(level.to_numpy())
    axes[0].plot(level.index / 60.0, level / scale, color=BASELINE_COLOUR, linewidth=1.2)
    axes[0].set_ylabel(f"index ({unit})")
    axes[0].set_title(f"Baseline ({d.baseline}): index price, median over seeds")
    for ax, group, what in zip(axes[1:], groups, ("", " (arms with much larger effects)")):
        ax.axhline(0, color=BASELINE_COLOUR, linewidth=0.8, linestyle="--")
        for name in group:
            b = bands[name]
            ax.fill_between(b["hours"], b["lo"], b["hi"], color=d.colours[name], alpha=0.12, linewidth=0)
            ax.plot(b["hours"], b["med"], color=d.colours[name], linewidth=1.3)
        ax.set_ylabel("index minus baseline (%)")
        ax.set_title(f"Index under each rule set minus the baseline's, same seed{what}")
        label_ends(ax, {n: (bands[n]["hours"].to_numpy(), bands[n]["med"].to_numpy()) for n in group}, d.colours)
    axes[-1].set_xlabel("hours from start")
    fig.tight_layout()
    fig.subplots_adjust(right=0.8)
    data = pd.concat([b.assign(rule_set=n) for n, b in bands.items()] or
                     [pd.DataFrame(columns=["hours", "lo", "med", "hi", "rule_set"])], ignore_index=True)
    data = _quantiles(data[["rule_set", "hours", "lo", "med", "hi"]], "index_minus_baseline_pct")
    base_rows = pd.DataFrame({"rule_set": d.baseline, "hours": level.index / 60.0, "baseline_index_usd": level.values})
    return fig, pd.concat([base_rows, data], ignore_index=True)


def liquidations_over_time(d: FigureData) -> tuple[matplotlib.figure.Figure, pd.DataFrame]:
    """Cumulative liquidated notional across venues from the start of the crash window:
    median over seeds per rule set with its band, direct labels, outlier arms on their own panel."""
    ts, order, colours = d.timeseries, d.order, d.colours
    lo_min, _ = crash_window(d)
    q = pd.concat([_bands(ts[ts["rule_set"] == name], "liquidated_usd", cumulative=True).assign(rule_set=name)
                   for name in order], ignore_index=True)
    data = _quantiles(q[["rule_set", "hours", "lo", "med", "hi"]], "cumulative_liquidated_usd")
    q = q[q["hours"] >= lo_min / 60.0]
    finals = q.groupby("rule_set")["med"].last()
    ordinary, outliers = split_outliers({n: float(finals.get(n, 0.0)) for n in order})
    groups = [g for g in (ordinary, outliers) if g]
    fig, axes = _panels(len(groups), 2.3)
    for ax, group, what in zip(axes, groups, ("", " (arms with much larger totals)")):
        own = q[q["rule_set"].isin(group)]
        scale, unit = usd_scale(own[["lo", "med", "hi"]].to_numpy())
        lines = {}
        for name in group:
            r = own[own["rule_set"] == name]
            ax.fill_between(r["hours"], r["lo"] / scale, r["hi"] / scale, color=colours[name], alpha=0.12, linewidth=0)
            ax.plot(r["hours"], r["med"] / scale, color=colours[name], linewidth=1.4 if name != d.baseline else 1.1,
                    linestyle="--" if name == d.baseline else "-")
            lines[name] = (r["hours"].to_numpy(), (r["med"] / scale).to_numpy())
        ax.set_ylabel(f"cumulative liquidated\n({unit})")
        ax.set_title(f"Cumulative liquidated notional{what}")
        label_ends(ax, lines, colours)
    axes[-1].set_xlabel("hours from start")
    fig.tight_layout()
    fig.subplots_adjust(right=0.8)
    return fig, data


def _family(runs: pd.DataFrame, stem: str, label: str) -> pd.DataFrame:
    """Mean over seeds of a metric family (``<stem>.<label>.<member>``) per rule set and member."""
    prefix = f"{stem}.{label}."
    fam = runs[runs["metric"].str.startswith(prefix)]
    fam = fam.assign(member=fam["metric"].str.slice(len(prefix)))
    return fam.groupby(["rule_set", "member"], sort=False)["value"].mean().reset_index()


def _members_palette(members: list[str]) -> dict[str, str]:
    """One colour per venue or trader class, the same in every figure (colour-blind safe up to twelve)."""
    colours = list(SAFE_COLOURS) if len(members) <= len(SAFE_COLOURS) else \
        sns.color_palette("husl", len(members)).as_hex()
    return dict(zip(members, colours))


def _stacked(ax, data: pd.DataFrame, order: list[str], scale: float, unit: str, legend: str) -> None:
    members = list(dict.fromkeys(data["member"]))
    sns.histplot(data.assign(value=data["value"] / scale), y="rule_set", weights="value", hue="member",
                 hue_order=members, multiple="stack", discrete=True, shrink=0.75, ax=ax,
                 palette=_members_palette(members), linewidth=0.3, edgecolor="white", alpha=1.0)
    ax.set_yticks(range(len(order)), order)
    ax.set_ylabel("")
    ax.set_xlabel(unit)
    ax.set_ylim(len(order) - 0.5, -0.5)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), title=legend, frameon=False)


def liquidations_by_venue_and_class(d: FigureData) -> tuple[matplotlib.figure.Figure, pd.DataFrame]:
    """Mean liquidated notional per seed by venue and by trader class, stacked, per rule set."""
    runs, order = d.runs, d.order
    venue = _family(runs, "liquidated_usd", "venue")
    venue["member"] = venue["member"].map(lambda v: d.labels.get(v, v.replace("_", " ")))
    cls = _family(runs, "liquidated_usd", "class")
    totals = pd.concat([venue, cls]).groupby("rule_set")["value"].sum() / 2
    scale, unit = usd_scale(totals.to_numpy())
    height = 0.9 + 0.3 * len(order)
    fig, axes = plt.subplots(2, 1, figsize=(WIDTH_IN, 2 * height + 0.4))
    for ax, data, legend, what in ((axes[0], venue, "venue", "by venue"),
                                   (axes[1], cls, "trader class", "by trader class")):
        data = data[data["rule_set"].isin(order)]
        data = data.assign(rule_set=pd.Categorical(data["rule_set"], categories=order).codes)
        _stacked(ax, data, order, scale, f"mean liquidated notional per run ({unit})", legend)
        ax.set_title(f"Liquidated notional {what}")
    fig.tight_layout()
    data = pd.concat([venue.assign(split="venue"), cls.assign(split="class")], ignore_index=True)
    data = data[data["rule_set"].isin(order)].rename(columns={"value": "mean_liquidated_usd"})
    return fig, data[["rule_set", "split", "member", "mean_liquidated_usd"]].reset_index(drop=True)


def market_shares(d: FigureData) -> tuple[matplotlib.figure.Figure, pd.DataFrame]:
    """Venue shares of derivatives volume and of starting open interest (means over seeds), stacked."""
    runs, order = d.runs, d.order
    height = 0.9 + 0.3 * len(order)
    fig, axes = plt.subplots(2, 1, figsize=(WIDTH_IN, 2 * height + 0.4))
    shares = []
    for ax, stem, what in ((axes[0], "volume_share", "derivatives traded volume"),
                           (axes[1], "oi_share", "derivatives open interest at the start")):
        data = _family(runs, stem, "venue")
        data["member"] = data["member"].map(lambda v: d.labels.get(v, v.replace("_", " ")))
        data = data[data["rule_set"].isin(order)]
        shares.append(data.assign(metric=stem))
        data = data.assign(rule_set=pd.Categorical(data["rule_set"], categories=order).codes, value=100 * data["value"])
        _stacked(ax, data, order, 1.0, "share (%)", "venue")
        ax.set_xlim(0, 100)
        ax.set_title(f"Venue shares of {what}")
    fig.tight_layout()
    data = pd.concat(shares, ignore_index=True).rename(columns={"member": "venue", "value": "share"})
    return fig, data[["rule_set", "metric", "venue", "share"]]


@contextlib.contextmanager
def _fixed_jitter():
    """Seaborn jitters strip plots with NumPy's global random state: seed it for the plot
    (so one results folder always gives the same image) and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(JITTER_SEED)
    try:
        yield
    finally:
        np.random.set_state(state)


def retail_losses(d: FigureData) -> tuple[matplotlib.figure.Figure, pd.DataFrame]:
    """Per-run retail losses and the share of retail accounts that lost: box plots with seeds as points."""
    runs, order, colours = d.runs, d.order, d.colours
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH_IN, 1.0 + 0.32 * len(order)), sharey=True)
    metrics = ("retail_loss_usd", "retail_losers_share")
    for ax, metric, title in ((axes[0], metrics[0], "Gross losses of retail accounts that lost"),
                              (axes[1], metrics[1], "Retail accounts that lost money")):
        data = runs[(runs["metric"] == metric) & runs["rule_set"].isin(order)]
        if metric == "retail_loss_usd":
            scale, unit = usd_scale(data["value"].to_numpy())
            data = data.assign(value=data["value"] / scale)
        else:
            unit = "% of retail accounts"
            data = data.assign(value=100 * data["value"])
        sns.boxplot(data, x="value", y="rule_set", hue="rule_set", order=order, hue_order=order, palette=colours,
                    ax=ax, fliersize=0, linewidth=0.7, width=0.6, boxprops={"alpha": 0.45}, legend=False)
        with _fixed_jitter():
            sns.stripplot(data, x="value", y="rule_set", hue="rule_set", order=order, hue_order=order,
                          palette=colours, ax=ax, size=2.2, jitter=0.18, legend=False)
        ax.set_xlabel(unit)
        ax.set_ylabel("")
        ax.set_title(title)
    fig.tight_layout()
    data = runs[runs["metric"].isin(metrics) & runs["rule_set"].isin(order)]
    return fig, data[["rule_set", "seed", "metric", "value"]].reset_index(drop=True)


def _activity(summary: pd.DataFrame) -> tuple[str, str]:
    """The activity metric of the trade-off chart: voluntary volume when the run has it, else total volume."""
    if "volume_usd.voluntary" in set(summary["metric"]):
        return "volume_usd.voluntary", "voluntary traded volume"
    return "volume_usd", "traded volume (forced selling included)"


def _has_trade_off(d: FigureData) -> bool:
    return len(d.order) > 1 and {"liquidated_usd", "volume_usd"} <= set(d.summary["metric"])


def trade_off(d: FigureData) -> tuple[matplotlib.figure.Figure, pd.DataFrame]:
    """Change in risk (liquidated notional) against change in market activity (voluntary
    volume when the run has it, else traded volume) from the baseline, one labelled point per
    rule set with paired 90% intervals on both axes; arms far larger than the others on a
    panel of their own."""
    summary, order, baseline, colours = d.summary, d.order, d.baseline, d.colours
    risk, (activity, activity_label) = "liquidated_usd", _activity(summary)
    s = summary.set_index(["rule_set", "metric"])
    rows = [(name, *s.loc[(name, activity), ["diff_mean", "diff_lo", "diff_hi"]],
             *s.loc[(name, risk), ["diff_mean", "diff_lo", "diff_hi"]])
            for name in order if name != baseline and (name, activity) in s.index and (name, risk) in s.index]
    pts = pd.DataFrame(rows, columns=["rule_set", "x", "xlo", "xhi", "y", "ylo", "yhi"])
    pts[["x", "y"]] = pts[["x", "y"]].fillna(0.0)
    for c in ("x", "y"):  # no interval (one seed): a bar of zero length
        pts[[f"{c}lo", f"{c}hi"]] = pts[[f"{c}lo", f"{c}hi"]].apply(lambda col: col.fillna(pts[c]))
    xs_all, ys_all = pts["x"].abs(), pts["y"].abs()
    rx = xs_all / (xs_all.median() or 1.0)
    ry = ys_all / (ys_all.median() or 1.0)
    ordinary, outliers = split_outliers(dict(zip(pts["rule_set"], np.maximum(rx, ry))), OUTLIER_FACTOR)
    groups = [g for g in (ordinary, outliers) if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(WIDTH_IN, 3.4), squeeze=False,
                             gridspec_kw={"width_ratios": [2, 1][:len(groups)]})
    for ax, group, what in zip(axes[0], groups, ("", "arms with much larger effects")):
        own = pts[pts["rule_set"].isin(group)]
        xs, xunit = usd_scale(own[["x", "xlo", "xhi"]].to_numpy())
        ys, yunit = usd_scale(own[["y", "ylo", "yhi"]].to_numpy())
        ax.axhline(0, color=BASELINE_COLOUR, linewidth=0.7)
        ax.axvline(0, color=BASELINE_COLOUR, linewidth=0.7)
        for _, r in own.iterrows():
            ax.errorbar(r["x"] / xs, r["y"] / ys,
                        xerr=[[(r["x"] - r["xlo"]) / xs], [(r["xhi"] - r["x"]) / xs]],
                        yerr=[[(r["y"] - r["ylo"]) / ys], [(r["yhi"] - r["y"]) / ys]],
                        color=colours[r["rule_set"]], elinewidth=1, capsize=2, linestyle="none")
            ax.scatter([r["x"] / xs], [r["y"] / ys], color=colours[r["rule_set"]], s=30, zorder=3,
                       edgecolor="black", linewidth=0.4)
        ax.scatter([0], [0], color=BASELINE_COLOUR, marker="D", s=24, zorder=3)
        points = [(r["rule_set"], r["x"] / xs, r["y"] / ys, colours[r["rule_set"]]) for _, r in own.iterrows()]
        label_points(ax, [(f"{baseline} (baseline)", 0.0, 0.0, BASELINE_COLOUR), *points])
        ax.set_xlabel(f"change in {activity_label}\n({xunit})" if len(groups) > 1 else
                      f"change in {activity_label} ({xunit})")
        ax.set_ylabel(f"change in liquidated notional ({yunit})")
        if what:
            ax.set_title(what)
    fig.tight_layout()
    names = {"x": f"{activity}_diff_mean", "xlo": f"{activity}_diff_lo", "xhi": f"{activity}_diff_hi",
             "y": f"{risk}_diff_mean", "ylo": f"{risk}_diff_lo", "yhi": f"{risk}_diff_hi"}
    return fig, pts.rename(columns=names)


FLOW_PARTS = (  # (panel, segment, how its level is read from the `.jurisdiction.` families' levels)
    ("volume", "domestic venues", lambda f: f["domestic_volume_usd"]),
    ("volume", "offshore venues", lambda f: f["offshore_volume_usd"]),
    ("accounts", "stayed on their venue", lambda f: f["accounts_active"] - f["accounts_moved"]),
    ("accounts", "moved venue", lambda f: f["accounts_moved"]),
    ("accounts", "stopped trading", lambda f: f["accounts_quit"]),
)
FLOW_STEMS = ("domestic_volume_usd", "offshore_volume_usd", "accounts_active", "accounts_moved", "accounts_quit")


def _flows(d: FigureData) -> pd.DataFrame:
    """Per national arm (one targeting jurisdictions) and targeted jurisdiction, the level
    without and with the rule of each FLOW_PARTS segment (means over seeds; a repeal read as
    baseline minus repeal: without the rule is the repeal's run) and its share of its panel:
    the jurisdiction's volume split domestic/offshore, its accounts split stayed/moved/stopped
    (active accounts include those that moved). A panel needs all its families."""
    from policylab.brief import summary as core  # the brief's reading of arms: targets and repeals

    s = d.summary.set_index(["rule_set", "metric"])
    rows = []
    for arm in d.order:
        if arm == d.baseline or arm in d.flagged:
            continue
        repeal = core.is_repeal(d.rule_sets.get(arm))
        for j in core.targets(d.rule_sets.get(arm) or {}, d.rule_sets):
            levels = {}
            for stem in FLOW_STEMS:
                key = (arm, f"{stem}.jurisdiction.{j}")
                if key in s.index:
                    base, own = float(s.loc[key, "baseline"]), float(s.loc[key, "mean"])
                    levels[stem] = {"without": own, "with": base} if repeal else {"without": base, "with": own}
            for rule in ("without", "with"):
                own = {stem: v[rule] for stem, v in levels.items()}
                for panel in ("volume", "accounts"):
                    parts = [(label, read) for p, label, read in FLOW_PARTS if p == panel]
                    try:
                        values = [(label, max(float(read(own)), 0.0)) for label, read in parts]
                    except KeyError:
                        continue
                    total = sum(v for _, v in values)
                    rows += [{"rule_set": arm, "jurisdiction": j, "panel": panel, "part": label, "rule": rule,
                              "value": v, "share": v / total if total > 0 else float("nan")} for label, v in values]
    return pd.DataFrame(rows, columns=["rule_set", "jurisdiction", "panel", "part", "rule", "value", "share"])


def _has_flows(d: FigureData) -> bool:
    return not _flows(d).empty


FLOW_COLOURS = {"domestic venues": "#0072B2", "offshore venues": "#E69F00", "stayed on their venue": "#0072B2",
                "moved venue": "#56B4E9", "stopped trading": "#D55E00"}
FLOW_LEGEND = {"domestic venues": "domestic", "offshore venues": "offshore", "stayed on their venue": "stayed",
               "moved venue": "moved venue", "stopped trading": "stopped trading"}


def who_moved(d: FigureData) -> tuple[matplotlib.figure.Figure, pd.DataFrame]:
    """Where a targeted jurisdiction's traders went, from before to after: its traded
    volume on domestic venues and offshore, and its accounts that stayed, moved venue or
    stopped trading, in % of the jurisdiction's, without and with each national rule set
    (means over seeds); one pair of bars per rule set and targeted jurisdiction, named above it."""
    data = _flows(d)
    pairs = list(dict.fromkeys(zip(data["rule_set"], data["jurisdiction"])))
    panels = [p for p in ("volume", "accounts") if p in set(data["panel"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH_IN, 1.1 + 0.42 * len(pairs)), squeeze=False,
                             sharey=True)
    step = 3.2  # rows per pair: its name, without, with, a gap
    positions = [step * i + k for i in range(len(pairs)) for k in (1, 2)]
    for n, (ax, panel) in enumerate(zip(axes[0], panels)):
        own = data[data["panel"] == panel].set_index(["rule_set", "jurisdiction", "rule", "part"])["share"]
        parts = [label for p, label, _ in FLOW_PARTS if p == panel]
        for i, (a, j) in enumerate(pairs):
            if n == 0:
                ax.text(0.5, step * i + 0.25, f"{a} ({j})", fontsize=7, fontweight="bold", va="center",
                        color="#1a1a1a")
            for k, rule in enumerate(("without", "with")):
                left = 0.0
                for part in parts:
                    if (a, j, rule, part) not in own.index or not np.isfinite(own[(a, j, rule, part)]):
                        continue
                    width = 100 * float(own[(a, j, rule, part)])
                    ax.barh(step * i + 1 + k, width, left=left, color=FLOW_COLOURS[part], height=0.85,
                            label=FLOW_LEGEND[part] if (i, k) == (0, 0) else None, edgecolor="white",
                            linewidth=0.4)
                    if width >= 9:
                        ax.text(left + width / 2, step * i + 1 + k, f"{width:.0f}%", ha="center", va="center",
                                fontsize=6, color="white" if part != "moved venue" else "black")
                    left += width
        ax.set_yticks(positions, ["without the rule", "with the rule"] * len(pairs))
        ax.tick_params(axis="y", length=0)
        ax.set_ylim(positions[-1] + 0.7, -0.3)
        ax.set_xlim(0, 100)
        ax.grid(False, axis="y")
        ax.set_xlabel(f"% of the jurisdiction's {'traded volume' if panel == 'volume' else 'accounts'}")
        ax.set_title("Their traded volume" if panel == "volume" else "Their accounts", pad=16)
        ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(parts), fontsize=6.5,
                  handlelength=1.0, columnspacing=0.8, borderaxespad=0.2)
    fig.tight_layout()
    return fig, data


def _has_sensitivity(d: FigureData) -> bool:
    return d.sensitivity is not None and not d.sensitivity.empty


def outcome_label(metric: str) -> str:
    """The page-1 label of a core outcome's metric (the metric's name if it is none)."""
    from policylab.metrics.headlines import CORE_OUTCOMES

    return next((label for col in CORE_OUTCOMES for m, label in col.choices if m == metric), metric)


def _diff_scale(unit: str, values) -> tuple[float, str]:
    """Divisor and axis unit for differences of a metric in ``unit`` (summary.csv's):
    money by its size, shares in percentage points, many accounts in thousands."""
    if unit == "USD":
        return usd_scale(values)
    if unit == "fraction":
        return 0.01, "pp"
    a = np.nanmax(np.abs(np.asarray(values, dtype=float))) if np.size(values) else 0.0
    if unit == "accounts" and a >= 1e4:
        return 1e3, "thousand accounts"
    return 1.0, unit


def tornado(d: FigureData) -> tuple[matplotlib.figure.Figure, pd.DataFrame]:
    """One panel per core outcome, four to a row: for each assumption and rule set, the
    paired difference from the baseline at the low end (open circle) and at the high end
    (filled) of the assumption's documented range, joined by a bar. The assumptions are
    in the same order in every panel (labels on the left), the widest swings on average
    on top (each panel's swings relative to its widest)."""
    from policylab.inputs.assumptions import ASSUMPTIONS

    t = d.sensitivity
    metrics = list(dict.fromkeys(t["metric"]))
    arms = list(dict.fromkeys(t["rule_set"]))
    colours = {r: d.colours.get(r, SAFE_COLOURS[i % len(SAFE_COLOURS)]) for i, r in enumerate(arms)}
    names = {a.name: f"{a.label}\n({a.span})" for a in ASSUMPTIONS}
    ends = t.pivot_table(index=["metric", "assumption", "rule_set"], columns="side", values="diff_mean")
    swing = (ends["high"] - ends["low"]).abs().groupby(level=[0, 1]).max()
    widest = swing.groupby(level=0).transform("max")
    order = list((swing / widest.where(widest > 0)).groupby(level=1).mean().fillna(0).sort_values().index)
    units = d.summary.drop_duplicates("metric").set_index("metric")["unit"]
    ncols = min(4, len(metrics))
    nrows = -(-len(metrics) // ncols)
    height = 0.3 + (0.16 + 0.04 * len(arms)) * len(order)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.2, nrows * height + 0.35), sharey=True, squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    rows = []
    step = 0.8 / len(arms)
    for ax, metric in zip(axes.flat, metrics):
        sub = ends.loc[metric]
        scale, unit = _diff_scale(str(units.get(metric, "")), sub.to_numpy())
        for y, assumption in enumerate(order):
            for k, arm in enumerate(arms):
                if (assumption, arm) not in sub.index:
                    continue
                lo, hi = sub.loc[(assumption, arm), "low"], sub.loc[(assumption, arm), "high"]
                yy = y - 0.4 + step * (k + 0.5)
                ax.plot([lo / scale, hi / scale], [yy, yy], color=colours[arm], lw=2, alpha=0.6)
                ax.plot(lo / scale, yy, "o", mfc="white", mec=colours[arm], ms=3)
                ax.plot(hi / scale, yy, "o", color=colours[arm], ms=3)
                rows.append({"metric": metric, "assumption": assumption, "rule_set": arm, "diff_at_low": lo,
                             "diff_at_high": hi})
        for y in range(len(order) - 1):
            ax.axhline(y + 0.5, color="#e5e5e5", lw=0.5)
        ax.axvline(0, color="#555555", lw=0.8)
        ax.set_ylim(-0.5, len(order) - 0.5)
        ax.set_yticks(range(len(order)), [names.get(a, a) for a in order], fontsize=5.5)
        ax.tick_params(axis="both", length=2, labelsize=5.5)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))
        title = outcome_label(metric) + (f" ({unit})" if unit else "")
        ax.set_title("\n".join(textwrap.wrap(title, 22)), loc="left", fontsize=6.5)
    handles = [matplotlib.lines.Line2D([], [], color=colours[a], lw=2, label=a) for a in arms]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(arms)), fontsize=6.5, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.2 / (nrows * height + 0.35) * (1 + len(arms) // 4), 1, 1), w_pad=0.6)
    return fig, pd.DataFrame(rows)


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("fig-flows", "Where the targeted traders went",
               "For each rule set that targets jurisdictions, and each jurisdiction it targets: that jurisdiction's "
               "traded volume on domestic and offshore venues (left) and its accounts that stayed on their venue, "
               "moved venue or stopped trading (right), in % of the jurisdiction's, without and with the rule "
               "(means over seeds; for a repeal, without the rule is the repeal's run). Rule sets that apply "
               "everywhere are in the table per jurisdiction under their name.",
               "summary.csv (mean and baseline of domestic_volume_usd, offshore_volume_usd, accounts_active, "
               "accounts_moved, accounts_quit .jurisdiction.*)", who_moved, _has_flows, "affected"),
    FigureSpec("fig-prices", "The crash, rule set by rule set",
               "The crash window only. Top: the baseline's index (spot) price, median over seeds. Below: each "
               "rule set's index minus the baseline's on the same seed, in % of the baseline's price (median over "
               "seeds, 5th to 95th percentile band); below zero, the price falls further than under the baseline. "
               "Rule sets with much larger differences than the others have their own panel.",
               "timeseries.parquet (index_usd)", price_paths),
    FigureSpec("fig-liquidations-time", "Liquidations through the crash",
               "Cumulative notional liquidated on all venues (whole, partial, backstop and the bankrupt side "
               "of ADL) from the start of the crash window: median over seeds and 5th to 95th percentile band; "
               "the baseline dashed. Rule sets with much larger totals have their own panel.",
               "timeseries.parquet (liquidated_usd)", liquidations_over_time),
    FigureSpec("fig-liquidations-split", "Liquidations by venue and trader class",
               "Mean notional liquidated per run, split by the venue it happened on (top) and the class of the "
               "account liquidated (bottom).", "runs.parquet (liquidated_usd.venue.*, liquidated_usd.class.*)",
               liquidations_by_venue_and_class),
    FigureSpec("fig-shares", "Where activity went",
               "Each venue's share of derivatives traded volume (top) and of open interest once traders have "
               "chosen their venues, before the shock (bottom); means over seeds.",
               "runs.parquet (volume_share.venue.*, oi_share.venue.*)", market_shares),
    FigureSpec("fig-retail", "Retail losses",
               "Per run (one point per seed) and box plots: gross losses of the retail accounts that lost money "
               "(left) and the share of real retail accounts that lost (right).",
               "runs.parquet (retail_loss_usd, retail_losers_share)", retail_losses),
    FigureSpec("fig-trade-off", "Risk against market activity",
               "Each rule set's mean difference from the baseline (at the origin) in liquidated notional "
               "and in traded volume (voluntary volume when the run separates it from forced selling), with "
               "paired bootstrap 90% intervals on both axes. Rule sets with much larger effects have their own "
               "panel.", "summary.csv (diff_mean, diff_lo, diff_hi of liquidated_usd and volume_usd or "
               "volume_usd.voluntary)", trade_off,
               _has_trade_off),
    FigureSpec("fig-robust", "How the differences move with the assumptions",
               "One panel per core outcome. Each bar: a rule set's mean difference from the baseline with one "
               "assumption (left, with its documented range) set to the low end (open circle) and to the high end "
               "(filled circle) of that range, the others as in the scenario, on fewer seeds than the "
               "comparison, so seed noise moves the ends too. The assumptions are in the same order in every "
               "panel, those with the widest swings on average on top; a bar that crosses zero means the sign "
               "of the difference depends on that assumption.",
               "sensitivity.csv (assumption, side, rule_set, metric, diff_mean)", tornado, _has_sensitivity, "robust"),
)


def register(spec: FigureSpec) -> None:
    """Add ``spec`` at the end of :data:`FIGURES` at run time (what one more line in the
    tuple does in the package); an id already registered is a ValueError."""
    global FIGURES
    if any(f.id == spec.id for f in FIGURES):
        raise ValueError(f"figure {spec.id!r} is already registered; allowed: a new id")
    FIGURES = (*FIGURES, spec)


def draw(spec: FigureSpec, data: FigureData) -> Figure:
    """One registry entry drawn in the brief's style."""
    with sns.axes_style("whitegrid"), plt.rc_context(RC):
        fig, table = spec.draw(data)
        return Figure(spec.id, spec.title, spec.caption, spec.source, _uri(fig), table, spec.section)


def draw_all(res: Results) -> list[Figure]:
    """Every figure of :data:`FIGURES` that applies, in registry order; none when the
    baseline has no finished run (there is nothing to compare against). Drawn once per
    results object (kept in ``res.drawn``), so the brief's section and its CSV files agree."""
    data = FigureData.of(res)
    if res.baseline not in data.order:
        return []
    if not res.drawn:
        res.drawn.extend(draw(spec, data) for spec in FIGURES if spec.when(data))
    return list(res.drawn)


DATA_FOLDER = "brief-data"  # beside brief.html: one CSV per figure, named after its id


def csv_name(figure_id: str) -> str:
    """Where a figure's data is saved, relative to the results folder."""
    return f"{DATA_FOLDER}/{figure_id}.csv"

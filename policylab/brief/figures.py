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
import io
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
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

    @classmethod
    def of(cls, res: Results) -> FigureData:
        order = res.finished
        return cls(res.summary, res.runs, res.timeseries, order, res.baseline, palette(order, res.baseline))


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


@dataclass(frozen=True)
class Figure:
    """One drawn figure: its registry entry's texts, the PNG as a data URI and the table it plots."""

    id: str
    title: str
    caption: str
    source: str  # results file and columns or metrics
    uri: str  # data:image/png;base64,...
    data: pd.DataFrame


def palette(rule_sets: list[str], baseline: str) -> dict[str, str]:
    """One colour per rule set; the baseline grey."""
    others = [r for r in rule_sets if r != baseline]
    distinct = [c for i, c in enumerate(sns.color_palette("colorblind", 10).as_hex()) if i != 7]  # 7 is grey
    colours = distinct if len(others) <= len(distinct) else sns.color_palette("husl", len(others)).as_hex()
    return {baseline: BASELINE_COLOUR, **dict(zip(others, colours))}


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


def price_paths(d: FigureData) -> tuple[matplotlib.figure.Figure, pd.DataFrame]:
    """Index price per rule set: median over seeds and the 5-95% band, baseline median dashed."""
    ts, order, baseline, colours = d.timeseries, d.order, d.baseline, d.colours
    idx = ts[ts["venue"] == ts["venue"].iloc[0]]  # the index is the same on every venue's rows
    bands = {name: _bands(idx[idx["rule_set"] == name], "index_usd") for name in order}
    scale, unit = usd_scale(np.concatenate([b[["lo", "hi"]].to_numpy().ravel() for b in bands.values()]))
    ncol = min(3, len(order))
    nrow = -(-len(order) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(WIDTH_IN, 1.75 * nrow + 0.3), sharex=True, sharey=True,
                             squeeze=False)
    base = bands.get(baseline)
    for ax, name in zip(axes.flat, order):
        own = bands[name]
        ax.fill_between(own["hours"], own["lo"] / scale, own["hi"] / scale, color=colours[name], alpha=0.25,
                        linewidth=0)
        ax.plot(own["hours"], own["med"] / scale, color=colours[name], linewidth=1.2)
        if name != baseline and base is not None:
            ax.plot(base["hours"], base["med"] / scale, color=BASELINE_COLOUR, linewidth=0.9, linestyle="--")
        ax.set_title(name)
    for i, ax in enumerate(axes.flat):
        if i >= len(order):
            ax.set_visible(False)
            continue
        bottom = i + ncol >= len(order)  # no panel below: label the time axis here
        ax.xaxis.set_tick_params(labelbottom=bottom)
        ax.set_xlabel("hours from start" if bottom else "")
        ax.set_ylabel(f"index price ({unit})" if i % ncol == 0 else "")
    fig.tight_layout()
    data = pd.concat([b.assign(rule_set=name) for name, b in bands.items()], ignore_index=True)
    return fig, _quantiles(data[["rule_set", "hours", "lo", "med", "hi"]], "index_usd")


def liquidations_over_time(d: FigureData) -> tuple[matplotlib.figure.Figure, pd.DataFrame]:
    """Cumulative liquidated notional across venues: median over seeds per rule set, with its band."""
    ts, order, colours = d.timeseries, d.order, d.colours
    q = pd.concat([_bands(ts[ts["rule_set"] == name], "liquidated_usd", cumulative=True).assign(rule_set=name)
                   for name in order], ignore_index=True)
    data = _quantiles(q[["rule_set", "hours", "lo", "med", "hi"]], "cumulative_liquidated_usd")
    scale, unit = usd_scale(q[["lo", "med", "hi"]].to_numpy())
    q[["lo", "med", "hi"]] /= scale
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 2.8))
    for name in order:
        own = q[q["rule_set"] == name]
        ax.fill_between(own["hours"], own["lo"], own["hi"], color=colours[name], alpha=0.12, linewidth=0)
    sns.lineplot(q, x="hours", y="med", hue="rule_set", hue_order=order, palette=colours, ax=ax, linewidth=1.2)
    ax.set_xlabel("hours from start")
    ax.set_ylabel(f"cumulative liquidated notional ({unit})")
    ax.legend(title="rule set", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig, data


def _family(runs: pd.DataFrame, stem: str, label: str) -> pd.DataFrame:
    """Mean over seeds of a metric family (``<stem>.<label>.<member>``) per rule set and member."""
    prefix = f"{stem}.{label}."
    fam = runs[runs["metric"].str.startswith(prefix)]
    fam = fam.assign(member=fam["metric"].str.slice(len(prefix)))
    return fam.groupby(["rule_set", "member"], sort=False)["value"].mean().reset_index()


def _members_palette(members: list[str]) -> dict[str, str]:
    """One colour per venue or trader class, the same in every figure."""
    colours = sns.color_palette("Set2" if len(members) <= 8 else "husl", len(members)).as_hex()
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


def _has_trade_off(d: FigureData) -> bool:
    return len(d.order) > 1 and {"liquidated_usd", "volume_usd"} <= set(d.summary["metric"])


def trade_off(d: FigureData) -> tuple[matplotlib.figure.Figure, pd.DataFrame]:
    """Change in risk (liquidated notional) against change in market activity (traded volume)
    from the baseline, one point per rule set, with paired 90% intervals on both axes."""
    summary, order, baseline, colours = d.summary, d.order, d.baseline, d.colours
    risk, activity = "liquidated_usd", "volume_usd"
    s = summary.set_index(["rule_set", "metric"])
    rows = [(name, *s.loc[(name, activity), ["diff_mean", "diff_lo", "diff_hi"]],
             *s.loc[(name, risk), ["diff_mean", "diff_lo", "diff_hi"]])
            for name in order if name != baseline]
    pts = pd.DataFrame(rows, columns=["rule_set", "x", "xlo", "xhi", "y", "ylo", "yhi"])
    pts[["x", "y"]] = pts[["x", "y"]].fillna(0.0)
    for c in ("x", "y"):  # no interval (one seed): a bar of zero length
        pts[[f"{c}lo", f"{c}hi"]] = pts[[f"{c}lo", f"{c}hi"]].apply(lambda col: col.fillna(pts[c]))
    xs, xunit = usd_scale(pts[["x", "xlo", "xhi"]].to_numpy())
    ys, yunit = usd_scale(pts[["y", "ylo", "yhi"]].to_numpy())
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.6))
    ax.axhline(0, color=BASELINE_COLOUR, linewidth=0.7)
    ax.axvline(0, color=BASELINE_COLOUR, linewidth=0.7)
    for _, r in pts.iterrows():
        ax.errorbar(r["x"] / xs, r["y"] / ys,
                    xerr=[[(r["x"] - r["xlo"]) / xs], [(r["xhi"] - r["x"]) / xs]],
                    yerr=[[(r["y"] - r["ylo"]) / ys], [(r["yhi"] - r["y"]) / ys]],
                    color=colours[r["rule_set"]], elinewidth=1, capsize=2, linestyle="none")
    sns.scatterplot(pts.assign(x=pts["x"] / xs, y=pts["y"] / ys), x="x", y="y", hue="rule_set",
                    hue_order=[n for n in order if n != baseline], palette=colours, s=36, ax=ax, zorder=3,
                    edgecolor="black", linewidth=0.4)
    ax.scatter([0], [0], color=BASELINE_COLOUR, marker="D", s=30, zorder=3, label=f"{baseline} (baseline)")
    ax.set_xlabel(f"change in traded volume vs baseline ({xunit})")
    ax.set_ylabel(f"change in liquidated notional vs baseline ({yunit})")
    ax.legend(title="rule set", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    names = {"x": f"{activity}_diff_mean", "xlo": f"{activity}_diff_lo", "xhi": f"{activity}_diff_hi",
             "y": f"{risk}_diff_mean", "ylo": f"{risk}_diff_lo", "yhi": f"{risk}_diff_hi"}
    return fig, pts.rename(columns=names)


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("fig-prices", "Index price paths",
               "Index (spot) price per rule set: median over seeds (line) and 5th to 95th percentile band; "
               "the dashed grey line is the baseline's median.", "timeseries.parquet (index_usd)", price_paths),
    FigureSpec("fig-liquidations-time", "Liquidations over time",
               "Cumulative notional liquidated on all venues (whole, partial, backstop and the bankrupt side "
               "of ADL): median over seeds and 5th to 95th percentile band.", "timeseries.parquet (liquidated_usd)",
               liquidations_over_time),
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
               "(risk, lower is safer) and traded volume (activity, the cost side of regulation), with paired "
               "bootstrap 90% intervals on both axes. Bottom right: less risk for more activity.",
               "summary.csv (diff_mean, diff_lo, diff_hi of volume_usd and liquidated_usd)", trade_off,
               _has_trade_off),
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
        return Figure(spec.id, spec.title, spec.caption, spec.source, _uri(fig), table)


def draw_all(res: Results) -> list[Figure]:
    """Every figure of :data:`FIGURES` that applies, in registry order; none when the
    baseline has no finished run (there is nothing to compare against)."""
    data = FigureData.of(res)
    if res.baseline not in data.order:
        return []
    return [draw(spec, data) for spec in FIGURES if spec.when(data)]

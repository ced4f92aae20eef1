"""The leverage result of Thurner, Farmer and Geanakoplos (2012), in this model.

Runs the ``leverage-study`` scenario (thin-tailed, unclustered news; leverage-seeking
traders) with the leverage cap of the speculators (retail and professional traders, on
every derivatives venue) swept from 1x upwards, and
reports the tail index and volatility clustering of index returns against the
cap, as a curve with intervals over seeds. Raising the cap should turn thin-tailed,
unclustered returns into fat-tailed, clustered ones.

The mechanism is the one of Thurner, Farmer and Geanakoplos (2012), in the scenario's
population: professionals re-lever to a target both ways (sell into falls, buy into
rises) and margin calls and liquidations sell into falls; wiped-out accounts are
replaced, so the leveraged population does not vanish at high caps. Returns are taken
on 15-minute bars by default: liquidation cascades and the recovery of the index after
them (``transient_half_life_minutes``, 15 minutes) play out within the hour, and ten
days give 960 returns per run, so the Hill estimator uses 48 order statistics rather
than 12 on hourly bars. ``bar_minutes=60`` gives the hourly view.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from policylab.experiments.compare import compare
from policylab.inputs.rulesets import parse_rules
from policylab.experiments.stats import mean_interval
from policylab.validation.stylized import facts

CAPS = (1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0)
# The cap binds the speculators (retail and professional traders), as TFG's binds their
# leveraged funds; delta-neutral basis traders keep their own leverage, so the only thing
# that changes from arm to arm is speculative leverage.
RULE = ("name: cap-{cap:g}x\ntitle: Leverage cap {cap:g}x\nmodules:\n  - module: leverage_cap\n"
        "    target: {{classes: [retail, professional]}}\n    params: {{max_leverage: {cap}}}\n")


def cap_rule(cap: float):
    from pathlib import Path
    return parse_rules(RULE.format(cap=cap), f"cap-{cap:g}x", Path("."))


def leverage_study(caps=CAPS, seeds: int = 6, traders: int | None = 5000, workers: int | None = None,
                   scenario: str = "leverage-study", bar_minutes: int = 15) -> pd.DataFrame:
    """One row per cap and fact: mean over seeds and its bootstrap 90% interval."""
    res = compare([cap_rule(c) for c in caps[1:]], scenario, seeds, baseline=cap_rule(caps[0]),
                  traders=traders, workers=workers)
    ts = res.timeseries
    index = ts[ts["venue"] == ts["venue"].iloc[0]]
    rows = []
    for cap in caps:
        arm = index[index["rule_set"] == f"cap-{cap:g}x"]
        per_seed = [facts(np.diff(np.log(g.sort_values("minute")
                                          .query(f"minute % {bar_minutes} == 0")["index_usd"].to_numpy())))
                    for _, g in arm.groupby("seed")]
        for name in per_seed[0]:
            values = np.array([f[name] for f in per_seed])
            lo, hi = mean_interval(values)
            rows.append({"cap": cap, "fact": name, "mean": float(values.mean()), "lo": lo, "hi": hi,
                         "seeds": len(values)})
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, path, bar_minutes: int = 15) -> None:
    """Tail index and clustering against the cap, with intervals, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {"tail_index": "tail index (Hill, largest 5% of |r|)", "excess_kurtosis": "excess kurtosis",
             "acf_abs_lag1": f"autocorrelation of |r|, lag {bar_minutes} min"}
    fig, axes = plt.subplots(1, len(shown), figsize=(11, 3.4))
    for ax, (fact, label) in zip(axes, shown.items()):
        t = table[table["fact"] == fact]
        ax.errorbar(t["cap"], t["mean"], yerr=[t["mean"] - t["lo"], t["hi"] - t["mean"]], marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_xlabel("leverage cap (x, log scale)")
        ax.set_ylabel(label)
    fig.suptitle(f"Leverage and the tails of {bar_minutes}-minute index returns (mean over seeds, 90% interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)

"""Benchmark experiments: the standard comparison's speed, and the population-size convergence study.

    python benchmarks/bench_compare.py speed          # every shipped rule set x 30 seeds, october-2025
    python benchmarks/bench_compare.py scaling        # 1 vs 2 workers and the Dask overhead, on a subset
    python benchmarks/bench_compare.py convergence    # headline medians as the population doubles
    python benchmarks/bench_compare.py differences    # the brief's paired differences as the population doubles

speed: ``policylab.compare`` end to end (loading, runs, statistics, writing the
folder) with all cores; reported: wall time, runs, cost per run (mean run seconds),
where the time goes (runs vs the rest) and the experiment's own process's CPU time
(handling the outcomes, statistics, writing; on two cores it competes with the workers).

scaling: the same subset of the comparison (``--subset-rules`` x ``--subset-seeds``)
in-process (1 worker), on 2 local processes, and on a local Dask cluster of 2
single-threaded worker processes; parallel efficiency = T1 / (2 x T2); Dask overhead
= T(dask) / T(processes) - 1.

convergence: the baseline on ``--seeds`` seeds at each population size; for each
doubling, the relative change of each headline metric's median. The default
population is the smallest size whose doubling changes every headline median by
less than 5%.

differences: what the brief reports, not levels: every shipped rule set (found in
``policies/*.yaml``) against the baseline on the standard scenario (``make demo``'s), at
``--traders`` N and at 2N on the same seeds; for every headline the brief shows
(``policylab.metrics.headlines``, found at run time) the paired difference's mean and 90%
interval at each size. A difference *moved outside* when its mean at 2N lies outside its
interval at N; the table also says whether the two intervals are disjoint and whether the
verdict (better / worse / no difference) changed. Written to ``--csv``.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import numpy as np

import pandas as pd

import policylab
from policylab.experiments.compare import BASELINE
from policylab.inputs.rulesets import builtin_rule_sets
from policylab.metrics.headlines import flagged

TARGET_SECONDS = 60.0  # issue 15: the standard comparison on two cores
TARGET_EFFICIENCY = 0.90  # issue 15: 1 -> 2 workers
CONVERGENCE_TOLERANCE = 0.05
HEADLINES = ("liquidated_usd", "liquidated_share_of_oi", "index_drawdown", "index_low_vs_close", "retail_loss_usd",
             "depth_worst_ratio", "volume_usd")
# Shown but not used to choose: counts of distinct cascade rounds grow with the number of
# simulated accounts by construction, and the fund drawdown is a few $10k on a $90B market.
DIAGNOSTICS = ("cascade_rounds_total", "fund_drawdown_usd")


def _cpu() -> float:
    """CPU seconds of this process so far (user + system; its threads included, its workers not)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _compare(rules, seeds, workers=None, scheduler=None, traders=None, scenario="october-2025", baseline=BASELINE,
             cpu=None):
    """Wall seconds and result of one comparison written to a temporary folder; ``cpu``: a
    list that receives this process's CPU seconds during it."""
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), _cpu()
        r = policylab.compare(rules, scenario, seeds, workers=workers, scheduler=scheduler, traders=traders,
                              out=os.path.join(tmp, "out"), baseline=baseline)
        if cpu is not None:
            cpu.append(_cpu() - c0)
        return time.perf_counter() - t0, r


def speed(args) -> None:
    rules = [r for r in builtin_rule_sets() if r != BASELINE]
    parent = []
    wall, r = _compare(rules, args.seeds, workers=args.workers, cpu=parent)
    m = r.manifest
    run_s = np.array([x["seconds"] for x in m["run_seconds"]])
    cpu_s = np.array([x["cpu_seconds"] for x in m["run_seconds"]])
    print(f"standard comparison: {len(m['rule_sets'])} rule sets x {len(m['seeds'])} seeds = {m['runs']} runs, "
          f"october-2025, {m['traders']:,} traders, {m['backend']} x {m['workers']}")
    print(f"  wall time          {wall:8.1f} s   (target < {TARGET_SECONDS:.0f} s: "
          f"{'met' if wall < TARGET_SECONDS else 'MISSED'})")
    print(f"  cost per run       {run_s.mean():8.2f} s   (median {np.median(run_s):.2f}, max {run_s.max():.2f}; "
          f"CPU {cpu_s.mean():.2f} s)")
    print(f"  idle-machine estimate {cpu_s.sum() / m['workers']:5.1f} s of runs per worker (CPU time / workers)")
    print(f"  run time, summed   {run_s.sum():8.1f} s   = {run_s.sum() / m['workers']:.1f} s per worker")
    print(f"  everything else    {wall - run_s.sum() / m['workers']:8.1f} s   (start-up, statistics, writing)")
    print(f"  experiment's CPU   {parent[0]:8.1f} s   (this process: outcomes, statistics, writing)")
    print(f"  failed runs        {m['failed_runs']:8d}")
    print("  slowest rule sets: " + ", ".join(
        f"{a} {np.mean([x['seconds'] for x in m['run_seconds'] if x['rule_set'] == a]):.2f} s"
        for a in sorted(m["rule_sets"], key=lambda a: -np.mean(
            [x["seconds"] for x in m["run_seconds"] if x["rule_set"] == a]))[:3]))


def scaling(args) -> None:
    from distributed import LocalCluster

    rules = [r for r in builtin_rule_sets() if r != BASELINE][:args.subset_rules - 1]
    t1, r1 = _compare(rules, args.subset_seeds, workers=1)
    t2, r2 = _compare(rules, args.subset_seeds, workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        _compare(rules, 2, scheduler=cluster.scheduler_address)  # warm the workers' imports
        td, rd = _compare(rules, args.subset_seeds, scheduler=cluster.scheduler_address)
    same = r1.runs.equals(r2.runs) and r1.runs.equals(rd.runs)
    n = r1.manifest["runs"]
    eff = t1 / (2 * t2)
    print(f"scaling: {len(r1.manifest['rule_sets'])} rule sets x {args.subset_seeds} seeds = {n} runs, october-2025")
    print(f"  in-process (1 worker)   {t1:7.1f} s   {t1 / n:.2f} s per run")
    print(f"  2 local processes       {t2:7.1f} s   parallel efficiency {eff:.0%} (target >= "
          f"{TARGET_EFFICIENCY:.0%}: {'met' if eff >= TARGET_EFFICIENCY else 'MISSED'})")
    print(f"  Dask, 2 workers         {td:7.1f} s   overhead vs local processes {td / t2 - 1:+.0%}")
    print(f"  identical results across backends: {same}")


def convergence(args) -> None:
    print(f"convergence: {BASELINE} on october-2025, {args.seeds} seeds per size; "
          "median of each headline metric")
    medians = {}
    for n in args.sizes:
        wall, r = _compare([], args.seeds, traders=n)
        w = r.wide()
        medians[n] = {m: float(np.median(w[m])) for m in HEADLINES + DIAGNOSTICS}
        print(f"  {n:>7,} traders: {wall:6.1f} s  " + "  ".join(f"{m}={v:.4g}" for m, v in medians[n].items()),
              flush=True)
    chosen = None
    for a, b in zip(args.sizes, args.sizes[1:]):
        changes = {m: abs(medians[b][m] - medians[a][m]) / abs(medians[a][m]) if medians[a][m] else float("nan")
                   for m in HEADLINES + DIAGNOSTICS}
        worst = max((changes[m] for m in HEADLINES if np.isfinite(changes[m])), default=float("nan"))
        print(f"  {a:>7,} -> {b:>7,}: largest headline median change {worst:.1%}  ("
              + ", ".join(f"{m} {c:.1%}" for m, c in changes.items()) + ")")
        if chosen is None and worst < CONVERGENCE_TOLERANCE:
            chosen = a
    print(f"  smallest population whose doubling moves every headline median < {CONVERGENCE_TOLERANCE:.0%}: "
          f"{chosen if chosen else 'none of those tried'}")


def _below(a: pd.Series, b: pd.Series) -> pd.Series:
    """a < b beyond rounding (1e-9 relative, 1e-6 absolute: a zero difference summed in another order)."""
    return a < b - (1e-6 + 1e-9 * np.maximum(a.abs(), b.abs()))


def _side_by_side(small: pd.DataFrame, large: pd.DataFrame, n: int, baseline: str,
                  headlines: tuple[str, ...]) -> pd.DataFrame:
    """One row per rule set and headline: the paired difference and its interval at N and 2N."""
    cols = ["rule_set", "metric", "unit", "diff_mean", "diff_lo", "diff_hi", "improvement"]
    a = small[small["metric"].isin(headlines) & (small["rule_set"] != baseline)][cols]
    t = a.merge(large[cols[:2] + cols[3:]], on=["rule_set", "metric"], suffixes=(f"_{n}", f"_{2 * n}"))
    m, lo, hi = t[f"diff_mean_{2 * n}"], t[f"diff_lo_{n}"], t[f"diff_hi_{n}"]
    lo2, hi2 = t[f"diff_lo_{2 * n}"], t[f"diff_hi_{2 * n}"]
    defined = m.notna() & lo.notna() & hi.notna()
    t["moved_outside"] = (_below(m, lo) | _below(hi, m)).astype("boolean").mask(~defined)
    t["intervals_disjoint"] = (_below(hi2, lo) | _below(hi, lo2)).astype("boolean").mask(~(defined & lo2.notna()))
    t["shift_in_half_widths"] = (m - t[f"diff_mean_{n}"]) / ((hi - lo) / 2).where(hi > lo)
    t["verdict_changed"] = t[f"improvement_{n}"] != t[f"improvement_{2 * n}"]
    order = {h: i for i, h in enumerate(headlines)}
    return t.sort_values(["rule_set", "metric"], key=lambda s: s.map(order) if s.name == "metric" else s,
                         kind="stable").reset_index(drop=True)


def differences(args) -> None:
    rules = [r for r in builtin_rule_sets() if r != args.baseline]
    headlines = flagged("brief")
    n = args.traders
    print(f"differences: {len(rules)} rule sets against {args.baseline} on {args.scenario}, {args.seeds} seeds, "
          f"{n:,} and {2 * n:,} traders, {args.workers or 'all'} worker(s); {len(headlines)} brief headlines",
          flush=True)
    summaries = {}
    for size in (n, 2 * n):
        wall, r = _compare(rules, args.seeds, workers=args.workers, traders=size, scenario=args.scenario,
                           baseline=args.baseline)
        summaries[size] = r.summary
        print(f"  {size:>7,} traders: {r.manifest['runs']} runs in {wall:.1f} s "
              f"({r.manifest['failed_runs']} failed)", flush=True)
    t = _side_by_side(summaries[n], summaries[2 * n], n, args.baseline, headlines)
    t.insert(0, "scenario", args.scenario)
    t.insert(1, "seeds", args.seeds)
    os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
    t.to_csv(args.csv, index=False)

    def cell(row, size):
        return (f"{row[f'diff_mean_{size}']:+.4g} [{row[f'diff_lo_{size}']:+.4g}, {row[f'diff_hi_{size}']:+.4g}] "
                f"{row[f'improvement_{size}']}")

    width = max(len(h) for h in headlines)
    for rule, g in t.groupby("rule_set", sort=False):
        print(f"\n{rule} - {args.baseline}: difference [90% interval] verdict, at {n:,} | at {2 * n:,}")
        for _, row in g.iterrows():
            flag = ("MOVED OUTSIDE" if row["moved_outside"] is True else "") + (
                " (verdict changed)" if row["verdict_changed"] else "")
            print(f"  {row['metric']:<{width}}  {cell(row, n):<48} | {cell(row, 2 * n):<48} {flag}")
    judged = t[t["moved_outside"].notna()]
    moved = judged[judged["moved_outside"].astype(bool)]
    disjoint = judged[judged["intervals_disjoint"].fillna(False).astype(bool)]
    changed = t[t["verdict_changed"]]
    print(f"\n{len(moved)} of {len(judged)} differences moved outside their interval at {n:,} "
          f"({len(disjoint)} with disjoint intervals); {len(changed)} verdicts changed; "
          f"{len(t) - len(judged)} without an interval")
    for _, row in moved.iterrows():
        print(f"  moved: {row['rule_set']} {row['metric']}: {cell(row, n)} -> {cell(row, 2 * n)}")
    for _, row in changed[~changed.index.isin(moved.index)].iterrows():
        print(f"  verdict changed: {row['rule_set']} {row['metric']}: {cell(row, n)} -> {cell(row, 2 * n)}")
    print(f"written to {args.csv}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("speed", "scaling", "convergence", "differences"))
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--subset-rules", type=int, default=3, help="scaling: rule sets including the baseline")
    p.add_argument("--subset-seeds", type=int, default=8)
    p.add_argument("--sizes", type=int, nargs="+", default=[5_000, 10_000, 20_000, 40_000])
    p.add_argument("--traders", type=int, default=20_000, help="differences: N (run at N and 2N)")
    p.add_argument("--scenario", default="october-2025", help="differences: the scenario (make demo's)")
    p.add_argument("--baseline", default=BASELINE, help="differences: the rule set the others are compared with")
    p.add_argument("--csv", default="outputs/convergence_differences.csv", help="differences: the table's file")
    args = p.parse_args()
    {"speed": speed, "scaling": scaling, "convergence": convergence, "differences": differences}[args.what](args)


if __name__ == "__main__":
    main()

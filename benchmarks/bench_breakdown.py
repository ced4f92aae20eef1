"""Where one run's time goes, by phase of the step (issue 15: the breakdown to cut next).

    python benchmarks/bench_breakdown.py                       # 20,000 traders, october-2025, 1,440 steps
    python benchmarks/bench_breakdown.py --traders 100000 --steps 500
    python benchmarks/bench_breakdown.py --invariants          # with a comparison run's per-step check

Builds ``MarketModel`` (every mechanism on) and runs it once to load the compiled
kernels from Numba's disk cache (some are first called late in a run: a one-step
warm-up left their loading, 5-20 ms each, in the timed run), then builds a fresh model
and times each phase of every step: the market makers' depth and lay-off, refills, the
traders' decisions, the cascade's arbitrage desks and its rounds (band set and due check,
with the liquidations they execute: one compiled call a round), the per-step recording,
and the rest of the step (netting and executing the voluntary orders, exogenous
arrivals, Mesa's scheduling); with
``--invariants``, also the invariants check that ``policylab.experiments.run.run``
makes after every step. Reported per phase: wall seconds, CPU seconds of this thread
(steadier than wall on a shared machine), calls, and microseconds of CPU per step.
Pinned to one core, BLAS threads 1.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _timed(obj, name: str, label: str, acc: dict) -> None:
    """Replace ``obj.name`` (a bound method) by one that adds its wall and CPU time to ``acc[label]``."""
    method = getattr(obj, name)

    def wrapper(*args, **kwargs):
        w, c = time.perf_counter(), time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            a = acc[label]
            a[0] += time.perf_counter() - w
            a[1] += time.thread_time() - c
            a[2] += 1

    setattr(obj, name, wrapper)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traders", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=1440)
    p.add_argument("--scenario", default="october-2025")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--invariants", action="store_true",
                   help="also time the invariants check a comparison run makes after every step")
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    from policylab.inputs.scenario import load_scenario
    from policylab.model import MarketModel

    sc = load_scenario(args.scenario)
    warm_up = MarketModel(sc, seed=args.seed, traders=args.traders)
    for _ in range(args.steps):  # loads every compiled kernel the run calls (some first at a late step)
        warm_up.step()
    del warm_up
    m = MarketModel(sc, seed=args.seed, traders=args.traders)
    acc: dict[str, list] = defaultdict(lambda: [0.0, 0.0, 0])
    _timed(m.market_makers, "adjust", "market makers: depth health", acc)
    _timed(m.market_makers, "lay_off", "market makers: inventory lay-off", acc)
    for pop in m.populations:
        _timed(pop, "refill", "populations: refills", acc)
        _timed(pop, "decide", f"decisions: {pop.name}", acc)
    for venue in m.venue_agents:
        _timed(venue, "decide", "decisions: backstop vaults' unwinds", acc)
    _timed(m.arbitrageurs, "act", "cascade: arbitrage desks (orders, execution, spot legs)", acc)
    _timed(m.engine, "cascade_round", "cascade: band set, due check and forced orders", acc)
    _timed(m, "_collect", "recording (DataCollector, venue and residence series)", acc)
    monitor = None
    if args.invariants:
        from policylab.experiments.invariants import Monitor

        monitor = Monitor(m)
        _timed(monitor, "observe", "invariants check (a comparison run's, after each step)", acc)
    w0, c0 = time.perf_counter(), time.thread_time()
    for _ in range(args.steps):
        m.step()
        if monitor is not None:
            monitor.observe()
    wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
    print(f"{args.traders:,} traders, {args.scenario}, {args.steps} steps, seed {args.seed}: "
          f"run {wall:.2f} s wall, {cpu:.2f} s CPU; {int(m.rounds[:args.steps].sum())} cascade rounds with activity; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'phase':<58} {'wall s':>7} {'CPU s':>7} {'share':>6} {'calls':>7} {'CPU us/step':>12}")
    rows = sorted(acc.items(), key=lambda kv: -kv[1][1])
    rest = [wall - sum(a[0] for _, a in rows), cpu - sum(a[1] for _, a in rows), args.steps]
    for label, (w, c, n) in rows + [("rest of the step (voluntary orders' execution, glue, Mesa)", rest)]:
        print(f"{label:<58} {w:>7.2f} {c:>7.2f} {c / cpu:>6.0%} {n:>7} {1e6 * c / args.steps:>12.0f}")


if __name__ == "__main__":
    main()

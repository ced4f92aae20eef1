"""Benchmark the full market model and the engine against its per-trader reference.

    python benchmarks/bench_model.py --traders 10000 100000 1000000 --steps 1440 --scenario october-2025
    python benchmarks/bench_model.py --traders 20000 --steps 1440 --warm
    python benchmarks/bench_model.py --traders --reference --ref-traders 1000 10000 100000

Model section: for each population size, a fresh process pinned to one core builds
``MarketModel`` (every mechanism on: trader decisions, market makers, arbitrage,
funding, the liquidation cascade, data collection) and runs ``--steps`` one-minute
steps. Reported: build and run wall time, trader-steps per second (trader accounts x
steps / run time), CPU time, and the process's peak resident memory (``ru_maxrss``,
so it includes the interpreter, NumPy, Mesa and everything the run allocated), then
the scaling exponent of run time between sizes (1.0 = linear). With ``--warm`` the
child then builds and runs the same model again and reports that run's time too: the
first run includes loading the compiled kernels from Numba's disk cache as each is
first called (once per process, as in each worker of a comparison), the second is
what every later run costs (the peak memory is the first run's).

Reference section: on the same book and exogenous path (the scenario's fundamental
returns), ``replay.Replay`` (the vectorised engine) and ``reference.ReferenceModel``
(one Mesa agent per account) are timed in one pinned process; reported: trader-steps
per second of each and their ratio, plus whether their events and prices agree.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

TARGET_TSPS = 1e7  # trader-steps per second at 100k traders, one core
TARGET_RATIO = 30.0  # vectorised engine vs per-trader reference, at 100k traders
TARGET_RUN_S_20K = 0.3  # issue 15: one 20,000-trader run's model time (s), one core
TARGET_TSPS_1M = 1e8  # issue 15: trader-steps per second at 1M traders, one core
TARGET_PEAK_MB_1M = 1024.0  # issue 15: peak memory at 1M traders (MB)


def _pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_model(traders: int, steps: int, scenario: str, seed: int, warm: bool = False) -> dict:
    """Build and run the full model in this (fresh) process; with ``warm``, then build and
    run it again (the same seed) and time that second run too: the first loads the compiled
    kernels from Numba's disk cache as each is first called (a cost once per process, as in
    a comparison's worker), the second is the steady state of every later run."""
    from policylab.model import MarketModel
    from policylab.inputs.scenario import load_scenario

    _pin_one_core()
    sc = load_scenario(scenario)
    if steps > sc.steps:
        raise SystemExit(f"--steps {steps}: scenario {scenario} has {sc.steps} steps")
    base_mb = _peak_mb()
    t0 = time.perf_counter()
    model = MarketModel(sc, seed=seed, traders=traders)
    t1 = time.perf_counter()
    cpu0 = _cpu_s()
    for _ in range(steps):
        model.step()
    t2 = time.perf_counter()
    out = dict(traders=traders, accounts=model.tb.n, steps=steps, build_s=t1 - t0, run_s=t2 - t1,
               cpu_s=_cpu_s() - cpu0, peak_mb=_peak_mb(), base_mb=base_mb, rounds=int(model.rounds.sum()),
               events=len(model.events.arrays()["account"]), warm_run_s=None, warm_cpu_s=None)
    if warm:
        del model
        model = MarketModel(sc, seed=seed, traders=traders)
        t3, cpu3 = time.perf_counter(), _cpu_s()
        for _ in range(steps):
            model.step()
        out.update(warm_run_s=time.perf_counter() - t3, warm_cpu_s=_cpu_s() - cpu3)
    return out


def child_reference(traders: int, steps: int, scenario: str, seed: int) -> dict:
    """Time the vectorised replay and the per-trader reference on one book and path."""
    import numpy as np

    from policylab.engine import exogenous
    from policylab.populations import draw as population
    from policylab.engine.reference import ReferenceModel
    from policylab.engine.replay import Replay
    from policylab.inputs.scenario import load_scenario

    _pin_one_core()
    sc = load_scenario(scenario)
    path = exogenous.draw(sc, seed).log_return[:steps]
    tb, vb, _ = population.build(sc, seed, traders)
    ref = ReferenceModel(tb, vb, sc.market, sc.start_price, path, rng=seed)  # copies the book
    t0 = time.perf_counter()
    ref.run()
    t1 = time.perf_counter()
    rep = Replay(tb, vb, sc.market, sc.start_price, path)
    t2 = time.perf_counter()
    rep.run()
    t3 = time.perf_counter()
    def keys(ev):  # events of more than dust size, as (step, round, kind, account)
        keep = np.abs(ev["size"]) > 1e-9
        return sorted(zip(*(ev[c][keep].astype(int).tolist() for c in ("step", "round", "kind", "account"))))

    a, b = keys(rep.events.arrays()), keys(ref.event_arrays())
    return dict(traders=traders, steps=len(path), ref_s=t1 - t0, rep_s=t3 - t2, events=len(a),
                same_events=a == b, rounds=int(rep.rounds.sum()),
                max_price_diff=float(np.max(np.abs(np.array(ref.price_path) / rep.price_path - 1.0))))


def spawn(kind: str, traders: int, args) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, __file__, f"--child-{kind}", str(traders), "--steps", str(args.steps),
           "--scenario", args.scenario, "--seed", str(args.seed)] + (["--warm"] if args.warm else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_model(args) -> None:
    print(f"full model: scenario {args.scenario}, {args.steps} one-minute steps, seed {args.seed}, one core")
    print(f"{'traders':>9} {'accounts':>9} {'build s':>8} {'run s':>8} {'cpu s':>8} {'trader-steps/s':>15} "
          f"{'ns/trader-step':>15} {'peak MB':>8} {'base MB':>8} {'rounds':>7} {'events':>8}"
          + (f" {'warm run s':>11} {'warm cpu s':>11}" if args.warm else ""), flush=True)
    rows = []
    for n in args.traders:
        r = spawn("model", n, args)
        rows.append(r)
        tsps = r["traders"] * r["steps"] / r["run_s"]
        print(f"{r['traders']:>9} {r['accounts']:>9} {r['build_s']:>8.2f} {r['run_s']:>8.2f} {r['cpu_s']:>8.2f} "
              f"{tsps:>15,.0f} {1e9 / tsps:>15.1f} {r['peak_mb']:>8.0f} {r['base_mb']:>8.0f} {r['rounds']:>7} "
              f"{r['events']:>8}" + (f" {r['warm_run_s']:>11.2f} {r['warm_cpu_s']:>11.2f}" if args.warm else ""),
              flush=True)
    for a, b in zip(rows, rows[1:]):
        if a["traders"] == b["traders"]:  # a repeat of the same size: no exponent
            continue
        k = math.log(b["run_s"] / a["run_s"]) / math.log(b["traders"] / a["traders"])
        print(f"scaling {a['traders']} -> {b['traders']}: run time ~ traders^{k:.2f}"
              f" ({'linear or better' if k <= 1.1 else 'SUPERLINEAR'})")
    for r in rows:
        tsps = r["traders"] * r["steps"] / r["run_s"]
        if r["traders"] == 100_000:
            print(f"target >= {TARGET_TSPS:,.0f} trader-steps/s at 100k: {tsps:,.0f} "
                  f"({'met' if tsps >= TARGET_TSPS else 'MISSED'})")
        if r["traders"] == 20_000 and r["steps"] == 1440:
            for label, run_s in (("first run in the process", r["run_s"]), ("warm", r["warm_run_s"])):
                if run_s is not None:
                    print(f"target run < {TARGET_RUN_S_20K} s at 20k ({label}): {run_s:.2f} s "
                          f"({'met' if run_s < TARGET_RUN_S_20K else 'MISSED'})")
        if r["traders"] == 1_000_000:
            print(f"target >= {TARGET_TSPS_1M:,.0f} trader-steps/s at 1M: {tsps:,.0f} "
                  f"({'met' if tsps >= TARGET_TSPS_1M else 'MISSED'})")
            print(f"target peak < {TARGET_PEAK_MB_1M:.0f} MB at 1M: {r['peak_mb']:.0f} MB "
                  f"({'met' if r['peak_mb'] < TARGET_PEAK_MB_1M else 'MISSED'})")


def bench_reference(args) -> None:
    print(f"\nengine vs per-trader reference: scenario {args.scenario} exogenous path, {args.steps} steps, one core")
    print(f"{'traders':>9} {'reference s':>12} {'replay s':>9} {'ref trader-steps/s':>19} "
          f"{'replay trader-steps/s':>22} {'ratio':>7} {'events':>7} {'same':>5} {'price diff':>11}", flush=True)
    for n in args.ref_traders:
        r = spawn("reference", n, args)
        ts = r["traders"] * r["steps"]
        ratio = r["ref_s"] / r["rep_s"]
        print(f"{n:>9} {r['ref_s']:>12.2f} {r['rep_s']:>9.2f} {ts / r['ref_s']:>19,.0f} {ts / r['rep_s']:>22,.0f} "
              f"{ratio:>6.1f}x {r['events']:>7} {str(r['same_events']):>5} {r['max_price_diff']:>11.1e}", flush=True)
        if n == 100_000:
            print(f"target >= {TARGET_RATIO:.0f}x the reference at 100k: {ratio:.1f}x "
                  f"({'met' if ratio >= TARGET_RATIO else 'MISSED'})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traders", type=int, nargs="*", default=[10_000, 100_000, 1_000_000],
                   help="population sizes for the full model (none: skip)")
    p.add_argument("--steps", type=int, default=1440)
    p.add_argument("--scenario", default="october-2025")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warm", action="store_true",
                   help="also time a second run of each size in the same process (kernels already loaded)")
    p.add_argument("--reference", action="store_true", help="also time the engine against the per-trader reference")
    p.add_argument("--ref-traders", type=int, nargs="+", default=[1_000, 10_000])
    p.add_argument("--child-model", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-reference", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_model is not None:
        print(json.dumps(child_model(args.child_model, args.steps, args.scenario, args.seed, args.warm)))
    elif args.child_reference is not None:
        print(json.dumps(child_reference(args.child_reference, args.steps, args.scenario, args.seed)))
    else:
        if args.traders:
            bench_model(args)
        if args.reference:
            bench_reference(args)


if __name__ == "__main__":
    main()

"""Where an experiment's runs execute: this process, local worker processes, or a Dask cluster.

Every backend runs the same function, :func:`run_task`, on the same inputs, so the
outcomes are identical whichever runs them; they arrive in completion order and the
experiment sorts them. An arm travels serialised once with cloudpickle, so rule sets
whose policy modules were loaded from local files (not importable by name) reach
workers too. A run that raises becomes a failed :class:`Outcome` with its error and
traceback; so does a run whose worker died.

Stopping (Ctrl-C, ``--fail-fast``): :meth:`Backend.stop` drops the runs not started
and yields the outcomes of those still running on local processes (they finish);
on Dask every unfinished run is cancelled.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor as ConcurrentExecutor
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import pandas as pd

from policylab.experiments import run as results
from policylab.errors import InputError
from policylab.metrics import Metric

DOWNSAMPLE_MINUTES = 5
TIMESERIES_COLUMNS = ("step", "minute", "venue", "price_usd", "index_usd", "depth_usd", "open_interest_usd",
                      "volume_usd", "liquidated_usd")
FLOWS = ("volume_usd", "liquidated_usd")
DASK_CONNECT_SECONDS = 10


@dataclass
class Outcome:
    """One run's metrics and tables, or its error."""

    arm: str
    seed: int
    seconds: float
    cpu_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    definitions: dict[str, Metric] = field(default_factory=dict)
    timeseries: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


Task = tuple[str, int, bytes]  # arm label, seed, serialised arm


def downsample(ts: pd.DataFrame) -> pd.DataFrame:
    """Every ``DOWNSAMPLE_MINUTES`` of market time: levels at the last step of each window,
    flows (volume, liquidations) summed over the window; step 0 is kept as the start."""
    bucket = (ts["minute"] + DOWNSAMPLE_MINUTES - 1) // DOWNSAMPLE_MINUTES
    keep = ts.groupby(bucket)["step"].transform("max") == ts["step"]
    flows = ts.groupby([bucket, ts["venue"]])[list(FLOWS)].transform("sum")
    out = ts.loc[keep, list(TIMESERIES_COLUMNS)].copy()
    out[list(FLOWS)] = flows.loc[keep]
    return out.reset_index(drop=True)


def run_task(payload: bytes, seed: int, traders: int | None) -> Outcome:
    """Run one arm (a pickled ``experiment.Arm``) on one seed; never raises for a failed run."""
    arm = pickle.loads(payload)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        result = results.run(arm.scenario, seed=seed, traders=traders, rules=arm.rules)
        values = result.metrics.drop(columns=["scenario", "seed", "traders"]).iloc[0]
        return Outcome(arm.label, seed, time.perf_counter() - t0, time.process_time() - c0,
                       metrics={k: float(v) for k, v in values.items()}, definitions=result.definitions,
                       timeseries=downsample(result.timeseries), events=result.events,
                       warnings=tuple(result.warnings))
    except Exception as e:
        return Outcome(arm.label, seed, time.perf_counter() - t0, time.process_time() - c0,
                       error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())


def _failed(task: Task, e: BaseException) -> Outcome:
    return Outcome(task[0], task[1], 0.0, error=f"{type(e).__name__}: {e}",
                   traceback="".join(traceback.format_exception(e)))


class Backend(ABC):
    """Runs tasks; ``name`` and ``workers`` go in the manifest."""

    name = ""
    workers = 1

    @abstractmethod
    def outcomes(self, tasks: Sequence[Task], traders: int | None) -> Iterator[Outcome]:
        """Run every task; yield outcomes as they complete."""

    def stop(self) -> Iterator[Outcome]:
        """Drop the runs not started; yield those still finishing."""
        return iter(())

    def close(self) -> None:
        """Release workers and connections."""


class InProcess(Backend):
    """Runs one task after another in this process (Ctrl-C interrupts the current run)."""

    name = "in-process"

    def outcomes(self, tasks, traders):
        for label, seed, payload in tasks:
            yield run_task(payload, seed, traders)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Executor(Backend):
    """Tasks submitted to a ``concurrent.futures`` executor (``self.pool``)."""

    pool: ConcurrentExecutor

    def outcomes(self, tasks, traders):
        self.futures: dict[Future, Task] = {self.pool.submit(run_task, payload, seed, traders): (label, seed, payload)
                                            for label, seed, payload in tasks}
        for f in as_completed(self.futures):
            yield self._outcome(f)

    def _outcome(self, f: Future) -> Outcome:
        task = self.futures.pop(f)
        return _failed(task, f.exception()) if f.exception() else f.result()

    def stop(self):
        running = [f for f in self.futures if not f.cancel()]
        for f in set(self.futures) - set(running):
            del self.futures[f]
        for f in as_completed(running):
            yield self._outcome(f)


class Processes(Executor):
    """A pool of local worker processes (forked from a server that has policylab loaded).
    Workers ignore Ctrl-C: the parent decides what stops."""

    name = "processes"

    def __init__(self, workers: int):
        self.workers = workers
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["policylab.experiments.backends"])
        self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_ignore_sigint)

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


class Dask(Executor):
    """Tasks submitted to a Dask distributed scheduler; the workers need policylab installed.
    Stopping cancels every unfinished run on the cluster."""

    name = "dask"

    def __init__(self, address: str):
        from distributed import Client

        try:
            self.client = Client(address, timeout=DASK_CONNECT_SECONDS, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise InputError(f"--scheduler: cannot connect to {address} ({e}); allowed: the address of a "
                             "running Dask scheduler, e.g. tcp://HOST:8786") from None
        self.workers = max(1, sum(self.client.nthreads().values()))
        self.pool = self.client.get_executor(pure=False)

    def close(self):
        self.client.close()


def choose(workers: int | None, scheduler: str | None, runs: int) -> Backend:
    """Dask if a scheduler is given; else local processes, or this process for one worker."""
    if scheduler:
        return Dask(scheduler)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(workers, max(runs, 1))
    return InProcess() if workers <= 1 else Processes(workers)

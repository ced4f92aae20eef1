"""Where an experiment's runs execute: this process, local worker processes, or a Dask cluster.

Every backend runs the same function, :func:`run_task`, on the same inputs, so the
outcomes are identical whichever runs them; they arrive in completion order and the
experiment sorts them. Each arrives pickled (:func:`run_pickled`, as a worker sends it
back): the experiment stages it for a resume as it came and unpickles it once. An arm
travels serialised once with cloudpickle, so rule sets whose policy modules were loaded
from local files (not importable by name) reach workers too. A run that raises becomes
a failed :class:`Outcome` with its error and traceback; so does a run whose worker died.

Stopping (Ctrl-C, ``--fail-fast``): :meth:`Backend.stop` drops the runs not started
and yields the outcomes of those still running on local processes (they finish);
on Dask every unfinished run is cancelled. Local worker processes end with the
experiment's process whatever ends it, SIGKILL included (:func:`_die_with`).

Add a backend: a :class:`Backend` subclass built as ``cls(workers, scheduler)``, and
an entry in :data:`BACKENDS` (``compare(..., backend=NAME)`` selects it).
"""

from __future__ import annotations

import ast
import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor as ConcurrentExecutor
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import forkserver
from pathlib import Path

import numpy as np
import pandas as pd

from policylab.experiments import run as results
from policylab.experiments.folders import HeldInterrupts
from policylab.errors import InputError
from policylab.metrics import Metric

DOWNSAMPLE_MINUTES = 5
_BY_JURISDICTION = [c for c in results.COLUMNS["timeseries"] if c.startswith(("open_interest_usd_", "volume_usd_"))]
TIMESERIES_COLUMNS = ("step", "minute", "venue", "price_usd", "index_usd", "depth_usd", "open_interest_usd",
                      "volume_usd", "liquidated_usd", "forced_volume_usd", *_BY_JURISDICTION)
FLOWS = ("volume_usd", "liquidated_usd", "forced_volume_usd", *(c for c in _BY_JURISDICTION if c.startswith("volume")))
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
    violations: tuple[int, str] = (0, "")  # invariants violated and their details (invariants.summary)
    error: str | None = None
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


Task = tuple[str, int, bytes]  # arm label, seed, serialised arm


def downsample(ts: pd.DataFrame) -> pd.DataFrame:
    """Every ``DOWNSAMPLE_MINUTES`` of market time: levels at the last step of each window,
    flows (volumes, liquidations) summed over the window per venue (pandas' group sums, in
    row order); step 0 is kept as the start. The groups are keyed by one integer (window x
    venues + venue): grouping by the window and the venue's name took twice as long."""
    window = ((ts["minute"] + DOWNSAMPLE_MINUTES - 1) // DOWNSAMPLE_MINUTES).to_numpy()
    step = ts["step"].to_numpy()
    venue, venues = pd.factorize(ts["venue"])
    key = window * len(venues) + venue
    last = np.full(window.max() + 1, step.min())  # each window's last step
    np.maximum.at(last, window, step)
    keep = step == last[window]
    sums = ts[list(FLOWS)].groupby(key).sum()
    out = ts.loc[keep, list(TIMESERIES_COLUMNS)].copy()
    out[list(FLOWS)] = sums.to_numpy()[np.searchsorted(sums.index.to_numpy(), key[keep])]
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
                       warnings=tuple(result.warnings), violations=result.flagged)
    except Exception as e:
        return Outcome(arm.label, seed, time.perf_counter() - t0, time.process_time() - c0,
                       error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())


def run_pickled(payload: bytes, seed: int, traders: int | None) -> bytes:
    """:func:`run_task`'s outcome pickled: what a backend yields."""
    return pickle.dumps(run_task(payload, seed, traders), protocol=pickle.HIGHEST_PROTOCOL)


def _failed(task: Task, e: BaseException) -> bytes:
    """A failed outcome, pickled, for a task whose worker raised or died."""
    return pickle.dumps(Outcome(task[0], task[1], 0.0, error=f"{type(e).__name__}: {e}",
                                traceback="".join(traceback.format_exception(e))), protocol=pickle.HIGHEST_PROTOCOL)


class Backend(ABC):
    """Runs tasks; ``name`` and ``workers`` go in the manifest. Every backend is built as
    ``cls(workers, scheduler)`` (each uses what it needs) and listed in BACKENDS."""

    name = ""
    workers = 1

    def __init__(self, workers: int = 1, scheduler: str | None = None):
        """Nothing to set up (this process runs the tasks)."""

    @abstractmethod
    def outcomes(self, tasks: Sequence[Task], traders: int | None) -> Iterator[bytes]:
        """Run every task; yield the outcomes, pickled, as they complete."""

    def stop(self) -> Iterator[bytes]:
        """Drop the runs not started; yield those still finishing (pickled outcomes)."""
        return iter(())

    def close(self, abandon: bool = False) -> None:
        """Release workers and connections; ``abandon``: end the runs still going (their
        outcomes are lost) instead of waiting for them."""


class InProcess(Backend):
    """Runs one task after another in this process (Ctrl-C interrupts the current run)."""

    name = "in-process"

    def outcomes(self, tasks, traders):
        for label, seed, payload in tasks:
            yield run_pickled(payload, seed, traders)


PARENT_CHECK_SECONDS = 0.5
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """Worker initializer: ignore Ctrl-C (the parent decides what stops), end when the
    experiment's process ``parent`` ends for any reason (SIGKILL included), and leave
    its standard output: a worker never writes there, and a pipe reader (``| tee``)
    must see the end of the output when the parent is gone.

    Linux: the kernel sends SIGKILL when the worker's parent, the forkserver, dies
    (prctl PR_SET_PDEATHSIG); the forkserver exits once no process holds its "alive"
    pipe, so the worker closes its inherited copy (it never asks the forkserver for a
    process) and the experiment's process is the last holder.
    Everywhere: a watchdog thread ends the worker within PARENT_CHECK_SECONDS of its
    parent changing (the worker re-parented) or ``parent`` disappearing.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = getattr(forkserver, "_forkserver", None)
    if getattr(server, "_forkserver_alive_fd", None) is not None:
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    ppid = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not _alive(ppid, parent):  # the parent died before the death signal was armed
        os._exit(1)

    def watch() -> None:
        while _alive(ppid, parent):
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="policylab-parent-watchdog", daemon=True).start()


def _alive(ppid: int, parent: int) -> bool:
    """The worker still has parent ``ppid`` and the process ``parent`` exists."""
    if os.getppid() != ppid:
        return False
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Executor(Backend):
    """Tasks submitted to a ``concurrent.futures`` executor (``self.pool``)."""

    pool: ConcurrentExecutor

    def __init__(self, workers: int = 1, scheduler: str | None = None):
        self.futures: dict[Future, Task] = {}

    def outcomes(self, tasks, traders):
        with HeldInterrupts():  # Ctrl-C while a worker is being started would leave it half-started
            for label, seed, payload in tasks:
                self.futures[self.pool.submit(run_pickled, payload, seed, traders)] = (label, seed, payload)
        for f in as_completed(list(self.futures)):
            yield self._outcome(f)

    def _outcome(self, f: Future) -> bytes:
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
    Workers ignore Ctrl-C and end with the experiment's process (:func:`_die_with`)."""

    name = "processes"

    def __init__(self, workers: int, scheduler: str | None = None):
        super().__init__(workers, scheduler)
        check_main_guarded()
        self.workers = workers
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["policylab.experiments.backends"])
        self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_die_with, initargs=(os.getpid(),))

    def close(self, abandon=False):
        if abandon:
            for p in list((getattr(self.pool, "_processes", None) or {}).values()):
                p.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)


class Dask(Executor):
    """Tasks submitted to a Dask distributed scheduler; the workers need policylab installed.
    Stopping cancels every unfinished run on the cluster."""

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        super().__init__(workers, scheduler)
        if not scheduler:
            raise InputError("--scheduler: none given; allowed: the address of a running Dask scheduler "
                             "(tcp://HOST:8786) for the dask backend")
        from distributed import Client

        try:
            self.client = Client(scheduler, timeout=DASK_CONNECT_SECONDS, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise InputError(f"--scheduler: cannot connect to {scheduler} ({e}); allowed: the address of a "
                             "running Dask scheduler, e.g. tcp://HOST:8786") from None
        self.workers = max(1, sum(self.client.nthreads().values()))
        self.pool = self.client.get_executor(pure=False)

    def close(self, abandon=False):
        self.client.close()


BACKENDS: dict[str, type[Backend]] = {InProcess.name: InProcess, Processes.name: Processes, Dask.name: Dask}


def check_main_guarded() -> None:
    """Raise RuntimeError if worker processes would run this script's experiment again.

    Each worker re-imports the script that started Python (``__main__``), so a script
    must call the experiment under ``if __name__ == "__main__":``; without the guard
    every worker would start its own experiment and die. Checked from the script's
    source: the top-level statement running now must sit under that guard.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    spec_name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if path is None or multiprocessing.parent_process() is not None or spec_name == "__main__" \
            or spec_name.endswith(".__main__") or Path(path).stem == "ipython":
        return  # nothing is re-imported (as multiprocessing.spawn decides)
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return
    line = frame.f_lineno
    for node in tree.body:
        if node.lineno <= line <= (node.end_lineno or node.lineno):
            if not _is_main_guard(node):
                raise RuntimeError(
                    f"{path}:{line}: experiments on worker processes need the script's code under "
                    "`if __name__ == \"__main__\":` (each worker re-imports the script); allowed: add the "
                    "guard, or workers=1")
            return


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either order)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.ops) != 1 \
            or not isinstance(node.test.ops[0], ast.Eq):
        return False
    sides = [node.test.left, *node.test.comparators]
    return any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides) and \
        any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides)


def choose(workers: int | None, scheduler: str | None, runs: int, name: str | None = None) -> Backend:
    """The backend ``name`` (a key of BACKENDS); by default Dask if a scheduler is given,
    else local processes, or this process for one worker."""
    if name is not None and name not in BACKENDS:
        raise InputError(f"backend: got {name!r}; allowed: {', '.join(BACKENDS)}")
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(workers, max(runs, 1))
    if name is None:
        name = "dask" if scheduler else "processes" if workers > 1 else "in-process"
    return BACKENDS[name](workers, scheduler)

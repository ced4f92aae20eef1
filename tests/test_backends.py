"""Execution backends: every backend of the registry runs a tiny comparison with the same
tables; the Dask one on a real cluster on 127.0.0.1 (a ``dask scheduler`` and two
``dask worker`` processes)."""

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest

import policylab
from policylab.errors import InputError
from policylab.experiments.backends import BACKENDS, choose, run_task
from policylab.experiments.compare import Staging, make_arm
from policylab.inputs.scenario import load_scenario

TRADERS = 400
START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(procs) -> None:
    """Stop the processes we started, by PID, one at a time and last started first:
    SIGTERM, then SIGKILL if one lingers."""
    for p in reversed(procs):
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a scheduler with two single-threaded workers (no nannies, so each
    PID is the worker itself)."""
    from distributed import Client

    tmp = tmp_path_factory.mktemp("dask")
    dask = str(Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{free_port()}"
    log = open(tmp / "cluster.log", "w")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], stdout=log, stderr=log, cwd=tmp)]
    try:
        for i in range(2):
            procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                           "--host", "127.0.0.1", "--name", f"w{i}", "--local-directory", str(tmp)],
                                          stdout=log, stderr=log, cwd=tmp))
        deadline = time.monotonic() + START_SECONDS
        with Client(address, timeout=START_SECONDS) as client:
            while len(client.nthreads()) < 2:
                assert time.monotonic() < deadline, (tmp / "cluster.log").read_text()
                time.sleep(0.2)
        yield address
    finally:
        stop(procs)
        log.close()
    assert all(p.poll() is not None for p in procs)


def test_dask_cluster_gives_the_in_process_tables(scheduler, flash_path):
    sc = load_scenario(str(flash_path))
    args = (["repeal-esma-2018"], sc, 3)
    remote = policylab.compare(*args, traders=TRADERS, scheduler=scheduler)
    local = policylab.compare(*args, traders=TRADERS, workers=1)
    assert remote.manifest["backend"] == "dask" and remote.manifest["workers"] == 2
    for name in ("runs", "failed", "timeseries", "events", "summary"):
        pd.testing.assert_frame_equal(getattr(remote, name), getattr(local, name), check_exact=True)


TABLES = ("runs", "failed", "timeseries", "events", "summary")


@pytest.fixture(scope="module")
def reference(flash_path):
    return policylab.compare(["repeal-esma-2018"], load_scenario(str(flash_path)), 2, traders=TRADERS, workers=1)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_registered_backend_gives_the_same_tables(name, request, flash_path, reference):
    scheduler = request.getfixturevalue("scheduler") if name == "dask" else None
    r = policylab.compare(["repeal-esma-2018"], load_scenario(str(flash_path)), 2, traders=TRADERS, workers=2,
                          scheduler=scheduler, backend=name)
    assert r.manifest["backend"] == name and r.complete and not r.manifest["failed_runs"]
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(r, table), getattr(reference, table), check_exact=True)


def test_choosing_a_backend():
    assert choose(1, None, 10).name == "in-process"
    assert choose(None, None, 1).name == "in-process"
    with pytest.raises(InputError, match="backend: got 'threads'; allowed: in-process, processes, dask"):
        choose(2, None, 4, "threads")
    with pytest.raises(InputError, match="--scheduler: none given"):
        choose(2, None, 4, "dask")


def test_closing_local_processes_ends_their_workers():
    """Processes.close shuts its pool down: the workers it started have exited when it returns."""
    ex = BACKENDS["processes"](2)
    pids = {ex.pool.submit(os.getpid).result(timeout=START_SECONDS) for _ in range(4)}
    procs = list(ex.pool._processes.values())
    assert pids and os.getpid() not in pids and procs
    ex.close()
    assert all(not p.is_alive() for p in procs)
    with pytest.raises(RuntimeError):  # a shut-down pool takes no more work
        ex.pool.submit(os.getpid)


def test_a_backend_yields_each_outcome_pickled_and_staging_keeps_those_bytes(flash_path, tmp_path):
    arm = make_arm("repeal-esma-2018", load_scenario(str(flash_path)))
    payload = cloudpickle.dumps(arm)
    [pickled] = list(BACKENDS["in-process"]().outcomes([(arm.label, 3, payload)], TRADERS))
    o, direct = pickle.loads(pickled), run_task(payload, 3, TRADERS)
    assert o.ok and (o.arm, o.seed) == (arm.label, 3)
    np.testing.assert_equal(o.metrics, direct.metrics)
    for table in ("timeseries", "events"):
        pd.testing.assert_frame_equal(getattr(o, table), getattr(direct, table), check_exact=True)
    staging = Staging(tmp_path, "arms")
    staging.start()
    staging.save("key", 3, pickled)
    assert staging.path("key", 3).read_bytes() == pickled
    np.testing.assert_equal(staging.load("key", 3).metrics, o.metrics)


class _EndsTheWorker:
    """A task payload whose unpickling ends the worker process."""

    def __reduce__(self):
        return os._exit, (1,)


def test_a_run_whose_worker_dies_comes_back_as_a_pickled_failed_outcome():
    ex = BACKENDS["processes"](1)
    try:
        [pickled] = list(ex.outcomes([("arm", 7, pickle.dumps(_EndsTheWorker()))], TRADERS))
    finally:
        ex.close()
    o = pickle.loads(pickled)
    assert (o.arm, o.seed, o.ok) == ("arm", 7, False) and "BrokenProcessPool" in o.error and o.traceback

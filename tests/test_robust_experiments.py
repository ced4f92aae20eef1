"""Experiments under hostile conditions: killed and interrupted processes, shared and
reused results folders, names that clash, runs that all fail, one seed, NumPy seeds,
scripts without the ``__main__`` guard, output paths from file contents.

Every wait is bounded polling on a condition (a file appearing, a process gone)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from click.testing import CliRunner

import policylab
from policylab.cli import cli
from policylab.errors import InputError
from policylab.experiments.compare import ExperimentFailed
from policylab.experiments.folders import LOCK, FolderLock, slug
from policylab.inputs.scenario import load_scenario

TRADERS = 400
TABLES = ("runs", "failed", "timeseries", "events", "summary")
WAIT_SECONDS = 180


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def wait_for(condition, what: str, proc: subprocess.Popen | None = None, seconds: float = WAIT_SECONDS) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail after ``seconds`` or if ``proc`` ended."""
    deadline = time.monotonic() + seconds
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process ended (exit {proc.returncode}) before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def staged(out: Path) -> int:
    return len(list((out / ".runs").glob("*.pkl")))


def cli_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "policylab", *map(str, args)]


@pytest.fixture(scope="module")
def scenario(flash_path):
    return load_scenario(str(flash_path))


ALWAYS_FAILS = '''
from policylab.policies.api import Policy


class Broken(Policy):
    name, title, source = "broken", "A module that fails on every run", "a test"

    def on_step(self, model):
        raise ValueError("broken on purpose")
'''


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    d = tmp_path_factory.mktemp("broken")
    (d / "broken.py").write_text(ALWAYS_FAILS)
    (d / "broken.yaml").write_text("name: broken\ntitle: Broken\nmodules:\n  - module: broken.py:Broken\n")
    return str(d / "broken.yaml")


# ------------------------------------------------------------------ output paths
@pytest.mark.parametrize("text, expected", [
    ("../../etc", "etc"), ("October 2025 / crash", "october-2025-crash"), ("", "scenario"), ("..", "scenario"),
    (".hidden", "hidden"), ("a" * 300, "a" * 64), ("C:\\temp\\x", "c-temp-x"), ("été 2025", "t-2025"),
])
def test_slug_is_one_safe_path_component(text, expected):
    assert slug(text) == expected
    assert "/" not in slug(text) and not slug(text).startswith(".")


def test_run_without_out_writes_under_outputs_by_a_slug_of_the_name(flash_path, tmp_path, monkeypatch):
    evil = tmp_path / "evil.yaml"
    evil.write_text(Path(flash_path).read_text().replace("name: flash-test", "name: ../../Flash Test"))
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    res = invoke("run", "--scenario", evil, "--traders", TRADERS, "--json")
    assert res.exit_code == 0, res.output
    assert (work / "outputs" / "flash-test-seed0" / "metrics.parquet").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.yaml", "work"]
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["here"]


# ------------------------------------------------------------------ one experiment per folder
def test_a_folder_of_another_experiment_is_refused_unless_force(scenario, tmp_path):
    out = tmp_path / "out"
    policylab.compare([], scenario, 2, traders=TRADERS, workers=1, out=out)
    again = policylab.compare([], scenario, 2, traders=TRADERS, workers=1, out=out)  # the same experiment: fine
    assert again.complete
    with pytest.raises(InputError, match="holds the results of a different experiment.*allowed: --force"):
        policylab.compare(["repeal-esma-2018"], scenario, 2, traders=TRADERS, workers=1, out=out)
    with pytest.raises(InputError, match="different experiment"):
        policylab.compare([], scenario, 3, traders=TRADERS, workers=1, out=out)
    (out / "brief.html").write_text("an old brief")
    (out / "curves.csv").write_text("an old sweep")
    r = policylab.compare(["repeal-esma-2018"], scenario, 2, traders=TRADERS, workers=1, out=out, force=True)
    assert r.complete and not (out / "brief.html").exists() and not (out / "curves.csv").exists()
    assert json.loads((out / "manifest.json").read_text())["rule_sets"] == ["status-quo-2025", "repeal-esma-2018"]
    assert not (out / LOCK).exists()


def test_force_never_deletes_a_folder_that_holds_no_results(scenario, tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="not results of policylab"):
        policylab.compare([], scenario, 2, traders=TRADERS, workers=1, out=tmp_path, force=True)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_cli_refuses_another_experiment_in_one_line_and_force_replaces_it(flash_path, tmp_path):
    out = tmp_path / "out"
    common = ("--scenario", flash_path, "--seeds", 2, "--traders", TRADERS, "--workers", 1, "--out", out, "--no-brief")
    assert invoke("compare", "repeal-esma-2018", *common).exit_code == 0
    res = invoke("compare", "repeal-fca-2021", *common)
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: --out: {out} holds the results of a different experiment")
    res = invoke("compare", "repeal-fca-2021", *common, "--force")
    assert res.exit_code == 0, res.output
    assert "repeal-fca-2021" in json.loads((out / "manifest.json").read_text())["rule_sets"]
    res = invoke("compare", "repeal-fca-2021", *common, "--force", "--resume")
    assert res.exit_code == 2 and "--force: given with --resume" in res.stderr


# ------------------------------------------------------------------ one writer per folder
HOLDER = """
import sys, time
from policylab.experiments.folders import FolderLock
with FolderLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_the_lock_refuses_a_second_writer_and_dies_with_its_holder(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(InputError, match=rf"being written by another policylab process \(process {holder.pid}\)"):
            with FolderLock(out):
                pass
    finally:
        holder.kill()
        holder.wait(timeout=WAIT_SECONDS)
    with FolderLock(out), FolderLock(out):  # released by the kernel; re-entrant in one process
        assert (out / LOCK).read_text() == f"{os.getpid()}\n"
    assert not (out / LOCK).exists()


def test_a_second_compare_and_a_resume_are_refused_while_another_process_writes(flash_path, scenario, tmp_path):
    out = tmp_path / "out"

    def interrupt(done, total):
        if done == 1:
            raise KeyboardInterrupt

    policylab.compare([], scenario, 3, traders=TRADERS, workers=1, out=out, progress=interrupt)
    assert staged(out) == 1
    args = ("--scenario", flash_path, "--seeds", 3, "--traders", TRADERS, "--workers", 1, "--out", out, "--no-brief")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        for extra in (["--resume"], ["--force"], []):
            res = subprocess.run(cli_cmd("compare", "repeal-esma-2018", *args, *extra), capture_output=True,
                                 text=True, timeout=WAIT_SECONDS)
            assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
            assert f"being written by another policylab process (process {holder.pid})" in res.stderr
        assert staged(out) == 1
    finally:
        holder.kill()
        holder.wait(timeout=WAIT_SECONDS)
    r = policylab.compare([], scenario, 3, traders=TRADERS, workers=1, out=out, resume=True)
    assert r.complete and r.manifest["resumed_runs"] == 1


# ------------------------------------------------------------------ processes die with their parent
def test_sigkill_of_compare_leaves_no_process_and_resume_gives_the_uninterrupted_tables(flash_path, scenario,
                                                                                       tmp_path):
    out = tmp_path / "out"
    cmd = cli_cmd("compare", "repeal-esma-2018", "--scenario", flash_path, "--seeds", 6, "--traders", 600,
                  "--workers", 2, "--out", out, "--no-brief")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: staged(out) >= 2, "two finished runs", proc)
        family = psutil.Process(proc.pid).children(recursive=True)
        assert len(family) >= 2  # the forkserver and its workers (and multiprocessing's resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT_SECONDS)
        ended = threading.Event()  # what `| tee` sees: the end of the output, once no process holds it
        threading.Thread(target=lambda: (proc.stdout.read(), ended.set()), daemon=True).start()
        assert ended.wait(WAIT_SECONDS), "a process of the killed compare still holds its standard output"
        gone, alive = psutil.wait_procs(family, timeout=WAIT_SECONDS)
        assert not alive, [p.pid for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = staged(out)
    assert 2 <= kept < 12
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=WAIT_SECONDS * 2)
    assert done.returncode == 0, done.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["complete"] and m["resumed_runs"] == kept and m["finished_runs"] == 12
    full = policylab.compare(["repeal-esma-2018"], scenario, 6, traders=600, workers=1)
    for name in ("runs", "timeseries", "events"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{name}.parquet"), getattr(full, name), check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), pd.read_csv(_csv(full.summary, tmp_path)))


def _csv(df: pd.DataFrame, tmp: Path) -> Path:
    path = tmp / "expected-summary.csv"
    df.to_csv(path, index=False)
    return path


def test_ctrl_c_in_the_first_moments_gives_one_line_and_a_folder_resume_completes(flash_path, tmp_path):
    out = tmp_path / "out"
    cmd = cli_cmd("compare", "repeal-esma-2018", "--scenario", flash_path, "--seeds", 4, "--traders", TRADERS,
                  "--workers", 2, "--out", out, "--no-brief")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (out / LOCK).exists(), "the folder lock", proc)  # in the experiment, before any run ends
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=WAIT_SECONDS)
    # progress lines and the warnings of runs that finished before the interrupt are not error lines
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith(("runs: ", "warning: ")))
    assert "Traceback" not in err and err.count("\n") <= 2, err
    m = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else None
    if m is None:  # the interrupt came before the experiment started: nothing was written
        assert proc.returncode == 130 and f"interrupted: no run of this command was kept in {out}" in err
        assert sorted(p.name for p in out.iterdir()) in ([], [LOCK])
    elif m["complete"]:  # the runs already handed to workers were all there were: nothing was lost
        assert proc.returncode == 0 and not m["interrupted"] and not (out / ".runs").exists()
        return
    else:
        assert proc.returncode == 130 and m["interrupted"] and "continue with --resume" in err
        assert m["finished_runs"] == staged(out) < 8
        cmd.append("--resume")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT_SECONDS * 2)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "manifest.json").read_text())["finished_runs"] == 8


# ------------------------------------------------------------------ honest outcomes
def test_arm_names_must_be_unique(scenario, tmp_path, flash_path):
    a, b, base = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "base.yaml"
    a.write_text("name: cap\ntitle: A\nmodules:\n  - {module: leverage_cap, params: {max_leverage: 10}}\n")
    b.write_text("name: cap\ntitle: B\nmodules:\n  - {module: leverage_cap, params: {max_leverage: 2}}\n")
    base.write_text("name: status-quo-2025\ntitle: Not the baseline\nmodules: []\n")
    with pytest.raises(InputError, match=rf"rule sets: {a} and {b} are both named 'cap'; allowed: distinct names"):
        policylab.compare([str(a), str(b)], scenario, 2, traders=TRADERS, workers=1)
    with pytest.raises(InputError, match=rf"the baseline built-in status-quo-2025 and {base} are both named"):
        policylab.compare([str(base)], scenario, 2, traders=TRADERS, workers=1)
    res = invoke("compare", a, b, "--scenario", flash_path, "--seeds", 2, "--traders", TRADERS,
                 "--out", tmp_path / "out")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and str(a) in res.stderr and str(b) in res.stderr
    assert not (tmp_path / "out").exists()


def test_every_run_failing_raises_with_the_first_error_and_exits_1(scenario, broken, flash_path, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ExperimentFailed, match=r"every run failed \(4 of 4; first: broken seed 0: ValueError: "
                                               r"broken on purpose\); errors and tracebacks in") as e:
        policylab.compare([], scenario, 4, baseline=broken, traders=TRADERS, workers=1, out=out,
                          allow_local_modules=True)
    assert "in on_step" in e.value.__notes__[0] and len(e.value.result.failed) == 4
    assert len(pd.read_parquet(out / "failed.parquet")) == 4
    res = invoke("compare", f"{broken}+repeal-esma-2018", "--baseline", broken, "--scenario", flash_path, "--seeds", 1,
                 "--traders", TRADERS, "--workers", 1, "--out", tmp_path / "cli", "--allow-local-modules")
    err = "".join(line for line in res.stderr.splitlines(keepends=True) if not line.startswith("runs: "))  # progress
    assert res.exit_code == 1 and err.count("\n") == 1, res.output  # broken.py already ran in this process
    assert err.startswith("error: every run failed (2 of 2; first: broken seed 0: ValueError")
    assert not (tmp_path / "cli" / "brief.html").exists()


def test_one_seed_works_end_to_end_with_a_brief_that_says_it_has_no_intervals(flash_path, tmp_path):
    out = tmp_path / "out"
    res = invoke("compare", "repeal-esma-2018", "--scenario", flash_path, "--seeds", 1, "--traders", TRADERS,
                 "--workers", 1, "--out", out)
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and "1 seeds, 2 of 2 runs finished" in res.stdout
    assert "With one seed per rule set there are no intervals" in (out / "brief.html").read_text()
    assert (out / "brief.pdf").stat().st_size > 0


def test_seeds_of_any_integer_type(scenario):
    plain = policylab.compare([], scenario, [0, 1], traders=TRADERS, workers=1)
    for seeds in (np.int64(2), [np.int64(0), np.uint8(1)], np.arange(2)):
        r = policylab.compare([], scenario, seeds, traders=TRADERS, workers=1)
        assert r.manifest["seeds"] == [0, 1] and all(type(s) is int for s in r.manifest["seeds"])
        pd.testing.assert_frame_equal(r.runs, plain.runs, check_exact=True)
    one = policylab.run(scenario, seed=np.int32(1), traders=TRADERS)
    pd.testing.assert_frame_equal(one.metrics, policylab.run(scenario, seed=1, traders=TRADERS).metrics)
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(InputError, match="seed: got"):
            policylab.run(scenario, seed=bad, traders=TRADERS)


SCRIPT = """
import policylab
{indent}r = policylab.compare([], {path!r}, 2, traders=400, workers=2)
{indent}print("complete", r.complete, "rows", len(r.summary))
"""


@pytest.mark.parametrize("guarded", [False, True])
def test_a_script_needs_the_main_guard_for_worker_processes(flash_path, tmp_path, guarded):
    script = tmp_path / "script.py"
    body = SCRIPT.format(indent="    " if guarded else "", path=str(flash_path))
    if guarded:
        body = body.replace("import policylab\n", "import policylab\nif __name__ == '__main__':\n")
    script.write_text(textwrap.dedent(body))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=WAIT_SECONDS,
                         cwd=tmp_path)
    if guarded:
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("complete True rows ") and int(res.stdout.split()[-1]) > 0
    else:
        assert res.returncode == 1 and "complete" not in res.stdout
        assert f'RuntimeError: {script}:3: experiments on worker processes need the script\'s code under ' \
               f'`if __name__ == "__main__":`' in res.stderr


@pytest.mark.parametrize("threads", [1, 2])
def test_write_all_writes_every_file_or_none(tmp_path, threads):
    """policylab.atomic.write_all, one write at a time or two at once: every file or none,
    and no temporary file left behind when a write fails."""
    from policylab.atomic import write_all

    def slow(text):
        def write(p):
            time.sleep(0.05)
            p.write_text(text)
        return write

    def broken(p):
        p.write_text("half")
        raise OSError("disk full")

    names = ["a.txt", "b.txt", "c.txt"]
    assert write_all([(tmp_path / n, slow(n)) for n in names], threads=threads) == [tmp_path / n for n in names]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert all((tmp_path / n).read_text() == n for n in names)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(OSError, match="disk full"):
        write_all([(fresh / "x.txt", slow("x")), (fresh / "y.txt", broken), (fresh / "z.txt", slow("z"))],
                  threads=threads)
    assert list(fresh.iterdir()) == []

"""``policylab compare`` and ``policylab sweep``: output, exit codes, bad input, Ctrl-C and
--resume; sweeps over scenario and policy parameters, and global sensitivity."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from click.testing import CliRunner

import policylab
from policylab.cli import cli
from policylab.errors import InputError
from policylab.experiments.sweep import parse_param, set_module
from policylab.inputs.rulesets import load_rules

TRADERS = "400"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ------------------------------------------------------------------ compare
def test_compare_prints_differences_and_writes_the_folder(flash_path, tmp_path):
    out = tmp_path / "out"
    res = invoke("compare", "repeal-esma-2018", "--scenario", flash_path, "--seeds", 3, "--traders", TRADERS,
                 "--workers", 1, "--out", out)
    assert res.exit_code == 0, res.output
    assert "repeal-esma-2018 vs status-quo-2025" in res.stdout
    assert "liquidated_usd" in res.stdout and "6 of 6 runs finished" in res.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"].startswith("policylab ") and manifest["seeds"] == [0, 1, 2]
    assert (out / "brief.pdf").stat().st_size > 0 and "repeal-esma-2018" in (out / "brief.html").read_text()
    assert f"brief written to {out / 'brief.pdf'}" in res.stderr
    assert res.stdout.splitlines()[-1] == f"brief: {out / 'brief.pdf'}"  # the last line names the brief
    assert "note: only 3 seeds: intervals are unreliable below 10 seeds" in res.stdout
    share = next(line for line in res.stdout.splitlines() if line.strip().startswith("offshore_oi_share"))
    assert " pp" in share and not share.rstrip().endswith("%")  # differences of shares in pp, as in the brief


def test_failed_runs_give_exit_code_1_and_are_reported(flash_path, tmp_path, buggy):
    res = invoke("compare", buggy, "--scenario", flash_path, "--seeds", 3, "--traders", TRADERS, "--workers", 1,
                 "--out", tmp_path / "out", "--no-brief", "--allow-local-modules")
    assert res.exit_code == 1 and not (tmp_path / "out" / "brief.pdf").exists()
    assert "error: 1 of 6 runs failed (first: buggy seed 1: ZeroDivisionError: bug in a third-party module)" \
        in res.stderr
    res = invoke("compare", buggy, "--scenario", flash_path, "--seeds", 3, "--traders", TRADERS, "--workers", 1,
                 "--out", tmp_path / "ff", "--fail-fast", "--no-brief",
                 "--allow-local-modules")
    assert res.exit_code == 1 and "stopped at the first failure" in res.stderr
    assert json.loads((tmp_path / "ff" / "manifest.json").read_text())["finished_runs"] < 6


@pytest.mark.parametrize("args, message", [
    (["compare", "repeal-esma-2018", "--workers", "0"], "--workers: got 0"),
    (["compare", "repeal-esma-2018x"], "unknown rule set 'repeal-esma-2018x' (did you mean 'repeal-esma-2018'?)"),
    (["compare", "repeal-esma-2018", "--resume"], "--resume:"),
    (["sweep", "--param", "scenario.tradrs=100,200"], "scenario: unknown field 'tradrs'; allowed: name,"),
    (["sweep", "--param", "scenario.traders=100,x"], "scenario.traders: got 'x'; allowed: a number"),
    (["sweep", "--param", "scenario.traders=50"], "scenario.traders: got 50; allowed: 100 to 10,000,000"),
    (["sweep", "--param", "scenario.venues.dax.depth_usd=1"], "scenario.venues: no item 'dax'; allowed: dex,"),
    (["sweep", "--param", "leverage_cap.max_leverage=2"], "no module 'leverage_cap' in the swept rule sets"),
    (["sweep", "--rules", "repeal-esma-2018", "--param", "leverage_cap.max_leverage=0.1"],
     "--param leverage_cap.max_leverage: got 0.1; allowed: a number from"),
    (["sweep", "--param", "traders"], "--param: got 'traders'; allowed: MODULE.PARAM=V1,V2,..."),
    (["sweep", "--method", "sobol", "--param", "scenario.sigma_daily=0.1,0.2"], "allowed: LOW:HIGH"),
])
def test_bad_input_is_one_line_with_exit_code_2(flash_path, tmp_path, args, message):
    out = tmp_path / "out"
    res = invoke(*args, "--scenario", flash_path, "--seeds", 2, "--traders", TRADERS, "--out", out)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert message in res.stderr
    assert not out.exists()


GATE = '''
"""Holds every run after the first two at its first step until a file named release
exists, so the test's Ctrl-C lands while runs are unfinished however loaded the machine."""

import os
import pathlib
import time

from policylab.policies.api import Policy

HERE = pathlib.Path(__file__).parent


class Gate(Policy):
    """A test's gate: changes nothing in the market."""

    name, title, source = "gate", "Gate", "a test"

    def on_step(self, model):
        if getattr(self, "ticket", None) is None:
            self.ticket = next(n for n in range(1000) if _claim(HERE / f"ticket-{n}"))
        while self.ticket >= 2 and not (HERE / "release").exists():
            time.sleep(0.02)


def _claim(path):
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False
'''


def test_ctrl_c_keeps_finished_runs_and_resume_completes(flash_path, tmp_path):
    """A real SIGINT to ``policylab compare`` on two worker processes, then --resume. A
    local module in both rule sets (the baseline too) holds runs 3 to 16 until the signal
    is sent (no race with the runs)."""
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "gate.py").write_text(GATE)
    for name, base in (("gated", "repeal-esma-2018"), ("gated-baseline", "status-quo-2025")):  # every run gated
        (gate / f"{name}.yaml").write_text(f"name: {name}\ntitle: Gated\nbase: {base}\nmodules:\n"
                                           "  - module: gate.py:Gate\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "policylab", "compare", str(gate / "gated.yaml"), "--scenario", str(flash_path),
           "--baseline", str(gate / "gated-baseline.yaml"),
           "--seeds", "8", "--traders", "600", "--workers", "2", "--out", str(out), "--allow-local-modules"]
    # a child inherits an ignored SIGINT (as a shell's background job, or a test process whose
    # SIGINT something set to SIG_IGN, has it) and Python then never raises KeyboardInterrupt:
    # start it with the default disposition, as a terminal's Ctrl-C finds it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while len(list((out / ".runs").glob("*.pkl"))) < 2 or not (gate / "ticket-3").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    (gate / "release").touch()  # the held runs finish; those not started are dropped
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "continue with --resume" in err and "Traceback" not in err
    m = json.loads((out / "manifest.json").read_text())
    assert m["interrupted"] and 2 <= m["finished_runs"] < 16
    kept = len(pd.read_parquet(out / "runs.parquet").groupby(["rule_set", "seed"]))
    assert kept == m["finished_runs"] == len(list((out / ".runs").glob("*.pkl")))
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["complete"] and m["resumed_runs"] == kept and m["finished_runs"] == 16
    assert len(pd.read_parquet(out / "runs.parquet").groupby(["rule_set", "seed"])) == 16
    assert not (out / ".runs").exists()


# ------------------------------------------------------------------ sweeps
def test_scenario_sweep_gives_curves_with_intervals(flash_path, tmp_path):
    out = tmp_path / "out"
    r = policylab.sweep({"scenario.shocks.0.size": [-0.04, -0.12]}, str(flash_path), 3, traders=400, workers=1,
                        out=out)
    assert {"grid.csv", "curves.csv", "summary.csv", "runs.parquet"} <= {p.name for p in out.iterdir()}
    grid = pd.read_csv(out / "grid.csv")
    assert grid.to_dict("list") == {"rule_set": ["scenario.shocks.0.size=-0.04", "scenario.shocks.0.size=-0.12"],
                                    "scenario.shocks.0.size": [-0.04, -0.12]}
    c = r.curves.set_index(["scenario.shocks.0.size", "metric"])
    small, big = c.loc[(-0.04, "index_drawdown")], c.loc[(-0.12, "index_drawdown")]
    assert big["mean"] > small["mean"]
    assert small["mean_lo"] <= small["mean"] <= small["mean_hi"]
    assert big["improvement"] == "worse"  # paired against the first point
    assert r.manifest["kind"] == "sweep" and r.manifest["params"] == {"scenario.shocks.0.size": [-0.04, -0.12]}


def test_policy_parameter_sweep_sets_the_module(flash_path, tmp_path):
    cap = tmp_path / "cap.yaml"  # a rule set with one cap (a baseline-based one carries the baseline's caps too)
    cap.write_text("name: cap\ntitle: Cap\nmodules:\n  - module: leverage_cap\n    target: {classes: [retail]}\n"
                   "    params: {max_leverage: 10}\n")
    out = tmp_path / "out"
    res = invoke("sweep", "--rules", cap, "--param", "leverage_cap.max_leverage=2,50",
                 "--scenario", flash_path, "--seeds", 2, "--traders", TRADERS, "--workers", 1, "--out", out)
    assert res.exit_code == 0, res.output
    assert "leverage_cap.max_leverage=2 " in res.stdout and "leverage_cap.max_leverage=50 " in res.stdout
    rule_sets = json.loads((out / "rule_sets.json").read_text())
    caps = [[m["params"]["max_leverage"] for m in arm["composed_of"][0]["modules"] if m["module"] == "leverage_cap"]
            for arm in rule_sets.values()]
    assert caps == [[2.0], [50.0]]
    w = pd.read_parquet(out / "runs.parquet").query("metric == 'liquidated_usd'")
    assert w.groupby("rule_set")["value"].sum().nunique() == 2


def _caps(rule_set):
    return {(m.id or "own", m.origin): m.params["max_leverage"] for m in rule_set.modules if m.module == "leverage_cap"}


def test_a_module_sweep_on_a_baseline_based_rule_set_moves_its_own_modules_or_the_one_named_by_id():
    esma = load_rules("esma-2026-perpetuals")
    before = _caps(esma)
    (own,) = set_module((esma,), "leverage_cap.max_leverage", 5.0)
    after = _caps(own)
    moved = {k for k in before if before[k] != after[k]}
    assert moved and all(origin == "" for _, origin in moved)  # the proposal's cap, not the baseline's
    assert all(after[k] == before[k] for k in before if k[1] == "status-quo-2025")
    (by_id,) = set_module((esma,), "japan-2020-2x.max_leverage", 25.0)
    assert {k for k in before if before[k] != _caps(by_id)[k]} == {("japan-2020-2x", "status-quo-2025")}
    (inherited,) = set_module((load_rules("repeal-fca-2021"),), "leverage_cap.max_leverage", 3.0)
    assert set(_caps(inherited).values()) == {3.0}  # no cap of its own: the inherited ones
    with pytest.raises(InputError, match="allowed: .*japan-2020-2x"):
        set_module((esma,), "japan-2021-2x.max_leverage", 3.0)


def test_morris_sensitivity(flash_path):
    pytest.importorskip("SALib")
    r = policylab.sweep({"scenario.shocks.0.size": (-0.12, -0.02), "scenario.sigma_daily": (0.01, 0.05)},
                        str(flash_path), 1, method="morris", samples=2, traders=400, workers=1)
    assert len(r.grid) == 6 and list(r.sensitivity.columns) == ["metric", "param", "mu_star", "mu_star_conf", "sigma"]
    s = r.sensitivity.set_index(["metric", "param"])
    assert s.loc[("index_drawdown", "scenario.shocks.0.size"), "mu_star"] > 0


def test_parse_param():
    assert parse_param("leverage_cap.max_leverage=1001, 20,2") == ("leverage_cap.max_leverage", [1001, 20, 2])
    assert parse_param("scenario.sigma_daily=0.01:0.05", "sobol") == ("scenario.sigma_daily", (0.01, 0.05))
    with pytest.raises(InputError, match="LOW < HIGH"):
        parse_param("scenario.sigma_daily=0.05:0.01", "morris")

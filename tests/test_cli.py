"""The command line: runs, JSON output, written tables, scenarios, errors, progress."""

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from policylab import metrics
from policylab.cli.formats import fmt
from policylab.cli.main import HEADLINES, Progress, cli
from policylab.experiments.run import RunResult
from policylab.inputs.scenario import builtin_names, load_scenario

TABLES = ("metrics", "timeseries", "events")


@pytest.fixture(scope="module")
def scenario_file(flash_path):
    return flash_path


@pytest.fixture(scope="module")
def json_run(scenario_file, tmp_path_factory):
    """One ``--json`` run through CliRunner: (result, output folder)."""
    out = tmp_path_factory.mktemp("runs") / "json"
    res = CliRunner().invoke(cli, ["run", "--scenario", str(scenario_file), "--seed", "5", "--traders", "2000",
                                   "--out", str(out), "--json"])
    return res, out


def test_json_output_is_one_object_with_every_metric(json_run, scenario_file):
    res, out = json_run
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    defs = metrics.definitions(load_scenario(str(scenario_file)))
    assert list(record) == ["scenario", "seed", "traders", *defs]
    assert (record["scenario"], record["seed"], record["traders"]) == ("flash-test", 5, 2000)
    assert all(v is None or isinstance(v, float) for k, v in record.items() if k in defs)
    assert record["liquidated_usd"] > 0
    assert json.loads((out / "metrics.json").read_text()) == record


def test_written_tables_round_trip(json_run):
    _, out = json_run
    for name in TABLES:
        parquet = pd.read_parquet(out / f"{name}.parquet")
        csv = pd.read_csv(out / f"{name}.csv", dtype=dict(parquet.dtypes))
        pd.testing.assert_frame_equal(csv, parquet, check_exact=True)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_subprocess_run_matches_in_process_run(json_run, scenario_file, tmp_path):
    res, out = json_run
    proc = subprocess.run([sys.executable, "-m", "policylab", "run", "--scenario", str(scenario_file),
                           "--seed", "5", "--traders", "2000", "--out", str(tmp_path / "sub"), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(res.stdout)
    for name in TABLES:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "sub" / f"{name}.parquet"),
                                      pd.read_parquet(out / f"{name}.parquet"), check_exact=True)


def test_text_summary_and_default_output_folder(scenario_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["run", "--scenario", str(scenario_file), "--traders", "2000", "--audit"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "outputs" / "flash-test-seed0"
    record = json.loads((out / "metrics.json").read_text())
    assert all((out / f"{t}.{ext}").is_file() for t in TABLES for ext in ("parquet", "csv"))
    defs = metrics.definitions(load_scenario(str(scenario_file)))
    lines = res.stdout.splitlines()
    for _, rows in HEADLINES:
        for name, label in rows:
            line = next(ln for ln in lines if ln.startswith(f"  {label} "))
            assert line.endswith(" " + fmt(record[name], defs[name].unit))
    headline_lines = [ln for ln in lines if any(ln.startswith(f"  {label} ") for _, r in HEADLINES for _, label in r)]
    assert len({len(ln) for ln in headline_lines}) == 1  # values right-aligned in one column
    assert "tables written to outputs/flash-test-seed0" in res.stdout


@pytest.mark.parametrize("args, mentions", [
    (["--scenario", "no-such-scenario"], ["no-such-scenario", "allowed"]),
    (["--scenario", "{bad_yaml}"], ["bad.yaml", "YAML"]),
    (["--scenario", "{unknown_field}"], ["durations_minutes", "allowed"]),
    (["--scenario", "{bad_mark}"], ["bad_mark.yaml", "venues[0].mark_price", "'oracle'", "book, index"]),
    (["--scenario", "{bad_elasticity}"], ["retail.activity_vol_elasticity", "-1", ">= 0"]),
    (["--scenario", "{scenario}", "--traders", "50"], ["--traders", "50", "100"]),
    (["--scenario", "{scenario}", "--traders", "20000000"], ["--traders", "10,000,000"]),
    (["--scenario", "{scenario}", "--seed", "-1"], ["--seed", ">= 0"]),
    (["--scenario", "{scenario}", "--seed", "abc"], ["--seed", "integer"]),
    (["--seed", "1"], ["--scenario"]),
    (["--scenario", "{scenario}", "--bogus"], ["--bogus"]),
    (["--scenario", "{scenario}", "--out", "{bad_yaml}"], ["--out", "not a folder"]),
    (["--scenario", "{scenario}", "--out", "{bad_yaml}/sub"], ["--out", "bad.yaml", "not a folder"]),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, mentions, scenario_file, tmp_path, monkeypatch):
    (tmp_path / "bad.yaml").write_text("name: x\nstart_price: [1\n")
    (tmp_path / "unknown.yaml").write_text(scenario_file.read_text().replace("duration_minutes", "durations_minutes"))
    (tmp_path / "bad_mark.yaml").write_text(
        "extends: calm\nname: x\nvenues:\n  - {name: dex, kind: offshore_dex, open_interest_usd: 1.0e+9, mark_price: oracle}\n")
    (tmp_path / "bad_elasticity.yaml").write_text(
        "extends: calm\nname: x\npopulation: {classes: {retail: {activity_vol_elasticity: -1}}}\n")
    files = {"scenario": scenario_file, "bad_yaml": tmp_path / "bad.yaml", "unknown_field": tmp_path / "unknown.yaml",
             "bad_mark": tmp_path / "bad_mark.yaml", "bad_elasticity": tmp_path / "bad_elasticity.yaml"}
    args = [a.format(**files) for a in args]
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["run", "--out", str(out), *args])
    assert not (tmp_path / "outputs").exists()
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in res.stderr
    for word in mentions:
        assert word in lines[0]
    assert not out.exists()


def test_write_failure_is_one_line(scenario_file, tmp_path, monkeypatch):
    def refuse(self, out_dir):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(RunResult, "write", refuse)
    res = CliRunner().invoke(cli, ["run", "--scenario", str(scenario_file), "--traders", "200",
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr == f"error: cannot write the tables to {tmp_path / 'o'}: Permission denied\n"


def test_console_script_reports_bad_input_without_traceback(tmp_path):
    script = Path(sys.executable).parent / "policylab"
    proc = subprocess.run([str(script), "run", "--scenario", "no-such-scenario", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: unknown scenario")
    assert not (tmp_path / "o").exists()


def test_scenarios_list_and_show():
    runner = CliRunner()
    res = runner.invoke(cli, ["scenarios", "list"])
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert len(lines) == len(builtin_names())
    for line, name in zip(lines, builtin_names()):
        assert line.split()[0] == name and line.endswith(load_scenario(name).title)
    name = builtin_names()[0]
    sc = load_scenario(name)
    res = runner.invoke(cli, ["scenarios", "show", name])
    assert res.exit_code == 0
    for v in sc.venues:
        assert any(ln.split()[:2] == [v.name, v.kind] and f"{v.max_leverage:g}x" in ln for ln in res.stdout.splitlines())
    for cname in sc.classes:
        assert f"  {cname} " in res.stdout
    assert ("Shocks: none" in res.stdout) == (not sc.shocks)
    res = runner.invoke(cli, ["scenarios", "show", "no-such-scenario"])
    assert res.exit_code == 2 and res.stderr.startswith("error: unknown scenario") and res.stdout == ""


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_after_the_delay():
    shown = _Terminal()
    with Progress("run", stream=shown, delay=0) as progress:
        for i in range(1, 11):
            progress(i, 10)
    assert "run" in shown.getvalue() and "100%" in shown.getvalue()
    for stream, delay in ((io.StringIO(), 0), (_Terminal(), math.inf)):
        with Progress("run", stream=stream, delay=delay) as progress:
            for i in range(1, 11):
                progress(i, 10)
        assert stream.getvalue() == ""


def test_modules_lists_policy_modules_and_policies_is_its_hidden_alias():
    """'modules' (Python classes) and 'rules' (rule set files) name what they list; the 0.1 word
    'policies' still works but is not advertised."""
    modules = CliRunner().invoke(cli, ["modules", "list"])
    alias = CliRunner().invoke(cli, ["policies", "list"])
    assert modules.exit_code == 0 and "leverage_cap" in modules.output
    assert alias.exit_code == 0 and alias.output == modules.output
    top = CliRunner().invoke(cli, ["--help"]).output
    commands = [line.split()[0] for line in top.split("Commands:")[1].splitlines() if line.strip()]
    assert "modules" in commands and "policies" not in commands

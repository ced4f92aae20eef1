"""Rule set files: the malformed corpus in rule_sets_bad/ (each file's first lines say
``# expect: <substring>`` of its error), and the shipped rule sets through the CLI."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from policylab.cli import cli
from policylab.policies.registry import BUILTIN
from policylab.inputs.rulesets import builtin_rule_sets, load_rules

BAD = Path(__file__).with_name("rule_sets_bad")
CORPUS = sorted(BAD.glob("*.yaml"))
SHIPPED = Path(__file__).resolve().parents[1] / "policies"


def expectations(path: Path) -> list[str]:
    return re.findall(r"^# expect: (.+)$", path.read_text(), flags=re.MULTILINE)


def assert_one_line_error(exit_code: int, stderr: str, stdout: str, path: Path) -> str:
    assert exit_code == 2, stderr
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error: ")
    assert "Traceback" not in stderr
    assert path.name in line  # names the file
    for expected in expectations(path):
        assert expected in line
    return line


def test_corpus_is_large_and_every_file_says_what_it_expects():
    assert len(CORPUS) >= 20
    for path in CORPUS:
        assert expectations(path), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_rules_check_reports_the_malformed_file_in_one_line(path):
    res = CliRunner().invoke(cli, ["rules", "check", str(path)])
    assert_one_line_error(res.exit_code, res.stderr, res.stdout, path)


@pytest.mark.parametrize("name", ["unknown_param", "impossible_date", "contradiction"])
def test_rules_check_as_a_real_process(name):
    path = BAD / f"{name}.yaml"
    proc = subprocess.run([sys.executable, "-m", "policylab", "rules", "check", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc.returncode, proc.stderr, proc.stdout, path)


def test_run_with_a_malformed_rule_set_fails_before_running(tmp_path):
    path = BAD / "unknown_module.yaml"
    res = CliRunner().invoke(cli, ["run", "--scenario", "calm", "--rules", str(path), "--out", str(tmp_path / "out")])
    assert_one_line_error(res.exit_code, res.stderr, res.stdout, path)
    assert not (tmp_path / "out").exists()


def test_unknown_rule_set_name_suggests_the_closest():
    res = CliRunner().invoke(cli, ["rules", "show", "repeal-japan-2002"])
    assert res.exit_code == 2
    assert res.stderr.strip().startswith("error: unknown rule set 'repeal-japan-2002' (did you mean 'repeal-japan-2020'?)")


@pytest.mark.parametrize("old, new", [("japan-2020-2x", "repeal-japan-2020"), ("fca-2021-retail-ban", "repeal-fca-2021"),
                                      ("esma-2018-crypto", "repeal-esma-2018"),
                                      ("cftc-2020-actual-delivery", "repeal-cftc-2020")])
def test_a_rule_set_now_in_the_baseline_points_to_its_repeal(old, new):
    res = CliRunner().invoke(cli, ["rules", "show", old])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert f"unknown rule set {old!r}: it is part of the baseline status-quo-2025 now; did you mean {new!r}" in res.stderr
    assert load_rules(new).repeals


def test_rules_show_marks_what_a_rule_set_inherits_and_what_it_repeals():
    shown = CliRunner().invoke(cli, ["rules", "show", "repeal-japan-2020"]).stdout
    assert "builds on status-quo-2025: its modules less the repealed (japan-2020-2x), then its own" in shown
    modules = shown.split("\nmodules:\n", 1)[1].split("\nsources:\n", 1)[0]
    inherited = [line for line in modules.splitlines() if line.endswith("; from status-quo-2025]")]
    assert len(inherited) == len(load_rules("repeal-japan-2020").modules) > 0
    assert "[id japan-2020-2x" not in modules and "[id fca-2021-retail-ban; from status-quo-2025]" in modules
    own = CliRunner().invoke(cli, ["rules", "show", "circuit-breaker-proposal"]).stdout
    module_lines = [line for line in own.split("\nsources:\n")[0].splitlines() if line.startswith("  ") and line[2] != " "]
    assert [line.endswith("from status-quo-2025]") for line in module_lines] == \
        [bool(m.origin) for m in load_rules("circuit-breaker-proposal").modules]
    assert module_lines[-1] == "  circuit_breaker (Circuit breaker)"
    baseline = CliRunner().invoke(cli, ["rules", "show", "status-quo-2025"]).stdout
    assert "builds on" not in baseline and "from status-quo-2025" not in baseline


# ------------------------------------------------------------------ shipped rule sets
def test_the_shipped_rule_sets_are_the_policies_folder():
    assert builtin_rule_sets() == sorted(p.stem for p in SHIPPED.glob("*.yaml"))
    assert {"status-quo-2025", "repeal-esma-2018", "repeal-fca-2021", "repeal-japan-2020", "repeal-cftc-2020",
            "esma-2026-perpetuals", "us-onshoring-2025", "stablecoin-haircuts", "circuit-breaker-proposal",
            "dynamic-margin-proposal"} <= set(builtin_rule_sets())


@pytest.mark.parametrize("name", builtin_rule_sets())
def test_shipped_rule_set_loads_passes_check_and_shows_its_sources(name):
    rs = load_rules(name)
    assert rs.name == name and rs.title and rs.description and rs.jurisdiction and rs.effective_date
    assert rs.sources and all(s["citation"] for s in rs.sources)
    res = CliRunner().invoke(cli, ["rules", "check", str(SHIPPED / f"{name}.yaml")])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith(f"ok: {SHIPPED / f'{name}.yaml'} ({name},")
    res = CliRunner().invoke(cli, ["rules", "show", name])
    assert res.exit_code == 0, res.stderr
    shown = res.stdout
    assert shown.startswith(f"{name}: {rs.title}")
    sources = shown.split("\nsources:\n", 1)[1]
    for s in rs.sources:
        assert s["citation"] in sources
        if s.get("url"):
            assert f"<{s['url']}>" in sources
    for m in rs.modules:
        assert f"  {m.module} ({m.cls.title})" in shown
        for param in m.cls.params():
            assert f"      {param} = " in shown


def test_all_shipped_rule_sets_compose_in_one_check():
    paths = [str(p) for p in sorted(SHIPPED.glob("*.yaml"))]
    res = CliRunner().invoke(cli, ["rules", "check", *paths])
    assert res.exit_code == 0, res.stderr
    assert len(res.stdout.splitlines()) == len(paths)


def test_rules_list_shows_every_shipped_rule_set_with_its_title():
    res = CliRunner().invoke(cli, ["rules", "list"])
    assert res.exit_code == 0
    for name in builtin_rule_sets():
        assert re.search(rf"^{re.escape(name)}\s+{re.escape(load_rules(name).title)}$", res.stdout, re.MULTILINE)


# ------------------------------------------------------------------ policy modules
def test_policies_list_shows_every_builtin_module():
    res = CliRunner().invoke(cli, ["policies", "list"])
    assert res.exit_code == 0
    for name, cls in BUILTIN.items():
        assert re.search(rf"^{name}\s+{re.escape(cls.title)}$", res.stdout, re.MULTILINE)
    assert len(BUILTIN) == 17


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_policies_show_lists_every_parameter_with_unit_and_default(name):
    cls = BUILTIN[name]
    res = CliRunner().invoke(cli, ["policies", "show", name])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith(f"{name}: {cls.title}")
    assert f"source: {cls.source}" in res.stdout
    for pname, p in cls.params().items():
        assert p.unit and p.description  # every parameter is declared with a unit and a description
        assert f"  {pname} = {p.default!r} [{p.unit}" in res.stdout
        assert p.description in res.stdout


def test_policies_show_unknown_module_suggests_the_closest():
    res = CliRunner().invoke(cli, ["policies", "show", "circuit_braker"])
    assert res.exit_code == 2
    assert len(res.stderr.splitlines()) == 1
    assert "unknown module 'circuit_braker' (did you mean 'circuit_breaker'?)" in res.stderr

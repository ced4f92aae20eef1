"""No code runs unasked: a rule set naming a local module (``file.py:Class``) is shown and
checked from the module's source without executing it; running it needs an explicit
opt-in and names the file on stderr first (policylab.inputs.local_modules)."""

import textwrap

import pytest
from click.testing import CliRunner

import policylab
from policylab.cli import cli
from policylab.errors import InputError
from policylab.inputs.local_modules import ENV, LocalModule
from policylab.inputs.rulesets import load_rules

MODULE = '''
"""A local module that leaves a trace when it is imported."""

import pathlib

from policylab.policies.api import Param, Policy

pathlib.Path(__file__).with_name("RAN").write_text("imported")
SOURCE = "a test"


class Cap(Policy):
    """Caps retail leverage."""

    name, title = "local_cap", "Local cap"
    source = SOURCE
    default_venues = ("offshore_cex",)
    max_leverage = Param(5.0, "x", "largest leverage", SOURCE, lo=1.0, hi=100.0)

    def leverage_cap(self):
        return self.max_leverage


def make_param():
    return 0.0, "share", "a fee"


class Built(Cap):
    """Its parameters come from a function: unknown until it runs."""

    fee = Param(*make_param())


class NotAPolicy:
    pass
'''


def folder(tmp_path, module: str = MODULE, cls: str = "Cap", params: str = "{max_leverage: 3}"):
    """A rule set naming ``rules/local.py:cls`` and the module file; returns the rule set path."""
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "local.py").write_text(textwrap.dedent(module))
    path = d / f"{cls.lower()}.yaml"
    path.write_text(f"name: local-{cls.lower()}\ntitle: Local\nmodules:\n  - module: local.py:{cls}\n"
                    f"    target: {{classes: [retail]}}\n    params: {params}\n")
    return path


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def one_error(res, *parts):
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    assert "Traceback" not in res.output


def test_rules_check_and_show_read_the_module_without_running_it(tmp_path):
    path = folder(tmp_path)
    res = invoke("rules", "check", path)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == f"ok: {path} (local-cap, 1 module; local code not run: local.py:Cap)"
    res = invoke("rules", "show", path)
    assert res.exit_code == 0, res.stderr
    assert "  local.py:Cap (Local cap) on classes retail" in res.stdout
    assert "read without running it: its parameters as declared in the source" in res.stdout
    assert "      max_leverage = 3.0\n" in res.stdout
    res = invoke("policies", "show", f"{path.parent / 'local.py'}:Cap")
    assert res.exit_code == 0, res.stderr
    assert "  max_leverage = 5.0 [x, from 1, to 100]" in res.stdout
    assert not (path.parent / "RAN").exists()


@pytest.mark.parametrize("params, message", [
    ("{max_levrage: 3}",
     "modules[0].params.max_levrage: unknown parameter of local_cap (did you mean 'max_leverage'?)"),
    ("{max_leverage: 500}", "modules[0].params.max_leverage: got 500"),
])
def test_statically_read_parameters_are_checked(tmp_path, params, message):
    path = folder(tmp_path, params=params)
    one_error(invoke("rules", "check", path), f"{path}:6: {message}")
    assert not (path.parent / "RAN").exists()


def test_parameters_that_cannot_be_read_are_reported_unknown(tmp_path):
    path = folder(tmp_path, cls="Built", params="{anything: 1}")
    res = invoke("rules", "show", path)
    assert res.exit_code == 0, res.stderr
    assert "its declared parameters are unknown until the module is allowed to run" in res.stdout
    assert "      anything = 1\n" in res.stdout
    assert invoke("rules", "check", path).exit_code == 0
    assert not (path.parent / "RAN").exists()


@pytest.mark.parametrize("module, cls, message", [
    (MODULE, "Capp", "local.py has no policy module class 'Capp' (did you mean 'Cap'?); allowed: Cap, Built"),
    (MODULE, "NotAPolicy", "local.py has no policy module class 'NotAPolicy'; allowed: Cap, Built"),
    ("class Cap(Policy:\n    pass\n", "Cap", "local.py:1: not valid Python"),
    ("raise SystemExit(0)\n", "Cap", "local.py has no policy module class 'Cap'; allowed: none found"),
])
def test_a_module_that_is_not_a_policy_is_one_line(tmp_path, module, cls, message):
    path = folder(tmp_path, module=module, cls=cls)
    one_error(invoke("rules", "check", path), f"{path}:4: modules[0].module: {message}")


def test_a_module_file_that_is_not_utf8_is_one_line(tmp_path):
    path = folder(tmp_path)
    (path.parent / "local.py").write_bytes(b"# \xff\xfe\nclass Cap(Policy): pass\n")
    one_error(invoke("rules", "show", path), "local.py: not UTF-8 text (byte 2)")


def test_running_needs_the_opt_in(tmp_path, short_scenario_path):
    path = folder(tmp_path)
    res = invoke("run", "--scenario", short_scenario_path, "--traders", 200, "--rules", path, "--out", tmp_path / "o")
    one_error(res, f"{path}:4: modules[0].module: local.py is Python code ({path.parent / 'local.py'})",
              "allowed: --allow-local-modules, POLICYLAB_ALLOW_LOCAL_MODULES=1")
    assert not (path.parent / "RAN").exists() and not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="runs only when allowed"):
        load_rules(str(path))
    with pytest.raises(InputError, match="runs only when allowed"):
        policylab.compare([str(path)], str(short_scenario_path), 2, traders=200)
    assert not (path.parent / "RAN").exists()


def test_the_opt_in_names_the_file_before_running_it(tmp_path, short_scenario_path):
    path = folder(tmp_path)
    res = invoke("run", "--scenario", short_scenario_path, "--traders", 200, "--rules", path, "--out", tmp_path / "o",
                 "--allow-local-modules")
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines()[0] == (f"policylab: executing local policy module {path.parent / 'local.py'} "
                                          f"({path}:4: modules[0].module)")
    assert (path.parent / "RAN").read_text() == "imported"


def test_the_environment_variable_is_an_opt_in(tmp_path, monkeypatch, capsys):
    path = folder(tmp_path)
    monkeypatch.setenv(ENV, "0")
    with pytest.raises(InputError, match="runs only when allowed"):
        load_rules(str(path))
    monkeypatch.setenv(ENV, "1")
    rs = load_rules(str(path))
    assert rs.modules[0].cls.name == "local_cap" and not issubclass(rs.modules[0].cls, LocalModule)
    assert "executing local policy module" in capsys.readouterr().err


@pytest.mark.parametrize("module, message", [
    ("raise SystemExit(0)\n", "importing local.py failed: SystemExit: 0"),
    ("raise RuntimeError('broken on purpose')\n", "importing local.py failed: RuntimeError: broken on purpose"),
])
def test_a_module_failing_on_import_is_one_line_not_an_exit(tmp_path, short_scenario_path, module, message):
    path = folder(tmp_path, module=module)
    res = invoke("run", "--scenario", short_scenario_path, "--rules", path, "--allow-local-modules")
    assert res.exit_code == 2
    assert res.stderr.splitlines()[1:] == [f"error: {path}:4: modules[0].module: {message}"]


def test_a_file_runs_once_per_process_while_unchanged(tmp_path, capsys):
    path = folder(tmp_path)
    first = load_rules(str(path), allow_local_modules=True).modules[0].cls
    assert load_rules(str(path), allow_local_modules=True).modules[0].cls is first
    assert capsys.readouterr().err.count("executing local policy module") == 1
    (path.parent / "local.py").write_text(textwrap.dedent(MODULE) + "\n# changed\n")
    assert load_rules(str(path), allow_local_modules=True).modules[0].cls is not first
    assert capsys.readouterr().err.count("executing local policy module") == 1

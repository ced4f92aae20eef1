"""Third-party policy modules: discovery through a real entry point (a distribution's
``*.dist-info`` on sys.path), local ``file.py:ClassName`` modules, ``new-policy``
skeletons, and the worked example of docs/writing-a-policy-module.md."""

import os
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import SHORT_SCENARIO
from policylab.cli import cli
from policylab.model import MarketModel
from policylab.inputs.rulesets import load_rules
from policylab.policies.registry import BUILTIN, ENTRY_POINT_GROUP, available_modules, find_module
from policylab.inputs.scenario import load_scenario

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "writing-a-policy-module.md"

PLUGIN = '''
"""A third-party policy module, installed as a distribution."""

from policylab.policies.api import Param, Policy


class MarginBuffer(Policy):
    """Raises the maintenance margin of the targeted venues."""

    name, title = "margin_buffer", "Margin buffer (plugin)"
    source = "a test plugin"
    default_venues = ("offshore_dex", "offshore_pool", "offshore_cex")
    maintenance_ratio = Param(0.9, "share of initial margin", "maintenance margin at the tier's leverage",
                              "a test plugin", lo=0.01, hi=1.0)

    def venue_rules(self, venue):
        return {"maintenance_ratio": self.maintenance_ratio}
'''

RULES = """
name: with-plugin
title: A rule set using the installed plugin
modules:
  - module: margin_buffer
    target: {venues: [offshore_dex]}
    params: {maintenance_ratio: 0.95}
"""


def install(site: Path, dist: str, package: str, source: str, entry_points: str) -> None:
    """Write a distribution as pip would install it: the package and its *.dist-info."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_points}\n")


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install(site, "policylab_margin_buffer", "policylab_margin_buffer", PLUGIN,
            "margin_buffer = policylab_margin_buffer:MarginBuffer")
    monkeypatch.syspath_prepend(str(site))
    return site


@pytest.fixture
def short_path(tmp_path):
    path = tmp_path / "short-crash.yaml"
    path.write_text(SHORT_SCENARIO)
    return path


def liquidations(m) -> int:
    return len(m.events.arrays()["kind"])


def test_entry_point_is_discovered_and_takes_effect(plugin_site, short_path, tmp_path):
    assert "margin_buffer" in [ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    found = available_modules()
    assert isinstance(found["margin_buffer"], metadata.EntryPoint)  # loaded only when used
    rules_path = tmp_path / "with-plugin.yaml"
    rules_path.write_text(RULES)
    rs = load_rules(str(rules_path))
    cls = rs.modules[0].cls
    assert (cls.__module__, cls.__name__) == ("policylab_margin_buffer", "MarginBuffer")
    scenario = load_scenario(str(short_path))
    m = MarketModel(scenario, seed=1, traders=1000, rules=[rs])
    venues = {r.name: r for r in m.vb.rules}
    assert venues["dex"].maintenance_ratio == 0.95 and venues["cex"].maintenance_ratio == 0.5
    base = MarketModel(scenario, seed=1, traders=1000)
    m.run()
    base.run()
    assert m.warnings() == []
    dex = m.vb.names.index("dex")
    count = lambda mm: int(mm.tb.liquidated[mm.tb.venue == dex].sum())  # noqa: E731
    assert count(m) > count(base)  # a higher maintenance margin liquidates more


def test_find_module_is_available_modules_by_name_and_scans_entry_points_only_for_other_names(
        plugin_site, monkeypatch):
    found = available_modules()
    for name in [*found, "no_such_module"]:
        assert find_module(name) == found.get(name)
    install(plugin_site, "policylab_shadow", "policylab_shadow", PLUGIN, "leverage_cap = policylab_shadow:MarginBuffer")
    assert find_module("leverage_cap") is BUILTIN["leverage_cap"]  # a built-in name stays the built-in

    def no_scan(**kwargs):
        raise AssertionError("entry points scanned")

    monkeypatch.setattr(metadata, "entry_points", no_scan)
    assert find_module("leverage_cap") is BUILTIN["leverage_cap"]
    with pytest.raises(AssertionError, match="entry points scanned"):
        find_module("margin_buffer")


def test_policies_list_and_show_include_the_plugin(plugin_site):
    res = CliRunner().invoke(cli, ["policies", "list"])
    assert res.exit_code == 0, res.stderr
    assert re.search(r"^margin_buffer\s+Margin buffer \(plugin\)$", res.stdout, re.MULTILINE)
    assert re.search(r"^leverage_cap\s+Leverage cap$", res.stdout, re.MULTILINE)
    res = CliRunner().invoke(cli, ["policies", "show", "margin_buffer"])
    assert res.exit_code == 0, res.stderr
    assert "  maintenance_ratio = 0.9 [share of initial margin, from 0.01, to 1]" in res.stdout


def test_policies_list_in_a_real_process_sees_the_installed_plugin(plugin_site):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "policylab", "policies", "list"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^margin_buffer\s+Margin buffer \(plugin\)$", proc.stdout, re.MULTILINE)


def test_a_broken_plugin_is_reported_not_fatal(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install(site, "policylab_broken", "policylab_broken", "X = 1\n", "broken_rule = policylab_broken:Missing\n"
            "not_a_policy = policylab_broken:X")
    monkeypatch.syspath_prepend(str(site))
    res = CliRunner().invoke(cli, ["policies", "list"])
    assert res.exit_code == 0
    assert re.search(r"^broken_rule\s+\(cannot be loaded: entry point 'broken_rule' failed to load: AttributeError",
                     res.stdout, re.MULTILINE)
    assert re.search(r"^leverage_cap\s+Leverage cap$", res.stdout, re.MULTILINE)
    path = tmp_path / "uses-broken.yaml"
    for name, message in (("broken_rule", "entry point 'broken_rule' failed to load: AttributeError"),
                          ("not_a_policy", "entry point 'not_a_policy' is not a policylab.policy.Policy subclass")):
        path.write_text(f"name: uses-broken\ntitle: t\nmodules:\n  - module: {name}\n")
        res = CliRunner().invoke(cli, ["rules", "check", str(path)])
        assert res.exit_code == 2
        assert len(res.stderr.splitlines()) == 1
        assert res.stderr.startswith(f"error: {path}:4: modules[0].module: {message}")


LOCAL = '''
"""A policy module in a file next to the rule set."""

from policylab.policies.api import Param, Policy


class YoungAccountBan(Policy):
    """Accounts younger than an age may not trade on the targeted venues."""

    name, title, source = "young_account_ban", "Young-account ban", "a test"
    default_venues = ("offshore_pool",)
    days = Param(30.0, "days", "accounts younger than this are turned away", "a test", lo=1.0, hi=3650.0)

    def denies(self, model, tb, idx, venue):
        return self.account_mask(tb, idx) & (tb.age_days[idx] < self.days)
'''


def test_local_module_file(tmp_path, short_path, monkeypatch):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "young.py").write_text(LOCAL)
    path = folder / "young.yaml"
    path.write_text("name: young\ntitle: Young accounts off the pool\nmodules:\n"
                    "  - module: young.py:YoungAccountBan\n    params: {days: 90}\n")
    monkeypatch.chdir(tmp_path)  # the module file is found next to the rule set, not in the working folder
    rs = load_rules(str(path), allow_local_modules=True)
    assert rs.modules[0].cls.name == "young_account_ban"
    res = CliRunner().invoke(cli, ["rules", "check", "rules/young.yaml"])
    assert res.exit_code == 0, res.stderr
    m = MarketModel(load_scenario(str(short_path)), seed=1, traders=1500, rules=[rs])
    tb = m.tb
    pool = m.vb.names.index("pool")
    on_pool = (tb.venue == pool) & (tb.size != 0) & np.isin(tb.cls, [0, 1, 2])
    assert on_pool.any() and np.all(tb.age_days[on_pool] >= 90)
    m.run()
    assert m.warnings() == []


def test_new_policy_writes_a_module_and_a_test_that_pass(tmp_path):
    out = tmp_path / "mods"
    res = CliRunner().invoke(cli, ["new-policy", "margin_buffer", "--dir", str(out)])
    assert res.exit_code == 0, res.stderr
    module, test = out / "margin_buffer.py", out / "test_margin_buffer.py"
    assert res.stdout.strip() == f"wrote {module} and {test}; run: python -m pytest {test}"
    text = module.read_text()
    assert "class MarginBuffer(Policy):" in text and 'name = "margin_buffer"' in text and "Param(" in text
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                          capture_output=True, text=True, cwd=out, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    # the skeleton is also a valid local module for `rules check`
    rules = out / "rules.yaml"
    rules.write_text("name: skeleton\ntitle: Skeleton\nmodules:\n  - module: margin_buffer.py:MarginBuffer\n")
    assert CliRunner().invoke(cli, ["rules", "check", str(rules)]).exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["new-policy", "Margin-Buffer"], "new-policy NAME: got 'Margin-Buffer'; allowed: a lower-case Python identifier"),
    (["new-policy", "class"], "new-policy NAME: got 'class'; allowed: a lower-case Python identifier"),
])
def test_new_policy_rejects_bad_names(args, message, tmp_path):
    res = CliRunner().invoke(cli, [*args, "--dir", str(tmp_path)])
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [f"error: {message} (e.g. margin_buffer)"]
    assert list(tmp_path.iterdir()) == []


def test_new_policy_does_not_overwrite(tmp_path):
    (tmp_path / "margin_buffer.py").write_text("# mine\n")
    res = CliRunner().invoke(cli, ["new-policy", "margin_buffer", "--dir", str(tmp_path)])
    assert res.exit_code == 2
    assert res.stderr.startswith(f"error: {tmp_path / 'margin_buffer.py'}: already exists")
    assert (tmp_path / "margin_buffer.py").read_text() == "# mine\n"
    assert not (tmp_path / "test_margin_buffer.py").exists()


# ------------------------------------------------------------------ the guide's example
def guide_files() -> dict[str, str]:
    """The files of the guide: each fenced block preceded by ``<!-- file: NAME -->``."""
    text = GUIDE.read_text()
    return dict(re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.DOTALL))


def test_guide_example_works(tmp_path, short_path, monkeypatch):
    files = guide_files()
    assert set(files) >= {"appropriateness_test.py", "uk-appropriateness.yaml", "test_appropriateness_test.py"}
    for name, body in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    res = CliRunner().invoke(cli, ["rules", "check", str(tmp_path / "uk-appropriateness.yaml")])
    assert res.exit_code == 0, res.stderr
    # the guide's command, on a short scenario
    res = CliRunner().invoke(cli, ["run", "--scenario", str(short_path), "--traders", "2000",
                                   "--rules", str(tmp_path / "uk-appropriateness.yaml"),
                                   "--rules", "repeal-esma-2018", "--allow-local-modules",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.stderr
    assert "accounts that stopped trading" in res.stdout
    # the guide's test
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_appropriateness_test.py"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the guide's entry point section: the same module registered as a distribution
    package = tmp_path / "site" / "my_policies"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "appropriateness_test.py").write_text(files["appropriateness_test.py"])
    toml = files["pyproject.toml"]
    entry = re.search(r'\[project\.entry-points\."policylab\.policies"\]\n(\S+) = "(\S+)"', toml)
    assert entry, toml
    info = tmp_path / "site" / "my_policies-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-policies\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[policylab.policies]\n{entry[1]} = {entry[2]}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "my_policies", raising=False)
    monkeypatch.delitem(sys.modules, "my_policies.appropriateness_test", raising=False)
    rs = load_rules(str(tmp_path / "uk-appropriateness-installed.yaml"))
    assert rs.modules[0].module == "appropriateness_test"
    assert rs.modules[0].cls.__module__ == "my_policies.appropriateness_test"
    res = CliRunner().invoke(cli, ["policies", "list"])
    assert re.search(r"^appropriateness_test\s+Appropriateness test$", res.stdout, re.MULTILINE)

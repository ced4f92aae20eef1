"""CLI commands for policy modules and rule sets: ``policies``, ``rules``, ``new-policy``."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

import click

from policylab.engine.apply_rules import configure_venues
from policylab.engine.effects import Effects
from policylab.errors import InputError
from policylab.policies.api import PolicyError, describe_class
from policylab.inputs.local_modules import LocalModule
from policylab.inputs.rulesets import builtin_rule_sets, load_rules, resolve_module
from policylab.policies.registry import available_modules
from policylab.inputs.scenario import load_scenario


@click.group()
def policies() -> None:
    """Policy modules (built-in and installed plugins)."""


@policies.command("list")
def policies_list() -> None:
    """List policy modules with their titles."""
    found = available_modules()
    width = max(len(n) for n in found)
    for name in sorted(found):
        try:
            title = resolve_module(name, Path("."), name).title
        except InputError as e:  # one broken plugin does not hide the others
            title = f"(cannot be loaded: {str(e).split(': ', 1)[1]})"
        click.echo(f"{name:<{width}}  {title}")


@policies.command("show")
@click.argument("name")
def policies_show(name: str) -> None:
    """Show a module's parameters (unit, default, bounds) and sources."""
    cls = resolve_module(name, Path("."), f"policy {name}", static=True)
    info = describe_class(cls)
    click.echo(f"{info['module']}: {info['title']}\n")
    if issubclass(cls, LocalModule):
        click.echo(f"{_not_run(cls)}\n")
    click.echo(info["doc"] + "\n")
    click.echo(f"source: {info['source']}\n")
    for pname, p in info["params"].items():
        bounds = "".join(f", {word} {p[key]:g}" for word, key in (("from", "lo"), ("to", "hi")) if p[key] is not None)
        choices = f", one of {', '.join(map(str, p['choices']))}" if p["choices"] else ""
        click.echo(f"  {pname} = {p['default']!r} [{p['unit']}{bounds}{choices}]")
        click.echo(f"      {p['description']}" + (f" (source: {p['source']})" if p["source"] else ""))


@click.group()
def rules() -> None:
    """Rule sets: the shipped ones in policies/, or your own YAML files."""


@rules.command("list")
def rules_list() -> None:
    """List the shipped rule sets with their titles."""
    names = builtin_rule_sets()
    width = max(len(n) for n in names)
    for name in names:
        click.echo(f"{name:<{width}}  {load_rules(name).title}")


def _not_run(cls: type[LocalModule]) -> str:
    """What is known of a local module read without running it."""
    known = ("its parameters as declared in the source" if cls.params_known
             else "its declared parameters are unknown until the module is allowed to run")
    return f"local code in {cls.file}, read without running it: {known}"


@rules.command("show")
@click.argument("name", metavar="NAME|PATH")
def rules_show(name: str) -> None:
    """Show a rule set: description, modules with parameters, legal sources. Local
    modules (file.py:Class) are read, never run."""
    loaded = load_rules(name, static=True)
    rs = loaded.to_dict()
    click.echo(f"{rs['name']}: {rs['title']}")
    click.echo(f"jurisdiction {rs['jurisdiction'] or '-'}, effective {rs['effective_date'] or '-'}\n")
    click.echo(rs["description"] + "\n")
    if rs["base"]:
        click.echo(f"builds on {rs['base']}: its modules less "
                   + (f"the repealed ({', '.join(rs['repealed'])})" if rs["repealed"] else "none")
                   + ", then its own\n")
    click.echo("modules:" if rs["modules"] else "modules: none (the venues' own rules apply)")
    for m, cls in zip(rs["modules"], (spec.cls for spec in loaded.modules)):
        target = "; ".join(f"{k} {', '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                           for k, v in m["target"].items())
        origin = [f"id {m['id']}"] if m["id"] else []
        if m["from"] != rs["name"]:
            origin.append(f"from {m['from']}")
        click.echo(f"  {m['module']} ({m['title'] or cls.__name__})" + (f" on {target}" if target else "")
                   + (f"  [{'; '.join(origin)}]" if origin else ""))
        if issubclass(cls, LocalModule):
            click.echo(f"      ({_not_run(cls)})")
        for k, v in m["params"].items():
            click.echo(f"      {k} = {v}" + ("" if k in m["given"] else "  (default)"))
    click.echo("sources:")
    for s in rs["sources"]:
        click.echo(f"  {s['citation']}" + (f" <{s['url']}>" if s.get("url") else ""))


@rules.command("check")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def rules_check(files: tuple[str, ...]) -> None:
    """Check rule set files (structure, modules, parameters, contradictions); together
    they must compose. Local modules (file.py:Class) are checked statically, never run."""
    loaded = [load_rules(f, static=True) for f in files]
    policies_ = [p for rs in loaded for p in rs.policies()]
    try:
        configure_venues(load_scenario("calm"), policies_, Effects(policies_))
    except (PolicyError, ValueError) as e:
        raise InputError(f"{', '.join(files)}: {e}") from None
    for rs in loaded:
        local = [m.module for m in rs.modules if issubclass(m.cls, LocalModule)]
        note = f"; local code not run: {', '.join(local)}" if local else ""
        click.echo(f"ok: {rs.path} ({rs.name}, {len(rs.modules)} module{'s' * (len(rs.modules) != 1)}{note})")


@click.command("new-policy")
@click.argument("name")
@click.option("--dir", "out_dir", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="Folder to write the module and its test into.")
def new_policy(name: str, out_dir: Path) -> None:
    """Write a documented policy module skeleton NAME.py and its test test_NAME.py."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise InputError(f"new-policy NAME: got {name!r}; allowed: a lower-case Python identifier (e.g. margin_buffer)")
    module, test = out_dir / f"{name}.py", out_dir / f"test_{name}.py"
    for path in (module, test):
        if path.exists():
            raise InputError(f"{path}: already exists; allowed: a new file (choose another NAME or --dir)")
    cls = "".join(part.capitalize() for part in name.split("_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    module.write_text(SKELETON.format(name=name, cls=cls))
    test.write_text(TEST_SKELETON.format(name=name, cls=cls))
    click.echo(f"wrote {module} and {test}; run: python -m pytest {test}")


SKELETON = '''"""{cls}: a policylab policy module.

Use it in a rule set file next to this one:

    modules:
      - module: {name}.py:{cls}
        target: {{classes: [retail]}}
        params: {{max_leverage: 5}}

or register it for everyone: in your package's metadata, an entry point in the group
``policylab.policies`` named ``{name}`` pointing at ``your_package.{name}:{cls}``.
"""

from policylab.policies.api import Param, Policy


class {cls}(Policy):
    """What the rule does, in one or two sentences a policy analyst would recognise."""

    name = "{name}"
    title = "{cls}"
    source = "the legal text or proposal the rule comes from"
    default_venues = ("offshore_dex", "offshore_pool", "offshore_cex")  # venue kinds (or names) when none are given

    # Every parameter: default, unit, description, source, bounds.
    max_leverage = Param(5.0, "x", "largest leverage the targeted traders may use", "your source", lo=1.0, hi=2000.0)

    # Hooks (implement the ones your rule needs; see policylab.policies.api for all of them):
    #   venue_rules(venue) -> dict of VenueRules fields    leverage_cap() -> float
    #   closeout_level() -> float                           denies(model, tb, idx, venue) -> mask
    #   desired_leverage() -> factor                        position_limit() -> USD
    #   open_interest_cap(venue) -> USD                     on_step(model) -> None
    def leverage_cap(self):
        return self.max_leverage
'''

TEST_SKELETON = '''"""Test of the {name} policy module: it binds inside a run."""

import dataclasses
from pathlib import Path

import numpy as np

from policylab.model import MarketModel
from policylab.inputs.rulesets import load_rules
from policylab.inputs.scenario import load_scenario

RULE_SET = """
name: {name}-test
title: {cls} in force
modules:
  - module: {name}.py:{cls}
    target: {{classes: [retail]}}
    params: {{max_leverage: 5}}
"""


def test_{name}_caps_retail_leverage(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULE_SET.replace("{name}.py", str(Path(__file__).with_name("{name}.py"))))
    scenario = dataclasses.replace(load_scenario("calm"), duration_minutes=60)
    model = MarketModel(scenario, seed=1, traders=2000, rules=[load_rules(str(path), allow_local_modules=True)])
    model.run()
    tb = model.tb
    retail = model.rows["retail"]
    offshore = np.isin(tb.venue[retail], [v for v, r in enumerate(model.vb.rules) if r.offshore])
    assert np.all(tb.lev_cap[retail[offshore]] <= 5.0)
    assert model.warnings() == []  # the module took effect
'''

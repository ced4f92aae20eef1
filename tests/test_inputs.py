"""The input layer (policylab.inputs.yaml, .values): scenario files get the same one-line
errors as rule sets (file:line: key path: found; allowed; did you mean), duplicate keys,
NaN and non-UTF-8 files are refused, and every configurable field documents itself."""

import dataclasses
import subprocess
import sys

import pytest
from click.testing import CliRunner

from policylab.brief import odd
from policylab.cli import cli
from policylab.errors import InputError
from policylab.inputs.market import MarketParams
from policylab.inputs.scenario import ClassSpec, Scenario, ShockSpec, VenueChoice, builtin_dir, load_scenario
from policylab.inputs.values import Invalid, coerce
from policylab.inputs.yaml import Lines, parse
from policylab.policies.api import Param, PolicyError
from policylab.venues import Tier, VenueRules, make_venue

CONFIGURABLE = (VenueRules, Tier, ClassSpec, ShockSpec, VenueChoice, MarketParams, Scenario)


@pytest.mark.parametrize("cls", CONFIGURABLE, ids=lambda c: c.__name__)
def test_every_configurable_field_has_unit_and_meaning(cls):
    for f in dataclasses.fields(cls):
        assert f.metadata.get("unit") and f.metadata.get("meaning"), f"{cls.__name__}.{f.name}"
        assert "source" in f.metadata, f"{cls.__name__}.{f.name}"


def test_the_brief_reads_meanings_and_units_from_the_metadata():
    notes = odd.field_notes(VenueRules)
    assert notes["depth_usd"] == "resting depth within 1% of mid (USD)"
    assert notes["maintenance_ratio"].startswith("maintenance margin as share of initial margin")
    assert odd.field_notes(MarketParams)["round_seconds"].endswith("(seconds)")


# ----------------------------------------------------------------- scenario errors
CASES = [  # (YAML after "extends: calm\nname: s\n", expected substring of the one error line)
    ("sigma_dayly: 0.03\n", "s.yaml:3: sigma_dayly: unknown field (did you mean 'sigma_daily'?); allowed:"),
    ("sigma_daily: .nan\n", "s.yaml:3: sigma_daily: got nan; allowed: a finite number"),
    ("start_price: .inf\n", "s.yaml:3: start_price: got inf; allowed: a finite number"),
    ("start_price: 1e9x\n", "s.yaml:3: start_price: got '1e9x'; allowed: a number"),
    ("duration_minutes: 90.5\n", "s.yaml:3: duration_minutes: got 90.5; allowed: an integer"),
    ("name: t\n", "s.yaml:3: name: duplicate key (first on line 2); allowed: each key once per mapping"),
    ("population:\n  traders: 50\n", "s.yaml:4: population.traders: got 50; allowed: 100 to 1e+07"),
    ("population:\n  classes:\n    retial: {share: 1}\n",
     "s.yaml:5: population.classes.retial: unknown field (did you mean 'retail'?)"),
    ("population:\n  classes:\n    retail:\n      long_share: 1.5\n",
     "s.yaml:6: population.classes.retail.long_share: got 1.5; allowed: 0 to 1"),
    ("population:\n  classes:\n    retail:\n      leverage_tail: [50]\n",
     "s.yaml:6: population.classes.retail.leverage_tail: got [50]; allowed: a list of 2"),
    ("population:\n  jurisdictions: {USA: 1}\n",
     "s.yaml:4: population.jurisdictions.USA: unknown field (did you mean 'US'?)"),
    ("market:\n  impact_y: -1\n", "s.yaml:4: market.impact_y: got -1.0; allowed: >= 0"),
    ("market:\n  max_rounds: yes\n", "s.yaml:4: market.max_rounds: got True; allowed: an integer"),
    ("venue_choice: {noise: .nan}\n", "s.yaml:3: venue_choice.noise: got nan; allowed: a finite number"),
    ("shocks:\n  - {kind: prise, start_minute: 0, duration_minutes: 5}\n",
     "s.yaml:4: shocks[0].kind: got 'prise' (did you mean 'price'?); allowed: price, liquidity"),
    ("shocks:\n  - {kind: price, duration_minutes: 5}\n", "s.yaml:4: shocks[0].start_minute: missing; required"),
    ("venues:\n  - {name: spot, kind: spot_etf}\n  - {name: x, kind: offshore_cx}\n",
     "s.yaml:5: venues[1].kind: got 'offshore_cx' (did you mean 'offshore_cex'?); allowed:"),
    ("venues:\n  - {name: spot, kind: spot_etf}\n  - name: x\n    kind: offshore_cex\n    taker_fe: 0.1\n",
     "s.yaml:7: venues[1].taker_fe: unknown venue field (did you mean 'taker_fee'?)"),
    ("venues:\n  - {name: spot, kind: spot_etf}\n  - name: x\n    kind: offshore_cex\n    kyc_required: 1\n",
     "s.yaml:7: venues[1].kyc_required: got 1; allowed: true or false"),
    ("venues:\n  - {name: spot, kind: spot_etf, depth_usd: .nan}\n",
     "s.yaml:4: venues[0].depth_usd: got nan; allowed: a finite number"),
    ("venues:\n  - {name: spot, kind: spot_etf}\n  - name: x\n    kind: offshore_cex\n    tiers:\n"
     "      - {from_notional: 0, max_leverage: 10}\n      - {from_notional: 1000, max_leverage: 20}\n",
     "s.yaml:9: venues[1].tiers[1].max_leverage: got 20.0; allowed: non-increasing from tier to tier"),
    ("venues:\n  - {name: spot, kind: spot_etf}\n  - name: x\n    kind: offshore_cex\n    blocked_jurisdictions: [USA]\n",
     "s.yaml:7: venues[1].blocked_jurisdictions[0]: got 'USA' (did you mean 'US'?); allowed: US, EU"),
]


@pytest.mark.parametrize("text, message", CASES, ids=[c[1].split(": ")[1] for c in CASES])
def test_scenario_errors_name_file_line_and_key_path(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text("extends: calm\nname: s\n" + text)
    res = CliRunner().invoke(cli, ["run", "--scenario", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert message in res.stderr, res.stderr
    assert str(path) in res.stderr


def test_a_value_inherited_through_extends_is_located_in_the_file_it_comes_from(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("extends: calm\nname: s\nstep_minutes: 7\n")
    calm = (builtin_dir() / "calm.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(calm, 1) if text.startswith("duration_minutes:"))
    with pytest.raises(InputError) as e:
        load_scenario(str(path))
    assert str(e.value) == f"calm.yaml:{line}: duration_minutes: 1440 is not a multiple of step_minutes 7"


def test_a_replaced_list_is_located_only_in_the_overriding_file():
    base = Lines("base.yaml", {("venues",): 3, ("venues", 1): 5, ("venues", 1, "depth_usd"): 5,
                               ("market",): 9, ("market", "band"): 10}, {(), ("venues", 1), ("market",)})
    over = Lines("over.yaml", {("venues",): 2, ("venues", 1): 4, ("market",): 7}, {(), ("venues", 1), ("market",)})
    over.mappings.discard(("venues",))
    merged = over.over(base)
    assert merged.locate(("venues", 1, "depth_usd")) == ("over.yaml", 4)
    assert merged.locate(("market", "band")) == ("base.yaml", 10)  # mappings merge
    assert merged.locate(("market", "impact_y")) == ("over.yaml", 7)


def test_a_file_that_is_not_utf8_is_one_line_with_exit_code_2(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\ntitle: t\nmodules: []\n".encode("latin-1"))
    for args in (["rules", "check", str(path)], ["run", "--scenario", str(path), "--out", str(tmp_path / "o")]):
        proc = subprocess.run([sys.executable, "-m", "policylab", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr == f"error: {path}: not UTF-8 text (byte 9); allowed: a UTF-8 encoded YAML file\n"


def test_duplicate_keys_in_flow_mappings_and_merge_keys():
    with pytest.raises(InputError, match=r"f.yaml:1: a: duplicate key \(first on line 1\)"):
        parse("{a: 1, a: 2}\n", "f.yaml")
    data, _ = parse("base: &b {x: 1, y: 2}\nover: {<<: *b, x: 3}\n", "f.yaml")  # a merge may be overridden
    assert data["over"] == {"x": 3, "y": 2}


def test_line_numbers_walk_an_aliased_node_once():
    text = "a: &a [1, 2]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n"
    data, lines = parse(text, "f.yaml")
    assert data["c"][2][1] == [1, 2]
    assert len(lines.entries) == 12  # root, a, b, c, a[0..1], b[0..2], c[0..2]: no path through an alias twice
    assert lines.locate(("a", 1)) == ("f.yaml", 1) and lines.locate(("c", 2, 1, 0)) == ("f.yaml", 2)  # where *b points


# ----------------------------------------------------------------- shared coercion
@pytest.mark.parametrize("value, tp, result", [
    ("1e9", float, 1e9), (3, float, 3.0), (2.0, int, 2), ([1, "2"], tuple[float, float], (1.0, 2.0)),
    ({"a": 1}, dict[str, float], {"a": 1.0}), (["x"], tuple[str, ...], ("x",)),
])
def test_coerce_converts_what_yaml_reads(value, tp, result):
    out = coerce(value, tp)
    assert out == result and type(out) is type(result)


@pytest.mark.parametrize("value, tp, found", [
    (True, float, True), (float("nan"), float, float("nan")), ("inf", float, float("inf")), (2.5, int, 2.5),
    ("x", float, "x"), (1, bool, 1), (1, str, 1), ({"a": "b"}, dict[str, float], "b"), ([1], tuple[float, float], [1]),
])
def test_coerce_refuses_what_does_not_fit(value, tp, found):
    with pytest.raises(Invalid) as e:
        coerce(value, tp)
    assert repr(e.value.found) == repr(found)


def test_infinity_only_where_the_field_allows_it():
    assert make_venue("v", "offshore_cex", {"partial_threshold_usd": "inf"}).partial_threshold_usd == float("inf")
    with pytest.raises(InputError, match="venue: depth_usd: got inf; allowed: a finite number"):
        make_venue("v", "offshore_cex", {"depth_usd": float("inf")})


def test_module_parameters_share_the_coercion():
    p = Param(2.0, "x", "a cap", lo=1.0, hi=10.0)
    assert p.check("3", "cap") == 3.0 and p.check(4, "cap") == 4.0
    with pytest.raises(PolicyError, match="cap: got nan; allowed: a number from 1 to 10"):
        p.check(float("nan"), "cap")
    assert Param(float("inf"), "USD", "a limit", lo=0.0).check(float("inf"), "limit") == float("inf")
    with pytest.raises(PolicyError, match="allowed: a finite integer >= 0"):
        Param(3, "days", "a wait", lo=0).check(float("inf"), "wait")


def test_the_brief_methodology_imports_no_engine_model_or_population_module():
    code = ("import sys, policylab.brief.odd as odd; odd.behaviours(); odd.module_doc('policylab.model'); "
            "print([m for m in sys.modules if m.startswith(('policylab.engine', 'policylab.model', "
            "'policylab.populations', 'policylab.experiments'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"

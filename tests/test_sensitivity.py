"""`policylab sensitivity`: sensitivity.csv and ranking.csv from a tiny comparison, the
documented ranges they use, and the brief's "How robust" section."""

import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from policylab.cli.main import cli
from policylab.experiments import sensitivity as sens
from policylab.inputs.assumptions import ASSUMPTIONS
from policylab.inputs.scenario import load_scenario
from policylab.metrics import HIGHER, LOWER, NEUTRAL

ROOT = Path(__file__).resolve().parents[1]
RULES = "us-onshoring-2025"
OTHER = "circuit-breaker-proposal"  # in the comparison and the ranking, not varied (--rule-set RULES)


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, flash_path):
    """A 2-seed, 300-trader comparison of two rule sets on the flash crash, then its
    sensitivity step for one of them, with the same scenario as the 'second' one (so
    every rank must hold)."""
    out = tmp_path_factory.mktemp("sens") / "cmp"
    res = _run("compare", RULES, OTHER, "--scenario", flash_path, "--seeds", 2, "--traders", 300, "--workers", 1,
               "--out", out, "--no-brief")
    assert res.exit_code == 0, res.output
    res = _run("sensitivity", out, "--second-scenario", flash_path, "--seeds", 2, "--traders", 300, "--workers", 1,
               "--rule-set", RULES, "--no-brief")
    assert res.exit_code == 0, res.output
    return out


def _documented_range(doc: str) -> tuple[float, float]:
    """The 'range LOW-HIGH' (or 'LOW to HIGH') of the docs/calibration.md row ``doc`` names."""
    key = doc.split(": ", 1)[1]
    row = next(line for line in (ROOT / "docs/calibration.md").read_text().splitlines()
               if line.startswith(f"| `{key}`"))
    m = re.search(r"range (-?[\d.]+)(?:-| to )(-?[\d.]+)", row)
    assert m, row
    return float(m.group(1)), float(m.group(2))


@pytest.mark.parametrize("a", ASSUMPTIONS, ids=lambda a: a.name)
def test_declared_ranges_are_the_documented_ones(a):
    assert (a.low, a.high) == _documented_range(a.doc)


def test_sensitivity_csv(folder, flash_path):
    t = pd.read_csv(folder / "sensitivity.csv")
    assert list(t.columns) == list(sens.SENSITIVITY_COLUMNS)
    sc = load_scenario(str(flash_path))
    applied = [a for a in ASSUMPTIONS if a.paths(sc)]
    # the flash scenario blocks US residents on its CEX only: DEX and pool leakage do not apply
    assert "leakage.offshore_cex" in {a.name for a in applied}
    assert "leakage.offshore_dex" not in {a.name for a in applied}
    assert set(t["assumption"]) == {a.name for a in applied}
    assert set(t["rule_set"]) == {RULES}  # --rule-set: OTHER is not varied
    assert (t["seeds"] == 2).all() and (t["traders"] == 300).all()
    summary = pd.read_csv(folder / "summary.csv")
    assert list(dict.fromkeys(t["metric"])) == sens.core_metrics(summary["metric"].unique())
    for a in applied:
        rows = t[t["assumption"] == a.name]
        assert dict(zip(rows["side"], rows["value"])) == {"low": a.low, "high": a.high}
    ok = t.dropna(subset=["diff_lo"])
    assert len(ok) > 0
    assert ((ok["diff_lo"] <= ok["diff_mean"] + 1e-9) & (ok["diff_mean"] <= ok["diff_hi"] + 1e-9)).all()
    # the ends of a range give different differences somewhere (the assumption is applied)
    cex = t[(t["assumption"] == "leakage.offshore_cex")].pivot_table(index="metric", columns="side",
                                                                       values="diff_mean")
    cex = cex.dropna()
    assert len(cex) > 0 and (cex["low"] != cex["high"]).any()


def test_ranking_holds_on_the_same_scenario(folder):
    r = pd.read_csv(folder / "ranking.csv")
    assert list(r.columns) == list(sens.RANKING_COLUMNS)
    assert set(r["rule_set"]) == {RULES, OTHER}  # the ranking covers every rule set
    assert (r["seeds"] == 2).all() and (r["traders"] == 300).all()
    assert (r["rank"] == r["second_rank"]).all() and r["holds"].all()
    assert r["second_scenario"].eq("flash-test").all()


def test_ranks_follow_the_direction():
    assert sens.ranks({"a": -2.0, "b": 1.0}, LOWER) == {"a": 1, "b": 2}
    assert sens.ranks({"a": -2.0, "b": 1.0}, HIGHER) == {"a": 2, "b": 1}
    assert sens.ranks({"a": -2.0, "b": 1.0}, NEUTRAL) == {"a": 2, "b": 1}
    assert sens.ranks({"a": float("nan"), "b": 1.0}, LOWER) == {"a": 0, "b": 1}


def test_ties_share_the_better_rank():
    assert sens.ranks({"a": 1.0, "b": 1.0, "c": 2.0}, LOWER) == {"a": 1, "b": 1, "c": 3}
    assert sens.ranks({"a": -1.0, "b": 1.0, "c": 0.5}, NEUTRAL) == {"a": 2, "b": 2, "c": 1}


def _summary(diffs: dict[str, float], metric="liquidated_usd", direction=LOWER) -> pd.DataFrame:
    return pd.DataFrame({"rule_set": list(diffs), "metric": metric, "direction": direction,
                         "diff_mean": list(diffs.values())})


@pytest.mark.parametrize("second, ranks, holds", [
    ({RULES: -3.0, OTHER: -1.0}, (1, 2), (True, True)),   # the same order
    ({RULES: -1.0, OTHER: -3.0}, (2, 1), (False, False)),  # reversed
    ({RULES: -1.0, OTHER: -1.0}, (1, 1), (True, False)),   # a tie: both first; OTHER was second
])
def test_ranking_compares_the_two_scenarios(flash_path, monkeypatch, second, ranks, holds):
    """Ranks on the comparison (RULES best) against ranks on a second scenario whose
    differences the stubbed runs give: holds only where the rank is the same."""
    class Result:
        summary = _summary(second)
        manifest = {"traders": 300}

    monkeypatch.setattr(sens, "run_experiment", lambda *a, **k: Result)
    first = _summary({RULES: -2.0, OTHER: -0.5})
    r = sens.ranking(first, "flash-test", load_scenario(str(flash_path)), "status-quo-2025", [RULES, OTHER],
                     ["liquidated_usd"], [0, 1]).set_index("rule_set")
    assert (r.loc[RULES, "rank"], r.loc[OTHER, "rank"]) == (1, 2)
    assert (r.loc[RULES, "second_rank"], r.loc[OTHER, "second_rank"]) == ranks
    assert (r.loc[RULES, "holds"], r.loc[OTHER, "holds"]) == holds


def test_brief_has_the_section(folder):
    res = _run("report", folder, "--format", "html")
    assert res.exit_code == 0, res.output
    html = (folder / "brief.html").read_text()
    section = " ".join(html[html.index('id="robust"'):].split())
    assert 'id="fig-robust"' in section and "data:image/png;base64," in section
    assert "Ranking of the rule sets on a second scenario (flash-test)" in section
    assert "No sensitivity analysis was run" not in html
    assert "run again on 2 seeds of 300 traders (the comparison above: 2 seeds)" in section
    assert f"Rule sets varied: {RULES}." in section
    assert f"Not varied in this run, to keep its running time short: {OTHER};" in section
    assert "leakage into offshore exchanges (0.05 to 0.4 share)" in section
    assert "retail median leverage (3x to 8x)" in section
    # the ranking: one row per rule set, every rank held (the same scenario twice)
    table = section[section.index('<table class="matrix ranking">'):section.index("</table>")]
    assert table.count("<tr>") == 3 and "<strong>" not in table
    assert "1 \u2192 1" in table and "2 \u2192 2" in table
    assert "leakage into offshore DEXs" not in section  # not varied: it does not apply to this scenario
    data = pd.read_csv(folder / "brief-data" / "fig-robust.csv")
    assert set(data["assumption"]) == set(pd.read_csv(folder / "sensitivity.csv")["assumption"])
    # the tornado is drawn in this section, not also among the figures
    assert html.count('id="fig-robust"') == 1


def test_brief_says_when_absent(folder, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(folder, bare)
    (bare / "sensitivity.csv").unlink()
    (bare / "ranking.csv").unlink()
    assert _run("report", bare, "--format", "html").exit_code == 0
    html = (bare / "brief.html").read_text()
    assert "No sensitivity analysis was run" in html and "no ranking.csv" in html
    assert 'id="fig-robust"' not in html


def test_not_a_comparison(tmp_path):
    res = CliRunner().invoke(cli, ["sensitivity", str(tmp_path)])
    assert res.exit_code == 2
    assert "not a finished comparison's results folder" in res.output
    assert "Traceback" not in res.output


def _copy(folder, tmp_path):
    import shutil
    return Path(shutil.copytree(folder, tmp_path / "copy"))


@pytest.mark.parametrize("file, text, says", [
    ("manifest.json", "[1, 2]", "manifest.json: kind: found 'list'; allowed: 'compare'"),
    ("manifest.json", '{"kind": "compare", "rule_sets": [], "scenario": "calm"}',
     "manifest.json: baseline: found None"),
    ("scenario.json", "[]", "scenario.json: found a list; allowed: an object"),
    ("summary.csv", "rule_set,value\na,1\n", "summary.csv: columns metric, direction, diff_mean missing"),
])
def test_a_malformed_results_folder_is_one_line_before_any_run(folder, tmp_path, monkeypatch, file, text, says):
    copy = _copy(folder, tmp_path)
    (copy / file).write_text(text)
    monkeypatch.setattr(sens, "run_experiment", lambda *a, **k: pytest.fail("a run started"))
    res = CliRunner().invoke(cli, ["sensitivity", str(copy), "--seeds", "2"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert says in res.output.strip().splitlines()[-1]


@pytest.mark.parametrize("key, value", [("rule_sets", ["nosuch-rules"]), ("baseline", "nosuch-rules")])
def test_a_retired_rule_set_in_the_manifest_stops_before_any_run(folder, tmp_path, monkeypatch, key, value):
    import json
    copy = _copy(folder, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest[key] = value
    (copy / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(sens, "run_experiment", lambda *a, **k: pytest.fail("a run started"))
    res = CliRunner().invoke(cli, ["sensitivity", str(copy), "--seeds", "2"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"manifest.json: {key}: unknown rule set 'nosuch-rules'" in res.output.strip().splitlines()[-1]


def test_an_unknown_second_scenario_stops_before_any_run(folder, tmp_path, monkeypatch):
    copy = _copy(folder, tmp_path)
    monkeypatch.setattr(sens, "run_experiment", lambda *a, **k: pytest.fail("a run started"))
    res = CliRunner().invoke(cli, ["sensitivity", str(copy), "--seeds", "2", "--second-scenario", "nosuch"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "nosuch" in res.output


def test_comparison_scenario(flash_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a built-in's path is a bare file name, not a file here
    assert sens.comparison_scenario({"path": "calm.yaml"}, {"scenario": "calm"}).name == "calm"
    assert sens.comparison_scenario({"path": str(flash_path)}, {"scenario": "calm"}).name == "flash-test"


def test_no_assumption_applies(flash_path, monkeypatch):
    """A scenario none of the assumptions applies to gives an empty table, not a crash."""
    monkeypatch.setattr(sens, "ASSUMPTIONS", tuple(a for a in sens.ASSUMPTIONS if a.name == "leakage.offshore_pool"))
    t = sens.sensitivity(load_scenario(str(flash_path)), "status-quo-2025", [RULES], ["liquidated_usd"], [0, 1],
                         traders=300, workers=1)
    assert t.empty and list(t.columns) == list(sens.SENSITIVITY_COLUMNS)


def test_rule_set_not_in_the_comparison(folder):
    res = CliRunner().invoke(cli, ["sensitivity", str(folder), "--rule-set", "stablecoin-haircuts"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.strip().splitlines()[-1].endswith(
        f"--rule-set: found stablecoin-haircuts; allowed: the comparison's rule sets other than its baseline "
        f"({RULES}, {OTHER})")


def test_ranges_in_the_tornado_labels():
    labels = {a.name: a.span for a in ASSUMPTIONS}
    assert labels["leakage.offshore_cex"] == "0.05 to 0.4 share"
    assert labels["classes.retail.leverage_median"] == "3x to 8x"
    assert labels["market.impact_y"] == "0.002 to 0.008 log move"


def test_its_last_line_names_the_brief_once(folder, tmp_path, flash_path, monkeypatch):
    """`make demo` ends with this step: its last line is "brief: <folder>/brief.pdf"."""
    import shutil

    import policylab.brief.render as render

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    monkeypatch.setattr(render, "write_brief", lambda d: [Path(d) / "brief.html", Path(d) / "brief.pdf"])
    res = _run("sensitivity", copy, "--second-scenario", flash_path, "--seeds", 2, "--traders", 300, "--workers", 1,
               "--rule-set", RULES)
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[-1] == f"brief: {copy / 'brief.pdf'}"
    assert sum("brief.pdf" in line for line in lines) == 1

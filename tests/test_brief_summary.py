"""Page 1, the findings and who is affected (policylab.brief.summary), read from a real
small comparison and from the same folder with the metrics other parts of the package add
(per jurisdiction and leverage group, voluntary volume, flagged runs and invariant
violations, a repeal marker): new metrics are used when present, their absence is said."""

import json
import math
import re
import shutil
import subprocess

import pandas as pd
import pytest

import policylab
from policylab.brief import render, sections, summary
from policylab.brief.results import Results, archetype_label, load, venue_labels
from policylab.metrics.headlines import CORE_OUTCOMES
from policylab.cli.experiment import RunsProgress, seeds_warning
from policylab.cli.formats import fmt_diff

CAP = """
name: {name}
title: A 2x leverage cap for Japanese retail ({name})
description: Japan's retail leverage cap, for the tests.
jurisdiction: JP
effective_date: 2020-05-01
sources: [{{citation: "A test source"}}]
modules:
  - module: leverage_cap
    target: {{classes: [retail], jurisdictions: [JP]}}
    params: {{max_leverage: {cap}}}
"""
ARMS = ("jp-cap", "repeal-jp", "broken")


@pytest.fixture(scope="module")
def real(flash_path, tmp_path_factory):
    """Three arms against the status quo on three seeds: a JP cap, the same rule set to be
    marked a repeal, and one to be flagged."""
    d = tmp_path_factory.mktemp("rules")
    for name, cap in zip(ARMS, (2, 3, 5)):
        (d / f"{name}.yaml").write_text(CAP.format(name=name, cap=cap))
    out = tmp_path_factory.mktemp("real") / "results"
    policylab.compare([str(d / f"{n}.yaml") for n in ARMS], str(flash_path), 3, traders=300, out=out, workers=1)
    return out


def _rows(summ: pd.DataFrame, metric: str, unit: str, direction: str, base: float, per_arm: dict) -> list[dict]:
    """Summary rows of a new metric: the baseline's level and each arm's (diff, lo, hi)."""
    template = summ[summ["metric"] == "liquidated_usd"].set_index("rule_set")
    rows = []
    for arm, r in template.iterrows():
        d, lo, hi = per_arm.get(arm, (0.0, math.nan, math.nan)) if arm != "status-quo-2025" else (0.0, math.nan, math.nan)
        clear = not math.isnan(lo) and lo * hi > 0
        better = (d < 0) == (direction == "lower_is_better")
        rows.append({**r.to_dict(), "rule_set": arm, "metric": metric, "unit": unit, "direction": direction,
                     "description": metric, "mean": base + d, "median": base + d, "p05": base + d, "p95": base + d,
                     "baseline": base, "diff_mean": d, "diff_lo": lo, "diff_hi": hi,
                     "improvement": "n/a" if arm == "status-quo-2025" else
                     ("better" if better else "worse") if clear and direction != "neutral" else "no difference"})
    return rows


NEW_METRICS = (".jurisdiction.", ".leverage_group.", "volume_usd.voluntary", "volume_usd.forced", "volume_usd.class.",
               "accounts_blocked", "fee_revenue_usd")


@pytest.fixture(scope="module")
def legacy(real, tmp_path_factory):
    """The real folder as a results folder written before the jurisdiction, leverage-group and
    voluntary-volume metrics existed (their rows removed), to check the brief degrades honestly."""
    out = tmp_path_factory.mktemp("legacy") / "results"
    shutil.copytree(real, out, ignore=shutil.ignore_patterns("brief.*", "brief-data"))
    for name, read, write in (("summary.csv", pd.read_csv, lambda df, p: df.to_csv(p, index=False)),
                              ("runs.parquet", pd.read_parquet, lambda df, p: df.to_parquet(p))):
        df = read(out / name)
        new = df["metric"].map(lambda m: any(k in m for k in NEW_METRICS))
        assert new.any()
        write(df[~new], out / name)
    return out


@pytest.fixture(scope="module")
def augmented(legacy, tmp_path_factory):
    """The legacy folder with known values of the new metrics, flagged runs, invariant violations and a repeal marker."""
    out = tmp_path_factory.mktemp("augmented") / "results"
    shutil.copytree(legacy, out, ignore=shutil.ignore_patterns("brief.*", "brief-data"))
    summ = pd.read_csv(out / "summary.csv")
    new = []
    new += _rows(summ, "volume_usd.voluntary", "USD", "higher_is_better", 50e9,
                 {"jp-cap": (-2e9, -3e9, -1e9), "repeal-jp": (3e9, 2e9, 4e9)})
    new += _rows(summ, "accounts_active.jurisdiction.JP", "accounts", "neutral", 90_000,
                 {"jp-cap": (-30_000, -32_000, -28_000), "repeal-jp": (20_000, 18_000, 22_000)})
    new += _rows(summ, "accounts_quit.jurisdiction.JP", "accounts", "neutral", 1_000,
                 {"jp-cap": (25_000, 24_000, 26_000), "repeal-jp": (-900, -950, -850)})
    new += _rows(summ, "accounts_quit.jurisdiction.US", "accounts", "neutral", 500, {})
    new += _rows(summ, "accounts_moved.jurisdiction.JP", "accounts", "neutral", 5_000,
                 {"jp-cap": (10_000, 9_000, 11_000)})
    new += _rows(summ, "domestic_volume_usd.jurisdiction.JP", "USD", "neutral", 6e9,
                 {"jp-cap": (-1e9, -1.2e9, -0.8e9)})
    new += _rows(summ, "offshore_volume_usd.jurisdiction.JP", "USD", "neutral", 4e9,
                 {"jp-cap": (-2e9, -2.2e9, -1.8e9)})
    new += _rows(summ, "offshore_volume_share.jurisdiction.JP", "fraction", "neutral", 0.4,
                 {"jp-cap": (-0.111, -0.13, -0.09), "repeal-jp": (0.05, 0.04, 0.06)})
    new += _rows(summ, "liquidated_usd.leverage_group.25-100", "USD", "lower_is_better", 2e9,
                 {"jp-cap": (-1.5e9, -1.7e9, -1.3e9)})
    new += _rows(summ, "liquidated_usd.leverage_group.1-2", "USD", "lower_is_better", 1e8,
                 {"jp-cap": (1e7, 5e6, 2e7)})
    summ = pd.concat([summ, pd.DataFrame(new)], ignore_index=True)
    summ["flagged_runs"] = 0
    summ.to_csv(out / "summary.csv", index=False)
    runs = pd.read_parquet(out / "runs.parquet")
    broken = (runs["rule_set"] == "broken") & (runs["seed"] == 2)
    runs["invariant_violations"] = broken.astype(int)
    runs["invariant_detail"] = broken.map({True: "cash conserved: off by $12", False: ""})
    runs.to_parquet(out / "runs.parquet")
    rule_sets = json.loads((out / "rule_sets.json").read_text())
    rule_sets["repeal-jp"]["repeal"] = True
    (out / "rule_sets.json").write_text(json.dumps(rule_sets))
    return out


@pytest.fixture(scope="module")
def ctx(augmented):
    return sections.context(load(augmented))


# ------------------------------------------------------------------ markers and families
@pytest.mark.parametrize("info, expected", [
    ({"repeal": True}, True), ({"repeal": "yes"}, True), ({"repeal": "esma-2018-crypto"}, True),
    ({"repeal": False}, False), ({"repeal": "no"}, False), ({"repeal": ""}, False), ({}, False), (None, False),
    ({"composed_of": [{"name": "a"}, {"name": "b", "repeal": True}]}, True), ({"repeal": [1]}, False),
])
def test_is_repeal_reads_the_marker_defensively(info, expected):
    assert summary.is_repeal(info) is expected


def test_family_members_come_from_the_names_present_in_declared_order():
    metrics = ["x.jurisdiction.other", "x.jurisdiction.EU", "x.jurisdiction.US", "y.jurisdiction.JP", "x.venue.a"]
    assert summary.members(metrics, "x", "jurisdiction") == ["US", "EU", "other"]
    assert summary.members(metrics, "x", "venue") == ["a"]
    assert summary.members(metrics, "z", "jurisdiction") == []
    groups = {f"x.leverage_group.{g}" for g in ("100+", "10-25", "1-2", "2-5")}  # a set: no order given
    assert summary.members(groups, "x", "leverage_group")[:1] == ["1-2"]


def test_targets_are_the_jurisdictions_a_rule_set_names():
    info = {"jurisdiction": "global", "modules": [{"target": {"jurisdictions": ["EU"]}},
                                                  {"params": {"blocked": ["US"]}}]}
    assert summary.targets(info) == ["US", "EU"]
    assert summary.targets({"jurisdiction": "test"}) == []


def test_targets_leave_out_what_a_rule_set_inherits_and_count_what_a_repeal_removes():
    """A proposal built on the 2025 baseline inherits its national rules (EU, UK, JP, US):
    those are not its targets; a repeal targets what it removes."""
    base = {"name": "sq", "jurisdiction": "global", "modules": [
        {"id": "eu-cap", "from": "sq", "target": {"jurisdictions": ["EU"]}},
        {"id": "jp-cap", "from": "sq", "target": {"jurisdictions": ["JP"]}}]}
    breaker = {"name": "breaker", "jurisdiction": "global", "base": "sq", "modules": [
        *base["modules"], {"id": "", "from": "breaker", "module": "circuit_breaker", "target": {}}]}
    onshore = {"name": "onshore", "jurisdiction": "global", "base": "sq", "modules": [
        *base["modules"], {"id": "", "from": "onshore", "params": {"blocked": ["US"]}}]}
    repeal = {"name": "repeal-jp", "jurisdiction": "", "base": "sq", "repealed": ["jp-cap"],
              "modules": [base["modules"][0]]}
    catalogue = {"sq": base, "breaker": breaker, "onshore": onshore, "repeal-jp": repeal}
    assert summary.targets(base, catalogue) == ["EU", "JP"]
    assert summary.targets(breaker, catalogue) == []  # global: one row per jurisdiction in who is affected
    assert summary.targets(onshore, catalogue) == ["US"]
    assert summary.targets(repeal, catalogue) == ["JP"]
    assert summary.own_modules(breaker) == breaker["modules"][-1:]


# ------------------------------------------------------------------ with the new metrics
def test_page_one_uses_the_new_metrics_when_present(augmented, ctx):
    m = ctx["matrix"]
    keys = [c["key"] for c in m["columns"]]
    assert keys == ["liquidated", "drawdown", "retail_loss", "quit", "moved", "offshore", "volume"]
    assert not any("forced selling included" in n or "all traders" in n for n in m["notes"])
    assert "accounts blocked" in " ".join(m["notes"])  # absent from this run: said
    cap = next(r for r in m["rows"] if r["arm"] == "jp-cap")
    off = cap["cells"][keys.index("offshore")]
    assert off["diff"] == "\u221211.1 pp" and off["mark"] == "\u25bc"
    vol = cap["cells"][keys.index("volume")]
    assert vol["diff"] == "\u2212$2.00B" and vol["status"] == "worse"


def test_a_repeal_arm_reads_baseline_minus_repeal(augmented, ctx):
    row = next(r for r in ctx["matrix"]["rows"] if r["arm"] == "repeal-jp")
    assert row["repeal"]
    keys = [c["key"] for c in ctx["matrix"]["columns"]]
    vol = row["cells"][keys.index("volume")]
    assert vol["diff"] == "\u2212$3.00B" and vol["interval"] == ["\u2212$4.00B", "\u2212$2.00B"]
    assert vol["status"] == "worse"  # the repeal raises volume, so the rule lowers it
    finding = next(f for f in ctx["arm_findings"] if f["arm"] == "repeal-jp")
    assert finding["text"].startswith("What the rule does, baseline minus repeal-jp (signs flipped")
    repeal = next(s for s in ctx["bottom_line"] if "repeal-jp" in s)
    assert repeal.startswith("What the rules in force do (baseline minus each repeal, signs flipped): the rule "
                             "removed by repeal-jp changes ")
    jp = next(a for a in ctx["affected"] if a["arm"] == "repeal-jp")
    t = jp["targeted"][0]
    i = t["columns"].index("stopped trading")  # without the rule is the repeal's run (100), with it the baseline's
    assert (t["before"][i], t["after"][i], t["changes"][i]["change"]) == ("100", "1,000", "+900")


def test_a_flagged_arm_is_flagged_and_never_a_finding(ctx):
    row = next(r for r in ctx["matrix"]["rows"] if r["arm"] == "broken")
    assert row["flag"] == "invariant violations in 1 run, first: cash conserved: off by $12"
    finding = next(f for f in ctx["arm_findings"] if f["arm"] == "broken")
    assert finding["flag"] and finding["text"] == "" and finding["mechanism"] == ""
    line = " ".join(ctx["bottom_line"])
    assert "flagged, so not read here: broken (invariant violations in 1 run" in line
    assert line.count("broken") == 1 and all(a["arm"] != "broken" for a in ctx["affected"])


def test_flagged_runs_and_failed_runs_flag_an_arm(real):
    res = load(real)
    res.summary["flagged_runs"] = (res.summary["rule_set"] == "jp-cap").astype(int) * 2
    res.failed = pd.DataFrame({"rule_set": ["repeal-jp"], "seed": [1], "error": ["boom"]})
    assert summary.flags(res) == {"repeal-jp": "1 failed run", "jp-cap": "2 flagged runs"}


def test_the_bottom_line_covers_every_arm_in_a_fixed_order(ctx):
    sentences = ctx["bottom_line"]
    assert 3 <= len(sentences) <= 6
    text = " ".join(sentences)
    for arm in ARMS:
        assert text.count(arm) == 1, arm  # every rule set, once
    assert "benefit" not in text and "cost" not in text
    # each rule set's changes come in the fixed order of the columns, whatever their size
    order = [c.label for c in CORE_OUTCOMES]
    cap = re.search(r"jp-cap changes (.*?)(;|\.\s|\.$)", text).group(1)
    named = [label for label in order if label in cap]
    assert named and sorted(named, key=cap.index) == named
    assert cap.endswith("offshore share of JP volume \u221211.1 pp, voluntary volume \u22124%")


def test_the_bottom_line_groups_rule_sets_by_kind_in_a_fixed_order(augmented, tmp_path):
    """Rule sets that apply everywhere come before repeals whatever the comparison's order:
    here jp-cap (first) is marked a repeal and repeal-jp (second) made global."""
    def swap(rule_sets):
        rule_sets["jp-cap"]["repeal"] = True
        rule_sets["repeal-jp"].update(repeal=False, jurisdiction="global")
        for m in rule_sets["repeal-jp"]["modules"]:
            m["from"] = "status-quo-2025"

    sentences = summary.bottom_line(summary.View.of(_with_rule_sets(augmented, tmp_path, swap)))
    assert [s.split(":")[0] for s in sentences[:2]] == [
        "Rule sets that apply everywhere", "What the rules in force do (baseline minus each repeal, signs flipped)"]
    assert "repeal-jp changes" in sentences[0] and "the rule removed by jp-cap changes" in sentences[1]


def test_who_is_affected_reads_the_jurisdiction_and_leverage_families(ctx):
    jp = next(a for a in ctx["affected"] if a["arm"] == "jp-cap")
    assert jp["targets"] == ["JP"] and [t["jurisdiction"] for t in jp["targeted"]] == ["JP"]
    t = jp["targeted"][0]
    assert t["columns"][:2] == ["moved venue", "stopped trading"]
    assert (t["before"][1], t["after"][1]) == ("1,000", "26,000")
    assert t["changes"][1]["change"] == "+25,000" and t["changes"][1]["interval"] == ["+24,000", "+26,000"]
    assert t["flow"].startswith("91,000 JP accounts: the domestic share of their volume goes from 60.0% to 71.4%")
    assert "26,000 stop trading (28.6%), against 1,000 without the rule" in t["flow"]
    assert jp["leverage"]["columns"] == ["1-2x", "25-100x"]
    assert [r["label"] for r in jp["leverage"]["rows"]] == ["liquidated notional"]
    assert jp["leverage"]["rows"][0]["cells"][1]["change"] == "\u2212$1.50B"
    assert jp["by_jurisdiction"]["rows"] == []  # a national rule set: its jurisdiction only
    finding = next(f for f in ctx["arm_findings"] if f["arm"] == "jp-cap")
    assert "by leverage chosen, most in the 25-100x group (\u2212$1.50B)" in finding["mechanism"]
    assert "24,000 more JP accounts stop trading" not in finding["mechanism"]
    assert "25,000 more JP accounts stop trading" in finding["mechanism"]


def _with_rule_sets(folder, tmp_path, change) -> Results:
    """A copy of ``folder`` whose rule_sets.json ``change`` (a function of the dict) edits."""
    out = tmp_path / "results"
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("brief.*", "brief-data"))
    rule_sets = json.loads((out / "rule_sets.json").read_text())
    change(rule_sets)
    (out / "rule_sets.json").write_text(json.dumps(rule_sets))
    return load(out)


def test_who_is_affected_shows_a_national_rule_set_only_where_it_targets(augmented, tmp_path):
    """jp-cap adds a JP cap to a base whose US rule it inherits: the run breaks US traders
    down too, but the brief shows jp-cap's JP traders only."""
    def inherit_a_us_rule(rule_sets):
        cap = rule_sets["jp-cap"]
        cap["base"] = "status-quo-2025"
        cap["modules"] = [{**m, "from": "jp-cap"} for m in cap["modules"]] + [
            {"id": "us-rule", "from": "status-quo-2025", "module": "listed_venue_requirement",
             "title": "Listed-venue requirement", "target": {"jurisdictions": ["US"]}, "params": {}}]

    ctx = sections.context(_with_rule_sets(augmented, tmp_path, inherit_a_us_rule))
    jp = next(a for a in ctx["affected"] if a["arm"] == "jp-cap")
    assert jp["targets"] == ["JP"] and [t["jurisdiction"] for t in jp["targeted"]] == ["JP"]
    html = render.render_html(ctx)
    block = html[html.index('id="affected-jp-cap"'):html.index('id="affected-repeal-jp"')]
    assert "JP traders" in block and "US" not in block
    rule_set = html[html.index('id="rule-set-jp-cap"'):html.index('id="rule-set-repeal-jp"')]
    assert "in force from it: Listed-venue requirement (us-rule)" in rule_set  # inherited: named, not tabled


def test_who_is_affected_gives_a_global_rule_set_one_row_per_jurisdiction(augmented, tmp_path):
    """A rule set that only inherits national rules and adds a global one targets no
    jurisdiction: one table, a row per jurisdiction in the run, no per-jurisdiction sections."""
    def make_global(rule_sets):
        cap = rule_sets["jp-cap"]
        cap.update(jurisdiction="global", base="status-quo-2025")
        for m in cap["modules"]:
            m["from"] = "status-quo-2025"  # the JP cap is the base's; jp-cap adds nothing national

    ctx = sections.context(_with_rule_sets(augmented, tmp_path, make_global))
    jp = next(a for a in ctx["affected"] if a["arm"] == "jp-cap")
    assert jp["targets"] == [] and jp["targeted"] == []
    assert [r["label"] for r in jp["by_jurisdiction"]["rows"]] == ["US", "JP"]
    assert jp["by_jurisdiction"]["columns"] == ["moved venue", "stopped trading", "offshore share of volume"]
    row = jp["by_jurisdiction"]["rows"][1]["cells"]
    assert row[1]["change"] == "+25,000" and row[1]["relative"] == "+2,500%"
    html = render.render_html(ctx)
    block = html[html.index('id="affected-jp-cap"'):html.index('id="affected-repeal-jp"')]
    assert "applies everywhere" in block and block.count("<table") == 2  # by jurisdiction, by leverage group
    assert "JP traders" not in block


def test_the_augmented_brief_renders_with_its_figure_data(augmented):
    paths = render.write_brief(augmented)
    assert [p.name for p in paths[-2:]] == ["brief.html", "brief.pdf"]
    html = (augmented / "brief.html").read_text()
    for f in ("fig-prices", "fig-liquidations-time", "fig-trade-off"):
        assert (augmented / "brief-data" / f"{f}.csv").stat().st_size > 0
        assert f'href="brief-data/{f}.csv"' in html
    first = subprocess.run(["pdftotext", "-l", "1", str(augmented / "brief.pdf"), "-"], capture_output=True,
                           text=True, check=True).stdout
    assert "Bottom line" in first and "Validation:" in first
    for word in ("MODEL.md", "README", "docs/"):  # no file a reader does not have (the ODD's texts included)
        assert word not in html, word


def test_venues_carry_archetype_labels_unless_firm_names_are_asked_for(augmented):
    ctx = sections.context(load(augmented))
    assert ctx["odd"]["venues"]["header"][1:5] == ["offshore DEX", "offshore extreme-leverage pool", "offshore CEX",
                                                   "US regulated futures"]
    firms = sections.context(load(augmented, firm_names=True))
    assert firms["odd"]["venues"]["header"][1:5] == ["dex", "pool", "cex", "futures"]
    rows = lambda c: [r[0] for r in c["odd"]["venues"]["rows"]] + [r[0] for r in c["odd"]["venues"]["common"]]
    assert "label" not in rows(ctx) and "label" in rows(firms)  # "(Binance-like)" only when firms are asked for
    assert archetype_label("jp_exchange") == "Japanese registered exchange (margin trading)"  # no firm, no cut
    assert archetype_label("eu_broker") == "EU regulated broker (CFDs)"
    assert "Kraken" not in archetype_label("eu_exchange") and archetype_label("offshore_cex") == "offshore CEX"
    # several venues of one archetype are lettered
    assert venue_labels([{"name": "binance", "kind": "offshore_cex"}, {"name": "okx", "kind": "offshore_cex"},
                         {"name": "x", "kind": "spot_etf"}]) == {
        "binance": "offshore CEX A", "okx": "offshore CEX B", "x": "spot market and ETFs (unleveraged)"}


# ------------------------------------------------------------------ without them
def test_page_one_degrades_honestly_without_the_new_metrics(legacy):
    ctx = sections.context(load(legacy))
    notes = " ".join(ctx["matrix"]["notes"])
    assert "traded volume (total, forced selling included)" in notes
    assert "offshore share of volume (all traders)" in notes and "accounts blocked" in notes
    assert all(not r["flag"] for r in ctx["matrix"]["rows"])
    jp = next(a for a in ctx["affected"] if a["arm"] == "jp-cap")
    assert jp["targeted"][0]["columns"] == [] and jp["leverage"]["rows"] == []
    html = render.render_html(ctx)
    assert "This run has no breakdown by jurisdiction or by leverage group" in html
    assert "JP traders under jp-cap" in html


def _one(seeds: int, diff=(-1e9, -2e9, -0.5e9)) -> Results:
    """A hand-made results object: one arm, liquidated notional worse, volume better."""
    cols = ["rule_set", "metric", "unit", "direction", "description", "n", "mean", "median", "p05", "p95",
            "baseline", "diff_mean", "diff_lo", "diff_hi", "improvement"]
    lo, hi = (math.nan, math.nan) if seeds < 2 else (2e9, 3e9)
    rows = [("base", "liquidated_usd", "USD", "lower_is_better", "", seeds, 10e9, 10e9, 9e9, 11e9, 10e9, 0, math.nan,
             math.nan, "n/a"),
            ("arm", "liquidated_usd", "USD", "lower_is_better", "", seeds, 12.5e9, 12.5e9, 12e9, 13e9, 10e9, 2.5e9,
             lo, hi, "worse" if seeds > 1 else "n/a"),
            ("base", "volume_usd", "USD", "higher_is_better", "", seeds, 50e9, 50e9, 40e9, 60e9, 50e9, 0, math.nan,
             math.nan, "n/a"),
            ("arm", "volume_usd", "USD", "higher_is_better", "", seeds, 55e9, 55e9, 50e9, 60e9, 50e9, 5e9,
             *((math.nan, math.nan) if seeds < 2 else (4e9, 6e9)), "better" if seeds > 1 else "n/a")]
    summ = pd.DataFrame(rows, columns=cols)
    empty = pd.DataFrame(columns=["rule_set", "seed", "metric", "value"])
    return Results(None, summ, empty.assign(value=pd.Series(dtype=float)), pd.DataFrame(columns=["rule_set", "seed",
                   "error"]), pd.DataFrame(), {"base": {"title": "Base"}, "arm": {"title": "Arm"}},
                   {"name": "x", "title": "X", "venues": []}, {"baseline": "base", "seeds": list(range(seeds))})


def test_findings_follow_the_column_order_not_improvements_first():
    f = summary.arm_findings(summary.View.of(_one(30)))[0]
    assert f["text"].startswith("liquidated notional +$2.50B (+25%; 90% interval +$2.00B to +$3.00B); traded "
                                "volume (total, forced selling included) +$5.00B")
    assert f["mechanism"].startswith("The run has no breakdown")


def test_one_seed_gives_no_intervals_and_says_so():
    v = summary.View.of(_one(1))
    cell = summary.matrix(v)["rows"][0]["cells"][0]
    assert cell["interval"] == [] and cell["mark"] == "\u25b2" and cell["status"] == ""
    assert "no intervals" in summary.bottom_line(v)[0]
    assert summary.statistics_note(1).startswith("One seed per rule set: no intervals")
    assert summary.arm_findings(v)[0]["text"].startswith("Single-run differences (no interval)")
    assert "unreliable below 10 seeds" in summary.statistics_note(9) and summary.statistics_note(10) == ""


# ------------------------------------------------------------------ the CLI, as the brief writes it
def test_cli_differences_of_shares_are_in_pp_and_few_seeds_warn():
    assert fmt_diff(0.012, "fraction") == "+1.2 pp" and fmt_diff(-0.0001, "fraction") == "0.0 pp"
    assert fmt_diff(2.5e9, "USD") == "+$2.50B"
    assert seeds_warning(4).startswith("note: only 4 seeds: intervals are unreliable")
    assert seeds_warning(30) == "" and "no intervals" in seeds_warning(1)


def test_progress_lines_without_a_terminal(capsys):
    progress = RunsProgress("runs")
    for done in range(1, 101):
        progress(done, 100)
    lines = capsys.readouterr().err.splitlines()
    assert 5 <= len(lines) <= 21 and lines[-1].startswith("runs: 100 of 100 finished (100%)")
    assert lines[0].startswith("runs: 5 of 100 finished (5%)") and "left" in lines[0]


# ------------------------------------------------------------------ figures that separate the arms
def test_outlier_arms_get_their_own_panel_and_colours_are_distinct():
    from policylab.brief import figures

    assert figures.split_outliers({"a": 1.0, "b": 1.2, "c": 0.9, "d": 30.0}) == (["a", "b", "c"], ["d"])
    assert figures.split_outliers({"a": 1.0, "b": 1.2, "c": 0.9}) == (["a", "b", "c"], [])
    assert figures.split_outliers({"a": 1.0, "b": 40.0}) == (["a", "b"], [])  # too few to call one an outlier
    colours = figures.palette(["base", *"abcdefghijkl"], "base")
    assert colours["base"] == figures.BASELINE_COLOUR and len(set(colours.values())) == 13
    assert "#F0E442" not in colours.values()  # Okabe-Ito's yellow is too pale on white


def test_the_crash_window_is_zoomed_and_drawn_as_the_difference_from_the_baseline(augmented):
    from policylab.brief import figures

    res = load(augmented)
    data = figures.FigureData.of(res)
    lo, hi = figures.crash_window(data)
    assert hi - lo <= figures.WINDOW_BEFORE_MINUTES + figures.WINDOW_AFTER_MINUTES
    fig, table = figures.price_paths(data)
    arms = table.dropna(subset=["index_minus_baseline_pct_median"])
    assert set(arms["rule_set"]) == set(ARMS)
    assert arms["hours"].min() >= lo / 60 and arms["hours"].max() <= hi / 60
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert set(ARMS) <= set(texts)  # labelled directly, no legend
    assert all(ax.get_legend() is None for ax in fig.axes)


def test_the_flow_figure_shows_where_targeted_traders_went(augmented, legacy):
    from policylab.brief import figures

    data = figures.FigureData.of(load(augmented))
    fig, table = figures.who_moved(data)
    cap = table[(table["rule_set"] == "jp-cap") & (table["part"] == "offshore venues")].set_index("rule")
    assert (cap.loc["without", "value"], cap.loc["with", "value"]) == (4e9, 2e9)
    assert cap.loc["without", "share"] == pytest.approx(0.4) and cap.loc["with", "share"] == pytest.approx(2 / 7)
    stayed = table[(table["rule_set"] == "jp-cap") & (table["part"] == "stayed on their venue")].set_index("rule")
    assert (stayed.loc["without", "value"], stayed.loc["with", "value"]) == (85_000, 45_000)  # active minus moved
    rep = table[(table["rule_set"] == "repeal-jp") & (table["part"] == "stopped trading")].set_index("rule")["value"]
    assert (rep["without"], rep["with"]) == (100.0, 1_000.0)  # a repeal: without the rule is the repeal's run
    assert "broken" not in set(table["rule_set"])  # flagged
    assert not figures._has_flows(figures.FigureData.of(load(legacy)))  # no breakdown: no figure


def test_sources_lose_pointers_to_files_a_reader_does_not_have():
    assert sections.public("USDe near $0.65 on Binance (MODEL.md section 2)") == "USDe near $0.65 on Binance"
    assert sections.public("Rule 7.12 (7%, 13%, 20% levels)") == "Rule 7.12 (7%, 13%, 20% levels)"
    assert sections.public("gaps (see the README)") == "gaps"
    assert sections.public("before 2018 (an assumption, docs/calibration.md).") == "before 2018."
    assert sections.public("with its range, in docs/calibration.md.") == \
        "with its range, in the project's documentation."


def test_a_title_inside_a_sentence_starts_in_lower_case_only_after_the():
    from policylab.brief.sections import in_sentence

    assert in_sentence("The 2025 world: offshore venues as they are") == "the 2025 world: offshore venues as they are"
    assert in_sentence("ESMA 2026: crypto perpetuals") == "ESMA 2026: crypto perpetuals"
    assert in_sentence("Theory") == "Theory"

"""Briefs: a real comparison's results folder rendered to HTML and PDF, the numbers the
PDF shows, self-containment, escaping, custom templates, failed runs and bad input."""

import json
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import policylab
from policylab.brief import findings
from policylab.brief import render as report
from policylab.brief import sections
from policylab.cli import cli

TRADERS = 600
SEEDS = 5
MARKUP_TITLE = '<script>alert("x")</script> & <b>bold</b> caps'
MARKUP_RULES = f"""
name: markup-caps
title: '{MARKUP_TITLE}'
description: A 5x retail leverage cap whose title holds markup.
jurisdiction: test
effective_date: 2026-01-01
sources:
  - {{citation: "A source with a link", url: "https://example.org/rule"}}
  - {{citation: "A source with a script link", url: "javascript:alert(1)"}}
modules:
  - module: leverage_cap
    target: {{classes: [retail]}}
    params: {{max_leverage: 5}}
"""


def squash(text: str) -> str:
    """Text without whitespace, so line wrapping in the PDF does not matter."""
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def folder(flash_path, buggy, tmp_path_factory):
    """A real comparison: Japan's 2x cap, a rule set with markup in its title and one whose
    module fails on seed 1, against the status quo; then its brief via the CLI."""
    d = tmp_path_factory.mktemp("rules")
    (d / "markup.yaml").write_text(MARKUP_RULES)
    out = tmp_path_factory.mktemp("cmp") / "results"
    policylab.compare(["repeal-japan-2020", str(d / "markup.yaml"), buggy], str(flash_path), SEEDS,
                      traders=TRADERS, out=out, workers=1, allow_local_modules=True)
    res = CliRunner().invoke(cli, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-2:] == [f"brief written to {out / 'brief.html'}",
                                            f"brief written to {out / 'brief.pdf'}"]
    return out


@pytest.fixture(scope="module")
def rendered(folder):
    """The folder's template context, computed once, and every figure axis's labels."""
    import matplotlib.pyplot as plt

    labels, real_close = [], plt.close

    def spy(fig=None):
        labels.extend((ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.get_visible())
        real_close(fig)

    plt.close = spy
    try:
        ctx = report.context(report.load(folder))
    finally:
        plt.close = real_close
    return ctx, labels


@pytest.fixture(scope="module")
def html(folder):
    return (folder / "brief.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def pdf_text(folder):
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(folder / "brief.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout


# ------------------------------------------------------------------ content
def test_pdf_holds_every_rule_set_name_and_the_table_numbers_as_formatted(folder, pdf_text, html):
    """On paper every cell's mean and difference; in brief.html its percentiles and interval too."""
    res = report.load(folder)
    text, page = squash(pdf_text), squash(html)
    assert res.order == ["status-quo-2025", "repeal-japan-2020", "markup-caps", "buggy"]
    for name in res.order:
        assert name in text
    head, _ = sections.side_by_side(res.summary, res.order)
    cells = 0
    for section in head:
        assert squash(section["title"]) in text
        for row in section["rows"]:  # a label wrapped in its cell may be interleaved with the next cells' text
            assert re.search(".*?".join(map(re.escape, row["label"].split())), pdf_text, re.S), row["label"]
            for name in res.order:
                c = row["cells"][name]
                for part in ("value",) if name == res.baseline else ("value", "diff"):
                    assert squash(c[part]) in text, (row["metric"], name, part, c[part])
                for part in ("value", "spread") if name == res.baseline else ("value", "spread", "diff", "diff_range"):
                    assert squash(c[part]) in page, (row["metric"], name, part, c[part])
                cells += 1
    assert cells >= 25 * len(res.order)
    liq = res.summary.set_index(["rule_set", "metric"]).loc[("status-quo-2025", "liquidated_usd")]
    assert findings.fmt_value(liq["mean"], "USD") in pdf_text


def test_first_page_has_question_scenario_rule_sets_date_and_findings(folder, rendered, pdf_text):
    first = pdf_text.split("\f")[0]
    manifest = json.loads((folder / "manifest.json").read_text())
    for needed in ("The question.", "Test: a two-hour flash crash", "status-quo-2025", "repeal-japan-2020", "markup-caps",
                   "buggy", "Changes from the baseline", "Bottom line", "Validation:",
                   sections._date(manifest["finished"])):
        assert squash(needed) in squash(first), needed
    ctx = rendered[0]
    assert [r["arm"] for r in ctx["matrix"]["rows"]] == ["repeal-japan-2020", "markup-caps", "buggy"]
    sentences = ctx["bottom_line"]
    assert 3 <= len(sentences) <= 6
    for s in sentences:
        assert squash(s) in squash(first)
    for arm in ("repeal-japan-2020", "markup-caps", "buggy"):  # every rule set is in the bottom line
        assert arm in " ".join(sentences)
    assert squash(f"Only {SEEDS} seeds per rule set: the 90% intervals are unreliable") in squash(first)
    # the buggy arm failed a run: flagged on page 1 and in the findings, never read as a finding
    buggy_row = next(r for r in ctx["matrix"]["rows"] if r["arm"] == "buggy")
    assert "failed run" in buggy_row["flag"]
    buggy_finding = next(f for f in ctx["arm_findings"] if f["arm"] == "buggy")
    assert buggy_finding["flag"] and not buggy_finding["text"]


def test_html_is_one_self_contained_file(html):
    class Resources(HTMLParser):
        def __init__(self):
            super().__init__()
            self.refs, self.tags = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            for k, v in attrs:
                if k in ("src", "srcset", "data", "poster", "background") or (k == "href" and tag != "a"):
                    self.refs.append((tag, k, v))

    parser = Resources()
    parser.feed(html)
    assert "script" not in parser.tags and "link" not in parser.tags and "iframe" not in parser.tags
    assert parser.refs and all(v.startswith("data:image/png;base64,") for _, _, v in parser.refs)
    assert sum(t == "img" for t in parser.tags) == 7  # the flow figure in who is affected, six in Figures
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?(?!data:)", html)
    assert re.search(r"<style>.*@page.*DejaVu Sans", html, re.S)


def test_markup_in_a_rule_set_title_renders_as_text(html, pdf_text):
    assert "<script" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; caps" in html
    assert squash(MARKUP_TITLE) in squash(pdf_text)
    assert 'href="https://example.org/rule"' in html and "javascript:" not in html.split("A source with a script")[0][-200:]
    assert 'href="javascript' not in html


def test_failed_runs_are_reported_and_left_out(folder, html, pdf_text):
    failed = pd.read_parquet(folder / "failed.parquet")
    assert list(failed["rule_set"]) == ["buggy"] and list(failed["seed"]) == [1]
    assert squash(f"1 of {4 * SEEDS} runs failed") in squash(pdf_text)
    assert "Incomplete results." in pdf_text
    assert squash("buggy 1 ZeroDivisionError: bug in a third-party module") in squash(pdf_text)
    assert "4 runs finished" in html


def test_odd_methodology_is_generated_from_the_scenario_and_model(pdf_text, html):
    text = squash(pdf_text)
    for needed in ("1. Overview", "2. Design concepts", "3. Details", "Process overview and scheduling",
                   "the cascade: rounds of liquidations", "0:30 to 0:50", "stablecoin collateral worth $0.7 on cex",
                   "RetailSpeculators", "Assumptions and limitations", "Reproducibility", "configuration hash"):
        assert squash(needed) in text, needed
    # the venue and population tables are long: in brief.html, and the PDF says so
    for needed in ("offshore dex", "offshore DEX", "40x; 20x from $150M"):
        assert squash(needed) in squash(html), needed
    assert squash("40x; 20x from $150M") not in text  # a venue's leverage tiers: a cell of the venue table
    assert squash("venues' parameters (home, leverage tiers,") in text and squash("populations' parameters") in text


def test_figures_are_labelled_with_units(rendered):
    ctx, labels = rendered
    assert [f["id"] for f in ctx["figures"]] == ["fig-prices", "fig-liquidations-time", "fig-liquidations-split",
                                              "fig-shares", "fig-retail", "fig-trade-off"]
    unit = re.compile(r"\((USD( thousands| millions| billions)?|%)\)$|^hours from start$|^USD( thousands| millions| "
                      r"billions)?$|^% of (retail accounts|the jurisdiction's (traded volume|accounts))$")
    quantitative = [lab for pair in labels for lab in pair if lab]
    assert len(quantitative) >= 12 and all(unit.search(lab) for lab in quantitative), quantitative


# ------------------------------------------------------------------ options and templates
def test_template_override_takes_effect_and_missing_blocks_fall_back(folder, tmp_path):
    custom = tmp_path / "brand"
    (custom / "partials").mkdir(parents=True)
    (custom / "partials" / "cover.html").write_text("<section><h1>{{ title }}</h1><p>ACME Policy Unit</p></section>")
    (custom / "brief.html").write_text('{% extends "default/brief.html" %}'
                                       "{% block limitations %}<p>CUSTOM-LIMITS</p>{% endblock %}")
    out = tmp_path / "copy"
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("brief.*", "brief-data"))
    res = CliRunner().invoke(cli, ["report", str(out), "--format", "html", "--template-dir", str(custom),
                                   "--title", "Branded <brief>"])
    assert res.exit_code == 0, res.output
    assert not (out / "brief.pdf").exists()
    html = (out / "brief.html").read_text()
    assert "ACME Policy Unit" in html and "CUSTOM-LIMITS" in html and "The question." not in html
    assert "Assumptions and limitations" not in html
    assert "Side by side" in html and "methodology (ODD protocol)" in html and "Reproducibility" in html
    assert "<h1>Branded &lt;brief&gt;</h1>" in html


def test_letter_paper_and_landscape_table_pages(folder, tmp_path):
    out = tmp_path / "letter"
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("brief.*", "brief-data"))
    res = CliRunner().invoke(cli, ["report", str(out), "--format", "pdf", "--paper", "letter"])
    assert res.exit_code == 0, res.output
    assert not (out / "brief.html").exists()
    info = subprocess.run(["pdfinfo", "-f", "1", "-l", "200", str(out / "brief.pdf")], capture_output=True, text=True,
                          check=True).stdout
    sizes = [(round(float(w)), round(float(h))) for w, h in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts",
                                                                         info)]
    assert sizes[0] == (612, 792) and (792, 612) in sizes  # portrait page 1, the side-by-side table landscape


def _run(args):
    res = CliRunner().invoke(cli, args)
    return res.exit_code, res.stdout, res.stderr


def test_bad_input_from_the_console_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "policylab", "report", str(tmp_path / "missing")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"error: {tmp_path / 'missing'}: not a folder; allowed: the results folder of `policylab compare`\n"


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "summary.csv").unlink(), r"summary\.csv: missing"),
    (lambda d: (d / "manifest.json").write_text("{not json"), r"manifest\.json: cannot be read"),
    (lambda d: (d / "runs.parquet").write_bytes(b"PAR1 truncated"), r"runs\.parquet: cannot be read"),
    (lambda d: pd.read_csv(d / "summary.csv").drop(columns=["diff_lo"]).to_csv(d / "summary.csv", index=False),
     r"summary\.csv: missing diff_lo"),
    (lambda d: (d / "manifest.json").write_text(json.dumps({"baseline": "nope", "seeds": [0]})),
     r"baseline 'nope' is not in rule_sets\.json"),
])
def test_bad_results_folder_is_one_line_exit_2_and_writes_nothing(folder, tmp_path, damage, message):
    out = tmp_path / "bad"
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("brief.*", "brief-data"))
    damage(out)
    code, stdout, stderr = _run(["report", str(out)])
    assert code == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith("error: ") and re.search(message, stderr), stderr
    assert not [p for p in out.iterdir() if p.name.startswith((".brief", "brief"))]


@pytest.mark.parametrize("args, message", [
    (["--format", "html,docx"], "--format: got 'html,docx'; allowed: html, pdf"),
    (["--paper", "a3"], "'a3' is not one of 'a4', 'letter'"),
    (["--template-dir", "/nonexistent/brand"], "--template-dir: /nonexistent/brand is not a folder"),
    (["--title"], "Option '--title' requires an argument"),
])
def test_bad_options_are_one_line_exit_2(folder, args, message):
    code, stdout, stderr = _run(["report", str(folder), *args])
    assert code == 2 and len(stderr.splitlines()) == 1 and message in stderr, stderr


def test_broken_custom_template_is_one_line_exit_2(folder, rendered, tmp_path):
    (tmp_path / "partials").mkdir()
    (tmp_path / "partials" / "cover.html").write_text("<h1>{{ title }}</h1>\n{{ oops( }}")
    code, _, stderr = _run(["report", str(folder), "--template-dir", str(tmp_path)])
    assert code == 2 and len(stderr.splitlines()) == 1, stderr
    assert re.match(r"error: .*partials/cover\.html:2: template error: unexpected", stderr), stderr
    (tmp_path / "partials" / "cover.html").write_text("{{ nope }}")
    with pytest.raises(report.InputError, match="template error: 'nope' is undefined"):
        report.render_html(rendered[0], tmp_path)
    (tmp_path / "partials" / "cover.html").write_text('{% include "partials/missing.html" %}')
    with pytest.raises(report.InputError, match="template 'partials/missing.html' not found"):
        report.render_html(rendered[0], tmp_path)


def test_a_failing_pdf_render_leaves_no_file(folder, rendered, tmp_path, monkeypatch):
    out = tmp_path / "atomic"
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("brief.*", "brief-data"))

    def boom(html):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(report, "context", lambda res, **kwargs: rendered[0])
    monkeypatch.setattr(report, "render_pdf", boom)
    with pytest.raises(RuntimeError):
        report.write_brief(out)
    assert not [p for p in out.iterdir() if "brief" in p.name]


def test_templates_ship_in_the_wheel(tmp_path):
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
                   check=True, capture_output=True)
    names = set(zipfile.ZipFile(next(tmp_path.glob("policylab-*.whl"))).namelist())
    shipped = {f"policylab/templates/{p.relative_to(root / 'templates').as_posix()}"
               for p in (root / "templates").rglob("*") if p.suffix in (".html", ".css")}
    assert {"policylab/templates/brief.html", "policylab/templates/partials/cover.html"} <= shipped <= names


# ------------------------------------------------------------------ formats
@pytest.mark.parametrize("value, unit, text, diff", [
    (9.73e9, "USD", "$9.73B", "+$9.73B"), (-586.64e6, "USD", "−$587M", "−$587M"), (999.6, "USD", "$1.00K", "+$1.00K"),
    (0.4712, "fraction", "47.1%", "+47.1 pp"), (1.94, "ratio", "1.94x", "+1.94"), (90333.4, "accounts", "90,333", "+90,333"),
    (8.5, "rounds", "8.5", "+8.5"), (12.0, "minutes", "12 min", "+12 min"), (float("nan"), "USD", "n/a", "n/a"),
])
def test_formats(value, unit, text, diff):
    assert findings.fmt_value(value, unit) == text
    assert findings.fmt_diff(value, unit) == diff


def test_make_demo_names_the_brief_once_on_its_last_line():
    """`make demo`'s recipe ends with the step that writes the brief (the sensitivity step
    after compare --no-brief), whose own last line is "brief: .../brief.pdf"
    (tests/test_sensitivity.py); nothing after it may print the brief's path again."""
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M).group(1).strip().splitlines()
    writers = [line for line in recipe if "policylab compare" in line or "policylab sensitivity" in line]
    assert [("--no-brief" not in line) for line in writers] == [False] * (len(writers) - 1) + [True]
    assert writers[-1] == recipe[-1]
    assert not any("brief.pdf" in line for line in recipe)


def test_the_pdf_is_made_from_html_without_the_screen_only_parts(rendered):
    """The long full tables are in brief.html only; the paged HTML the PDF is made from
    leaves them out (so WeasyPrint never styles them) and keeps what says where they are."""
    ctx = rendered[0]
    screen, paged = report.render_html(ctx), report.render_html({**ctx, "paged": True})
    hidden = re.compile(r'class="[^"]*\bscreen-only\b')
    assert len(hidden.findall(screen)) >= 4 and "Appendix: other market-wide metrics" in screen
    assert not hidden.search(paged) and "Appendix: other market-wide metrics" not in paged
    assert "The full table, with the 5th" in paged and "venues' parameters" in paged
    assert len(paged) < len(screen)


def test_the_time_series_is_read_in_the_columns_the_brief_uses_only(folder):
    from policylab.brief.results import FILES

    ts = report.load(folder).timeseries
    assert list(ts.columns) == list(FILES["timeseries.parquet"]) and len(ts) > 0

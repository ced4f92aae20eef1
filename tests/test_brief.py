"""The brief's registries and its template sandbox.

Every figure of ``figures.FIGURES`` and every section of ``sections.SECTIONS`` is drawn
or rendered from one small comparison (parametrised over the registries, so a new entry
is tested without a new test); custom templates cannot reach Python internals, run
anything or read files outside their folders."""

import ast
import base64
import io
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import policylab
from policylab.brief import figures, render, sections
from policylab.brief.results import load
from policylab.cli import cli
from policylab.experiments.sensitivity import core_metrics

BRIEF = Path(render.__file__).parent


@pytest.fixture(scope="module")
def folder(flash_path, tmp_path_factory):
    """A tiny comparison: Japan's 2x cap against the status quo, three seeds."""
    out = tmp_path_factory.mktemp("tiny") / "results"
    policylab.compare(["repeal-japan-2020"], str(flash_path), 3, traders=300, out=out, workers=1)
    # what `policylab sensitivity` adds (tested in test_sensitivity.py), made up from the
    # comparison's own differences so that the robust figure has data without the runs
    summary = pd.read_csv(out / "summary.csv")
    rows = summary[(summary["rule_set"] != "status-quo-2025") & summary["metric"].isin(core_metrics(summary["metric"]))]
    pd.DataFrame([{"assumption": "venue_choice.switching_cost", "side": side, "value": value, "rule_set": r.rule_set,
                   "metric": r.metric, "diff_mean": r.diff_mean * k, "diff_lo": r.diff_lo * k, "diff_hi": r.diff_hi * k,
                   "seeds": 3, "traders": 300}
                  for r in rows.itertuples() for side, value, k in (("low", 0.0, 0.5), ("high", 1.0, 1.5))]
                 ).to_csv(out / "sensitivity.csv", index=False)
    return out


@pytest.fixture(scope="module")
def res(folder):
    return load(folder)


@pytest.fixture(scope="module")
def ctx(res):
    return sections.context(res)


def _report(folder, template_dir):
    result = CliRunner().invoke(cli, ["report", str(folder), "--format", "html", "--template-dir", str(template_dir)])
    return result.exit_code, result.stdout, result.stderr


def _templates(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


# ------------------------------------------------------------------ figures
@pytest.mark.parametrize("spec", figures.FIGURES, ids=lambda s: s.id)
def test_every_figure_draws_with_its_data(res, spec):
    data = figures.FigureData.of(res)
    assert spec.when(data)
    fig = figures.draw(spec, data)
    assert (fig.id, fig.title, fig.caption, fig.source) == (spec.id, spec.title, spec.caption, spec.source)
    png = base64.b64decode(fig.uri.removeprefix("data:image/png;base64,"))
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert isinstance(fig.data, pd.DataFrame) and len(fig.data) > 0
    assert "rule_set" in fig.data.columns and set(fig.data["rule_set"]) <= set(data.order)
    assert not fig.data.select_dtypes("number").empty
    assert pd.read_csv(io.StringIO(fig.data.to_csv(index=False))).shape == fig.data.shape


def test_figures_are_the_registry_in_order_each_in_its_section_numbered_in_reading_order(ctx):
    # who is affected comes before the figure section, How robust after it
    shown = ctx["affected_figures"] + ctx["figures"] + ctx["robust"]["figures"]
    assert [f["id"] for f in shown] == [s.id for s in figures.FIGURES]
    assert [f["number"] for f in shown] == list(range(1, len(shown) + 1))
    assert [f["id"] for f in ctx["affected_figures"]] == [s.id for s in figures.FIGURES if s.section == "affected"]
    assert [f["id"] for f in ctx["robust"]["figures"]] == [s.id for s in figures.FIGURES if s.section == "robust"] \
        == ["fig-robust"]
    assert len({s.id for s in figures.FIGURES}) == len(figures.FIGURES)


def test_no_figure_without_a_finished_baseline(res):
    lost = load(res.folder)
    lost.runs = lost.runs[lost.runs["rule_set"] != lost.baseline]
    assert figures.draw_all(lost) == []


# ------------------------------------------------------------------ sections
@pytest.mark.parametrize("section", sections.SECTIONS, ids=lambda s: s.name)
def test_every_section_builds_and_renders_and_can_be_overridden(folder, res, ctx, section, tmp_path):
    base_blocks = set(render.environment().get_template("base.html").blocks)
    assert section.name.isidentifier() and not section.name.startswith("_") and section.name not in base_blocks
    part = section.build(res)
    assert set(part) <= set(ctx) and sections.plain(part) == {k: ctx[k] for k in part}
    html = render.environment().get_template(section.partial).render(ctx)
    assert html.strip() or section.name == "calibration"  # no calibration targets for this test scenario
    marker = f"OVERRIDDEN-{section.name}"
    _templates(tmp_path, {"brief.html": '{% extends "default/brief.html" %}'
                                        f"{{% block {section.name} %}}<p>{marker}</p>{{% endblock %}}"})
    code, _, stderr = _report(folder, tmp_path)
    assert code == 0, stderr
    out = (folder / "brief.html").read_text()
    assert out.count(marker) == 1 and (not html.strip() or html.strip() not in out)


def test_sections_render_in_registry_order(folder, tmp_path):
    _templates(tmp_path, {s.partial: f"<p>PART-{s.name}</p>" for s in sections.SECTIONS})
    code, _, stderr = _report(folder, tmp_path)
    assert code == 0, stderr
    found = re.findall(r"PART-(\w+)", (folder / "brief.html").read_text())
    assert found == [s.name for s in sections.SECTIONS]


def test_context_is_plain_data(ctx):
    def walk(v):
        if isinstance(v, dict):
            assert all(isinstance(k, str) for k in v)
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        else:
            assert v is None or type(v) in (str, int, float, bool), type(v)

    walk(ctx)


def test_plain_refuses_objects_and_a_section_may_not_reuse_a_key(res, monkeypatch):
    with pytest.raises(TypeError, match=r"context\.x\[1\]: DataFrame is not plain data"):
        sections.plain({"x": [1, pd.DataFrame()]})
    clash = sections.Section("clash", "partials/limitations.html", lambda r: {"title": "again"})
    monkeypatch.setattr(sections, "SECTIONS", (*sections.SECTIONS, clash))
    with pytest.raises(ValueError, match="brief section 'clash' sets title"):
        sections.context(res)


def test_the_brief_reads_results_folders_not_models():
    """No brief module but odd.py (the ODD text, being moved to field metadata) imports the
    model, one run or the engine."""
    banned = ("policylab.model", "policylab.experiments.run", "policylab.engine")
    for path in sorted(BRIEF.glob("*.py")):
        if path.name == "odd.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            bad = [n for n in names if n.startswith(banned)]
            assert not bad, (path.name, bad)


# ------------------------------------------------------------------ sandbox
HOSTILE = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ lipsum.__globals__['os'].popen('touch MARKER').read() }}",
    "{{ self._TemplateReference__context.environment.globals }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c('touch MARKER', shell=True) }}{% endfor %}",
    "{{ order.append('touch MARKER') }}",
    "{{ 10 ** 1000000 }}",
    "{{ 'touch MARKER' * 1000000000 }}",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_template_fails_cleanly_and_runs_nothing(folder, tmp_path, payload):
    marker = tmp_path / "pwned"
    brand = _templates(tmp_path / "brand", {"partials/cover.html": "<h1>{{ title }}</h1>\n"
                                            + payload.replace("MARKER", str(marker))})
    (folder / "brief.html").unlink(missing_ok=True)
    code, stdout, stderr = _report(folder, brand)
    assert code == 2 and stdout == "" and len(stderr.splitlines()) == 1, stderr
    assert re.match(rf"error: {re.escape(str(brand))}/partials/cover\.html:2: template error: "
                    r"(access to attribute '\w+' of '\w+' object is unsafe|exponent|repetition)", stderr), stderr
    assert not marker.exists() and not (folder / "brief.html").exists()


@pytest.mark.parametrize("name", ["../../etc/passwd", "../brand-sibling.html", "/etc/passwd", "default/../../setup.cfg",
                                  "partials/./cover.html"])
def test_include_cannot_leave_the_folder(folder, tmp_path, name):
    (tmp_path / "brand-sibling.html").write_text("SECRET")
    brand = _templates(tmp_path / "brand", {"partials/cover.html": f'{{% include "{name}" %}}'})
    code, _, stderr = _report(folder, brand)
    assert code == 2 and len(stderr.splitlines()) == 1, stderr
    assert f"partials/cover.html:1: template error: template {name!r} leaves" in stderr, stderr
    assert "SECRET" not in stderr


@pytest.mark.parametrize("link", ["file", "folder"])
def test_symbolic_links_out_of_the_folder_are_refused(folder, tmp_path, link):
    outside = _templates(tmp_path / "outside", {"partials/cover.html": "SECRET {{ title }}"})
    brand = tmp_path / "brand"
    brand.mkdir()
    if link == "file":
        (brand / "partials").mkdir()
        os.symlink(outside / "partials" / "cover.html", brand / "partials" / "cover.html")
    else:
        os.symlink(outside / "partials", brand / "partials")
    code, _, stderr = _report(folder, brand)
    assert code == 2 and len(stderr.splitlines()) == 1, stderr
    assert re.match(rf"error: {re.escape(str(brand))}/partials/cover\.html: template error: leads outside the "
                    r"template folder .* \(a symbolic link\)", stderr), stderr
    assert "SECRET" not in stderr


def test_links_and_includes_inside_the_folder_still_work(folder, tmp_path):
    brand = _templates(tmp_path / "brand", {
        "shared/cover.html": '<p>OURS {{ title }}</p>{% include "default/partials/limitations.html" %}',
        "brief.html": '{% extends "default/brief.html" %}{% block table %}{% include "shared/table.html" %}'
                      '{% endblock %}',
        "shared/table.html": "<p>OUR TABLE</p>"})
    (brand / "partials").mkdir()
    os.symlink(brand / "shared" / "cover.html", brand / "partials" / "cover.html")
    code, _, stderr = _report(folder, brand)
    assert code == 0, stderr
    html = (folder / "brief.html").read_text()
    assert "<p>OURS Impact brief" in html and "OUR TABLE" in html and "Side by side" not in html
    assert html.count("Assumptions and limitations") == 2 and "methodology (ODD protocol)" in html


def test_template_errors_name_the_file_and_line(folder, tmp_path):
    brand = _templates(tmp_path / "brand", {"partials/cover.html": "<h1>{{ title }}</h1>\n\n{{ 1 / 0 }}"})
    code, _, stderr = _report(folder, brand)
    assert code == 2 and stderr == (f"error: {brand}/partials/cover.html:3: template error: ZeroDivisionError: "
                                    "division by zero\n")
    (brand / "partials" / "cover.html").write_bytes(b"<h1>\xff\xfe</h1>")
    code, _, stderr = _report(folder, brand)
    assert code == 2 and stderr == (f"error: {brand}/partials/cover.html: template error: not UTF-8 text; "
                                    "allowed: UTF-8 templates\n")

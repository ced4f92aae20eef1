"""Every metric section (policylab.metrics.registry.SECTIONS) on one short crash run, and
the one headline list the CLI and the brief read."""

import dataclasses
import math

import pytest

from policylab import metrics
from policylab.brief import findings
from policylab.cli import experiment as cli_experiment
from policylab.cli.main import HEADLINES as RUN_HEADLINES
from policylab.inputs.scenario import builtin_names, load_scenario
from policylab.metrics import headlines, registry
from policylab.metrics.api import LOWER, Run, Section
from policylab.model import MarketModel


@pytest.fixture(scope="module")
def finished(flash_path):
    """A short crash run, finished, with its starting snapshot."""
    scenario = load_scenario(str(flash_path))
    model = MarketModel(scenario, seed=2, traders=1000)
    start = metrics.snapshot(model)
    model.run()
    return model, start


@pytest.mark.parametrize("section", registry.SECTIONS, ids=lambda s: s.name)
def test_section_computes_exactly_what_it_declares(section, finished):
    model, start = finished
    declared = section.declared(model.scenario)
    values = section.compute(Run(model, start))  # a fresh run: a section needs no other section first
    assert declared and list(values) == [m.name for m in declared]
    for m in declared:
        assert m.unit and m.description and m.direction in metrics.DIRECTIONS, m
        assert isinstance(values[m.name], float)
        assert m.nan or math.isfinite(values[m.name]), f"{m.name} = {values[m.name]} but declares no NaN case"


def test_compute_is_the_sections_in_registry_order(finished):
    model, start = finished
    values = metrics.compute(model, start)
    assert list(values) == list(metrics.definitions(model.scenario))
    joined = {k: v for s in registry.SECTIONS for k, v in s.compute(Run(model, start)).items()}
    assert values.keys() == joined.keys()
    assert all(values[k] == joined[k] or (math.isnan(values[k]) and math.isnan(joined[k])) for k in values)


def test_a_registered_section_is_defined_and_computed(finished, monkeypatch):
    model, start = finished
    extra = Section("extra", "Extra")
    extra.metric("events_logged", "events", "rows of the event log", LOWER)(lambda run: len(run.events["step"]))
    extra.family("final_price_usd", "venue", "USD", "{member} price at the end", LOWER)(
        lambda run: run.model.price_path[-1])
    monkeypatch.setattr(registry, "SECTIONS", (*registry.SECTIONS, extra))
    names = list(metrics.definitions(model.scenario))
    assert names[-1 - len(model.scenario.venues)] == "events_logged"
    assert f"final_price_usd.venue.{model.scenario.venues[0].name}" in names
    assert "final_price_usd.venue.<venue>" in metrics.catalogue()
    assert list(metrics.compute(model, start)) == names


def test_a_name_declared_twice_or_a_family_of_the_wrong_length_is_refused(finished, monkeypatch):
    model, start = finished
    twice = Section("twice", "Twice")
    twice.metric("liquidated_usd", "USD", "again", LOWER)(lambda run: 0.0)
    monkeypatch.setattr(registry, "SECTIONS", (*registry.SECTIONS, twice))
    with pytest.raises(ValueError, match="liquidated_usd: declared twice"):
        metrics.definitions(model.scenario)
    with pytest.raises(ValueError, match="computed twice"):
        metrics.compute(model, start)
    short = Section("short", "Short")
    short.family("x_usd", "derivatives_venue", "USD", "x on {member}", LOWER)(lambda run: [1.0])
    with pytest.raises(ValueError, match="x_usd.venue: 1 values for 4 members"):
        short.compute(Run(model, start))


def test_declarations_are_checked_and_nan_cases_are_described():
    with pytest.raises(ValueError, match="over 'pool'"):
        metrics.Family("x", "pool", "USD", "x", LOWER)
    m = metrics.Metric("x", "minutes", "time to recover", LOWER, nan="never")
    assert m.description == "time to recover (NaN: never)"
    assert dataclasses.replace(m).description == m.description
    assert metrics.catalogue()["recovery_half_minutes"].description.endswith(" (NaN: never)")


# ------------------------------------------------------------------ the headline list
@pytest.mark.parametrize("scenario", builtin_names())
def test_every_headline_names_a_metric_of_every_builtin_scenario(scenario):
    defs = metrics.definitions(load_scenario(scenario))
    missing = [h.metric for h in headlines.ALL if h.metric not in defs]
    assert not missing


def test_headline_labels_are_unique_and_each_metric_listed_once():
    assert len({h.label for h in headlines.ALL}) == len(headlines.ALL)
    assert len({h.metric for h in headlines.ALL}) == len(headlines.ALL)


def test_the_cli_and_the_brief_read_the_one_list():
    everything = [(h.metric, h.label) for h in headlines.ALL]
    assert [row for _, rows in RUN_HEADLINES for row in rows] == everything
    brief = [row for _, rows in findings.SECTIONS for row in rows]
    assert brief == [(h.metric, h.label) for h in headlines.ALL if h.brief] != everything
    assert [title for title, _ in findings.SECTIONS] == [title for title, _ in headlines.HEADLINES]
    assert cli_experiment.HEADLINE_METRICS == headlines.flagged("compare")
    assert cli_experiment.HEADLINE_METRICS[:4] == ("liquidated_usd", "liquidated_share_of_oi", "index_drawdown",
                                                   "bad_debt_usd")


def test_headline_selectors_refuse_unknown_names():
    with pytest.raises(ValueError, match="allowed: run, brief"):
        headlines.grouped("pdf")
    with pytest.raises(ValueError, match="allowed: brief, compare, core, baseline"):
        headlines.flagged("label")

"""The vocabulary (policylab.names): every list of classes, venue kinds and random streams
is read from one place, and the groups follow from it."""

from __future__ import annotations

import numpy as np
import pytest

from policylab import names
from policylab.populations import POPULATIONS


def test_every_configurable_class_has_its_population_and_only_those():
    assert list(POPULATIONS) == list(names.CONFIGURABLE_CLASSES)
    for cname, population in POPULATIONS.items():
        assert population.name == cname


def test_class_groups_partition_the_classes():
    assert set(names.DERIVATIVES_CLASSES) | set(names.SPOT_CLASSES) == set(names.CONFIGURABLE_CLASSES)
    assert not set(names.DERIVATIVES_CLASSES) & set(names.SPOT_CLASSES)
    venue_own = {names.CLASSES[i] for i in names.VENUE_CLASSES}
    assert venue_own | set(names.CONFIGURABLE_CLASSES) == set(names.CLASSES)
    assert not venue_own & set(names.CONFIGURABLE_CLASSES)
    assert names.CLASSES[names.ARB] in names.LIQUIDABLE_CLASSES
    assert not {names.CLASSES[i] for i in names.PROTOCOL_CLASSES} & set(names.LIQUIDABLE_CLASSES)


def test_former_lists_read_the_vocabulary():
    from policylab.inputs.scenario import TRADER_CLASSES
    from policylab.metrics import TRADER_CLASSES as METRIC_CLASSES
    from policylab.policies.api import TRADER_CLASS_NAMES

    assert TRADER_CLASSES is names.CONFIGURABLE_CLASSES
    assert TRADER_CLASS_NAMES is names.CONFIGURABLE_CLASSES
    assert METRIC_CLASSES is names.LIQUIDABLE_CLASSES


def test_trader_rows_are_drawn_in_vocabulary_order(short_scenario):
    from policylab.populations.draw import build

    tb, _, rows = build(short_scenario, seed=0)
    drawn = [c for c in rows if c in names.CONFIGURABLE_CLASSES]
    assert drawn == [c for c in names.CONFIGURABLE_CLASSES if c in short_scenario.classes]
    start = 0
    for cname in drawn:
        assert list(rows[cname]) == list(range(start, start + len(rows[cname])))
        assert (tb.cls[rows[cname]] == names.CLASSES.index(cname)).all()
        start += len(rows[cname])


# ------------------------------------------------------------------ venue kinds and groups
def test_venue_groups_follow_the_archetypes_properties():
    from policylab.venues import ARCHETYPES, KINDS, make_venue
    from policylab.venues.archetypes import DERIVATIVE_KINDS, OFFSHORE_KINDS, SPOT_KINDS

    venues = {kind: make_venue(kind, kind) for kind in KINDS}
    assert tuple(SPOT_KINDS) == tuple(k for k, v in venues.items() if v.is_spot) != ()
    assert tuple(DERIVATIVE_KINDS) == tuple(k for k, v in venues.items() if not v.is_spot) != ()
    assert tuple(OFFSHORE_KINDS) == tuple(k for k, v in venues.items() if v.offshore and not v.is_spot) != ()
    assert set(DERIVATIVE_KINDS) | set(SPOT_KINDS) == set(ARCHETYPES)


def test_a_new_derivatives_archetype_is_in_the_built_in_modules_default_venues(monkeypatch):
    from policylab.policies.access import ListedVenueRequirement, RetailProductBan
    from policylab.venues import ARCHETYPES
    from policylab.venues.archetypes import SPOT_KINDS

    new = dict(ARCHETYPES["offshore_cex"], label="Offshore perpetuals exchange (test)", sources=("test",))
    monkeypatch.setitem(ARCHETYPES, "offshore_test_perp", new)
    monkeypatch.setitem(ARCHETYPES, "onshore_test_futures", dict(new, offshore=False))
    derivatives = RetailProductBan().target.venues  # default venues: DERIVATIVES
    assert {"offshore_test_perp", "onshore_test_futures"} <= set(derivatives)
    assert not set(SPOT_KINDS) & set(derivatives)
    offshore = ListedVenueRequirement().target.venues  # default venues: OFFSHORE
    assert "offshore_test_perp" in offshore and "onshore_test_futures" not in offshore
    assert isinstance(offshore, tuple)  # fixed when the module is configured


# ------------------------------------------------------------------ random streams
def test_built_in_streams_are_declared_once_with_distinct_keys():
    purposes = [p for p, _ in names._BUILTIN_STREAMS]
    assert len(purposes) == len(set(purposes))
    assert len({names.stream_key(p) for p in names.STREAMS}) == len(names.STREAMS)
    for c in names.CONFIGURABLE_CLASSES:
        assert c in names.STREAMS and f"refill:{c}" in names.STREAMS


def test_a_duplicate_or_colliding_declaration_is_refused(monkeypatch):
    monkeypatch.setattr(names, "STREAMS", dict(names.STREAMS))
    with pytest.raises(ValueError, match="declared twice"):
        names._declare("exogenous", "another use of the exogenous stream")
    first = names.declare_stream("test_module", "plumless", "a test stream")
    assert first == "test_module:plumless" and names.declare_stream("test_module", "plumless", "a test stream") == first
    with pytest.raises(ValueError, match="declared twice"):
        names.declare_stream("test_module", "plumless", "another meaning")
    # "plumless" and "buckeroo" have the same CRC-32, so they would draw the same numbers
    with pytest.raises(ValueError, match="same key as 'test_module:plumless'"):
        names.declare_stream("test_module", "buckeroo", "a different test stream")
    names.declare_choice_draw("test_module", "x", "a choice draw")
    with pytest.raises(ValueError, match="'choice:test_module:x' is declared twice"):
        names.declare_choice_draw("test_module", "x", "another choice draw")
    with pytest.raises(ValueError, match="namespace"):
        names.declare_stream("choice", "geo", "the built-in prefix is reserved")


def test_an_undeclared_stream_is_refused_and_a_declared_one_is_reproducible(monkeypatch):
    from policylab.engine.streams import stream

    monkeypatch.setattr(names, "STREAMS", dict(names.STREAMS))
    with pytest.raises(ValueError, match="'my_draw' is not declared; allowed: exogenous"):
        stream(0, "my_draw")
    purpose = names.declare_stream("test_module", "my_draw", "a test stream")
    assert np.array_equal(stream(3, purpose).random(4), stream(3, purpose).random(4))
    assert not np.array_equal(stream(3, purpose).random(4), stream(3, "exogenous").random(4))


def test_a_policy_module_draws_from_its_declared_choice_draw_only(monkeypatch, short_scenario):
    from policylab.model import MarketModel

    monkeypatch.setattr(names, "STREAMS", dict(names.STREAMS))
    m = MarketModel(short_scenario, seed=0, traders=200)
    idx = np.arange(10)
    with pytest.raises(ValueError, match="'choice:my_module:evasion' is not declared"):
        m.choice_draw(idx, "my_module:evasion")
    name = names.declare_choice_draw("my_module", "evasion", "who evades my rule")
    u = m.choice_draw(idx, name)
    assert name == "my_module:evasion" and ((u > 0) & (u < 1)).all()

"""The vocabulary (policylab.names): every list of classes, venue kinds and random streams
is read from one place, and the groups follow from it."""

from __future__ import annotations

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

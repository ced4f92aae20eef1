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

"""docs/calibration.md lists every calibrated parameter with its value: each value must
be what the code and the scenario files actually use."""

import re
from pathlib import Path

import pytest

from policylab.inputs.scenario import load_scenario
from policylab.venues import ARCHETYPES

DOC = Path(__file__).resolve().parents[1] / "docs" / "calibration.md"
ROW = re.compile(r"^\| `(?P<path>[^`]+)` \| (?P<value>[^|]+) \| (?P<unit>[^|]+) \| (?P<basis>[^|]+) \|$")


def rows():
    return [m.groupdict() for line in DOC.read_text().splitlines() if (m := ROW.match(line))]


def resolve(path: str):
    where, field = (part.strip() for part in path.split(":", 1))
    if where.startswith("archetype "):
        return ARCHETYPES[where.split()[1]][field]
    obj = load_scenario(where)
    parts = field.split(".")
    if parts[0] == "venue":  # venue.<name>.<field>
        obj = next(v for v in obj.venues if v.name == parts[1])
        parts = parts[2:]
    for part in parts:
        obj = obj[part] if isinstance(obj, dict) else obj[int(part)] if isinstance(obj, list) else getattr(obj, part)
    return obj


def parse(text: str):
    values = [v.strip() for v in text.split(",")]
    try:
        numbers = tuple(float(v) for v in values)
    except ValueError:
        return text.strip()
    return numbers if len(numbers) > 1 else numbers[0]


def test_the_document_lists_parameters():
    table = rows()
    assert len(table) >= 55
    assert all(r["basis"].strip().split(":")[0] in ("source", "fitted", "assumption") for r in table)


@pytest.mark.parametrize("row", rows(), ids=lambda r: r["path"])
def test_documented_value_is_the_value_in_use(row):
    documented = parse(row["value"])
    actual = resolve(row["path"])
    if isinstance(documented, tuple):
        assert tuple(float(x) for x in actual) == pytest.approx(documented)
    elif isinstance(documented, float):
        assert float(actual) == pytest.approx(documented, rel=1e-12)
    else:
        assert actual == documented

"""ABIDES' rule: the reference configurations give identical tables from commit to commit.

A change that moves them re-records tests/reference_hashes.json with
``python benchmarks/reference_hashes.py --write`` in its own commit and says why.
"""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "reference_hashes.py"
spec = importlib.util.spec_from_file_location("reference_hashes", SCRIPT)
reference_hashes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference_hashes)

RECORDED = json.loads(reference_hashes.RECORD.read_text())


def test_every_reference_run_is_recorded():
    assert sorted(RECORDED) == sorted(reference_hashes.run_key(*r) for r in reference_hashes.RUNS)


@pytest.mark.parametrize("run", reference_hashes.RUNS, ids=[reference_hashes.run_key(*r) for r in reference_hashes.RUNS])
def test_reference_run_tables_unchanged(run):
    assert reference_hashes.table_hashes(*run) == RECORDED[reference_hashes.run_key(*run)]

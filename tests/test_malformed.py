"""The malformed and adversarial corpus (tests/malformed/, indexed by expected.yaml): every
file, given to its command, gives exit code 2 and exactly one line ``error: ...`` holding
the expected text (file:line: key path: what was found; what is allowed), no traceback,
no output files, quoting nothing of the file beyond the offending token, within a time
bound generous enough for a loaded machine (alias bombs and huge files included)."""

import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from policylab.cli import cli

CORPUS = Path(__file__).with_name("malformed")
INDEX = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))
SECONDS = 20


def test_the_corpus_is_large_and_fully_indexed():
    files = sorted(p.name for p in CORPUS.iterdir() if p.name != "expected.yaml")
    assert sorted(INDEX) == files
    assert len(files) >= 100
    assert {e["command"] for e in INDEX.values()} == {"rules check", "scenarios show", "run --scenario"}


@pytest.mark.parametrize("name", sorted(INDEX))
def test_malformed_file_gives_one_line(name, tmp_path, monkeypatch):
    entry = INDEX[name]
    args = [*entry["command"].split(), str(CORPUS / name)]
    if args[0] == "run":
        args += ["--traders", "100", "--out", str(tmp_path / "out")]
    monkeypatch.chdir(tmp_path)  # a default output folder would appear here
    t0 = time.monotonic()
    res = CliRunner().invoke(cli, args)
    assert time.monotonic() - t0 < SECONDS
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    assert entry["expect"] in lines[0]
    for text in entry.get("never", ()):
        assert text not in lines[0]
    assert list(tmp_path.iterdir()) == []

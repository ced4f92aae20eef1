"""docs/extending.md: every kind of extension has a complete example, and each example runs.

An example is the ```python block after a marker ``<!-- example: KIND -->``; it is run as
a script in a fresh process (its registrations stay there) from an empty folder, and it
checks itself with asserts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from policylab.brief import figures, sections

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
KINDS = ("venue-archetype", "trader-population", "policy-module", "policy-hook", "metric", "figure",
         "brief-section", "backend")
EXAMPLE = re.compile(r"<!-- example: ([a-z-]+) -->\s*```python\n(.*?)\n```", re.S)
TIMEOUT_SECONDS = 600


def examples(text: str) -> dict[str, str]:
    """Marker name -> the Python source of the block that follows it; a name used twice is an error."""
    found: dict[str, str] = {}
    for name, code in EXAMPLE.findall(text):
        assert name not in found, f"docs/extending.md: example {name!r} appears twice"
        found[name] = code
    return found


EXAMPLES = examples(DOC.read_text(encoding="utf-8"))


def test_every_kind_of_extension_has_one_example_and_every_marker_is_a_kind():
    markers = re.findall(r"<!-- example: ([^ ]+) -->", DOC.read_text(encoding="utf-8"))
    assert sorted(markers) == sorted(EXAMPLES), "a marker is not followed by a ```python block"
    assert set(KINDS) - set(EXAMPLES) == set(), f"kinds without an example: {sorted(set(KINDS) - set(EXAMPLES))}"
    assert set(EXAMPLES) - set(KINDS) == set(), f"examples of no known kind: {sorted(set(EXAMPLES) - set(KINDS))}"


def test_examples_are_extracted_whole():
    text = "<!-- example: metric -->\n```python\nx = 1\n\ny = 2\n```\n\n```python\nz = 3\n```\n"
    assert examples(text) == {"metric": "x = 1\n\ny = 2"}
    with pytest.raises(AssertionError, match="appears twice"):
        examples(text + text)


@pytest.mark.parametrize("kind", KINDS)
def test_example_runs(kind, tmp_path):
    """The example exits 0 in a fresh interpreter, its temporary files under ``tmp_path``."""
    assert kind in EXAMPLES, f"docs/extending.md has no example for {kind}"
    script = tmp_path / f"{kind}.py"
    script.write_text(EXAMPLES[kind] + "\n", encoding="utf-8")
    env = {**os.environ, "TMPDIR": str(tmp_path), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_SECONDS)
    assert done.returncode == 0, f"example {kind} failed:\n{done.stdout}\n{done.stderr}"


def test_register_refuses_a_figure_or_section_already_registered():
    before_figures, before_sections = figures.FIGURES, sections.SECTIONS
    with pytest.raises(ValueError, match=figures.FIGURES[0].id):
        figures.register(figures.FIGURES[0])
    with pytest.raises(ValueError, match="cover"):
        sections.register(sections.SECTIONS[0])
    assert figures.FIGURES is before_figures and sections.SECTIONS is before_sections

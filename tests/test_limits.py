"""The document bounds of policylab.inputs.limits: nesting refused while composing,
aliases counted at every use, recursive aliases, list and string lengths, in linear time."""

import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from policylab.cli import cli
from policylab.inputs.limits import LIMITS, BoundedComposer, Exceeded, at_most, check_document, venue_name_problem


class Loader(BoundedComposer, yaml.SafeLoader):
    pass


def compose(text: str):
    loader = Loader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    check_document(node)
    return node


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_every_limit_says_what_it_bounds_and_why():
    for name, lim in LIMITS.items():
        assert lim.value > 0 and lim.unit and lim.what and len(lim.reason) > 20, name
    assert LIMITS["usd_per_venue"].value == 1e13
    assert at_most("usd_per_venue") == "at most 1e+13 USD" and at_most("depth") == "at most 32 levels"


def test_an_alias_bomb_is_refused_fast_and_small():
    t0 = time.perf_counter()
    with pytest.raises(Exceeded) as e:
        compose(billion_laughs())
    assert time.perf_counter() - t0 < 2
    assert "values with aliases expanded; allowed: at most 100,000 values" in e.value.detail
    compose(billion_laughs(4))  # 11,111 values: aliases as such are fine


@pytest.mark.parametrize("text, line, detail", [
    ("a:\n" + "".join(" " * (2 * i + 2) + f"k{i}:\n" for i in range(40)) + " " * 82 + "x: 1\n", 32,
     "nesting deeper than 32 levels"),
    ("[" * 5000 + "]" * 5000, 1, "nesting deeper than 32 levels"),
    ("x: &a [1, *a]\n", 1, "an alias refers to a node that contains it"),
    ("x: [" + ", ".join(["1"] * 10_001) + "]\n", 1, "10,001 items; allowed: at most 10,000 items"),
    ("x: " + "y" * 10_001 + "\n", 1, "a string of 10,001 characters; allowed: at most 10,000 characters"),
])
def test_document_bounds(text, line, detail):
    with pytest.raises(Exceeded) as e:
        compose(text)
    assert e.value.line == line and detail in e.value.detail


def test_the_offending_key_path_is_named():
    with pytest.raises(Exceeded) as e:
        compose("venues:\n  - name: a\n    tags: [" + ", ".join(["t"] * 10_001) + "]\n")
    assert e.value.path == ("venues", 0, "tags") and e.value.line == 3


def test_a_large_valid_document_is_checked_in_linear_time():
    """Four times the modules cost about four times the CPU (a quadratic check would cost
    sixteen): the best of five CPU timings of each size, so the machine's load does not decide."""
    def cpu_seconds(modules: int) -> float:
        node = compose("modules:\n" + "".join(f"  - {{module: m{i}, params: {{x: {i}}}}}\n" for i in range(modules)))
        best = float("inf")
        for _ in range(5):
            t0 = time.process_time()
            check_document(node)
            best = min(best, time.process_time() - t0)
        return best

    assert cpu_seconds(4_000) < 8 * cpu_seconds(1_000)


@pytest.mark.parametrize("name, ok", [("binance", True), ("eu_broker-2", True), ("", False), ("a.b", False),
                                      ("a b", False), ("ü", False), ("x" * 65, False)])
def test_venue_names(name, ok):
    assert (venue_name_problem(name) is None) == ok


def test_the_readme_states_the_bounds():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Security and robustness", 1)[1].split("\n## ", 1)[0]
    text = " ".join(section.split())
    for phrase in (f"at most {LIMITS['file_bytes'].value // 1024:.0f} kB",
                   f"nested at most {LIMITS['depth'].value:.0f} levels",
                   f"at most {LIMITS['nodes'].value:,.0f} values", f"at most {LIMITS['list_items'].value:,.0f} entries",
                   f"at most {LIMITS['string_chars'].value:,.0f} characters",
                   f"at most {LIMITS['modules'].value:.0f} modules",
                   f"1 to {LIMITS['venues'].value:.0f} venues", f"1 to {LIMITS['venue_name_chars'].value:.0f} letters",
                   f"at most {LIMITS['usd_per_venue'].value:.0e}".replace("e+", "e"),
                   f"at least {LIMITS['depth_usd_min'].value:.0e}".replace("e+0", "e"),
                   f"at most {LIMITS['usd_per_depth'].value:,.0f} times its depth",
                   f"at least a {LIMITS['usd_per_spot_depth'].value:,.0f}th", "--allow-local-modules",
                   "POLICYLAB_ALLOW_LOCAL_MODULES=1", "sandboxed"):
        assert phrase in text, phrase


@pytest.mark.parametrize("scenario, param, message", [
    ("calm", "scenario.open_interest.binance=1.0e+9,1.0e+14",
     "--param scenario.open_interest.binance: venues[2].open_interest_usd: got 1e+14; allowed: at most 1e+13 USD"),
    ("october-2025", "scenario.duration_minutes=1440,600",
     "--param scenario.duration_minutes: shocks[0].start_minute: got 840.0; "
     "allowed: below the run's duration_minutes 600"),
])
def test_a_sweep_cannot_leave_the_accepted_range(tmp_path, scenario, param, message):
    """Scenario values a sweep sets pass the same checks as a file's (nothing runs)."""
    res = CliRunner().invoke(cli, ["sweep", "--scenario", scenario, "--param", param, "--seeds", "2",
                                   "--traders", "100", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and res.stderr.splitlines() == [res.stderr.strip()], res.output
    assert message in res.stderr
    assert not (tmp_path / "out").exists()


def test_a_file_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "locked.yaml"
    path.write_text("name: x\n")

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    for command in (["rules", "check"], ["scenarios", "show"]):
        res = CliRunner().invoke(cli, [*command, str(path)])
        assert res.exit_code == 2
        assert res.stderr == f"error: {path}: cannot be read (Permission denied); allowed: a readable file\n"

"""Fuzzing the input layer: malformed YAML and values for the scenario and rule set
loaders, and bad values for the CLI options. Whatever the input, the answer is exit 0
(a valid file) or exit 2 with exactly one line ``error: ...``; never a traceback, never
a hang, and nothing runs or is written for a bad option."""

import math
import string
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policylab.cli import cli

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

SCENARIO = {
    "name": "fuzz", "title": "Fuzz", "start_price": 100000, "duration_minutes": 60,
    "venues": [{"name": "cex", "kind": "offshore_cex", "open_interest_usd": 1e9, "depth_usd": 1e8},
               {"name": "spot", "kind": "spot_etf", "depth_usd": 1e8}],
    "population": {"traders": 1000, "jurisdictions": {"US": 0.5, "other": 0.5},
                   "classes": {"retail": {"share": 1.0, "oi_share": 1.0, "venues": {"cex": 1.0}}}},
    "shocks": [{"kind": "price", "start_minute": 10, "duration_minutes": 10, "size": -0.1}],
}
RULES = {
    "name": "fuzz", "title": "Fuzz", "sources": [{"citation": "a source"}],
    "modules": [{"module": "leverage_cap", "target": {"classes": ["retail"], "jurisdictions": ["EU"]},
                 "params": {"max_leverage": 2}}],
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf]),
                    st.text(max_size=20), st.sampled_from(["", "a.b", "retail", "leverage_cap", "spot", "1e9", "NaN"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def paths(doc, prefix=()):
    """Every key path of a document (mappings and lists)."""
    yield prefix
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield from paths(v, prefix + (k,))


@st.composite
def mutated(draw, base):
    """``base`` with one to three places replaced by an arbitrary value, removed, or given an extra key."""
    doc = yaml.safe_load(yaml.safe_dump(base))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(list(paths(doc))))
        if not where:
            continue
        parent = doc
        for k in where[:-1]:
            parent = parent[k]
        action = draw(st.sampled_from(["replace", "replace", "remove", "extra"]))
        if action == "replace":
            parent[where[-1]] = draw(values)
        elif action == "remove":
            del parent[where[-1]]
        elif isinstance(parent[where[-1]], dict):
            parent[where[-1]][draw(st.text(string.ascii_lowercase + "_", min_size=1, max_size=10))] = draw(values)
        if not isinstance(doc, dict):
            break
    return yaml.safe_dump(doc, allow_unicode=True)


garbage = st.one_of(
    st.binary(max_size=300).map(lambda b: ("bytes", b)),
    st.text(max_size=300).map(lambda t: ("text", t)),
    st.lists(st.sampled_from(["key:", " - ", "[", "]", "{", "}", "&a ", "*a ", "!!str ", ":", "\n", "  ", "'", '"',
                              "? ", "---\n", "%YAML 1.1\n", "\t", "#", ".nan", "1e9", "~"]),
             max_size=60).map(lambda parts: ("text", "".join(parts))),
)


def assert_clean(res, allow_ok: bool = True) -> None:
    """Exit 0 (a valid input) or 2 with one ``error:`` line; no traceback."""
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    if allow_ok and res.exit_code == 0:
        return
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr


def write(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    return path


@FUZZ
@given(text=mutated(SCENARIO))
def test_mutated_scenarios(tmp_path, text):
    assert_clean(CliRunner().invoke(cli, ["scenarios", "show", str(write(tmp_path, "s.yaml", text))]))


@FUZZ
@given(text=mutated(RULES))
def test_mutated_rule_sets(tmp_path, text):
    assert_clean(CliRunner().invoke(cli, ["rules", "check", str(write(tmp_path, "r.yaml", text))]))


@FUZZ
@given(content=garbage, command=st.sampled_from([("scenarios", "show"), ("rules", "check")]))
def test_garbage_files(tmp_path, content, command):
    kind, data = content
    try:
        path = write(tmp_path, "g.yaml", data)
    except UnicodeEncodeError:  # a lone surrogate: write its bytes
        path = write(tmp_path, "g.yaml", data.encode("utf-8", "surrogateescape"))
    assert_clean(CliRunner().invoke(cli, [*command, str(path)]))


# ------------------------------------------------------------------ CLI options
not_int = st.text(min_size=1, max_size=12).filter(lambda t: not t.strip().lstrip("+-").isdigit())
bad_count = st.one_of(st.integers(-10**30, 0).map(str), not_int)
bad_traders = st.one_of(st.integers(-10**30, 99), st.integers(10_000_001, 10**30)).map(str) | not_int
names = st.text(string.printable, min_size=1, max_size=30).filter(lambda t: "\x00" not in t and not t.startswith("-"))


@FUZZ
@given(option=st.sampled_from(["--seeds", "--workers"]), value=bad_count,
       command=st.sampled_from(["compare", "sweep"]))
def test_bad_seed_and_worker_counts(tmp_path, option, value, command):
    args = ["repeal-esma-2018"] if command == "compare" else ["--param", "leverage_cap.max_leverage=2,5",
                                                               "--rules", "repeal-esma-2018"]
    res = CliRunner().invoke(cli, [command, *args, "--scenario", "calm", "--traders", "100",
                                   "--out", str(tmp_path / "out"), option, value])
    assert_clean(res, allow_ok=False)
    assert not (tmp_path / "out").exists()


@FUZZ
@given(value=bad_traders, command=st.sampled_from(["run", "compare"]))
def test_bad_trader_counts(tmp_path, value, command):
    args = ["--seed", "0"] if command == "run" else ["repeal-esma-2018", "--seeds", "2"]
    res = CliRunner().invoke(cli, [command, *args, "--scenario", "calm", "--out", str(tmp_path / "out"),
                                   "--traders", value])
    assert_clean(res, allow_ok=False)
    assert not (tmp_path / "out").exists()


@FUZZ
@given(name=names, what=st.sampled_from(["scenario", "rules"]), command=st.sampled_from(["run", "compare"]))
def test_unknown_names(tmp_path, name, what, command):
    """A name that is neither a built-in nor an existing file."""
    name = f"no-such-{name}"
    if what == "scenario":
        args = ["--scenario", name] + (["repeal-esma-2018"] if command == "compare" else [])
    else:
        args = ["--scenario", "calm"] + (["--rules", name] if command == "run" else [name])
    res = CliRunner().invoke(cli, [command, *args, "--traders", "100", "--out", str(tmp_path / "out")])
    assert_clean(res, allow_ok=False)
    assert not (tmp_path / "out").exists()


@FUZZ
@given(below=st.lists(st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=10), max_size=3),
       command=st.sampled_from(["run", "compare"]))
def test_out_below_a_file(tmp_path, below, command):
    """--out inside something that is a file, not a folder."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker.joinpath(*below)
    args = ["--seed", "0"] if command == "run" else ["repeal-esma-2018", "--seeds", "2"]
    res = CliRunner().invoke(cli, [command, *args, "--scenario", "calm", "--traders", "100", "--out", str(out)])
    assert_clean(res, allow_ok=False)
    assert blocker.read_text() == "not a folder"

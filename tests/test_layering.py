"""The package's architecture, checked: data flows one way (inputs -> engine -> metrics ->
experiments -> brief), no import cycles, a light public API, and the deprecated module
paths of 0.1 still working (with a DeprecationWarning) for one release."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import policylab

PACKAGE = Path(policylab.__file__).parent
DEPRECATED = {"policylab.policy", "policylab.book", "policylab.modules", "policylab.rules", "policylab.scenario",
              "policylab.results"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool) -> set[str]:
    """policylab modules that ``path`` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # module level includes imports inside top-level try/if blocks
        nodes = [n for stmt in tree.body for n in ast.walk(stmt)
                 if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("policylab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("policylab") and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the package uses absolute imports")
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(name: str) -> str | None:
    """The module a dotted import name refers to (``from a.b import c`` may name a module or an attribute)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def graph(top_level_only: bool) -> dict[str, set[str]]:
    return {m: {r for r in map(resolve, imports(p, top_level_only)) if r and r != m}
            for m, p in MODULES.items() if m not in DEPRECATED}


def test_no_import_cycles():
    """Module-level imports form a DAG (a package __init__ importing its own submodules is not a cycle)."""
    g = graph(top_level_only=True)
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if m.startswith(d + ".") or d.startswith(m + "."):
                continue  # a package and its own submodules
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [m, d]))
            if d not in state:
                visit(d, path + [m])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [])


def layer(m: str) -> str:
    parts = m.split(".")
    return parts[1] if len(parts) > 1 else "policylab"


# The input layer's primitives (YAML reading with line numbers and its bounds, typed coercion):
# the one part of inputs/ that venues/ and policies/ use, to read their own fields and parameters.
INPUT_PRIMITIVES = {"policylab.inputs", "policylab.inputs.values", "policylab.inputs.yaml", "policylab.inputs.limits"}

# What each layer may not import (anywhere in the file, lazily or not).
FORBIDDEN = {
    "names": {"venues", "inputs", "policies", "populations", "engine", "model", "metrics", "experiments",
              "validation", "brief", "cli"},
    "venues": {"inputs", "policies", "populations", "engine", "model", "metrics", "experiments", "validation",
               "brief", "cli"},
    "policies": {"inputs", "populations", "engine", "model", "metrics", "experiments", "validation", "brief", "cli"},
    "inputs": {"populations", "model", "metrics", "experiments", "validation", "brief", "cli"},
    "engine": {"populations", "model", "metrics", "experiments", "validation", "brief", "cli"},
    "populations": {"model", "metrics", "experiments", "validation", "brief", "cli"},
    "model": {"metrics", "experiments", "validation", "brief", "cli"},
    "metrics": {"experiments", "validation", "brief", "cli"},
    "experiments": {"validation", "brief", "cli"},
    "brief": {"model", "engine", "populations", "cli"},
}


@pytest.mark.parametrize("layer_name", sorted(FORBIDDEN))
def test_layers_import_only_downstream(layer_name):
    g = graph(top_level_only=False)
    bad = [f"{m} imports {d}" for m, deps in sorted(g.items()) if layer(m) == layer_name
           for d in sorted(deps) if layer(d) in FORBIDDEN[layer_name] and d not in INPUT_PRIMITIVES]
    assert not bad, "\n".join(bad)


def test_input_primitives_import_nothing_above_names():
    g = graph(top_level_only=False)
    bad = [f"{m} imports {d}" for m in INPUT_PRIMITIVES for d in g.get(m, ())
           if layer(d) not in ("names", "errors", "inputs") or (layer(d) == "inputs" and d not in INPUT_PRIMITIVES)]
    assert not bad, "\n".join(bad)


def test_brief_reads_results_folders_not_runs():
    """The brief never runs a model: nothing it imports, directly or through other
    modules, lazily or not, is the run or the model (importing them costs a brief
    render seconds: Numba's kernels, Mesa)."""
    g = graph(top_level_only=False)
    bad = []
    for start in sorted(m for m in g if layer(m) == "brief"):
        path = {start: [start]}
        todo = [start]
        while todo:
            m = todo.pop()
            for d in sorted(g.get(m, ())):
                if d not in path:
                    path[d] = path[m] + [d]
                    todo.append(d)
        bad += [" -> ".join(path[d]) for d in ("policylab.experiments.run", "policylab.model") if d in path]
    assert not bad, "\n".join(bad)


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.split()
    return set(out)


HEAVY = ("pandas", "numba", "mesa", "matplotlib", "policylab.engine", "policylab.model")


@pytest.mark.parametrize("code", ["import policylab",
                                  "from policylab.policies import Policy, Param, Target",
                                  "import policylab; policylab.__version__; dir(policylab)"])
def test_light_public_api(code):
    loaded = loaded_after(code)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert not heavy, heavy


def test_top_level_api_is_lazy_and_complete():
    for name in ("run", "compare", "sweep", "load_scenario", "load_rules", "write_brief"):
        assert callable(getattr(policylab, name)), name
    with pytest.raises(AttributeError):
        policylab.no_such_thing  # noqa: B018


@pytest.mark.parametrize("old, new, attr", [
    ("policylab.policy", "policylab.policies.api", "Policy"),
    ("policylab.book", "policylab.engine.book", "TraderBook"),
    ("policylab.modules", "policylab.policies.leverage", "LeverageCap"),
    ("policylab.rules", "policylab.inputs.rulesets", "load_rules"),
    ("policylab.scenario", "policylab.inputs.scenario", "load_scenario"),
    ("policylab.results", "policylab.experiments.run", "run"),
])
def test_deprecated_paths_still_work(old, new, attr):
    """Plugins written against 0.1's paths keep working for one release, with a warning."""
    code = (f"import warnings, importlib\nwarnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    importlib.import_module({old!r})\nexcept DeprecationWarning as w:\n    print('warned', w)\n"
            f"warnings.simplefilter('ignore')\nold = importlib.import_module({old!r})\n"
            f"new = importlib.import_module({new!r})\nprint(getattr(old, {attr!r}) is getattr(new, {attr!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"warned {old} is deprecated" in out
    assert out.strip().endswith("True")


def test_deprecated_venues_jurisdictions():
    import policylab.names
    import policylab.venues

    with pytest.warns(DeprecationWarning, match="policylab.names"):
        assert policylab.venues.JURISDICTIONS == policylab.names.JURISDICTIONS


def test_every_folder_says_what_lives_there():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.parent.name}/__init__.py needs a docstring saying what lives there"

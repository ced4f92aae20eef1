"""Rule sets: named, sourced collections of configured policy modules, in YAML.

A rule set file::

    name: esma-2018-crypto
    title: ESMA 2018 product intervention applied to crypto
    description: ...
    jurisdiction: EU
    effective_date: 2018-08-01
    sources:
      - {citation: "ESMA Decision (EU) 2018/796", url: "https://eur-lex.europa.eu/eli/dec/2018/796/oj"}
    modules:
      - module: leverage_cap            # a built-in, an entry point, or path/to/file.py:ClassName
        target: {venues: [eu_broker], classes: [retail]}
        params: {max_leverage: 2}

Modules are found (policylab.policies.registry) among the built-ins, then third-party classes
registered under the entry point group ``policylab.policies``, then local files
(``path.py:ClassName``, relative to the rule set file). Every loader error names the
file, the line and key path, what was found, what is allowed and the closest valid name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import importlib.util
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

import yaml

from policylab.errors import InputError
from policylab.policies.registry import available_modules
from policylab.policies.api import Policy, PolicyError, Target
from policylab.inputs.values import as_number

TOP_KEYS = ("name", "title", "description", "jurisdiction", "effective_date", "sources", "modules")
MODULE_KEYS = ("module", "target", "params")


@dataclass
class ModuleSpec:
    module: str
    cls: type[Policy]
    params: dict
    target: Target
    where: str = ""  # file:line: modules[i], for messages

    def instantiate(self, rule_set: str) -> Policy:
        policy = self.cls(target=self.target, rule_set=rule_set, **self.params)
        policy.where = self.where
        return policy


@dataclass
class RuleSet:
    name: str
    title: str
    description: str = ""
    jurisdiction: str = ""
    effective_date: str = ""
    sources: list[dict] = field(default_factory=list)
    modules: list[ModuleSpec] = field(default_factory=list)
    path: str = ""

    def policies(self) -> list[Policy]:
        """Fresh module instances, one per configured module."""
        return [m.instantiate(self.name) for m in self.modules]

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "description": self.description,
                "jurisdiction": self.jurisdiction, "effective_date": self.effective_date,
                "sources": self.sources,
                "modules": [{"module": m.module, "title": m.cls.title, "source": m.cls.source,
                             "params": {k: _jsonable(v) for k, v in m.instantiate(self.name).values.items()},
                             "given": sorted(m.params),
                             "target": {k: v for k, v in dataclasses.asdict(m.target).items() if v}}
                            for m in self.modules]}


def _jsonable(v):
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, float) and v == float("inf"):
        return "inf"
    return v


# ------------------------------------------------------------------ discovery
def builtin_dir():
    return resources.files("policylab.rulesets")


def builtin_rule_sets() -> list[str]:
    return sorted(p.name[:-5] for p in builtin_dir().iterdir() if p.name.endswith(".yaml"))


def resolve_module(ref: str, base_dir: Path, where: str) -> type[Policy]:
    """The module class named by ``ref`` (name or ``file.py:ClassName``)."""
    if ":" in ref and ref.split(":", 1)[0].endswith(".py"):
        file, cls_name = ref.rsplit(":", 1)
        path = (base_dir / file) if not Path(file).is_absolute() else Path(file)
        if not path.is_file():
            raise InputError(f"{where}: module file {file} not found (looked in {path.parent})")
        spec = importlib.util.spec_from_file_location(f"policylab_local_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as e:  # a user's file: report, do not crash
            raise InputError(f"{where}: importing {file} failed: {type(e).__name__}: {e}") from None
        cls = getattr(mod, cls_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Policy)):
            names = [n for n, v in vars(mod).items() if isinstance(v, type) and issubclass(v, Policy) and v is not Policy]
            raise InputError(f"{where}: {file} has no policy module class {cls_name!r}{_hint(cls_name, names)}; "
                             f"allowed: {', '.join(names) or 'none found'}")
        return cls
    found = available_modules()
    if ref not in found:
        raise InputError(f"{where}: unknown module {ref!r}{_hint(ref, found)}; allowed: {', '.join(sorted(found))} "
                         "or path/to/file.py:ClassName")
    cls = found[ref]
    if isinstance(cls, metadata.EntryPoint):
        try:
            cls = cls.load()
        except Exception as e:
            raise InputError(f"{where}: entry point {ref!r} failed to load: {type(e).__name__}: {e}") from None
        if not (isinstance(cls, type) and issubclass(cls, Policy)):
            raise InputError(f"{where}: entry point {ref!r} is not a policylab.policy.Policy subclass")
    return cls


def _hint(name: str, options) -> str:
    close = difflib.get_close_matches(str(name), list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ------------------------------------------------------------------ loading
def load_rules(name_or_path: str) -> RuleSet:
    """Load a built-in rule set by name, or a rule set file by path. Raises InputError."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise InputError(f"{name_or_path}: rule set file not found")
        return parse_rules(path.read_text(), str(path), path.parent)
    names = builtin_rule_sets()
    if name_or_path not in names:
        raise InputError(f"unknown rule set {name_or_path!r}{_hint(name_or_path, names)}; "
                         f"allowed: {', '.join(names)} or a path to a .yaml file")
    return parse_rules((builtin_dir() / f"{name_or_path}.yaml").read_text(), f"{name_or_path}.yaml", Path("."))


class _Lines:
    """Line numbers of a YAML document's nodes, by key path."""

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        try:
            node = yaml.compose(text)
        except yaml.YAMLError:
            node = None
        if node is not None:
            self._walk(node, ())

    def _walk(self, node, path):
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                self.lines[path + (k.value,)] = k.start_mark.line + 1
                self._walk(v, path + (k.value,))
                self.lines[path + (k.value,)] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                self._walk(v, path + (i,))

    def at(self, file: str, path: tuple) -> str:
        p = path
        while p and p not in self.lines:
            p = p[:-1]
        line = self.lines.get(p)
        keys = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")
        return f"{file}:{line}: {keys}" if line else f"{file}: {keys}"


def parse_rules(text: str, where: str, base_dir: Path) -> RuleSet:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"{mark.line + 1}:" if mark else ""
        raise InputError(f"{where}:{line} not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except ValueError as e:  # a scalar YAML cannot construct, e.g. the date 2021-02-30
        raise InputError(f"{where}:{_unconstructible_line(text)} not valid YAML ({e})") from None
    lines = _Lines(text)
    at = lambda *path: lines.at(where, path)  # noqa: E731
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping with {', '.join(TOP_KEYS)}")
    for key in data:
        if key not in TOP_KEYS:
            raise InputError(f"{at(key)}: unknown field{_hint(key, TOP_KEYS)}; allowed: {', '.join(TOP_KEYS)}")
    for key in ("name", "title", "modules"):
        if key not in data:
            raise InputError(f"{where}: {key}: missing; required")
    for key in ("name", "title", "description", "jurisdiction"):
        if key in data and not isinstance(data[key], str):
            raise InputError(f"{at(key)}: got {data[key]!r}; allowed: a string")
    date = data.get("effective_date", "")
    if isinstance(date, dt.date):
        date = date.isoformat()
    elif date != "":
        try:
            date = dt.date.fromisoformat(str(date)).isoformat()
        except ValueError:
            raise InputError(f"{at('effective_date')}: got {date!r}; allowed: a date YYYY-MM-DD") from None
    sources = data.get("sources") or []
    if not isinstance(sources, list):
        raise InputError(f"{at('sources')}: expected a list of {{citation, url}}")
    for i, s in enumerate(sources):
        if not isinstance(s, dict) or "citation" not in s or set(s) - {"citation", "url"}:
            raise InputError(f"{at('sources', i)}: expected {{citation, url}}, got {s!r}")
    mods = data["modules"]
    if not isinstance(mods, list):
        raise InputError(f"{at('modules')}: expected a list of modules, got {type(mods).__name__}")
    specs = []
    for i, md in enumerate(mods):
        if not isinstance(md, dict):
            raise InputError(f"{at('modules', i)}: expected a mapping with {', '.join(MODULE_KEYS)}")
        for key in md:
            if key not in MODULE_KEYS:
                raise InputError(f"{at('modules', i, key)}: unknown field{_hint(key, MODULE_KEYS)}; "
                                 f"allowed: {', '.join(MODULE_KEYS)}")
        if "module" not in md:
            raise InputError(f"{at('modules', i)}: module: missing; required")
        cls = resolve_module(str(md["module"]), base_dir, at("modules", i, "module"))
        params = md.get("params") or {}
        if not isinstance(params, dict):
            raise InputError(f"{at('modules', i, 'params')}: expected a mapping of parameter: value")
        declared = cls.params()
        for key, value in params.items():
            if key not in declared:
                raise InputError(f"{at('modules', i, 'params', key)}: unknown parameter of {cls.name}"
                                 f"{_hint(key, declared)}; allowed: {', '.join(declared) or 'none'}")
            try:
                declared[key].check(_number(value), key)
            except PolicyError as e:
                raise InputError(f"{at('modules', i, 'params', key)}: {str(e).split(': ', 1)[1]}") from None
        try:
            target = Target.parse(md.get("target"), "target")
        except PolicyError as e:
            path = e.args[0].split(":")[0].split(".")
            raise InputError(f"{at('modules', i, *path)}: {e.args[0].split(': ', 1)[1]}") from None
        params = {k: _number(v) for k, v in params.items()}
        specs.append(ModuleSpec(module=str(md["module"]), cls=cls, params=params, target=target,
                                where=at("modules", i)))
    return RuleSet(name=data["name"], title=data["title"], description=str(data.get("description", "")).strip(),
                   jurisdiction=data.get("jurisdiction", ""), effective_date=date, sources=sources,
                   modules=specs, path=where)


def _unconstructible_line(text: str) -> str:
    """``N:``, the line of the first scalar safe_load cannot construct (empty if none is found)."""
    loader = yaml.SafeLoader(text)
    try:
        stack = [loader.get_single_node()]
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.ScalarNode):
                try:
                    loader.construct_object(node)
                except ValueError:
                    return f"{node.start_mark.line + 1}:"
            elif isinstance(node, yaml.MappingNode):
                stack.extend(reversed([n for pair in node.value for n in pair]))  # in document order
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(reversed(node.value))
    except yaml.YAMLError:
        pass
    finally:
        loader.dispose()
    return ""


def _number(v):
    """A parameter value as written: numeric strings as numbers (values.as_number), lists as tuples."""
    return tuple(v) if isinstance(v, list) else as_number(v)

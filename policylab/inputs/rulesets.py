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

A rule set may build on another (``base: status-quo-2025``): it runs the base's modules
and its own, less those it repeals by id (``repeal: [japan-2020-2x]``; a module's ``id``
is given in its base's file). So a proposal is its modules added to the 2025 world, and
a historical rule is asked about by repealing it: ``repeal-japan-2020`` is the 2025
world without Japan's 2x cap (``RuleSet.repeals`` marks such a rule set).

Modules are found (policylab.policies.registry) among the built-ins, then third-party classes
registered under the entry point group ``policylab.policies``, then local files
(``path.py:ClassName``, relative to the rule set file). Every loader error names the
file, the line and key path, what was found, what is allowed and the closest valid name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

from policylab.errors import InputError
from policylab.inputs import local_modules
from policylab.inputs.limits import at_most, bound, venue_name_problem
from policylab.inputs.values import coerce, did_you_mean, shown, unknown_key
from policylab.inputs.yaml import Where, parse, read_text
from policylab.policies.api import Policy, PolicyError, Target
from policylab.policies.registry import available_modules, find_module

TOP_KEYS = ("name", "title", "description", "jurisdiction", "effective_date", "sources", "modules", "base", "repeal")
MODULE_KEYS = ("module", "target", "params", "id")
# Rule sets that were national rules applied everywhere before 0.3: each is a part of the
# 2025 baseline now (status-quo-2025), asked about through its repeal.
RENAMED = {"japan-2020-2x": "repeal-japan-2020", "fca-2021-retail-ban": "repeal-fca-2021",
           "esma-2018-crypto": "repeal-esma-2018", "cftc-2020-actual-delivery": "repeal-cftc-2020"}


@dataclass
class ModuleSpec:
    module: str
    cls: type[Policy]
    params: dict
    target: Target
    where: str = ""  # file:line: modules[i], for messages
    id: str = ""  # the name a rule set that builds on this one repeals it by
    origin: str = ""  # the rule set the module comes from, when it is a base's

    def instantiate(self, rule_set: str) -> Policy:
        policy = self.cls(target=self.target, rule_set=self.origin or rule_set, **self.params)
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
    modules: list[ModuleSpec] = field(default_factory=list)  # the base's (less the repealed) and its own
    path: str = ""
    base: str = ""  # the rule set it builds on
    repeal: tuple[str, ...] = ()  # ids of the base's modules it removes

    @property
    def repeals(self) -> bool:
        """The rule set removes rules of its base: a comparison with the base shows what
        the repealed rules do (base minus repeal)."""
        return bool(self.repeal)

    def policies(self) -> list[Policy]:
        """Fresh module instances, one per configured module."""
        return [m.instantiate(self.name) for m in self.modules]

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "description": self.description,
                "jurisdiction": self.jurisdiction, "effective_date": self.effective_date,
                "sources": self.sources, "base": self.base, "repeal": self.repeals, "repealed": list(self.repeal),
                "modules": [{"id": m.id, "from": m.origin or self.name, "module": m.module, "title": m.cls.title, "source": m.cls.source,
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


def resolve_module(ref: str, base_dir: Path, where: str, *, allow_local_modules: bool = False,
                   static: bool = False) -> type[Policy]:
    """The module class named by ``ref`` (name or ``file.py:ClassName``). A local file is
    read without running it when ``static`` (policylab.inputs.local_modules), imported
    when allowed (``allow_local_modules`` or the environment variable), refused otherwise."""
    if ":" in ref and ref.split(":", 1)[0].endswith(".py"):
        file, cls_name = ref.rsplit(":", 1)
        path = (base_dir / file) if not Path(file).is_absolute() else Path(file)
        if not path.is_file():
            raise InputError(f"{where}: module file {file} not found (looked in {path.parent})")
        if static:
            return local_modules.inspect_module(path, file, cls_name, where)
        if not local_modules.allowed(allow_local_modules):
            raise local_modules.refuse(path, file, where)
        return local_modules.import_module(path, file, cls_name, where)
    cls = find_module(ref)
    if cls is None:
        found = available_modules()
        raise InputError(f"{where}: unknown module {ref!r}{did_you_mean(ref, found)}; allowed: {', '.join(sorted(found))} "
                         "or path/to/file.py:ClassName")
    if isinstance(cls, metadata.EntryPoint):
        try:
            cls = cls.load()
        except Exception as e:
            raise InputError(f"{where}: entry point {ref!r} failed to load: {type(e).__name__}: {e}") from None
        if not (isinstance(cls, type) and issubclass(cls, Policy)):
            raise InputError(f"{where}: entry point {ref!r} is not a policylab.policy.Policy subclass")
    return cls




# ------------------------------------------------------------------ loading
def load_rules(name_or_path: str, allow_local_modules: bool = False, *, static: bool = False) -> RuleSet:
    """Load a built-in rule set by name, or a rule set file by path. Raises InputError.
    A local module (``file.py:Class``) runs only if ``allow_local_modules`` (or
    POLICYLAB_ALLOW_LOCAL_MODULES=1); with ``static`` it is read, never run, and the
    rule set can be shown and checked but not run."""
    local = {"allow_local_modules": allow_local_modules, "static": static}
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise InputError(f"{name_or_path}: rule set file not found")
        return parse_rules(read_text(path, str(path)), str(path), path.parent, **local)
    names = builtin_rule_sets()
    if name_or_path in RENAMED:
        raise InputError(f"unknown rule set {name_or_path!r}: it is part of the baseline status-quo-2025 now; "
                         f"did you mean {RENAMED[name_or_path]!r} (the baseline without it)?; "
                         f"allowed: {', '.join(names)} or a path to a .yaml file")
    if name_or_path not in names:
        raise InputError(f"unknown rule set {name_or_path!r}{did_you_mean(name_or_path, names)}; "
                         f"allowed: {', '.join(names)} or a path to a .yaml file")
    return parse_rules((builtin_dir() / f"{name_or_path}.yaml").read_text(encoding="utf-8"), f"{name_or_path}.yaml",
                       Path("."))


def parse_rules(text: str, where: str, base_dir: Path, *, allow_local_modules: bool = False,
                static: bool = False, seen: tuple[str, ...] = ()) -> RuleSet:
    data, lines = parse(text, where)
    top = Where(lines)
    if not isinstance(data, dict) or not any(key in TOP_KEYS for key in data):
        raise InputError(f"{where}: not a rule set; allowed: a mapping with {', '.join(TOP_KEYS)}")
    for key in data:
        if key not in TOP_KEYS:
            raise top.invalid(unknown_key(key, TOP_KEYS))
    for key in ("name", "title", "modules"):
        if key not in data:
            raise InputError(f"{where}: {key}: missing; required")
    text_fields = {key: (top / key).check(coerce, data[key], str) if key in data else ""
                   for key in ("name", "title", "description", "jurisdiction")}
    date = data.get("effective_date", "")
    if isinstance(date, dt.date):
        date = date.isoformat()
    elif date != "":
        try:
            date = dt.date.fromisoformat(str(date)).isoformat()
        except ValueError:
            raise (top / "effective_date").bad(date, "a date YYYY-MM-DD") from None
    sources = data.get("sources") or []
    if not isinstance(sources, list):
        raise (top / "sources").fail("expected a list of {citation, url}")
    for i, s in enumerate(sources):
        if not isinstance(s, dict) or "citation" not in s or set(s) - {"citation", "url"}:
            raise (top / "sources" / i).fail(f"expected {{citation, url}}, got {shown(s)}")
        for key, value in s.items():
            (top / "sources" / i / key).check(coerce, value, str)
    mods = data["modules"]
    if not isinstance(mods, list):
        raise (top / "modules").fail(f"expected a list of modules, got {type(mods).__name__}")
    if len(mods) > bound("modules"):
        raise (top / "modules").fail(f"{len(mods):,} modules; allowed: {at_most('modules')}")
    base, repealed, inherited = _base(data, top, base_dir, seen + (where,), allow_local_modules, static)
    specs = []
    ids = {m.id for m in inherited if m.id}
    for i, md in enumerate(mods):
        at = top / "modules" / i
        if not isinstance(md, dict):
            raise at.fail(f"expected a mapping with {', '.join(MODULE_KEYS)}")
        for key in md:
            if key not in MODULE_KEYS:
                raise at.invalid(unknown_key(key, MODULE_KEYS))
        if "module" not in md:
            raise at.fail("module: missing; required")
        cls = resolve_module(str(md["module"]), base_dir, str(at / "module"),
                             allow_local_modules=allow_local_modules, static=static)
        params = md.get("params") or {}
        if not isinstance(params, dict):
            raise (at / "params").fail("expected a mapping of parameter: value")
        declared = cls.params()
        checked = {}
        for key, value in params.items():
            if key not in declared:
                raise (at / "params" / key).fail(f"unknown parameter of {cls.name}{did_you_mean(key, declared)}; "
                                                 f"allowed: {', '.join(declared) or 'none'}")
            try:
                checked[key] = declared[key].check(value, key)
            except PolicyError as e:
                raise (at / "params" / key).fail(str(e).split(": ", 1)[1]) from None
        try:
            target = Target.parse(md.get("target"), "target")
        except PolicyError as e:
            path = e.args[0].split(":")[0].split(".")
            raise Where(lines, at.path + tuple(path)).fail(e.args[0].split(": ", 1)[1]) from None
        mid = ""
        if "id" in md:
            mid = (at / "id").check(coerce, md["id"], str)
            if not mid or venue_name_problem(mid):
                raise (at / "id").bad(mid, "a name of letters, digits, '-' and '_'")
            if mid in ids:
                raise (at / "id").bad(mid, "an id no other module of the rule set (or of its base) has")
            ids.add(mid)
        specs.append(ModuleSpec(module=str(md["module"]), cls=cls, params=checked, target=target, where=str(at),
                                id=mid))
    return RuleSet(name=text_fields["name"], title=text_fields["title"],
                   description=text_fields["description"].strip(), jurisdiction=text_fields["jurisdiction"],
                   effective_date=date, sources=sources, modules=inherited + specs, path=where,
                   base=base, repeal=repealed)


def _base(data: dict, top: Where, base_dir: Path, seen: tuple[str, ...], allow_local_modules: bool,
          static: bool) -> tuple[str, tuple[str, ...], list[ModuleSpec]]:
    """(base name, repealed ids, the base's modules less the repealed) of a rule set's
    ``base:`` and ``repeal:`` keys."""
    if "base" not in data:
        if data.get("repeal"):
            raise (top / "repeal").fail("a repeal removes modules of a base; allowed: only with base: RULE_SET")
        return "", (), []
    name = (top / "base").check(coerce, data["base"], str)
    path = Path(name) if Path(name).is_absolute() else base_dir / name
    if name.endswith((".yaml", ".yml")) and path.is_file():
        text, where, folder = read_text(path, str(path)), str(path), path.parent
    elif name in builtin_rule_sets():
        text, where, folder = (builtin_dir() / f"{name}.yaml").read_text(encoding="utf-8"), f"{name}.yaml", Path(".")
    else:
        names = builtin_rule_sets()
        raise (top / "base").fail(f"got {shown(name)}{did_you_mean(name, names)}; allowed: {', '.join(names)} "
                                  "or a path to a .yaml file")
    if where in seen:
        raise (top / "base").fail(f"circular base through {where}")
    base = parse_rules(text, where, folder, allow_local_modules=allow_local_modules, static=static, seen=seen)
    repeal = data.get("repeal") or []
    if isinstance(repeal, str):
        repeal = [repeal]
    if not isinstance(repeal, list):
        raise (top / "repeal").bad(repeal, "a list of module ids of the base")
    ids = [m.id for m in base.modules if m.id]
    for i, mid in enumerate(repeal):
        if mid not in ids:
            raise (top / "repeal" / i).fail(f"got {shown(mid)}{did_you_mean(str(mid), ids)}; allowed: the ids of "
                                            f"{base.name}'s modules: {', '.join(ids) or 'none'}")
    inherited = [dataclasses.replace(m, origin=m.origin or base.name) for m in base.modules if m.id not in repeal]
    return base.name, tuple(repeal), inherited


def compose(rule_sets) -> tuple[RuleSet, ...]:
    """Rule sets run together (``A+B``): a module with an id that several of them carry
    (a shared base's, or the base itself named too) runs once, and one that any of them
    repeals runs in none."""
    repealed = {(rs.base, mid) for rs in rule_sets for mid in rs.repeal}
    seen: set[tuple[str, str]] = set()
    out = []
    for rs in rule_sets:
        keep = []
        for m in rs.modules:
            key = (m.origin or rs.name, m.id)
            if m.id and (key in repealed or key in seen):
                continue
            seen.add(key)
            keep.append(m)
        out.append(dataclasses.replace(rs, modules=keep) if len(keep) != len(rs.modules) else rs)
    return tuple(out)

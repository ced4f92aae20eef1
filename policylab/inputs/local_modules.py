"""Local policy modules: a rule set naming ``path/to/file.py:ClassName`` names code.

Nothing runs unasked. Reading or checking a rule set (``rules show``, ``rules check``)
inspects such a file without executing it (:func:`inspect_module`: the Python source is
parsed with :mod:`ast`, the class must be defined there and subclass ``Policy`` by name,
and its ``Param`` declarations are read when they are literals). Running a rule set
that names local code needs an explicit opt-in (:func:`allowed`: ``--allow-local-modules``,
``POLICYLAB_ALLOW_LOCAL_MODULES=1`` or ``allow_local_modules=True`` in the Python API);
:func:`import_module` then names the file on stderr before executing it. Installed
entry points are packages the user chose to install and load without an opt-in.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from pathlib import Path
from typing import ClassVar

from policylab.errors import InputError
from policylab.inputs.limits import at_most, bound
from policylab.inputs.values import did_you_mean
from policylab.policies.api import Param, Policy

ENV = "POLICYLAB_ALLOW_LOCAL_MODULES"
HOW_TO_ALLOW = f"--allow-local-modules, {ENV}=1 or allow_local_modules=True in Python"
META = ("name", "title", "source", "default_venues", "default_classes")  # class attributes Policy reads


def allowed(flag: bool) -> bool:
    """Whether local module code may run: ``flag`` or the environment variable set to 1."""
    return bool(flag) or os.environ.get(ENV, "").strip() == "1"


def refuse(path: Path, file: str, where: str) -> InputError:
    """The one-line error for local code that was not allowed to run."""
    return InputError(f"{where}: {file} is Python code ({path.resolve()}) and runs only when allowed; "
                      f"allowed: {HOW_TO_ALLOW}")


_IMPORTED: dict[tuple, object] = {}  # (resolved path, mtime, size) -> module: each file version runs once


def import_module(path: Path, file: str, cls_name: str, where: str) -> type[Policy]:
    """Import ``path`` (announced on stderr first; once per process while the file is
    unchanged) and return its Policy subclass ``cls_name``."""
    stat = path.stat()
    key = (path.resolve(), stat.st_mtime_ns, stat.st_size)
    mod = _IMPORTED.get(key)
    if mod is None:
        print(f"policylab: executing local policy module {path.resolve()} ({where})", file=sys.stderr, flush=True)
        spec = importlib.util.spec_from_file_location(f"policylab_local_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except (Exception, SystemExit) as e:  # a user's file: report, do not crash or exit
            raise InputError(f"{where}: importing {file} failed: {type(e).__name__}: {e}") from None
        _IMPORTED[key] = mod
    cls = getattr(mod, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        names = [n for n, v in vars(mod).items() if isinstance(v, type) and issubclass(v, Policy) and v is not Policy]
        raise InputError(f"{where}: {file} has no policy module class {cls_name!r}{did_you_mean(cls_name, names)}; "
                         f"allowed: {', '.join(names) or 'none found'}")
    return cls


# ------------------------------------------------------------------ static reading
class Unread(dict):
    """The parameters of a module whose declarations could not be read without running
    it: every name is accepted, unchecked (an empty mapping when listed)."""

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key) -> "_Unchecked":
        return _UNCHECKED


class _Unchecked:
    """A parameter that could not be read: values pass as written."""

    def check(self, value, where: str):
        return tuple(value) if isinstance(value, list) else value


_UNCHECKED = _Unchecked()


class LocalModule(Policy):
    """A local module as read from its source, never executed: its name, title, source,
    default targets and (if ``params_known``) its declared parameters. It has no hooks,
    so it can be shown and checked but never acts in a run."""

    file: ClassVar[str] = ""  # the module's Python file
    params_known: ClassVar[bool] = True  # False: a parameter is not a literal Param(...) declaration

    def __init__(self, target=None, rule_set: str = "", **params):
        super().__init__(target, rule_set, **params)
        if not self.params_known:
            self.values = {k: _UNCHECKED.check(v, k) for k, v in params.items()}

    @classmethod
    def params(cls) -> dict:
        return super().params() if cls.params_known else Unread()


class _NotLiteral(Exception):
    pass


def _value(node: ast.AST, env: dict):
    """A literal expression's value; names bound earlier to literals are looked up in ``env``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_value(x, env) for x in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_value(k, env): _value(v, env) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _value(node.operand, env)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    raise _NotLiteral


def _is_param_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "Param")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "Param"))


def _base_name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _is_policy(node: ast.ClassDef, classes: dict, seen: frozenset = frozenset()) -> bool:
    """``node`` subclasses Policy by name, directly or through classes of the same file."""
    for base in node.bases:
        name = _base_name(base)
        if name == "Policy":
            return True
        if name in classes and name not in seen and _is_policy(classes[name], classes, seen | {node.name}):
            return True
    return False


def _read_class(node: ast.ClassDef, classes: dict, env: dict, seen: frozenset = frozenset()) -> tuple[dict, bool]:
    """(attributes read from the class body and its same-file bases, whether every
    parameter declaration could be read)."""
    attrs: dict = {}
    known = not node.decorator_list and not node.keywords  # decorators and metaclasses can add parameters
    for base in reversed(node.bases):
        name = _base_name(base)
        if name in classes and name not in seen:
            base_attrs, base_known = _read_class(classes[name], classes, env, seen | {node.name})
            attrs.update(base_attrs)
            known &= base_known
        elif name != "Policy":
            known = False  # a base from another file may declare parameters
    local = dict(env)
    for stmt in node.body:
        pairs = []
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    pairs.append((target.id, stmt.value))
                elif (isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple)
                      and len(target.elts) == len(stmt.value.elts)
                      and all(isinstance(t, ast.Name) for t in target.elts)):
                    pairs += [(t.id, v) for t, v in zip(target.elts, stmt.value.elts)]
                else:
                    known = False
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None and isinstance(stmt.target, ast.Name):
            pairs.append((stmt.target.id, stmt.value))
        for name, value in pairs:
            try:
                if _is_param_call(value):
                    args = [_value(a, local) for a in value.args]
                    kwargs = {k.arg: _value(k.value, local) for k in value.keywords if k.arg is not None}
                    if len(kwargs) != len(value.keywords):
                        raise _NotLiteral
                    attrs[name] = Param(*args, **kwargs)
                else:
                    attrs[name] = local[name] = _value(value, local)
            except (_NotLiteral, TypeError):
                attrs.pop(name, None)
                if name not in META:  # an unreadable metadata string is not a parameter
                    known = False
    return attrs, known


def inspect_module(path: Path, file: str, cls_name: str, where: str) -> type[LocalModule]:
    """A :class:`LocalModule` stand-in for class ``cls_name`` of ``path``, read with ast."""
    try:
        size = path.stat().st_size
        if size > bound("file_bytes"):
            raise InputError(f"{where}: {file}: {size:,} bytes; allowed: {at_most('file_bytes')}")
        source = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise InputError(f"{where}: {file}: cannot be read ({e.strerror or type(e).__name__}); "
                         "allowed: a readable file") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{where}: {file}: not UTF-8 text (byte {e.start}); allowed: a UTF-8 Python file") from None
    try:
        tree = ast.parse(source, filename=file)
    except SyntaxError as e:
        raise InputError(f"{where}: {file}:{e.lineno}: not valid Python ({e.msg})") from None
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes, absurd nesting
        raise InputError(f"{where}: {file}: not valid Python ({type(e).__name__})") from None
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    policies = [n for n, c in classes.items() if _is_policy(c, classes)]
    if cls_name not in policies:
        raise InputError(f"{where}: {file} has no policy module class {cls_name!r}{did_you_mean(cls_name, policies)}; "
                         f"allowed: {', '.join(policies) or 'none found'}")
    env = {}
    for stmt in tree.body:  # module-level constants the class body may use
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                env[stmt.targets[0].id] = _value(stmt.value, env)
            except _NotLiteral:
                pass
    node = classes[cls_name]
    attrs, known = _read_class(node, classes, env)
    namespace = {k: v for k, v in attrs.items() if k in META and isinstance(v, (str, tuple))}
    namespace.update({k: v for k, v in attrs.items() if isinstance(v, Param)})
    namespace.update({"__doc__": ast.get_docstring(node), "__module__": f"{path.stem} (not run)",
                      "file": str(path), "params_known": known})
    return type(cls_name, (LocalModule,), namespace)

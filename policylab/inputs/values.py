"""Typed values: how a configurable field is declared (unit, meaning, source, bounds) and
how a value written in a file becomes that field's type. One coercion for scenarios,
venue overrides, rule sets and policy module parameters.

This module imports nothing from policylab, so that the policy module API can use it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from typing import Any


class Invalid(ValueError):
    """A value that does not fit: ``path`` (key path below the checked value), what was
    ``found`` and what is ``allowed``; ``str()`` is ``a.b: got X; allowed: Y``. ``text``
    replaces ``got X; allowed: Y`` where that does not fit (an unknown or missing key)."""

    def __init__(self, found: Any, allowed: str, path: tuple = (), text: str = ""):
        self.found, self.allowed, self.path, self.text = found, allowed, tuple(path), text
        super().__init__(self.message())

    def detail(self) -> str:
        """The message without its key path."""
        return self.text or f"got {shown(self.found)}; allowed: {self.allowed}"

    def message(self) -> str:
        where = keypath(self.path)
        return f"{where}: {self.detail()}" if where else self.detail()

    def below(self, *keys) -> "Invalid":
        """The same problem, seen from ``keys`` higher up."""
        return Invalid(self.found, self.allowed, (*keys, *self.path), self.text)


def unknown_key(key, allowed, what: str = "field") -> Invalid:
    """An unknown key, with the closest allowed name."""
    return Invalid(key, ", ".join(map(str, allowed)), (key,),
                   f"unknown {what}{did_you_mean(key, allowed)}; allowed: {', '.join(map(str, allowed))}")


def not_one_of(value, options, path: tuple = ()) -> Invalid:
    """A value that is not one of ``options`` (names), with the closest of them."""
    allowed = ", ".join(map(str, options))
    return Invalid(value, allowed, path, f"got {shown(value)}{did_you_mean(value, options)}; allowed: {allowed}")


def missing(key) -> Invalid:
    """A required key that is absent."""
    return Invalid(None, "required", (key,), "missing; required")


SHOWN_CHARS = 60  # an error quotes at most this much of a value, so it never echoes a file's content


def shown(value) -> str:
    """``repr(value)``, cut to SHOWN_CHARS characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def keypath(path) -> str:
    """``("venues", 0, "tiers")`` -> ``venues[0].tiers``."""
    return "".join(f"[{k}]" if isinstance(k, int) and not isinstance(k, bool) else f".{_key(k)}"
                   for k in path).lstrip(".")


def _key(key) -> str:
    """A key as shown in a key path: cut to 30 characters (a key can be any text)."""
    text = str(key)
    return text if len(text) <= 30 else text[:27] + "..."


def setting(default: Any = dataclasses.MISSING, *, unit: str, meaning: str, source: str = "",
            lo: float | None = None, hi: float | None = None, infinite: bool = False,
            factory: Any = dataclasses.MISSING):
    """A configurable dataclass field with its documentation and bounds as metadata:
    ``unit``, ``meaning``, ``source`` ("assumption" or "" where none), numeric bounds
    ``lo``/``hi`` (inclusive; for a list or mapping, of each number in it) and
    ``infinite`` (``.inf`` is a meaningful value, e.g. "never")."""
    meta = {"unit": unit, "meaning": meaning, "source": source, "lo": lo, "hi": hi, "infinite": infinite}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_types(cls) -> dict[str, Any]:
    """Field name -> resolved type annotation of a dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def as_number(v):
    """YAML 1.1 reads ``1e9`` as a string; accept numeric strings as numbers."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def number(value, *, integer: bool = False, infinite: bool = False):
    """``value`` as a float (or int): numbers and numeric strings, never bool, NaN, or
    infinity unless ``infinite``. Raises Invalid."""
    v = as_number(value)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Invalid(value, "an integer" if integer else "a number")
    if integer:
        if not math.isfinite(v):
            raise Invalid(v, "a finite integer")
        if not float(v).is_integer():
            raise Invalid(v, "an integer")
        return int(v)
    if math.isnan(v) or (math.isinf(v) and not (infinite and v > 0)):
        raise Invalid(v, "a finite number or .inf" if infinite else "a finite number")
    return float(v)


def in_bounds(v, meta: dict) -> None:
    """Raise Invalid if number ``v`` is outside the field's ``lo``/``hi`` metadata."""
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        if lo is not None and hi is not None:
            raise Invalid(v, f"{lo:g} to {hi:g}")
        raise Invalid(v, f">= {lo:g}" if lo is not None else f"<= {hi:g}")


def coerce(value, tp, meta: dict | None = None):
    """``value`` (as read from YAML) converted to type ``tp``: float, int, bool, str,
    ``tuple[X, ...]``, ``tuple[X, Y]``, ``dict[str, X]``, a dataclass (from a mapping, see
    :func:`build`), any other class (checked) or ``Any``. ``meta`` is the field metadata
    (:func:`setting`): its bounds apply to every number. Raises Invalid."""
    meta = meta or {}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise Invalid(value, "true or false")
        return value
    if tp in (int, float):
        v = number(value, integer=tp is int, infinite=meta.get("infinite", False))
        in_bounds(v, meta)
        return v
    if tp is str:
        if not isinstance(value, str):
            raise Invalid(value, "a string")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise Invalid(value, "a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_item(x, args[0], meta, i) for i, x in enumerate(value))
        if len(value) != len(args):
            raise Invalid(value, f"a list of {len(args)}")
        return tuple(_item(x, a, meta, i) for i, (x, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise Invalid(value, "a mapping")
        out = {}
        for k, x in value.items():
            if not isinstance(k, str):
                raise Invalid(k, "a name", (k,))
            out[k] = _item(x, args[1], meta, k)
        return out
    if dataclasses.is_dataclass(tp):
        return build(tp, value)
    if tp is not Any and isinstance(tp, type) and not isinstance(value, tp):
        raise Invalid(value, f"a {tp.__name__}")
    return value


def _item(x, tp, meta: dict, key):
    """Item ``key`` of a list or mapping, coerced; its errors name the key."""
    try:
        return coerce(x, tp, meta if tp in (int, float) else None)
    except Invalid as e:
        raise e.below(key) from None


def build(cls, data):
    """An instance of dataclass ``cls`` from a mapping: unknown keys (with the closest
    name), missing keys of fields without a default and every value checked by
    :func:`coerce`. Raises Invalid whose path names the key."""
    if not isinstance(data, dict):
        raise Invalid(data, "a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    types_ = field_types(cls)
    for key in data:
        if key not in fields:
            raise unknown_key(key, sorted(fields))
    for name, f in fields.items():
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise missing(name)
    kwargs = {}
    for name, value in data.items():
        try:
            kwargs[name] = coerce(value, types_[name], dict(fields[name].metadata))
        except Invalid as e:
            raise e.below(name) from None
    return cls(**kwargs)


def did_you_mean(name, options) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""

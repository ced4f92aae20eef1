"""Reading YAML input files: UTF-8 only, safe loading, duplicate keys rejected, and the
line of every key path, so that every error reads
``file:line: key.path: got X; allowed: Y`` (see :class:`Where`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from policylab.errors import InputError
from policylab.inputs.limits import BoundedComposer, Exceeded, at_most, bound, check_document
from policylab.inputs.values import Invalid, keypath, shown

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Duplicate(Exception):
    def __init__(self, key, first: int, line: int):
        super().__init__(key)
        self.key, self.first, self.line = key, first, line


class _Loader(BoundedComposer, yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (``<<`` merges may still
    be overridden, as YAML intends) and nesting beyond the depth bound (policylab.inputs.limits)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in first:
                        raise _Duplicate(key, first[key], key_node.start_mark.line + 1)
                    first[key] = key_node.start_mark.line + 1
                except TypeError:  # an unhashable key: SafeLoader reports it below
                    break
        return super().construct_mapping(node, deep=deep)


class Lines:
    """Where each key path of a document is written: path -> (file, 1-based line), and
    which paths hold mappings. A scenario that ``extends`` another merges the two
    (:meth:`over`), so a path is found in the file its value comes from."""

    def __init__(self, file: str, lines: dict[tuple, int] | None = None, mappings: set[tuple] | None = None):
        self.file = file
        self.entries: dict[tuple, tuple[str, int]] = {p: (file, n) for p, n in (lines or {}).items()}
        self.mappings: set[tuple] = set(mappings or ())

    def over(self, base: "Lines") -> "Lines":
        """These lines merged over ``base``'s the way the data merges: mappings merge, any
        other value replaces what ``base`` had below it."""
        merged = Lines(self.file)
        merged.entries = dict(self.entries)
        merged.mappings = set(self.mappings)
        for path, entry in base.entries.items():
            if path in self.entries:
                continue
            if all(path[:k] not in self.entries or path[:k] in self.mappings for k in range(1, len(path))):
                merged.entries[path] = entry
                if path in base.mappings:
                    merged.mappings.add(path)
        return merged

    def locate(self, path: tuple) -> tuple[str, int | None]:
        """(file, line) of ``path``, or of its closest ancestor that has one."""
        p = tuple(str(k) if not isinstance(k, int) or isinstance(k, bool) else k for k in path)
        while p and p not in self.entries:
            p = p[:-1]
        return self.entries.get(p, (self.file, None))


def _lines_of(node) -> tuple[dict[tuple, int], set[tuple]]:
    """(key path -> line, paths of mappings), walking each node once in document order: a
    path through an alias is located at the anchored node, not walked again."""
    out: dict[tuple, int] = {}
    mappings: set[tuple] = set()
    seen: set[int] = set()
    stack = [((), node)]
    while stack:
        path, n = stack.pop()
        out.setdefault(path, n.start_mark.line + 1)
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            mappings.add(path)
            for k, v in reversed(n.value):  # reversed: the stack walks in document order
                if isinstance(k, yaml.ScalarNode):
                    out.setdefault(path + (k.value,), k.start_mark.line + 1)
                    stack.append((path + (k.value,), v))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((path + (i,), v) for i, v in reversed(list(enumerate(n.value))))
    return out, mappings


def read_text(path: Path, where: str) -> str:
    """A file's text; a file that cannot be read, is over the size bound or is not UTF-8
    is an InputError (naming the reason, size or byte offset, never the content)."""
    try:
        size = path.stat().st_size
        if size > bound("file_bytes"):
            raise InputError(f"{where}: {size:,} bytes; allowed: {at_most('file_bytes')}")
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{where}: cannot be read ({e.strerror or type(e).__name__}); "
                         "allowed: a readable file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{where}: not UTF-8 text (byte {e.start}); allowed: a UTF-8 encoded YAML file") from None


def parse(text: str, where: str):
    """(data, Lines) of a YAML document. Invalid YAML, a scalar YAML cannot construct
    (``2021-02-30``), a duplicate key and a document over the bounds of
    policylab.inputs.limits (checked before anything is constructed) are InputErrors
    with the file and line."""
    try:
        loader = _Loader(text)  # the reader refuses control characters (NUL) right away
    except yaml.YAMLError as e:
        raise InputError(f"{where}: not valid YAML ({getattr(e, 'reason', None) or 'unreadable'}); "
                         "allowed: printable UTF-8 text") from None
    try:
        node = loader.get_single_node()
        check_document(node)
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"{mark.line + 1}:" if mark else ""
        raise InputError(f"{where}:{line} not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except Exceeded as e:
        head = f"{where}:{e.line}" if e.line else where
        raise InputError(f"{head}: {keypath(e.path) + ': ' if e.path else ''}{e.detail}") from None
    except _Duplicate as e:
        raise InputError(f"{where}:{e.line}: {e.key}: duplicate key (first on line {e.first}); "
                         "allowed: each key once per mapping") from None
    except ValueError as e:  # a scalar YAML cannot construct, e.g. the date 2021-02-30
        raise InputError(f"{where}:{_unconstructible_line(text)} not valid YAML ({e})") from None
    finally:
        loader.dispose()
    return data, Lines(where, *(_lines_of(node) if node is not None else ({}, set())))


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


class Where:
    """A place in an input file: its key path and the document's lines.
    ``str()`` is ``file:line: key.path``; ``where / key`` is a place below."""

    def __init__(self, lines: Lines | str, path: tuple = ()):
        self.lines = lines if isinstance(lines, Lines) else Lines(lines)
        self.path = tuple(path)

    def __truediv__(self, key) -> "Where":
        return Where(self.lines, self.path + (key,))

    def __str__(self) -> str:
        file, line = self.lines.locate(self.path)
        head = f"{file}:{line}" if line else file
        keys = keypath(self.path)
        return f"{head}: {keys}" if keys else head

    def fail(self, text: str) -> InputError:
        """An InputError ``file:line: key.path: text``."""
        return InputError(f"{self}: {text}")

    def bad(self, found, allowed: str) -> InputError:
        """An InputError ``file:line: key.path: got X; allowed: Y``."""
        return self.fail(f"got {shown(found)}; allowed: {allowed}")

    def invalid(self, e: Invalid) -> InputError:
        """An :class:`Invalid` raised below this place, located."""
        return Where(self.lines, self.path + e.path).fail(e.detail())

    def check(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, its Invalid turned into a located InputError."""
        try:
            return fn(*args, **kwargs)
        except Invalid as e:
            raise self.invalid(e) from None

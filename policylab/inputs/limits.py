"""The bounds every input file is held to, declared once with their reasons.

The YAML layer (:mod:`policylab.inputs.yaml`) enforces the document bounds while it
reads a file: its size before decoding, nesting depth while composing (so the
recursive composer never nears Python's recursion limit), and, in one linear pass over
the composed node graph, the size of the document with every alias expanded (a
billion-laughs file is refused before anything is constructed), list and string
lengths. The loaders enforce the semantic bounds (modules per rule set, venues per
scenario, money per venue, venue names). Every violation is one line naming the file,
line and key path, what was found and the bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class Limit:
    """One bound: its value, unit, what it bounds and why it is set where it is."""

    value: float
    unit: str
    what: str
    reason: str


LIMITS: dict[str, Limit] = {
    "file_bytes": Limit(
        256 * 1024, "bytes", "size of a scenario, rule set or local policy module file",
        "the largest shipped file is about 4 kB; the pure-Python YAML reader takes about a second per 256 kB, "
        "so every file is accepted or refused within seconds"),
    "depth": Limit(
        32, "levels", "nesting of mappings and lists",
        "shipped files nest 4 levels deep; the YAML composer recurses once per level and must stay far below "
        "Python's recursion limit"),
    "nodes": Limit(
        100_000, "values", "values in one document, an alias counted again at every use",
        "a billion-laughs file expands to 10^9 values from a few hundred bytes; the largest shipped file has "
        "about 300"),
    "list_items": Limit(
        10_000, "items", "items in one list or keys in one mapping",
        "no setting needs more; bounds the work done per list"),
    "string_chars": Limit(
        10_000, "characters", "length of one string (key or value)",
        "the longest shipped description has under 1,000 characters"),
    "modules": Limit(
        100, "modules", "policy modules in one rule set",
        "the shipped rule sets have at most 6; every module is resolved and checked, and all act every step"),
    "venues": Limit(
        50, "venues", "venues in one scenario",
        "the shipped scenarios have at most 9; per-venue metrics and tables grow with the count"),
    "usd_per_venue": Limit(
        1e13, "USD", "open interest, depth, insurance fund and vault capital of one venue; market-maker and "
                     "arbitrage capital per venue; institutional holdings",
        "100 times the whole BTC derivatives market's open interest (about 1e11 USD in 2025); float64 keeps "
        "money sums at this size to well under a cent per step, so the conservation audit holds"),
    "depth_usd_min": Limit(
        1e5, "USD", "smallest +/-1% depth of a venue's book",
        "shipped venues have at least 1e7 USD; a book thinner than this lets one account's order move the price "
        "by orders of magnitude and the run leaves float range"),
    "usd_per_depth": Limit(
        1_000, "times the venue's +/-1% depth", "open interest of a derivatives venue",
        "shipped scenarios reach 150; at 10,000 a liquidation wave's square-root impact compounds until prices "
        "overflow (tests/test_conservation.py's scale test finds it)"),
    "usd_per_spot_depth": Limit(
        10_000, "times the spot venue's +/-1% depth", "open interest of all venues plus institutional holdings "
                                                     "(basis hedges and institutional selling trade on spot)",
        "shipped scenarios reach about 1,100; a spot book far thinner than the hedges and holdings that trade "
        "on it drives the index to zero or overflow"),
    "venue_name_chars": Limit(
        64, "characters", "length of a venue name", "venue names become metric names and table columns"),
}

VENUE_NAME = re.compile(r"[A-Za-z0-9_-]+")
VENUE_NAME_ALLOWED = "letters, digits, '-' and '_' (not empty, no '.')"
USD_PER_VENUE_FIELDS = ("open_interest_usd", "depth_usd", "insurance_fund_usd", "vault_capital_usd")
USD_SCENARIO_FIELDS = ("market_maker_capital_usd", "arbitrage_capital_usd")


def bound(name: str) -> int | float:
    """The value of limit ``name``."""
    return LIMITS[name].value


def at_most(name: str) -> str:
    """``at most N unit``, for messages."""
    lim = LIMITS[name]
    value = f"{lim.value:g}" if lim.value >= 1e7 else f"{lim.value:,.0f}"
    return f"at most {value} {lim.unit}"


class Exceeded(Exception):
    """A document over a bound: where (line, key path) and the message tail."""

    def __init__(self, line: int | None, path: tuple, detail: str):
        super().__init__(detail)
        self.line, self.path, self.detail = line, path, detail


class BoundedComposer:
    """Mixin for a PyYAML loader: refuses nesting deeper than the depth bound while
    composing (before recursion goes any deeper)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > bound("depth"):
                mark = self.peek_event().start_mark
                raise Exceeded(mark.line + 1, (), f"nesting deeper than {bound('depth'):.0f} levels; "
                                                  f"allowed: {at_most('depth')}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def check_document(root) -> None:
    """One pass over a composed YAML node graph (each node visited once): the document
    as expanded (aliases counted at every use) stays within the node bound, lists,
    mappings and strings within theirs, and no alias refers to a node containing it."""
    if root is None:
        return
    size: dict[int, int] = {}  # id -> expanded size, once finished
    open_: set[int] = set()  # nodes being visited (a recursive alias comes back to one)
    stack = [(root, (), False)]
    while stack:
        node, path, done = stack.pop()
        key = id(node)
        if done:
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for _, c in children)
            open_.discard(key)
            if size[key] > bound("nodes"):
                raise Exceeded(node.start_mark.line + 1, path,
                               f"{size[key]:,} values with aliases expanded; allowed: {at_most('nodes')}")
            continue
        if key in size:
            continue
        if key in open_:
            raise Exceeded(node.start_mark.line + 1, path, "an alias refers to a node that contains it; "
                                                           "allowed: aliases to finished nodes only")
        open_.add(key)
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > bound("string_chars"):
                raise Exceeded(node.start_mark.line + 1, path,
                               f"a string of {len(node.value):,} characters; allowed: {at_most('string_chars')}")
        elif len(node.value) > bound("list_items"):
            what = "items" if isinstance(node, yaml.SequenceNode) else "keys"
            raise Exceeded(node.start_mark.line + 1, path,
                           f"{len(node.value):,} {what}; allowed: {at_most('list_items')}")
        stack.append((node, path, True))
        stack.extend((c, path + (k,), False) for k, c in reversed(_children(node)) if id(c) not in size)


def _children(node) -> list[tuple[object, object]]:
    """(key path element, child node) of a node: keys and values of a mapping, items of a list."""
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    if isinstance(node, yaml.MappingNode):
        out = []
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else "?"
            out += [(name, k), (name, v)]
        return out
    return []


def venue_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a venue name (None: it can)."""
    if not VENUE_NAME.fullmatch(name):
        return f"got {name!r}; allowed: {VENUE_NAME_ALLOWED}"
    if len(name) > bound("venue_name_chars"):
        return f"a name of {len(name)} characters; allowed: {at_most('venue_name_chars')}"
    return None


def usd_problem(value: float) -> str | None:
    """Why ``value`` (USD of one venue) is out of bounds (None: it is not)."""
    if not value <= bound("usd_per_venue"):  # NaN and infinity too
        return f"got {value:g}; allowed: {at_most('usd_per_venue')} per venue"
    return None

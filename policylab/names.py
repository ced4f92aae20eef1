"""The vocabulary: every name the rest of the package lists, declared once.

Everything that used to spell out a list (trader classes and their groups, jurisdictions,
event kinds, random-stream purposes) reads it from here. Venue kinds and their groups
(derivatives, offshore, spot) follow from the archetypes' properties:
:mod:`policylab.venues.archetypes`.
"""

from __future__ import annotations

import re
import zlib

# Account classes, in code order (TraderBook.cls holds the index).
CLASSES = ("retail", "professional", "basis", "market_maker", "arbitrageur", "institutional", "vault")
RETAIL, PRO, BASIS, MM, ARB, INST, VAULT = range(len(CLASSES))
PROTOCOL_CLASSES = (MM, VAULT)  # book and backstop accounts: never liquidated
VENUE_CLASSES = (MM, ARB, VAULT)  # the venues' own rows (books, arbitrage desks, backstop vaults), not in a scenario's population

# Trader classes a scenario's population configures, each one trader population, in the
# order their rows are drawn (retail, professional, basis, institutional).
CONFIGURABLE_CLASSES = tuple(c for i, c in enumerate(CLASSES) if i not in VENUE_CLASSES)
SPOT_CLASSES = (CLASSES[INST],)  # configurable classes that hold spot BTC (on the spot venue), not derivatives
DERIVATIVES_CLASSES = tuple(c for c in CONFIGURABLE_CLASSES if c not in SPOT_CLASSES)  # choose a derivatives venue
LIQUIDABLE_CLASSES = tuple(c for i, c in enumerate(CLASSES) if i not in PROTOCOL_CLASSES)  # classes that can be liquidated

# Jurisdictions of residence (TraderBook.juris holds the index); "other" is the rest of the world.
JURISDICTIONS = ("US", "EU", "UK", "JP", "other")

# Groups of the leverage an account chose before any rule bound it (TraderBook.lev_chosen,
# x): "1-2" is below 2x (1x included), "100+" is 100x and above; each group's lower bound.
LEVERAGE_GROUPS = ("1-2", "2-5", "5-10", "10-25", "25-100", "100+")
LEVERAGE_GROUP_FLOORS = (1.0, 2.0, 5.0, 10.0, 25.0, 100.0)

# What the liquidation engine records, one event per row.
EVENT_KINDS = ("liquidation", "partial", "backstop", "adl", "adl_counterparty", "stop")

# ------------------------------------------------------------------ random streams
# Every random stream is keyed by its purpose (policylab.engine.streams.stream), and a
# stream is fixed by (seed, stream_key(purpose)): two purposes with the same key would
# draw the same numbers. So each purpose is declared once, here or by an extension
# through declare_stream / declare_choice_draw, and stream() refuses undeclared ones.
# Per-account choice draws (MarketModel.choice_draw) use the purpose "choice:<name>".
_BUILTIN_STREAMS = (
    ("exogenous", "the exogenous fundamental price path (engine/exogenous.py)"),
    ("population", "the joint starting draw: venues, jurisdictions, KYC, leverage, stops, positions (populations/draw.py)"),
    ("account_age", "account ages at the start (populations/draw.py)"),
    ("market_makers", "which traders in profit take the market makers' skewed quotes when they lay off inventory (engine/venue_agents.py)"),
    ("occupancy", "which accounts hold a position at the start, by their stationary occupancy (populations/draw.py)"),
    *((c, f"the {c} population's behaviour: who trades each step, sides and sizes") for c in CONFIGURABLE_CLASSES),
    *((f"refill:{c}", f"when wiped-out {c} accounts are taken over by new traders (populations/base.py)")
      for c in CONFIGURABLE_CLASSES),
    ("choice:gumbel", "venue-choice taste shocks, one per account and venue (engine/choice.py)"),
    ("choice:geo_evasion", "which targeted accounts still reach blocked offshore venues (listed-venue requirement, offshore blocking)"),
    ("choice:kyc_refuse", "which unverified accounts refuse to verify when a venue requires KYC (mandatory KYC)"),
)

STREAMS: dict[str, str] = {}  # purpose -> what draws from it
_NAMESPACE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_RESERVED = ("choice", "refill")  # prefixes of the built-in purposes


def stream_key(purpose: str) -> int:
    """The 32-bit key (CRC-32 of the UTF-8 purpose) that spawns a purpose's stream from the seed."""
    return zlib.crc32(purpose.encode())


def _declare(purpose: str, description: str) -> str:
    """Record ``purpose``; a purpose declared twice or with the key of another is an error."""
    if purpose in STREAMS:
        raise ValueError(f"random stream {purpose!r} is declared twice ({STREAMS[purpose]!r}; {description!r})")
    key = stream_key(purpose)
    clash = next((p for p in STREAMS if stream_key(p) == key), None)
    if clash is not None:
        raise ValueError(f"random stream {purpose!r} has the same key as {clash!r} (CRC-32 {key}): choose another name")
    STREAMS[purpose] = description
    return purpose


for _purpose, _description in _BUILTIN_STREAMS:
    _declare(_purpose, _description)
del _purpose, _description


def _extension(prefix: str, namespace: str, purpose: str, description: str) -> str:
    if not _NAMESPACE.match(namespace) or namespace in _RESERVED or not purpose:
        raise ValueError(f"random stream namespace {namespace!r}, purpose {purpose!r}: allowed: a namespace "
                         f"like my_module or my_package.tax (not {' or '.join(_RESERVED)}) and a non-empty purpose")
    name = f"{prefix}{namespace}:{purpose}"
    if STREAMS.get(name) != description:  # the same declaration again (a module file loaded twice) is fine
        _declare(name, description)
    return f"{namespace}:{purpose}"


def declare_stream(namespace: str, purpose: str, description: str) -> str:
    """Declare an extension's own random stream and return its purpose ``"<namespace>:<purpose>"``
    (pass it to ``policylab.engine.streams.stream``). Use your module's or package's name as
    ``namespace`` so that no two extensions collide. Declaring the same stream again with the
    same description (a module file loaded twice) is allowed; any other duplicate or key
    collision is a ValueError."""
    return _extension("", namespace, purpose, description)


def declare_choice_draw(namespace: str, purpose: str, description: str) -> str:
    """Declare an extension's own per-account choice draw and return the name to pass to
    ``model.choice_draw(idx, name)``, ``"<namespace>:<purpose>"`` (its stream's purpose is
    ``"choice:<namespace>:<purpose>"``). Same rules as :func:`declare_stream`."""
    return _extension("choice:", namespace, purpose, description)

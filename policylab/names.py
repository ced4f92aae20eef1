"""The vocabulary: every name the rest of the package lists, declared once.

Everything that used to spell out a list (trader classes and their groups, jurisdictions,
event kinds) reads it from here. Venue kinds and their groups
(derivatives, offshore, spot) follow from the archetypes' properties:
:mod:`policylab.venues.archetypes`.
"""

from __future__ import annotations

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

# What the liquidation engine records, one event per row.
EVENT_KINDS = ("liquidation", "partial", "backstop", "adl", "adl_counterparty", "stop")


"""The vocabulary: every name the rest of the package lists, declared once.

Everything that used to spell out a list (trader classes, jurisdictions, event kinds)
reads it from here.
"""

from __future__ import annotations

# Account classes, in code order (TraderBook.cls holds the index). The first four are
# trader populations a scenario can configure; the last three are the venues' own rows.
CLASSES = ("retail", "professional", "basis", "market_maker", "arbitrageur", "institutional", "vault")
RETAIL, PRO, BASIS, MM, ARB, INST, VAULT = range(len(CLASSES))
PROTOCOL_CLASSES = (MM, VAULT)  # book and backstop accounts: never liquidated

# Jurisdictions of residence (TraderBook.juris holds the index); "other" is the rest of the world.
JURISDICTIONS = ("US", "EU", "UK", "JP", "other")

# What the liquidation engine records, one event per row.
EVENT_KINDS = ("liquidation", "partial", "backstop", "adl", "adl_counterparty", "stop")

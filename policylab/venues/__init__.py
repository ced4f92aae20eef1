"""Venues: the rules a venue runs (``VenueRules``, every field with unit, meaning and
source) and the archetypes scenarios build venues from.

Add a venue archetype here: one entry in :data:`archetypes.ARCHETYPES` (its defaults
and sources). Its groups (derivatives, offshore, spot) follow from its properties.
"""

from policylab.venues.archetypes import ARCHETYPES, KINDS, make_venue
from policylab.venues.rules import ADL_RANKINGS, MARK_PRICES, Tier, VenueRules

__all__ = ["ADL_RANKINGS", "ARCHETYPES", "KINDS", "MARK_PRICES", "Tier", "VenueRules", "make_venue"]


def __getattr__(name: str):
    """``JURISDICTIONS`` lived here before 0.2; it is in :mod:`policylab.names` now."""
    if name == "JURISDICTIONS":
        import warnings

        from policylab.names import JURISDICTIONS

        warnings.warn("policylab.venues.JURISDICTIONS is deprecated and will be removed in policylab 0.3; "
                      "import it from policylab.names", DeprecationWarning, stacklevel=2)
        return JURISDICTIONS
    raise AttributeError(f"module 'policylab.venues' has no attribute {name!r}")

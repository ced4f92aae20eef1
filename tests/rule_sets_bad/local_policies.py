"""Helpers for the malformed rule set corpus: one valid module, one class that is not a Policy."""

from policylab.policies.api import Param, Policy


class MarginBuffer(Policy):
    """Raises maintenance margin on offshore venues."""

    name, title, source = "margin_buffer", "Margin buffer", "test corpus"
    default_venues = ("offshore_dex",)
    level = Param(0.6, "share of initial margin", "maintenance ratio", "test corpus", lo=0.01, hi=1.0)

    def venue_rules(self, venue):
        return {"maintenance_ratio": self.level}


class NotAPolicy:
    """Has the right name shape, but is not a policylab Policy."""

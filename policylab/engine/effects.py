"""The per-run effects ledger: how often each configured policy module took effect, and
which venues each module created.

A module is keyed by its position among the run's configured modules (rule sets in the
order given, modules in file order), so the same module class configured twice, or two
rule sets of the same name, are counted apart. Modules themselves hold no run state; every
place where a rule binds (engine/apply_rules.py, model.py) credits this ledger, and
``MarketModel.warnings`` reads it.
"""

from __future__ import annotations


class Effects:
    """Counts of "took effect" per configured module of one run.

    Args:
        policies: the run's configured modules, in order.
    """

    def __init__(self, policies) -> None:
        self.policies = list(policies)
        self._position = {id(p): i for i, p in enumerate(self.policies)}
        self.counts = [0] * len(self.policies)  # times each module bound, by position
        self.created: list[list[str]] = [[] for _ in self.policies]  # names of the venues each module added

    def _key(self, policy) -> int:
        return self._position[id(policy)]

    def credit(self, policy) -> None:
        """Record that ``policy`` took effect once more."""
        self.counts[self._key(policy)] += 1

    def record_created(self, policy, venue: str) -> None:
        """Record that ``policy`` added the venue named ``venue`` to the run."""
        self.created[self._key(policy)].append(venue)

    def venues_created_by(self, policy) -> list[str]:
        """Names of the venues ``policy`` added to the run."""
        return self.created[self._key(policy)]

    def count(self, policy) -> int:
        """Times ``policy`` took effect so far in the run."""
        return self.counts[self._key(policy)]

    def never(self) -> list:
        """The configured modules that have not taken effect, in order."""
        return [p for p, n in zip(self.policies, self.counts) if n == 0]

"""Trader populations: one file per population, with its parameters, its starting draw
and its behaviour. Add a population here: one file and one registry entry.
"""

from policylab.populations.base import TraderPopulation
from policylab.populations.basis import BasisTraders
from policylab.populations.institutional import InstitutionalHolders
from policylab.populations.professional import Professionals
from policylab.populations.retail import RetailSpeculators

# Trader class name (as in scenario files, names.CONFIGURABLE_CLASSES) -> the population
# class that owns its rows.
POPULATIONS: dict[str, type[TraderPopulation]] = {
    p.name: p for p in (RetailSpeculators, Professionals, BasisTraders, InstitutionalHolders)}

__all__ = ["POPULATIONS", "BasisTraders", "InstitutionalHolders", "Professionals", "RetailSpeculators", "TraderPopulation"]

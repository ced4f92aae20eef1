"""Venue groups the built-in modules target by default: derived from the archetypes'
properties (:mod:`policylab.venues.archetypes`), so a new derivatives archetype is in
``DERIVATIVES`` without a change here."""

from policylab.venues.archetypes import DERIVATIVE_KINDS as DERIVATIVES, OFFSHORE_KINDS as OFFSHORE

__all__ = ["DERIVATIVES", "OFFSHORE"]

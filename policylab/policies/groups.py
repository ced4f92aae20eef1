"""Venue groups the built-in modules target by default."""

DERIVATIVES = ("offshore_dex", "offshore_pool", "offshore_cex", "eu_broker", "us_regulated")
OFFSHORE = ("offshore_dex", "offshore_pool", "offshore_cex")

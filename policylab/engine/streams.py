"""Random streams split by purpose, so that one component drawing more or less often
does not shift any other (common random numbers across rule sets)."""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, purpose: str) -> np.random.Generator:
    """An independent generator for ``purpose`` (e.g. "exogenous", "population", "retail")."""
    key = zlib.crc32(purpose.encode())
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=(key,)))

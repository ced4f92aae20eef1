"""Random streams split by purpose, so that one component drawing more or less often
does not shift any other (common random numbers across rule sets). Every purpose is
declared once in :mod:`policylab.names` (``STREAMS``); extensions declare theirs with
``declare_stream`` or ``declare_choice_draw``."""

from __future__ import annotations

import numpy as np

from policylab import names


def stream(seed: int, purpose: str) -> np.random.Generator:
    """An independent generator for the declared ``purpose`` (e.g. "exogenous", "population",
    "retail"); an undeclared purpose is a ValueError."""
    if purpose not in names.STREAMS:
        raise ValueError(f"random stream {purpose!r} is not declared; allowed: {', '.join(names.STREAMS)}, "
                         "or your own, declared once with policylab.names.declare_stream(namespace, purpose, "
                         "description) (declare_choice_draw for model.choice_draw)")
    key = names.stream_key(purpose)
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=(key,)))

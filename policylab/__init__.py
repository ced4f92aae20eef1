"""policylab: what market rules would do to crypto derivatives markets, simulated.

The package's map (data flows one way, top to bottom):

- ``names``: the vocabulary (trader classes, jurisdictions, venue kinds, event kinds,
  random-stream purposes);
- ``venues/``: venue rules with field metadata, and the archetypes;
- ``inputs/``: reading scenario and rule set files (``scenarios/*.yaml`` ship here);
- ``policies/``: the policy-module API and the built-in modules;
- ``populations/``: one file per trader population;
- ``engine/``: books, market, margin, liquidation, kernels, exogenous path, the
  venues' agents, applying rules to accounts, audit; replay and reference oracles;
- ``model``: the composition root and the step order;
- ``metrics/``: each outcome declared next to its computation;
- ``experiments/``: one run, compare, sweep, resume, backends, statistics;
- ``validation/``: calibration targets, stylized facts, price data;
- ``brief/``: the impact brief, from a results folder;
- ``cli/``: the command line.

The top-level names are loaded lazily: ``import policylab`` loads neither the engine
nor Numba nor pandas.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

_LAZY = {
    "run": ("policylab.experiments.run", "run"),
    "compare": ("policylab.experiments.compare", "compare"),
    "sweep": ("policylab.experiments.sweep", "sweep"),
    "load_scenario": ("policylab.inputs.scenario", "load_scenario"),
    "load_rules": ("policylab.inputs.rulesets", "load_rules"),
    "write_brief": ("policylab.brief.render", "write_brief"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'policylab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

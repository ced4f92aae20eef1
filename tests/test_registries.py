"""Every registry entry is run by the tests (Mesa runs every example the same way): each venue
archetype, each trader population and each built-in policy module builds and runs a short,
audited model. A new entry is picked up here without touching this file.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from policylab.inputs.rulesets import load_rules
from policylab.inputs.scenario import load_scenario
from policylab.model import MarketModel
from policylab.policies.registry import BUILTIN
from policylab.populations import POPULATIONS
from policylab.venues import ARCHETYPES

SPOT = {"name": "spot", "kind": "spot_etf", "depth_usd": 1.0e8}
CRASH = [{"kind": "price", "start_minute": 10, "duration_minutes": 10, "size": -0.12},
         {"kind": "liquidity", "start_minute": 10, "duration_minutes": 15, "depth_multiplier": 0.4}]


def scenario_file(tmp_path, venues, classes, minutes=60, name="smoke"):
    data = {"name": name, "start_price": 100_000, "duration_minutes": minutes, "sigma_daily": 0.03,
            "venues": venues, "population": {"traders": 400, "real_accounts": 40_000, "classes": classes},
            "shocks": CRASH}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_scenario(str(path))


def run_audited(scenario, rules=(), before=None):
    """Build, let ``before(model)`` look at the starting state, run with the money audit on."""
    model = MarketModel(scenario, seed=3, audit=True, rules=rules)  # money checked after every step
    if before is not None:
        before(model)
    model.run()
    return model


LEVERAGED = {"retail": {"share": 0.8, "oi_share": 0.6, "leverage_median": 10, "activity_per_minute": 0.05,
                        "long_share": 0.7},
             "professional": {"share": 0.2, "oi_share": 0.4, "leverage_median": 5, "activity_per_minute": 0.05}}


@pytest.mark.parametrize("kind", sorted(k for k, a in ARCHETYPES.items() if k != "spot_etf"))
def test_every_venue_archetype_runs(tmp_path, kind):
    venue = {"name": "venue", "kind": kind, "open_interest_usd": 1.0e9, "depth_usd": 5.0e7}
    model = run_audited(scenario_file(tmp_path, [venue, SPOT], LEVERAGED))
    v = model.vb.names.index("venue")
    assert model.vb.rules[v].kind == kind
    assert np.nansum(model.venue_series["volume_usd"][:, v]) > 0, "nobody traded on the archetype's venue"


POPULATION_CLASSES = {  # each population alone, or with the counterparty it needs (basis traders are all short)
    "retail": {"retail": {"share": 1.0, "oi_share": 1.0, "leverage_median": 10, "activity_per_minute": 0.05}},
    "professional": {"professional": {"share": 1.0, "oi_share": 1.0, "leverage_median": 5, "activity_per_minute": 0.05}},
    "basis": {"basis": {"share": 0.5, "oi_share": 0.5, "leverage_median": 3},
              "retail": {"share": 0.5, "oi_share": 0.5, "leverage_median": 5, "long_share": 1.0}},
    "institutional": {"institutional": {"share": 1.0, "holdings_usd": 1.0e10, "outflow_per_minute": 0.01}},
}


@pytest.mark.parametrize("name", sorted(POPULATIONS))
def test_every_population_runs(tmp_path, name):
    venues = [{"name": "dex", "kind": "offshore_dex", "open_interest_usd": 1.0e9, "depth_usd": 5.0e7}, SPOT]
    classes = POPULATION_CLASSES.get(name, {name: {"share": 1.0, "oi_share": 1.0}})

    def holds_something(model):
        agents = [a for a in model.populations if isinstance(a, POPULATIONS[name])]
        assert len(agents) == 1 and len(agents[0].rows) > 0
        rows = agents[0].rows
        assert np.any(model.tb.size[rows] != 0), "the starting draw gave the population no positions"

    model = run_audited(scenario_file(tmp_path, venues, classes), before=holds_something)
    assert model.steps == 60


@pytest.mark.parametrize("module", sorted(BUILTIN))
def test_every_builtin_policy_module_runs(tmp_path, module):
    """Each module with its default parameters and default target, on a venue of every archetype."""
    venues = [{"name": k.replace("_", "-"), "kind": k, "open_interest_usd": 5.0e8, "depth_usd": 3.0e7}
              for k in sorted(ARCHETYPES) if k != "spot_etf"] + [SPOT]
    sc = scenario_file(tmp_path, venues, LEVERAGED)
    rules_path = tmp_path / "smoke-rules.yaml"
    rules_path.write_text(yaml.safe_dump({"name": f"smoke-{module}", "title": f"{module} with defaults",
                                          "modules": [{"module": module}]}))
    rules = load_rules(str(rules_path))
    model = run_audited(sc, rules=[rules])
    assert [p.name for p in model.policies] == [module]
    assert model.steps == sc.steps

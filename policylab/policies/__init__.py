"""Policy modules: the API (``Policy``, ``Param``, ``Target``) and the built-in modules.

A *policy module* is a Python class (a rule mechanism with typed parameters); a *rule
set* is a YAML file in the repository's ``policies/`` folder (installed as
``policylab.rulesets``) that configures modules with sources.

    from policylab.policies import Policy, Param, Target

imports neither the engine nor Numba nor pandas.
"""

from policylab.policies.api import (ACCOUNT_HOOKS, MERGE, Param, Policy, PolicyError, Target, describe_class,
                                    merge_venue_rules)

__all__ = ["ACCOUNT_HOOKS", "MERGE", "Param", "Policy", "PolicyError", "Target", "describe_class", "merge_venue_rules"]

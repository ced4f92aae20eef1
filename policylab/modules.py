"""Deprecated: the built-in modules moved to :mod:`policylab.policies` (one file per family,
listed in :mod:`policylab.policies.registry`) in 0.2; this alias is removed in 0.3."""

import warnings

from policylab.policies.groups import DERIVATIVES, OFFSHORE  # noqa: F401
from policylab.policies.registry import *  # noqa: F401,F403  (BUILTIN and every built-in class)

warnings.warn("policylab.modules is deprecated and will be removed in policylab 0.3; import from policylab.policies instead",
              DeprecationWarning, stacklevel=2)

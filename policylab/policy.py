"""Deprecated alias of :mod:`policylab.policies.api` (the module moved in 0.2; this alias is removed in 0.3).

Import from ``policylab.policies`` instead.
"""

import sys
import warnings

import policylab.policies.api as _moved

warnings.warn("policylab.policy is deprecated and will be removed in policylab 0.3; import from policylab.policies instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved

"""Deprecated alias of :mod:`policylab.inputs.scenario` (the module moved in 0.2; this alias is removed in 0.3).

Import from ``policylab.inputs.scenario`` instead.
"""

import sys
import warnings

import policylab.inputs.scenario as _moved

warnings.warn("policylab.scenario is deprecated and will be removed in policylab 0.3; import from policylab.inputs.scenario instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved

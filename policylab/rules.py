"""Deprecated alias of :mod:`policylab.inputs.rulesets` (the module moved in 0.2; this alias is removed in 0.3).

Import from ``policylab.inputs.rulesets`` instead.
"""

import sys
import warnings

import policylab.inputs.rulesets as _moved

warnings.warn("policylab.rules is deprecated and will be removed in policylab 0.3; import from policylab.inputs.rulesets instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved

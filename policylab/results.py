"""Deprecated alias of :mod:`policylab.experiments.run` (the module moved in 0.2; this alias is removed in 0.3).

Import from ``policylab.experiments.run`` instead.
"""

import sys
import warnings

import policylab.experiments.run as _moved

warnings.warn("policylab.results is deprecated and will be removed in policylab 0.3; import from policylab.experiments.run instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved

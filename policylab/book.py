"""Deprecated alias of :mod:`policylab.engine.book` (the module moved in 0.2; this alias is removed in 0.3).

Import from ``policylab.engine.book`` instead.
"""

import sys
import warnings

import policylab.engine.book as _moved

warnings.warn("policylab.book is deprecated and will be removed in policylab 0.3; import from policylab.engine.book instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved

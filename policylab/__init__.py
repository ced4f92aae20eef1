"""policylab: what market rules would do to crypto derivatives markets, simulated."""

__version__ = "0.1.0"

from .experiment import compare  # noqa: E402  (the package version is needed by experiment)
from .sweep import sweep  # noqa: E402

__all__ = ["__version__", "compare", "sweep"]

"""policylab: what market rules would do to crypto derivatives markets, simulated."""

__version__ = "0.1.0"

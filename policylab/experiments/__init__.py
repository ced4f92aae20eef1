"""Experiments: one run and its tables, the invariants every run is checked against,
comparisons of rule sets on common seeds, sweeps, staging for --resume, the manifest, execution backends and statistics.

Add an execution backend in :mod:`policylab.experiments.backends` (one class, one
registry entry).
"""

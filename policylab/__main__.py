"""``python -m policylab``: the command line (see :mod:`policylab.cli`)."""

from .cli import main

main()

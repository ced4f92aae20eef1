"""``python -m policylab``: the command line (see :mod:`policylab.cli`)."""

from policylab.cli.main import main

main()

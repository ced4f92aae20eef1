"""The command line: ``policylab`` and its subcommands, one file per command group."""

from policylab.cli.main import cli, main

__all__ = ["cli", "main"]

"""Options shared by several commands."""

from __future__ import annotations

import click

from policylab.inputs.local_modules import ENV

ALLOW_LOCAL_MODULES = click.option(
    "--allow-local-modules", is_flag=True,
    help=f"Let rule set files run the local Python modules they name (module: file.py:Class); "
         f"each file is named on stderr before it runs. Also: {ENV}=1.")

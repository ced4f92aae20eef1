"""Venue choice: real trader accounts the rules moved to another venue or out of trading."""

from __future__ import annotations

from policylab.metrics.api import NEUTRAL, Run, Section

SECTION = Section("venue_choice", "Where activity went")


@SECTION.metric("accounts_moved", "accounts", "real trader accounts that changed venue because of the rules", NEUTRAL)
def accounts_moved(run: Run) -> float:
    return run.tb.weight[run.tb.moved].sum()


@SECTION.metric("accounts_quit", "accounts",
                "real trader accounts that stopped trading because of the rules (excluded, or no venue worth it)",
                NEUTRAL)
def accounts_quit(run: Run) -> float:
    return run.tb.weight[run.tb.quit].sum()

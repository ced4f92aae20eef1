"""What every run reports (MODEL.md section 7): typed metric definitions and their values.

Each metric is a scalar outcome of one run, in the spirit of EMA Workbench's
``ScalarOutcome``: a name, a unit, a description and a direction (whether a rule set
that lowers it is doing better), declared right above the function that computes it.
Families generate one metric per venue, trader class, side, jurisdiction of residence or
leverage group from a template, named ``<stem>.venue.<venue>``, ``<stem>.class.<class>``,
``<stem>.side.<long|short>``, ``<stem>.jurisdiction.<J>`` (names.JURISDICTIONS) or
``<stem>.leverage_group.<group>`` (names.LEVERAGE_GROUPS, of the leverage each account chose
before any rule); consumers find a family's members through ``Family.over``;
:func:`definitions` expands them for a scenario and :func:`catalogue` lists them with a
``<venue>`` placeholder.

What lives here:

- ``sections/``: one file per group of metrics (liquidations, venue choice, prices,
  cascades, loss absorption, who lost, market structure, activity, by jurisdiction and
  leverage group);
- ``registry.py``: ``SECTIONS`` in report order; :func:`definitions`, :func:`catalogue`,
  :func:`compute`;
- ``api.py``: :class:`Metric`, :class:`Family`, :class:`Section`, and :class:`Run`, the
  finished run a metric function reads;
- ``state.py``: :func:`snapshot` (the state before the first step) and what metrics read
  from a model;
- ``headlines.py``: the one list of headline metrics the CLI and the brief show.

A new metric is one decorated function in its section's file; a new section is one file
in ``sections/`` plus one line in ``registry.SECTIONS``.

Conventions:

- open interest is the long side of derivatives positions (USD at venue prices); the
  spot venue holds unleveraged holdings and is left out of open-interest totals and
  market shares;
- *liquidated* means closed by a venue's liquidation machinery: whole and partial
  liquidations, backstop takeovers and the bankrupt side of auto-deleveraging (ADL).
  Stop-losses and the profitable positions closed by ADL are reported separately;
- an account's *wealth* is its margin equity on its venue plus the value of its spot
  hedge; profit and loss (PnL) is the change in wealth over the run (fees, funding,
  liquidation penalties and depeg losses included) less the money deposited during it
  (new traders refilling wiped-out accounts): new money is not profit;
- traded volume splits into forced orders (liquidations, stops, unwinds of taken-over
  positions) and voluntary ones (the rest, arbitrage included); a rule's cost to activity
  is read on ``volume_usd.voluntary``;
- shares of activity (offshore shares) are measured over the whole run and are neutral;
- drawdowns are the largest fall from a running peak, as a fraction of that peak.

:func:`snapshot` records what the metrics need from before the first step;
:func:`compute` turns a finished model plus that snapshot into ``{name: value}``.
"""

from __future__ import annotations

from policylab.metrics.api import (DIRECTIONS, HIGHER, LOWER, NEUTRAL, OVER, SIDES, TRADER_CLASSES, Family, Metric,
                                   Run, Section)
from policylab.metrics.registry import SECTIONS, catalogue, compute, definitions
from policylab.metrics.sections.liquidations import WIPED_OUT_LEFT
from policylab.metrics.sections.prices import MINUTES_PER_YEAR
from policylab.metrics.state import (LIQUIDATION_KINDS, Start, drawdown, event_arrays, open_interest,
                                     running_amplification, shock_direction, snapshot, venue_series, wealth)

__all__ = ["DIRECTIONS", "HIGHER", "LIQUIDATION_KINDS", "LOWER", "MINUTES_PER_YEAR", "NEUTRAL", "OVER", "SECTIONS",
           "SIDES", "TRADER_CLASSES", "WIPED_OUT_LEFT", "Family", "Metric", "Run", "Section", "Start", "catalogue",
           "compute", "definitions", "drawdown", "event_arrays", "open_interest", "running_amplification",
           "shock_direction", "snapshot", "venue_series", "wealth"]

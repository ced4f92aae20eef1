"""The headline metrics: one list, read by everything that shows a selection of metrics.

- ``policylab run`` prints every headline, by group (:func:`grouped`);
- the brief's side-by-side table shows those with ``brief`` by group, and only they can
  become key findings; findings lead with ``core`` effects and first state the
  baseline's ``baseline`` values;
- ``policylab compare`` prints the ``compare`` metrics (``sweep``'s curve table the
  first four of them);
- the brief's page-1 matrix and ``policylab sensitivity`` read the core outcomes
  (:data:`CORE_OUTCOMES`), each a preferred metric with its fallbacks.

A headline's label is its short name wherever it appears, a findings sentence included
("liquidated notional down $4.00B"), so it reads on its own. To add a headline, add one
``Headline`` to its group; tests/test_metric_sections.py checks that it names a metric.

Traded volume is read as the cost of a rule set on its voluntary part
(``volume_usd.voluntary``): forced selling is not activity a rule should be credited with.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Headline:
    """A metric shown by name: ``metric`` (a name of :func:`policylab.metrics.definitions`),
    its ``label``, and where it is shown beyond ``policylab run``."""

    metric: str
    label: str
    brief: bool = True  # a row of the brief's headline table, and so a possible key finding
    compare: bool = False  # printed by ``policylab compare``
    core: bool = False  # what a decision-maker asks first: a rule set's effect on it leads its findings
    baseline: bool = False  # the first key finding states its value under the baseline


HEADLINES: tuple[tuple[str, tuple[Headline, ...]], ...] = (
    ("Liquidations", (
        Headline("liquidated_usd", "liquidated notional", compare=True, core=True, baseline=True),
        Headline("liquidated_share_of_oi", "liquidated share of open interest", compare=True),
        Headline("long_share_liquidated", "long share of liquidations"),
        Headline("forced_closed_usd", "forced closes incl. ADL counterparties"),
        Headline("stopped_usd", "stop-losses triggered"),
        Headline("liquidated_accounts", "accounts liquidated"),
        Headline("accounts_wiped_out", "accounts wiped out"),
    )),
    ("Prices", (
        Headline("index_drawdown", "index drawdown", compare=True, core=True, baseline=True),
        Headline("index_low_usd", "index low"),
        Headline("index_close_usd", "index close", brief=False),
        Headline("index_low_vs_close", "index low versus close"),
        Headline("realised_volatility", "realised volatility (annualised)"),
        Headline("recovery_half_minutes", "time to recover half the drawdown"),
    )),
    ("Cascades", (
        Headline("cascade_rounds_max", "most cascade rounds in one step"),
        Headline("cascade_rounds_total", "cascade rounds in total", brief=False),
        Headline("amplification", "amplification of the exogenous move"),
    )),
    ("Loss absorption", (
        Headline("fund_drawdown_usd", "insurance fund drawdown"),
        Headline("funds_exhausted", "insurance funds exhausted"),
        Headline("bad_debt_usd", "bad debt", compare=True, core=True),
        Headline("adl_usd", "auto-deleveraged notional", compare=True),
    )),
    ("Who lost", (
        Headline("retail_loss_usd", "retail losses", compare=True, core=True, baseline=True),
        Headline("retail_losers_share", "share of retail accounts that lost", core=True),
        Headline("pnl_usd.class.retail", "retail net profit and loss"),
        Headline("pnl_usd.class.professional", "professional net profit and loss"),
    )),
    ("Activity and where it went", (
        Headline("accounts_moved", "accounts that moved venue"),
        Headline("accounts_quit", "accounts that stopped trading", core=True),
        Headline("offshore_oi_share", "offshore share of open interest (time-weighted)", compare=True),
        Headline("offshore_volume_share", "offshore share of volume", core=True),
        Headline("open_interest_change", "open interest change at the end"),
        Headline("open_interest_trough_change", "open interest change at its lowest", brief=False),
        Headline("volume_usd.voluntary", "voluntary traded volume", compare=True, core=True),
        Headline("volume_usd.forced", "forced traded volume (liquidations, stops)", brief=False),
        Headline("depth_worst_ratio", "depth at its worst vs start", compare=True, core=True),
        Headline("depth_mean_ratio", "mean depth vs start"),
    )),
)
ALL: tuple[Headline, ...] = tuple(h for _, group in HEADLINES for h in group)


def grouped(where: str = "run") -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """``(group title, ((metric, label), ...))`` of the headlines shown by ``policylab run``
    (``where="run"``: all of them) or in the brief (``"brief"``), empty groups left out."""
    if where not in ("run", "brief"):
        raise ValueError(f"headlines: where {where!r}; allowed: run, brief")
    out = []
    for title, group in HEADLINES:
        rows = tuple((h.metric, h.label) for h in group if where == "run" or h.brief)
        if rows:
            out.append((title, rows))
    return tuple(out)


def flagged(flag: str) -> tuple[str, ...]:
    """The headline metrics with ``flag`` (``brief``, ``compare``, ``core`` or ``baseline``) set, in list order."""
    if flag not in ("brief", "compare", "core", "baseline"):
        raise ValueError(f"headlines: flag {flag!r}; allowed: brief, compare, core, baseline")
    return tuple(h.metric for h in ALL if getattr(h, flag))


# ------------------------------------------------------------------------ the core outcomes
@dataclass(frozen=True)
class CoreOutcome:
    """A core outcome, a column of the brief's page-1 matrix and an outcome the sensitivity
    step varies: its key, its label, the metrics that can fill it (the first present wins;
    ``{J}`` is a rule set's first targeted jurisdiction) and the label of each fallback."""

    key: str
    label: str
    choices: tuple[tuple[str, str], ...]  # (metric pattern, label when this one is used)


# In the fixed order every sentence of the brief follows too (never "improvements first").
CORE_OUTCOMES: tuple[CoreOutcome, ...] = (
    CoreOutcome("liquidated", "liquidated notional", (("liquidated_usd", "liquidated notional"),)),
    CoreOutcome("drawdown", "index drawdown", (("index_drawdown", "index drawdown"),)),
    CoreOutcome("retail_loss", "retail losses", (("retail_loss_usd", "retail losses"),)),
    CoreOutcome("quit", "accounts that quit", (("accounts_quit", "accounts that stopped trading"),)),
    CoreOutcome("moved", "accounts that moved", (("accounts_moved", "accounts that moved venue"),)),
    CoreOutcome("blocked", "accounts blocked", (("accounts_blocked", "accounts blocked"),
                                                ("accounts_blocked.jurisdiction.{J}", "{J} accounts blocked"))),
    CoreOutcome("offshore", "offshore share", (
        ("offshore_volume_share.jurisdiction.{J}", "offshore share of {J} volume"),
        ("offshore_volume_share", "offshore share of volume (all traders)"))),
    CoreOutcome("volume", "voluntary volume", (("volume_usd.voluntary", "voluntary traded volume"),
                                               ("volume_usd", "traded volume (total, forced selling included)"))),
)


def resolve(outcome: CoreOutcome, available: set[str], juris: list[str]) -> tuple[str, str] | None:
    """(metric, label) filling ``outcome`` for a rule set targeting ``juris``, or None."""
    for pattern, label in outcome.choices:
        if "{J}" in pattern:
            for j in juris:
                if pattern.format(J=j) in available:
                    return pattern.format(J=j), label.format(J=j)
        elif pattern in available:
            return pattern, label
    return None

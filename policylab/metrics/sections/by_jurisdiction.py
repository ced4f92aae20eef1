"""Outcomes by jurisdiction of residence and by leverage group (MODEL.md section 3a): who
was active, moved, quit or was turned away; where each jurisdiction's traders traded
(domestic or offshore venues) and what they lost; and losses by the leverage each account
chose before any rule bound it (``TraderBook.lev_chosen``).

These families cover the scenario's population (``Run.residents``); the venues' own rows
(books, arbitrage desks, backstop vaults) have no residence, so a family's members add up
to the population's total (for liquidations: the total less what arbitrage desks lost).
*Domestic* venues are the derivatives venues a jurisdiction licenses (``VenueRules.home``,
not offshore), whichever jurisdiction that is; *offshore* ones are the rest; the spot
market is in neither. Shares of activity and counts of accounts that moved, quit or were
turned away are neutral: a share that falls because traders were excluded is no
improvement, and a quitting account is reported as what it is.
"""

from __future__ import annotations

import numpy as np

from policylab.metrics.api import LOWER, NEUTRAL, Run, Section, ratio, shared
from policylab.names import RETAIL

SECTION = Section("by_jurisdiction", "By jurisdiction and leverage group")


@shared
def _resident_flows(run: Run) -> dict[str, np.ndarray]:
    """Per jurisdiction, on domestic and on offshore derivatives venues: volume over the run
    and open interest summed over the ends of steps (USD, USD x steps)."""
    offshore = run.vb.offshore & run.deriv
    domestic = ~run.vb.offshore & run.deriv
    vol, oi = run.resident_series["volume_usd"].sum(axis=0), run.resident_series["open_interest_usd"].sum(axis=0)
    return {"domestic_volume": vol[:, domestic].sum(axis=1), "offshore_volume": vol[:, offshore].sum(axis=1),
            "domestic_oi": oi[:, domestic].sum(axis=1), "offshore_oi": oi[:, offshore].sum(axis=1)}


@shared
def _liquidated(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Liquidation events of the population's accounts: (accounts, notional USD)."""
    ev = run.events
    keep = ev["liquidation"] & run.residents[ev["account"]]
    return ev["account"][keep], ev["notional"][keep]


@shared
def _hit(run: Run) -> np.ndarray:
    """Per account: liquidated at least once."""
    hit = np.zeros(run.tb.n, dtype=bool)
    hit[_liquidated(run)[0]] = True
    return hit


@shared
def _negative(run: Run) -> np.ndarray:
    """Per account: a negative balance on its venue at the end (equity at the venues' marks)."""
    tb = run.tb
    return tb.equity(np.arange(tb.n), run.model.market.marks(), run.vb.coin_price) < 0


def _retail_loss(run: Run) -> np.ndarray:
    return np.where(run.tb.cls == RETAIL, np.maximum(-run.pnl, 0.0), 0.0)


def _accounts(run: Run, mask: np.ndarray) -> np.ndarray:
    return run.by_jurisdiction(run.tb.weight, mask)


# ------------------------------------------------------------------------ accounts
@SECTION.metric("accounts_blocked", "accounts",
                "real trader accounts the rules turned away from their venue (a ban, a block, a KYC or listed-venue "
                "requirement), wherever they went then", NEUTRAL)
def accounts_blocked(run: Run) -> float:
    return run.tb.weight[run.residents & run.tb.blocked].sum()


@SECTION.metric("negative_balance_accounts", "accounts",
                "real trader accounts ending with a negative balance on their venue (owing it; none where negative "
                "balance protection covered them)", LOWER)
def negative_balance_accounts(run: Run) -> float:
    return run.tb.weight[run.residents & _negative(run)].sum()


@SECTION.family("accounts_active", "jurisdiction", "accounts",
                "real trader accounts resident in {member} that kept trading (did not stop because of the rules)",
                NEUTRAL)
def accounts_active(run: Run) -> np.ndarray:
    return _accounts(run, ~run.tb.quit)


@SECTION.family("accounts_moved", "jurisdiction", "accounts",
                "real trader accounts resident in {member} that changed venue because of the rules", NEUTRAL)
def accounts_moved(run: Run) -> np.ndarray:
    return _accounts(run, run.tb.moved)


@SECTION.family("accounts_quit", "jurisdiction", "accounts",
                "real trader accounts resident in {member} that stopped trading because of the rules", NEUTRAL)
def accounts_quit(run: Run) -> np.ndarray:
    return _accounts(run, run.tb.quit)


@SECTION.family("accounts_blocked", "jurisdiction", "accounts",
                "real trader accounts resident in {member} the rules turned away from their venue", NEUTRAL)
def accounts_blocked_by_jurisdiction(run: Run) -> np.ndarray:
    return _accounts(run, run.tb.blocked)


# ------------------------------------------------------------------------ where they traded
@SECTION.family("domestic_volume_usd", "jurisdiction", "USD",
                "notional traded by accounts resident in {member} on domestic (licensed) derivatives venues", NEUTRAL)
def domestic_volume_usd(run: Run) -> np.ndarray:
    return _resident_flows(run)["domestic_volume"]


@SECTION.family("offshore_volume_usd", "jurisdiction", "USD",
                "notional traded by accounts resident in {member} on offshore derivatives venues", NEUTRAL)
def offshore_volume_usd(run: Run) -> np.ndarray:
    return _resident_flows(run)["offshore_volume"]


@SECTION.family("domestic_open_interest_usd", "jurisdiction", "USD",
                "long open interest of accounts resident in {member} on domestic (licensed) derivatives venues, "
                "averaged over the ends of steps", NEUTRAL)
def domestic_open_interest_usd(run: Run) -> np.ndarray:
    return _resident_flows(run)["domestic_oi"] / max(run.model.steps, 1)


@SECTION.family("offshore_open_interest_usd", "jurisdiction", "USD",
                "long open interest of accounts resident in {member} on offshore derivatives venues, averaged over "
                "the ends of steps", NEUTRAL)
def offshore_open_interest_usd(run: Run) -> np.ndarray:
    return _resident_flows(run)["offshore_oi"] / max(run.model.steps, 1)


@SECTION.family("offshore_volume_share", "jurisdiction", "fraction",
                "offshore venues' share of the derivatives volume of accounts resident in {member}, over the run",
                NEUTRAL, nan="they traded no derivatives")
def offshore_volume_share(run: Run) -> np.ndarray:
    f = _resident_flows(run)
    return ratio(f["offshore_volume"], f["offshore_volume"] + f["domestic_volume"])


@SECTION.family("offshore_oi_share", "jurisdiction", "fraction",
                "offshore venues' share of the derivatives open interest of accounts resident in {member}, "
                "time-weighted over the run", NEUTRAL, nan="they held no derivatives")
def offshore_oi_share(run: Run) -> np.ndarray:
    f = _resident_flows(run)
    return ratio(f["offshore_oi"], f["offshore_oi"] + f["domestic_oi"])


# ------------------------------------------------------------------------ what they lost
@SECTION.family("liquidated_usd", "jurisdiction", "USD", "notional liquidated from accounts resident in {member}",
                LOWER)
def liquidated_usd(run: Run) -> np.ndarray:
    acc, notional = _liquidated(run)
    return run.by_jurisdiction(np.bincount(acc, notional, minlength=run.tb.n))


@SECTION.family("liquidated_accounts", "jurisdiction", "accounts",
                "real accounts resident in {member} liquidated at least once", LOWER)
def liquidated_accounts(run: Run) -> np.ndarray:
    return _accounts(run, _hit(run))


@SECTION.family("negative_balance_accounts", "jurisdiction", "accounts",
                "real accounts resident in {member} ending with a negative balance on their venue", LOWER)
def negative_balance_accounts_by_jurisdiction(run: Run) -> np.ndarray:
    return _accounts(run, _negative(run))


@SECTION.family("retail_loss_usd", "jurisdiction", "USD",
                "gross losses of the retail accounts resident in {member} that lost money (net of deposits)", LOWER)
def retail_loss_usd(run: Run) -> np.ndarray:
    return run.by_jurisdiction(_retail_loss(run))


@SECTION.family("pnl_usd", "jurisdiction", "USD",
                "net profit and loss of the accounts resident in {member} (deposits during the run excluded)", NEUTRAL)
def pnl_usd(run: Run) -> np.ndarray:
    return run.by_jurisdiction(run.pnl)


# ------------------------------------------------------------------------ by leverage chosen
@SECTION.family("retail_loss_usd", "leverage_group", "USD",
                "gross losses of the retail accounts that lost money and chose {member}x leverage before any rule "
                "(net of deposits)", LOWER)
def retail_loss_usd_by_leverage(run: Run) -> np.ndarray:
    return run.by_leverage_group(_retail_loss(run))


@SECTION.family("pnl_usd", "leverage_group", "USD",
                "net profit and loss of the accounts that chose {member}x leverage before any rule (deposits during "
                "the run excluded)", NEUTRAL)
def pnl_usd_by_leverage(run: Run) -> np.ndarray:
    return run.by_leverage_group(run.pnl)


@SECTION.family("liquidated_usd", "leverage_group", "USD",
                "notional liquidated from accounts that chose {member}x leverage before any rule", LOWER)
def liquidated_usd_by_leverage(run: Run) -> np.ndarray:
    acc, notional = _liquidated(run)
    return run.by_leverage_group(np.bincount(acc, notional, minlength=run.tb.n))

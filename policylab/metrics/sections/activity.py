"""Activity and liquidity, the cost side of a rule set: traded volume (voluntary and
forced, by class), the venues' fee revenue, and order-book depth within +/-1% of the
price, against their starting values.

Volume is the notional of market orders filled in the venues' books (spot included);
it is split into *forced* orders, which no one chose: liquidations and partial slices
executed in the books, triggered stop-losses, backstop vaults unwinding the positions
they took over, and basis traders selling the spot legs a forced close left unhedged;
and *voluntary* orders, all the rest: traders' own orders and the arbitrage desks' two
legs. Arbitrage counts as voluntary because it is discretionary (a desk trades a gap
only when it pays), although it grows with the price dislocations forced selling causes;
``volume_usd.class.arbitrageur`` shows how much it is. Backstop takeovers and
auto-deleveraging are transfers off the books and in no volume (see ``liquidated_usd``
and ``adl_usd``). A rule's cost to activity is read on voluntary volume, so a rule that
forces more selling is not credited with more activity."""

from __future__ import annotations

import numpy as np

from policylab.metrics.api import HIGHER, LOWER, NEUTRAL, Run, Section, ratio, shared
from policylab.names import CLASSES

SECTION = Section("activity", "Activity and liquidity")


@shared
def _total_depth_ratio(run: Run) -> np.ndarray:
    """Per step: total depth over its starting value."""
    return ratio(run.series["depth_usd"].sum(axis=1), run.start.depth.sum())


@shared
def _depth_ratio(run: Run) -> np.ndarray:
    """Per step and venue: depth over its starting value."""
    return ratio(run.series["depth_usd"], run.start.depth)


@SECTION.metric("volume_usd", "USD", "traded notional on all venues (spot included)", HIGHER)
def volume_usd(run: Run) -> float:
    return run.volume.sum()


@SECTION.family("volume_usd", "venue", "USD", "traded notional on {member}", HIGHER)
def volume_usd_by_venue(run: Run) -> np.ndarray:
    return run.volume


@SECTION.metric("depth_mean_ratio", "ratio", "mean over steps of total +/-1% depth over its starting value", HIGHER)
def depth_mean_ratio(run: Run) -> float:
    return _total_depth_ratio(run).mean()


@SECTION.metric("depth_worst_ratio", "ratio", "lowest total +/-1% depth over its starting value", HIGHER)
def depth_worst_ratio(run: Run) -> float:
    return _total_depth_ratio(run).min()


@SECTION.family("depth_mean_ratio", "venue", "ratio", "mean over steps of {member} +/-1% depth over its starting value",
                HIGHER)
def depth_mean_ratio_by_venue(run: Run) -> np.ndarray:
    return _depth_ratio(run).mean(axis=0)


@SECTION.family("depth_worst_ratio", "venue", "ratio", "lowest {member} +/-1% depth over its starting value", HIGHER)
def depth_worst_ratio_by_venue(run: Run) -> np.ndarray:
    return _depth_ratio(run).min(axis=0)


@shared
def _forced(run: Run) -> float:
    return run.series["forced_volume_usd"].sum()


@SECTION.metric("volume_usd.voluntary", "USD",
                "traded notional of voluntary orders: traders' own orders and the arbitrage desks' legs (arbitrage "
                "is discretionary, though it grows with dislocations: see volume_usd.class.arbitrageur); "
                "volume_usd less volume_usd.forced", HIGHER)
def volume_usd_voluntary(run: Run) -> float:
    return run.volume.sum() - _forced(run)


@SECTION.metric("volume_usd.forced", "USD",
                "traded notional of forced orders: liquidations and partial slices executed in the books, triggered "
                "stop-losses, backstop vaults unwinding taken-over positions, spot legs a forced close left unhedged "
                "(backstop takeovers and ADL are off-book, in no volume)", LOWER)
def volume_usd_forced(run: Run) -> float:
    return _forced(run)


@SECTION.family("volume_usd", "class", "USD", "traded notional of the orders of {member} accounts (forced included)",
                NEUTRAL)
def volume_usd_by_class(run: Run) -> np.ndarray:
    return np.bincount(run.tb.cls, run.model.market.traded, minlength=len(CLASSES))


@SECTION.family("fee_revenue_usd", "venue", "USD",
                "trading fees {member} kept over the run (after the share paid into its insurance fund)", NEUTRAL)
def fee_revenue_usd_by_venue(run: Run) -> np.ndarray:
    return run.vb.fees


@SECTION.metric("fee_revenue_usd.domestic", "USD",
                "trading fees kept by venues a jurisdiction licenses (not offshore; the spot market included)",
                NEUTRAL)
def fee_revenue_usd_domestic(run: Run) -> float:
    return run.vb.fees[~run.vb.offshore].sum()


@SECTION.metric("fee_revenue_usd.offshore", "USD", "trading fees kept by offshore venues", NEUTRAL)
def fee_revenue_usd_offshore(run: Run) -> float:
    return run.vb.fees[run.vb.offshore].sum()

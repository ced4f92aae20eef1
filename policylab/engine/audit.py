"""Conservation audit (MODEL.md section 4).

Money: the accounts' cash and hedge cash, the funds (insurance funds, vault-less
broker capital; negative when they owe), fee revenue and realised collateral
(depeg) losses always add up to what was there at the start. Every trade is booked
at one price to both sides and funding is a transfer, so nothing else can change it,
except new money: deposits made during the run (a wiped-out account taken over by a
new trader) are recorded in the accounts' ``deposit`` and the audit counts them.

Positions: on every derivatives venue sizes sum to zero (each contract has two
sides); on the spot venue, spot positions plus spot hedges stay at the BTC deposited
at the start (spot only changes hands).

Every run checks both after every step (:mod:`policylab.experiments.invariants` reports a
failure as a ``money_conserved`` violation in the run's results and carries on); with
``audit=True`` the run instead stops at the first failure with an AssertionError (for
debugging: the traceback points at the step).
"""

from __future__ import annotations

import numpy as np


def money(model) -> float:
    """Total money in the system (USD)."""
    tb, vb = model.tb, model.vb
    return float(tb.cash.sum() + tb.hedge_cash.sum() + vb.fund.sum() + vb.fees.sum() + vb.collateral_loss.sum())


def net_positions(model) -> np.ndarray:
    """Per venue: the sum of positions (BTC); spot hedges count on the spot venue."""
    tb, vb = model.tb, model.vb
    net = np.bincount(tb.venue, weights=tb.size, minlength=len(vb.rules))
    net[model.market.spot] += tb.hedge.sum()
    return net


class Ledger:
    """Remembers the starting totals and checks them after every step."""

    def __init__(self, model, rel_tol: float = 1e-9):
        self.model = model
        self.money0 = money(model)
        self.deposit0 = float(model.tb.deposit.sum())
        self.net0 = net_positions(model)
        self.gross = float(np.abs(model.tb.cash).sum() + np.abs(model.tb.hedge_cash).sum()) + 1.0
        self.rel_tol = rel_tol

    def drift(self) -> tuple[float, float, np.ndarray, float]:
        """(money drift USD, its tolerance, per-venue net position drift BTC, its tolerance)."""
        m = money(self.model) - (float(self.model.tb.deposit.sum()) - self.deposit0)  # less new money
        scale = np.abs(self.model.tb.size).sum() + np.abs(self.model.tb.hedge).sum() + 1.0
        return m - self.money0, self.rel_tol * self.gross, net_positions(self.model) - self.net0, self.rel_tol * scale

    def check(self, when: str = "") -> None:
        """Raise AssertionError if money or positions are not conserved."""
        dm, tol, dnet, ptol = self.drift()
        if not abs(dm) <= tol:
            raise AssertionError(f"money not conserved {when}: {dm:+.6f} USD (tolerance {tol:.3g})")
        if not np.all(np.abs(dnet) <= ptol):
            raise AssertionError(f"positions not conserved {when}: net {dnet + self.net0}, at start {self.net0}")

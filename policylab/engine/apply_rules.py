"""Applying the rule sets to venues and accounts, before the scenario starts.

1. ``configure_venues``: every module's proposals for each venue are composed (the most
   restrictive wins, contradictions are errors) and the venues the rules create are
   added.
2. ``account_rules``: for the accounts considered on a venue, who is denied (the
   scenario's access table first: a venue refuses or blocks residents of some
   jurisdictions, and a blocked resident gets through if its ``geo_evasion`` draw is below
   the leakage share; then the modules' denials), and the
   account-level rules of the modules covering each account: the lowest leverage cap and
   position limit, the highest close-out level, the product of desired-leverage factors
   (as declared in ``ACCOUNT_HOOKS``, policylab.policies.api). The traders' venue choice
   (policylab.engine.choice) applies them.

A module is credited as taking effect when its proposal changes a venue, when it covers an
account the rules turn away or resize, when its close-out level raises some account's
maintenance margin, and when a trader holds a position on a venue it created (the
``credit_*`` functions, in the run's effects ledger, policylab.engine.effects); a module
never credited during the run is reported in the run's warnings.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from policylab.engine.effects import Effects
from policylab.engine.margin import tier_lookup
from policylab.inputs.scenario import Scenario
from policylab.names import JURISDICTIONS
from policylab.policies.api import ACCOUNT_HOOKS, Policy, merge_venue_rules
from policylab.venues import Tier


def configure_venues(scenario: Scenario, policies: list[Policy], effects: Effects) -> Scenario:
    """The scenario with the rules' venue changes applied and new venues added; credits
    ``effects`` with each module whose proposal changed a venue and records the venues
    each module created."""
    venues = []
    for venue in scenario.venues:
        fields, changed = merge_venue_rules(venue, policies)
        cap = fields.pop("max_leverage", None)
        if cap is not None:
            fields["tiers"] = tuple(Tier(t.from_notional, min(t.max_leverage, cap)) for t in venue.tiers)
        new = dataclasses.replace(venue, **fields)
        new.validate(f"venue {venue.name} under the rules")
        venues.append(new)
        for mod in changed:
            effects.credit(mod)
    oi = dict(scenario.open_interest)
    for mod in policies:
        for venue in mod.new_venues():
            if venue.name in oi or any(v.name == venue.name for v in venues):
                continue  # two modules creating the same venue create it once
            venues.append(venue)
            oi[venue.name] = 0.0
            effects.record_created(mod, venue.name)
    return dataclasses.replace(scenario, venues=venues, open_interest=oi)


def kyc_as_drawn(scenario: Scenario, unruled: Scenario) -> Scenario:
    """``scenario`` with each venue's KYC requirement as it was before the rules, to draw the
    population from: traders are verified where the scenario's venues already required it,
    and a KYC rule then makes the unverified ones verify or leave (``settle``)."""
    before = {v.name: v.kyc_required for v in unruled.venues}
    return dataclasses.replace(scenario, venues=[dataclasses.replace(v, kyc_required=before.get(v.name, v.kyc_required))
                                                 for v in scenario.venues])


def reach(scenario: Scenario, venue: str, juris: np.ndarray, draw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(turned away, gets through although blocked) for accounts resident in ``juris``
    (indices into names.JURISDICTIONS) with ``geo_evasion`` draws ``draw``, at ``venue``
    under the scenario's access table (Scenario.access)."""
    share = np.full(len(JURISDICTIONS), np.inf)  # served: nobody is turned away
    for j, leak in scenario.access.get(venue, {}).items():
        share[JURISDICTIONS.index(j)] = leak
    s = share[juris]
    return draw >= s, np.isfinite(s) & (draw < s)


def account_rules(model, idx: np.ndarray, v: int, juris: np.ndarray | None = None, draw: np.ndarray | None = None
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """For accounts ``idx`` considered on venue ``v``: (denied mask, {hook: value per
    account}): the scenario's access table, then the modules targeting ``v``, for every
    hook in ACCOUNT_HOOKS. ``juris`` and ``draw``: the accounts' jurisdictions of residence
    and ``geo_evasion`` draws (``model.choice_draw``) if already at hand (the same for
    every venue)."""
    tb, venue = model.tb, model.vb.rules[v]
    juris = tb.juris[idx] if juris is None else juris
    draw = model.choice_draw(idx, "geo_evasion") if draw is None else draw
    denied = reach(model.scenario, venue.name, juris, draw)[0]
    values = {hook: np.full(len(idx), neutral) for hook, (_, neutral) in ACCOUNT_HOOKS.items()}
    for mod in model.policies:
        if not mod.target.venue_matches(venue):
            continue
        d = mod.denies(model, tb, idx, venue)
        if d is not None:
            denied |= d
        covered = None
        for hook, (combine, _) in ACCOUNT_HOOKS.items():
            value = getattr(mod, hook)()
            if value is None:
                continue
            covered = mod.account_mask(tb, idx) if covered is None else covered
            values[hook] = np.where(covered, combine(values[hook], value), values[hook])
    return denied, values


def credit_accounts(model, acc: np.ndarray, venue: np.ndarray) -> None:
    """Credit every module whose denial or account-level hook covers an account the rules
    turned away or resized (accounts ``acc``, considered on their venues ``venue``)."""
    tb = model.tb
    for v in np.unique(venue):
        idx = acc[venue == v]
        rules = model.vb.rules[v]
        for mod in model.policies:
            if not mod.target.venue_matches(rules):
                continue
            d = mod.denies(model, tb, idx, rules)
            hit = d is not None and d.any()
            if any(getattr(mod, hook)() is not None for hook in ACCOUNT_HOOKS):
                hit |= bool(mod.account_mask(tb, idx).any())
            if hit:
                model.effects.credit(mod)


def credit_closeouts(model, traders: np.ndarray) -> None:
    """Credit every close-out module whose level raises some account's maintenance above
    its venue's own (an account need not be repositioned for its close-out level to bind)."""
    tb, vb = model.tb, model.vb
    held = traders[tb.size[traders] != 0]
    price = model.market.prices()
    notional = np.abs(tb.size[held]) * price[tb.venue[held]]
    rate = tier_lookup(vb, tb.venue[held], notional / tb.weight[held])[0]
    for mod in model.policies:
        level = mod.closeout_level()
        if level is None:
            continue
        on = np.array([mod.target.venue_matches(r) for r in vb.rules], dtype=bool)[tb.venue[held]]
        binds = on & mod.account_mask(tb, held) & (level / tb.lev_cap[held] > rate)
        if binds.any():
            model.effects.credit(mod)


def credit_new_venues(model, traders: np.ndarray) -> None:
    """Credit every module that created a venue on which one of ``traders`` holds a position
    (a created venue takes effect when traders use it, not through its own book rows)."""
    tb, vb = model.tb, model.vb
    held = traders[tb.size[traders] != 0]
    for mod in model.policies:
        if any(np.any(tb.venue[held] == vb.names.index(name)) for name in model.effects.venues_created_by(mod)):
            model.effects.credit(mod)

"""The market model: a Mesa model of venues and trader populations over NumPy state.

One step (``step_minutes`` of market time):

1. the exogenous fundamental return, depth and collateral values of the step arrive;
   transient index impact and venue basis decay;
2. market makers set depth; arbitrage capacity resets;
3. every population decides at once; orders are netted and executed with impact;
4. the cascade: rounds of liquidations and triggered stops, each moving prices
   through the books and, via arbitrage, the index, until nothing more triggers;
5. funding settles on schedule (Mesa recurring events); the step is recorded.
"""

from __future__ import annotations

import functools

import mesa
import numpy as np
import pandas as pd

from policylab.engine import apply_rules, choice
from policylab.engine import exogenous, kernels, kernels_passes
from policylab.engine import kernels_decide as kd
from policylab.engine.decay import left
from policylab.engine.effects import Effects
from policylab.populations import draw as population
from policylab.engine.venue_agents import Arbitrageurs, MarketMakers, Venue
from policylab.populations import POPULATIONS
from policylab.populations.base import TraderPopulation
from policylab.engine.audit import Ledger
from policylab.errors import InputError
from policylab.engine.liquidation import EventLog, LiquidationEngine
from policylab.engine.margin import initial_margin_leverage
from policylab.engine.market import Market
from policylab.policies.api import Policy, PolicyError
from policylab.inputs.scenario import Scenario
from policylab.engine.streams import stream
from policylab.names import JURISDICTIONS, VAULT

VENUE_COLUMNS = ("price", "depth_usd", "open_interest_usd", "volume_usd", "fund_usd", "mm_health", "coin_price",
                 "forced_volume_usd")
RESIDENT_COLUMNS = ("open_interest_usd", "volume_usd")  # recorded per step, jurisdiction of residence and venue


class MarketModel(mesa.Model):
    """Agent-based model of a BTC derivatives market across venues.

    Args:
        scenario: the scenario (venues, population, shocks).
        seed: the run's seed; every random stream derives from it by purpose.
        traders: number of simulated trader accounts (default: the scenario's).
        audit: check money conservation after every step (raises AssertionError).
        rules: rule sets (policylab.rules.RuleSet) in force, composed; none: the scenario as written.
    """

    def __init__(self, scenario: Scenario, seed: int = 0, traders: int | None = None, audit: bool = False,
                 rules=()):
        super().__init__(rng=seed)
        self.rule_sets = list(rules)
        self.policies = [p for rs in self.rule_sets for p in rs.policies()]
        self.effects = Effects(self.policies)  # which modules took effect in this run
        self.unruled = unruled = scenario
        try:
            scenario = apply_rules.configure_venues(scenario, self.policies, self.effects)
        except (PolicyError, ValueError) as e:
            raise InputError(str(e)) from None
        self.scenario, self.seed = scenario, seed
        self._draws: dict[str, np.ndarray] = {}
        self.halt_until = -1  # step until which trading is halted
        self.resume_minute = 0.0
        # accounts start verified on the scenario's own KYC venues, not on those a rule makes KYC
        self.tb, self.vb, self.rows = population.build(apply_rules.kyc_as_drawn(scenario, unruled), seed, traders,
                                                       own_tiers=unruled)
        self.vb.rules = list(scenario.venues)
        spot = int(np.flatnonzero(self.vb.is_spot)[0])
        self.market = Market(self.tb, self.vb, scenario.market, scenario.start_price, spot)
        self.exo = exogenous.draw(scenario, seed)
        self.events = EventLog()
        self.engine = LiquidationEngine(self.market, self.events)
        self.venue_agents = [Venue(self, v) for v in range(len(self.vb.rules))]
        self._vault_venues = [a for a in self.venue_agents if a.vault_row >= 0]  # the others never unwind
        self.populations = mesa.agent.AgentSet(
            [POPULATIONS[c](self, rows, scenario.classes[c], stream(seed, c))
             for c, rows in self.rows.items() if c in POPULATIONS], random=self.random)
        # whether any population refills (the base class's refill does nothing without a half-life): only
        # then do deposits change during the run (TraderPopulation: new money)
        self.refilling = any(p.spec.refill_half_life_minutes > 0 or type(p).refill is not TraderPopulation.refill
                              for p in self.populations)
        self.market_makers = MarketMakers(self)
        self.arbitrageurs = Arbitrageurs(self)
        choice.settle(self)
        self.market.count_longs()  # the venue choice set sizes and venues directly
        self.oi_start = self.open_interest()
        self.index_peak = scenario.start_price  # the index's highest value so far (USD)
        self.drawdown_memory = 0.0  # remembered worst drawdown from the peak (fraction), see risk_off
        n = scenario.steps
        k = len(self.vb.rules)
        self.index_path = np.empty(n + 1)
        self.index_path[0] = scenario.start_price
        self.exo_log_path = np.concatenate([[0.0], np.cumsum(self.exo.log_return)])
        self.price_path = np.empty((n + 1, k))
        self.price_path[0] = self.market.prices()
        self.rounds = np.zeros(n, dtype=np.int64)
        self.halts: list[tuple[int, int]] = []  # (step, length in steps) of circuit-breaker halts
        self._margin_start: tuple = (-1, None, None)  # see margin_multipliers
        self._margin_set = -1  # step in which a module last set the margin multipliers
        self._margin_venues: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # per module: its venues, their caps
        # per venue, the modules whose target covers it and that may cap open interest (others: no cap)
        self._venue_policies = [[p for p in self.policies if p.target.venue_matches(r)
                                 and type(p).open_interest_cap is not Policy.open_interest_cap]
                                for r in self.vb.rules]
        self._capped = any(self._venue_policies)  # see _within_oi_caps
        # the modules that intervene every step (market-wide: circuit breakers, dynamic margin); the others
        # inherit Policy.on_step, which does nothing
        self._stepping = [p for p in self.policies if type(p).on_step is not Policy.on_step]
        self._vol_ratio: tuple = (None, 1.0)  # see vol_ratio
        self.audit = Ledger(self) if audit else None
        self.datacollector = mesa.DataCollector(  # a Python int for rounds: Mesa deep-copies each value it collects
            model_reporters={"index": lambda m: m.market.index,
                             "rounds": lambda m: m.rounds.item(m.steps - 1) if m.steps else 0})
        # the per-step series (venue_series, resident_series), one block each, which _collect
        # fills in one compiled call per step (with the step's other bookkeeping)
        self._venue_block = np.full((len(VENUE_COLUMNS), n, k), np.nan)
        self._resident_block = np.full((len(RESIDENT_COLUMNS), n, len(JURISDICTIONS), k), np.nan)
        # the step's compiled calls' arguments that stay the same all run (arrays never reallocated),
        # the long lists bundled (kernels.Bundle)
        tb, vb, mkt, prm, dt = self.tb, self.vb, self.market, scenario.market, scenario.step_minutes
        self._arrival_args = (mkt.lm, self.exo.log_return, left(dt, prm.transient_half_life_minutes), vb.basis,
                              left(dt, prm.basis_half_life_minutes), vb.liquidity_mult, self.exo.liquidity,
                              vb.coin_price, self.exo.coin_price)
        # kd.execute_voluntary's per-account flags (its orders are of unique accounts): none a liquidation,
        # and scratch for which are forced
        self._no_liquidation = np.zeros(len(tb.size), dtype=np.bool_)
        self._forced = np.zeros(len(tb.size), dtype=np.bool_)
        self._voluntary_args = kernels.bundle((
            tb.cls, VAULT, mkt.lm, float(mkt.params.impact_y), vb.depth0, vb.liquidity_mult, vb.health, vb.coin_price,
            vb.haircut, tb.venue, tb.size, tb.entry, tb.cash, tb.coin, vb.taker_fee, vb.liq_fee, vb.fee_to_fund,
            vb.mm_row, vb.fund, vb.fees, mkt.flow, mkt.volume, mkt.resident, mkt.traded, mkt.forced_volume,
            mkt.resident_volume, mkt.tally, vb.basis, mkt.spot, float(mkt.params.permanent_share),
            self.engine.protocol, tb.weight, tb.mm_floor, vb.margin_mult, vb.tier_rate, vb.tier_ded, tb.liq_price,
            self.engine._n_changed, self._no_liquidation, self._forced))
        self._close_step_args = kernels.bundle((
            mkt.lm, vb.basis, vb.premium_sum, vb.premium_n, self.index_path, self.price_path, self._venue_block,
            self._resident_block, mkt.longs, vb.depth0, vb.liquidity_mult, vb.health, mkt.volume, vb.fund,
            vb.coin_price, mkt.forced_volume, mkt.resident_volume))

    # The market scenario this model runs (with the rules' venue changes): a plain attribute.
    # This class attribute shadows Mesa 3.5's Model.scenario property, whose setter attaches
    # the model to the scenario object, which would keep every finished model alive through
    # our (shared, pickled) Scenario.
    scenario: Scenario | None = None

    @property
    def venue_series(self) -> dict[str, np.ndarray]:
        """Per-step venue state, (steps x venues) per column of VENUE_COLUMNS (see venue_table);
        NaN for steps not run yet."""
        return dict(zip(VENUE_COLUMNS, self._venue_block))

    @property
    def resident_series(self) -> dict[str, np.ndarray]:
        """Per-step state of the population's accounts by jurisdiction of residence, (steps x
        jurisdictions x venues) per column of RESIDENT_COLUMNS; the venues' own rows (books,
        desks, vaults) have none."""
        return dict(zip(RESIDENT_COLUMNS, self._resident_block))

    # ------------------------------------------------------------ helpers for agents
    def index_return(self, minutes: int) -> float:
        """Log return of the index over the last ``minutes`` (or since the start)."""
        back = max(1, minutes // self.scenario.step_minutes)
        t = self.steps - 1
        return float(np.log(self.market.index / self.index_path[max(t - back + 1, 0)]))

    def leverage_cap(self, idx: np.ndarray, notional: np.ndarray) -> np.ndarray:
        """Largest leverage each account may take for this notional: the venue's tier (its
        initial margin scaled by any dynamic initial margin multiplier) and the rules' cap."""
        v = self.tb.venue[idx]
        tier = initial_margin_leverage(self.vb, v, notional, self.tb.weight[idx]) / self.vb.im_mult[v]
        return np.maximum(np.minimum(tier, self.tb.lev_cap[idx]), 1.0)

    def choice_draw(self, idx: np.ndarray, purpose: str, rows: int = 0) -> np.ndarray:
        """Uniform draws in (0, 1) for accounts ``idx``, fixed per seed, account and purpose
        (common random numbers for the rules' random elements). ``rows`` > 0: that many per account."""
        key = f"{purpose}/{rows}"
        if key not in self._draws:
            u = stream(self.seed, f"choice:{purpose}").random((max(rows, 1), self.tb.n))
            self._draws[key] = np.clip(u, 1e-12, 1 - 1e-12)
        draws = self._draws[key][:, idx]
        return draws if rows else draws[0]

    def open_interest(self) -> np.ndarray:
        """Long open interest per venue (USD): long BTC summed in account order, at the venue's price."""
        return kernels_passes.long_sizes(self.tb.size, self.tb.venue, len(self.vb.rules)) * self.market.prices()

    def open_interest_by_residence(self) -> tuple[np.ndarray, np.ndarray]:
        """Long open interest (USD) per venue (as :meth:`open_interest`), and of the
        population's accounts per jurisdiction of residence and venue, in one pass."""
        total, by_juris = kernels_passes.long_positions(self.tb.size, self.tb.venue, self.market.resident,
                                                 len(self.vb.rules), len(JURISDICTIONS))
        price = self.market.prices()
        return total * price, by_juris * price

    def open_interest_growth(self) -> float:
        """Derivatives open interest now over at the start, minus 1 (dynamic margin asks every step)."""
        deriv = ~self.vb.is_spot
        oi = self.open_interest()
        return float(oi[deriv].sum() / max(self.oi_start[deriv].sum(), 1.0) - 1.0)

    def vol_ratio(self, minutes: int) -> float:
        """Realised index volatility over the last ``minutes`` over the scenario's normal volatility
        (kept for the step and index it was computed at: populations and modules ask for it)."""
        t = self.steps  # index_path holds steps before this one; the market holds the current index
        index = self.market.index
        key = (t, minutes, index)
        if self._vol_ratio[0] == key:
            return self._vol_ratio[1]
        back = max(2, minutes // self.scenario.step_minutes)
        logs = self.index_path[max(t - back, 0):t + 1].copy()  # the last ``back`` steps' indices and the current one
        logs[-1] = index
        normal = self._normal_step_vol
        ratio = float(kd.rms_step(np.log(logs)) / normal) if len(logs) > 1 and normal > 0 else 1.0
        self._vol_ratio = (key, ratio)
        return ratio

    @functools.cached_property
    def maintenance_ratio(self) -> np.ndarray:
        """Each venue's maintenance margin over its tiers' initial margin (``VenueRules.maintenance_ratio``)."""
        return np.array([r.maintenance_ratio for r in self.vb.rules])

    @functools.cached_property
    def _normal_step_vol(self) -> float:
        """The scenario's normal volatility of the index over one step (log return)."""
        return self.scenario.sigma_daily * np.sqrt(self.scenario.step_minutes / 1440.0)

    @property
    def risk_off(self) -> float:
        """The market's risk-off level: its remembered drawdown from the run's peak index beyond
        ``market.risk_off_threshold`` (fraction, 0 in an ordinary market). The memory is the
        worst drawdown so far, decaying with ``market.risk_off_half_life_minutes``: traders who
        saw a crash stay cautious for days after the price recovers (MODEL.md s8: BTC
        open interest stayed down into November 2025)."""
        return max(self.drawdown_memory - self.scenario.market.risk_off_threshold, 0.0)

    def _remember_drawdown(self) -> None:
        """Update the index peak and the decaying memory of the worst drawdown from it."""
        index = self.market.index
        self.index_peak = max(self.index_peak, index)
        self.drawdown_memory = max(self.drawdown_memory * self._drawdown_decay, 1.0 - index / self.index_peak)

    @functools.cached_property
    def _drawdown_decay(self) -> float:
        """The share of the drawdown memory left after one step (``market.risk_off_half_life_minutes``)."""
        return left(self.scenario.step_minutes, self.scenario.market.risk_off_half_life_minutes)

    @property
    def halted(self) -> bool:
        return self.steps <= self.halt_until

    def halt(self, policy, minutes: float) -> None:
        """Halt orders and liquidations for ``minutes`` (circuit breakers)."""
        steps = max(1, int(round(minutes / self.scenario.step_minutes)))
        self.halt_until = self.steps + steps - 1
        self.resume_minute = (self.halt_until + 1) * self.scenario.step_minutes
        self.halts.append((self.steps, steps))
        self.effects.credit(policy)

    def margin_multipliers(self) -> tuple[np.ndarray, np.ndarray]:
        """(initial, maintenance) dynamic margin multipliers per venue in force at the start
        of this step, before any module acted on them (a base for phasing changes in)."""
        if self._margin_start[0] != self.steps:
            self._margin_start = (self.steps, self.vb.im_mult.copy(), self.vb.margin_mult.copy())
        return self._margin_start[1], self._margin_start[2]

    def set_margin_multiplier(self, policy, initial, maintenance) -> None:
        """Set the dynamic margin multipliers on the policy's derivatives venues: ``initial``
        scales initial margin (divides the tiers' leverage), ``maintenance`` maintenance
        margin; each a number or one per venue. Several modules in one step: the highest
        wins. Maintenance is capped at ``1 / maintenance_ratio`` per venue, so that it never
        exceeds the initial margin of the venue's tiers before any multiplier (the margin a
        position at the venue's largest leverage posted)."""
        vb = self.vb
        k = len(vb.rules)
        if id(policy) not in self._margin_venues:
            venues = np.array([v for v, r in enumerate(vb.rules) if policy.target.venue_matches(r) and not r.is_spot],
                              dtype=np.int64)
            self._margin_venues[id(policy)] = venues, 1.0 / np.maximum(self.maintenance_ratio[venues], 1e-12)
        venues, cap = self._margin_venues[id(policy)]
        im, mm = np.asarray(initial, dtype=float), np.asarray(maintenance, dtype=float)
        im = (im if im.shape == (k,) else np.broadcast_to(im, (k,)))[venues]
        mm = np.minimum((mm if mm.shape == (k,) else np.broadcast_to(mm, (k,)))[venues], cap)
        self.margin_multipliers()  # keep the step's starting values before changing them
        old_im, old_mm = vb.im_mult[venues], vb.margin_mult[venues]
        if self._margin_set == self.steps:  # another module set them this step
            im, mm = np.maximum(im, old_im), np.maximum(mm, old_mm)
        self._margin_set = self.steps
        moved = old_mm != mm
        if not len(venues) or (not moved.any() and (old_im == im).all()):
            return
        if (im > 1.0).any() or (mm > 1.0).any():
            self.effects.credit(policy)
        vb.im_mult[venues] = im
        if moved.any():  # liquidation prices move with maintenance only
            self.engine.set_maintenance(venues[moved], mm[moved])

    def warnings(self) -> list[str]:
        """Configured modules that never took effect during the run."""
        return [f"rule set {p.rule_set}: module {p.name} ({p.title}) never took effect in this run"
                for p in self.effects.never()]

    # ------------------------------------------------------------ one step
    def step(self) -> None:
        t = self.steps - 1
        mkt, engine = self.market, self.engine
        price_prev = self.price_path[t]  # before the step: recorded at the last one's end (nothing moves them between)
        # 1. exogenous arrivals and decay of temporary dislocations
        if kd.arrivals(t, *self._arrival_args):  # a collateral value changed
            engine.refresh(np.flatnonzero(self.tb.coin > 0))
        for mod in self._stepping:  # market-wide interventions
            mod.on_step(self)
        self._remember_drawdown()
        # 2. liquidity providers, at the book prices, which stay until the traders decide (3.)
        price = mkt.prices()
        self.market_makers.adjust(np.log(price / price_prev), price)
        mkt.new_step(self.arbitrageurs.capacity)  # books refill, arbitrage capacity resets
        if self.refilling:
            self.populations.do("refill")  # new money for wiped-out accounts (every step: common random numbers)
        # 3. voluntary orders, netted and executed together; 4. the cascade (both wait out a halt)
        if not self.halted:
            self.market_makers.lay_off(price)
            orders = self.populations.map("decide") + [a.decide() for a in self._vault_venues]
            idx = np.concatenate([o[0] for o in orders])
            dq = np.concatenate([o[1] for o in orders])
            if len(idx):
                uidx, udq = kernels.net_orders(idx, dq)
                if self._execute_voluntary(uidx, self._within_oi_caps(uidx, udq)):
                    engine.cover_negative(uidx)  # an account that closed under water
                    engine.refresh(uidx)
            self.rounds[t] = self._cascade(t)
        # 5. bookkeeping
        self._collect(t)
        if self.audit is not None:
            self.audit.check(f"after step {t}")

    def _execute_voluntary(self, idx: np.ndarray, dq: np.ndarray) -> bool:
        """Execute the netted voluntary orders ``dq`` of accounts ``idx`` (vaults' unwinds of
        taken-over positions count as forced) and refresh their liquidation prices, in one
        compiled call (``kernels_decide.execute_voluntary``). Returns True, without the refresh,
        when an account closed under water (negative balance protection comes first)."""
        engine = self.engine
        engine._room(len(idx))
        return kd.execute_voluntary(idx, dq, np.exp(self.vb.basis), engine._changed, self._voluntary_args)

    def _within_oi_caps(self, idx: np.ndarray, dq: np.ndarray) -> np.ndarray:
        """Drop orders that would grow a position on a venue at its open-interest cap."""
        if not self._capped:
            return dq
        caps = []
        for v, r in enumerate(self.vb.rules):
            found = [c for c in (p.open_interest_cap(r) for p in self._venue_policies[v]) if c is not None]
            if found:
                caps.append((v, min(found)))
        if not caps:
            return dq
        oi = self.open_interest()
        s = self.tb.size[idx]
        grows = np.abs(s + dq) > np.abs(s)
        for v, cap in caps:
            if oi[v] >= cap:
                blocked = grows & (self.tb.venue[idx] == v)
                if blocked.any():
                    dq = np.where(blocked, 0.0, dq)
                    for p in self.policies:
                        if p.target.venue_matches(self.vb.rules[v]) and p.open_interest_cap(self.vb.rules[v]) is not None:
                            self.effects.credit(p)
        return dq

    def _cascade(self, t: int) -> int:
        """Run liquidation rounds until nothing triggers. Returns rounds with activity."""
        prm, engine, arbitrage = self.scenario.market, self.engine, self.arbitrageurs.act
        band, round_seconds, step_seconds = prm.band, prm.round_seconds, self.scenario.step_minutes * 60.0
        time_s = t * step_seconds
        active_rounds = 0
        for rnd in range(prm.max_rounds):
            arbitrage()  # first, so the round's check sees every price move
            acted, waiting = engine.cascade_round(band, time_s + rnd * round_seconds, t, rnd)
            if acted:
                active_rounds += 1
            elif not waiting or (rnd + 1) * round_seconds >= step_seconds:
                break
        return active_rounds

    def _collect(self, t: int) -> None:
        """Step ``t``'s bookkeeping: funding premiums, the index and price paths and the venue
        and residence series in one compiled call (``kernels_decide.close_step``), then Mesa's
        DataCollector."""
        kd.close_step(t, np.exp(self.vb.basis), self._close_step_args)
        self.datacollector.collect(self)

    def venue_table(self) -> pd.DataFrame:
        """The per-step venue state collected so far, one row per step and venue."""
        done, k = self.steps, len(self.vb.rules)
        table = {"step": np.repeat(np.arange(1, done + 1), k), "venue": np.tile(np.arange(k), done)}
        table.update({c: self.venue_series[c][:done].ravel() for c in VENUE_COLUMNS})
        return pd.DataFrame(table)

    def run(self, progress=None) -> None:
        """Run the scenario to its end; ``progress(steps_done, total)`` is called after each step."""
        total = self.scenario.steps
        while self.steps < total:
            self.step()
            if progress is not None:
                progress(self.steps, total)

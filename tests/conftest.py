"""Shared fixtures: short, self-contained crash scenarios written to temporary files."""

import pytest

from policylab.inputs.scenario import load_scenario

SHORT_SCENARIO = """
name: short-crash
title: Short crash on every venue kind
start_price: 100000
duration_minutes: 180
step_minutes: 1
sigma_daily: 0.03
venues:
  - {name: dex, kind: offshore_dex, open_interest_usd: 3.0e+9, depth_usd: 5.0e+7, insurance_fund_usd: 1.0e+6,
     vault_capital_usd: 5.0e+7}
  - {name: pool, kind: offshore_pool, open_interest_usd: 5.0e+8, depth_usd: 1.0e+7}
  - {name: cex, kind: offshore_cex, open_interest_usd: 5.0e+9, depth_usd: 1.0e+8, insurance_fund_usd: 2.0e+6,
     collateral_exposed_share: 0.2, funding_interval_minutes: 60}
  - {name: broker, kind: eu_broker, open_interest_usd: 3.0e+8, depth_usd: 1.0e+7, insurance_fund_usd: 1.0e+6}
  - {name: cme, kind: us_regulated, open_interest_usd: 2.0e+9, depth_usd: 5.0e+7}
  - {name: spot, kind: spot_etf, depth_usd: 1.0e+8}
population:
  traders: 3000
  real_accounts: 300000
  classes:
    retail:
      share: 0.85
      oi_share: 0.5
      leverage_median: 10
      leverage_sigma: 0.7
      leverage_tail_share: 0.05
      leverage_tail: [50, 500]
      long_share: 0.75
      stop_share: 0.4
      activity_per_minute: 0.01
    professional: {share: 0.1, oi_share: 0.3, leverage_median: 5, activity_per_minute: 0.05, long_share: 0.5}
    basis: {share: 0.03, oi_share: 0.2, leverage_median: 3, venues: {dex: 0.3, cex: 0.4, cme: 0.3}}
    institutional: {share: 0.02, holdings_usd: 2.0e+10, outflow_per_minute: 0.001}
shocks:
  - {kind: price, start_minute: 30, duration_minutes: 10, size: -0.15}
  - {kind: liquidity, start_minute: 30, duration_minutes: 20, depth_multiplier: 0.3, recovery_half_life_minutes: 30}
  - {kind: collateral, start_minute: 32, duration_minutes: 30, price: 0.6, venues: [cex]}
  - {kind: volatility, start_minute: 30, duration_minutes: 60, multiplier: 3.0}
  - {kind: price, start_minute: 100, duration_minutes: 10, size: 0.12}
"""


@pytest.fixture
def short_scenario_path(tmp_path):
    path = tmp_path / "short-crash.yaml"
    path.write_text(SHORT_SCENARIO)
    return path


@pytest.fixture
def short_scenario(short_scenario_path):
    return load_scenario(str(short_scenario_path))


# A two-hour crash: an 8% exogenous fall with thin books and a depeg, so that the
# liquidation machinery, stops and the fund are all exercised.
FLASH = """
name: flash-test
title: "Test: a two-hour flash crash"
start_price: 100000
duration_minutes: 120
venues:
  - {name: dex, kind: offshore_dex, open_interest_usd: 5.0e9, depth_usd: 5.0e7}
  - {name: pool, kind: offshore_pool, open_interest_usd: 5.0e8, depth_usd: 1.0e7}
  - {name: cex, kind: offshore_cex, open_interest_usd: 1.0e10, depth_usd: 2.0e8, collateral_exposed_share: 0.1}
  - {name: futures, kind: us_regulated, open_interest_usd: 5.0e9, depth_usd: 1.0e8}
  - {name: spot, kind: spot_etf, depth_usd: 1.0e8}
population:
  traders: 2000
  real_accounts: 200000
  classes:
    retail: {share: 0.9, oi_share: 0.5, venues: {dex: 0.4, pool: 0.1, cex: 0.5}, leverage_median: 10,
             leverage_tail_share: 0.05, long_share: 0.75, stop_share: 0.3, activity_per_minute: 0.005}
    professional: {share: 0.08, oi_share: 0.3, venues: {dex: 0.3, cex: 0.4, futures: 0.3}, leverage_median: 5,
                   activity_per_minute: 0.02}
    basis: {share: 0.02, oi_share: 0.2, venues: {cex: 0.5, futures: 0.5}, leverage_median: 3}
shocks:
  - {kind: price, start_minute: 30, duration_minutes: 20, size: -0.08}
  - {kind: liquidity, start_minute: 30, duration_minutes: 20, depth_multiplier: 0.3, recovery_half_life_minutes: 30}
  - {kind: collateral, start_minute: 35, duration_minutes: 20, price: 0.7, venues: [cex]}
"""


@pytest.fixture(scope="session")
def flash_path(tmp_path_factory):
    """FLASH written to a file (shared by the results and CLI tests)."""
    path = tmp_path_factory.mktemp("scenario") / "flash.yaml"
    path.write_text(FLASH)
    return path


BUGGY_MODULE = '''
from policylab.policies.api import Param, Policy


class Buggy(Policy):
    name, title, source = "buggy", "A third-party module with a bug", "a test"
    fail_seed = Param(1, "seed", "seed on which the bug bites", lo=0, hi=1000)

    def on_step(self, model):
        if model.seed == self.fail_seed and model.steps > 3:
            raise ZeroDivisionError("bug in a third-party module")
'''


@pytest.fixture(scope="module")
def buggy(tmp_path_factory):
    """A rule set whose local policy module (a third-party module with a bug) raises on seed 1."""
    d = tmp_path_factory.mktemp("buggy")
    (d / "buggy.py").write_text(BUGGY_MODULE)
    (d / "buggy.yaml").write_text("name: buggy\ntitle: Buggy\nmodules:\n  - module: buggy.py:Buggy\n")
    return str(d / "buggy.yaml")

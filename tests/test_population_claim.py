"""The brief's limitation on population size states what the convergence study found
(benchmarks/results/differences_20000_40000_30seeds.csv, benchmarks/README.md)."""

from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "benchmarks/results/differences_20000_40000_30seeds.csv"
# the sizes the limitation names, per metric (the study's units: USD, fraction)
BOUNDS = {"liquidated_usd": 0.5e9, "forced_closed_usd": 0.5e9, "index_drawdown": 0.002, "retail_loss_usd": 60e6,
          "volume_usd.voluntary": 2.5e9}
DECIDED_BY_FEW = {"fund_drawdown_usd", "bad_debt_usd", "adl_usd", "depth_worst_ratio"}


def test_the_limitation_matches_the_study():
    t = pd.read_csv(STUDY)
    changed = t[t["verdict_changed"]]
    assert 0.1 < len(changed) / len(t) < 0.25  # "one verdict in six"
    core = changed[changed["metric"].isin(BOUNDS)]
    assert len(core) > 0
    for r in core.itertuples():
        assert max(abs(r.diff_mean_20000), abs(r.diff_mean_40000)) < BOUNDS[r.metric], (r.rule_set, r.metric)
    flips = changed[changed["improvement_20000"].isin(["better", "worse"])
                    & changed["improvement_40000"].isin(["better", "worse"])]
    assert set(flips["metric"]) <= DECIDED_BY_FEW
    assert not t[t["rule_set"] == "circuit-breaker-proposal"]["verdict_changed"].any()  # a large effect holds
    text = " ".join((ROOT / "templates/partials/limitations.html").read_text().split())
    assert ("under about $0.5B of liquidated or force-closed notional on a day of about $10B, 0.2 percentage points "
            "of drawdown, $60M of retail losses or $2.5B of voluntary volume" in text and "one verdict in six" in text)

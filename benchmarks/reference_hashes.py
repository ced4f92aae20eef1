"""Table hashes of a fixed set of reference runs (ABIDES' rule: reference configurations
give identical outputs from commit to commit unless a change says why).

    python benchmarks/reference_hashes.py            # print the hashes as JSON
    python benchmarks/reference_hashes.py --check    # compare with tests/reference_hashes.json
    python benchmarks/reference_hashes.py --write    # record them (only in a commit that says why)

Each run: a built-in scenario cut to its first ``minutes`` (the shocks of the 10 October
scenario fall in its first hours), a rule set (or the scenario as written), a seed, a
population. A hash is the SHA-256 of the table's CSV (full float precision), first 16 digits.
tests/test_reference_hashes.py runs the same check in the suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

RECORD = Path(__file__).resolve().parent.parent / "tests" / "reference_hashes.json"

# (scenario, rule set or None, seed, traders, minutes)
RUNS = [
    ("calm", None, 0, 2000, 240),
    ("calm", "status-quo-2025", 1, 2000, 240),
    ("october-2025", "status-quo-2025", 0, 3000, 1440),
    ("october-2025", "repeal-japan-2020", 0, 3000, 1440),
    ("october-2025", "circuit-breaker-proposal", 1, 3000, 1440),
    ("october-2025", "dynamic-margin-proposal", 2, 3000, 1440),
    ("october-2025", "us-onshoring-2025", 0, 3000, 1440),
    ("short-squeeze", "repeal-esma-2018", 0, 2000, 720),
    ("stylized-month", "stablecoin-haircuts", 0, 1000, 2880),
]


def run_key(scenario: str, rules: str | None, seed: int, traders: int, minutes: int) -> str:
    return f"{scenario}|{rules or '-'}|seed={seed}|traders={traders}|minutes={minutes}"


def table_hashes(scenario: str, rules: str | None, seed: int, traders: int, minutes: int) -> dict[str, str]:
    from policylab import load_rules, load_scenario, run

    sc = load_scenario(scenario)
    sc = dataclasses.replace(sc, duration_minutes=min(minutes, sc.duration_minutes))
    result = run(sc, seed=seed, traders=traders, rules=[load_rules(rules)] if rules else ())
    return {name: hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()[:16]
            for name, df in result.tables().items()}


def compute() -> dict[str, dict[str, str]]:
    return {run_key(*r): table_hashes(*r) for r in RUNS}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the recorded hashes")
    ap.add_argument("--write", action="store_true", help="record the hashes")
    args = ap.parse_args()
    found = compute()
    if args.write:
        RECORD.write_text(json.dumps(found, indent=2) + "\n")
        print(f"wrote {RECORD}")
        return 0
    if args.check:
        recorded = json.loads(RECORD.read_text())
        bad = [k for k in recorded if recorded[k] != found.get(k)]
        for k in bad:
            print(f"changed: {k}: {recorded[k]} -> {found.get(k)}")
        print(f"{len(recorded) - len(bad)} of {len(recorded)} reference runs unchanged")
        return 1 if bad else 0
    print(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

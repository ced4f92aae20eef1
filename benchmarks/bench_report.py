"""Time the brief of a comparison: ``policylab report DIR`` end to end and by stage.

    python benchmarks/bench_report.py --results outputs/october-2025-standard
    python benchmarks/bench_report.py --run-standard --results /tmp/standard   # runs the comparison first

``--run-standard`` first runs the standard comparison (every shipped rule set against
the status quo on ``october-2025``, 30 seeds, default population) into ``--results``.

End to end: ``--repeat`` fresh ``policylab report DIR`` processes (HTML and PDF, imports
included), wall seconds each. By stage: one fresh process reading the folder, building
the context (key findings, tables, the six figures, ODD), rendering the HTML and the PDF,
with wall and CPU seconds per stage. Both write ``brief.html`` and ``brief.pdf`` into the
folder, as the command does. Reported with the load average, since other jobs on the
machine inflate wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 10.0
STAGES = r"""
import json, sys, time
t = {}
def mark(name, t0, c0):
    t[name] = (time.perf_counter() - t0, time.process_time() - c0)
t0, c0 = time.perf_counter(), time.process_time()
from policylab.brief import render as report
mark("import", t0, c0)
t0, c0 = time.perf_counter(), time.process_time(); res = report.load(sys.argv[1]); mark("read", t0, c0)
t0, c0 = time.perf_counter(), time.process_time(); ctx = report.context(res); mark("context and figures", t0, c0)
t0, c0 = time.perf_counter(), time.process_time(); html = report.render_html(ctx); mark("HTML", t0, c0)
t0, c0 = time.perf_counter(), time.process_time(); pdf = report.render_pdf(report.render_html({**ctx, "paged": True})); mark("PDF", t0, c0)
print(json.dumps({"stages": t, "html_bytes": len(html.encode()), "pdf_bytes": len(pdf)}))
"""


def policylab_bin() -> str:
    return shutil.which("policylab", path=str(Path(sys.executable).parent)) or "policylab"


def standard(out: Path) -> None:
    from policylab.inputs.rulesets import builtin_rule_sets

    rules = [r for r in builtin_rule_sets() if r != "status-quo-2025"]
    subprocess.run([policylab_bin(), "compare", *rules, "--scenario", "october-2025", "--seeds", "30", "--out",
                    str(out)], check=True)


def pages(pdf: Path) -> int | None:
    try:
        out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return next((int(line.split()[-1]) for line in out.splitlines() if line.startswith("Pages:")), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, required=True, help="results folder of a comparison")
    ap.add_argument("--run-standard", action="store_true", help="run the standard comparison into --results first")
    ap.add_argument("--repeat", type=int, default=3, help="end-to-end repetitions (default 3)")
    args = ap.parse_args()
    if args.run_standard:
        standard(args.results)
    manifest = json.loads((args.results / "manifest.json").read_text())
    print(f"results: {args.results} ({manifest['scenario']}, {len(manifest['rule_sets'])} rule sets x "
          f"{len(manifest['seeds'])} seeds, {manifest['traders']:,} traders)")
    sizes = {p.name: p.stat().st_size for p in args.results.iterdir() if p.suffix in (".parquet", ".csv")}
    print("inputs: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(sizes.items())))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    walls = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run([policylab_bin(), "report", str(args.results)], check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
    print(f"end to end `policylab report DIR` (HTML + PDF, fresh process): "
          f"{', '.join(f'{w:.2f}' for w in walls)} s; median {statistics.median(walls):.2f} s "
          f"(target < {TARGET_SECONDS:.0f} s: {'met' if statistics.median(walls) < TARGET_SECONDS else 'MISSED'})")

    proc = subprocess.run([sys.executable, "-c", STAGES, str(args.results)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"timing the stages failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    stages = json.loads(proc.stdout.strip().splitlines()[-1])
    print("| stage | wall s | CPU s |\n|---|---:|---:|")
    for name, (wall, cpu) in stages["stages"].items():
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")
    render = sum(w for name, (w, _) in stages["stages"].items() if name != "import")
    print(f"render without imports: {render:.2f} s wall")
    print(f"brief.html {stages['html_bytes'] / 1e6:.2f} MB, brief.pdf {stages['pdf_bytes'] / 1e6:.2f} MB, "
          f"{pages(args.results / 'brief.pdf')} pages")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

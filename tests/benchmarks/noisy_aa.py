"""A/A with and without a busy neighbour (run by hand; prints figures, asserts nothing).

Three `bench run`s of the same matrix with the same code: A and A2 on a quiet host, B while a CPU
burner (one unpinned busy-loop process per ``--burners``) runs for the whole of B. Then `bench compare`
A vs A2 and A vs B, printing for each: regressions, improvements (all false: nothing changed), cells not
comparable because noisy, and the worst ratio of a cell's medians between the two runs.

Run it from a checkout (``--repo``, default this one) to measure that checkout's code; the suite's own
`bench compare` of this checkout judges both (it ignores ``noisy`` when a run has no such column, so a
checkout from before the noisy flag is judged as it judged itself).

    .venv/bin/python tests/benchmarks/noisy_aa.py --results /tmp/naa [--repo PATH] [-- extra bench run args]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MATRIX = ["-w", "mlp_classifier", "-p", "cpu", "-p", "cpu-1t", "--quick", "--sweep", "all", "--no-dashboard"]


def _run(repo: Path, results: str, run_id: str, extra: list[str]) -> float:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "suite.cli", "run", *MATRIX, *extra, "--results", results,
                          "--run-id", run_id], cwd=repo, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        sys.exit(f"bench run {run_id} failed:\n{out.stderr[-2000:]}")
    return time.monotonic() - t0


def _report(results: str, base: str, new: str) -> str:
    from suite.compare import DEFAULT_FACTOR, DEFAULT_NOISE_K, compare_runs, run_spread, spread_note
    from suite.results import read_results

    df = read_results(results, [base, new])
    b, n = df[df.run_id == base], df[df.run_id == new]
    rows = compare_runs(b, n)
    spread = spread_note(run_spread(b, n), DEFAULT_FACTOR, DEFAULT_NOISE_K)
    reg = sum(r["verdict"] == "regression" for r in rows)
    imp = sum(r["verdict"] == "improvement" for r in rows)
    noisy = sum(r["verdict"] == "not comparable" and "noisy" in r["note"] for r in rows)
    ratios = [r["ratio"] for r in rows if r["ratio"]]
    worst = max(ratios, key=lambda x: max(x, 1 / x)) if ratios else float("nan")
    cell = next((r for r in rows if r["ratio"] == worst), None)
    where = f" ({cell['workload']} {cell['params']} {cell['target']} @{cell['profile']})" if cell else ""
    return (f"{base} vs {new}: {len(ratios)} timed in both; {reg} regression(s), {imp} improvement(s), "
            f"{noisy} not comparable (noisy); worst median ratio {worst:.2f}{where}\n  {spread}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--repo", default=str(REPO), help="the checkout whose code runs")
    ap.add_argument("--burners", type=int, default=1)
    ap.add_argument("--report-only", action="store_true", help="only compare the runs already in --results")
    ap.add_argument("extra", nargs="*", help="more `bench run` arguments (after --)")
    args = ap.parse_args()
    if args.report_only:
        print(_report(args.results, "A", "A2"))
        print(_report(args.results, "A", "B"))
        return 0
    repo = Path(args.repo)
    for run_id in ("A", "A2"):
        print(f"{run_id}: {_run(repo, args.results, run_id, args.extra):.0f} s (quiet)", flush=True)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
    try:
        took = _run(repo, args.results, "B", args.extra)
    finally:
        for b in burners:
            b.kill()
            b.wait()
    print(f"B: {took:.0f} s ({args.burners} burner(s) running)", flush=True)
    print(_report(args.results, "A", "A2"))
    print(_report(args.results, "A", "B"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

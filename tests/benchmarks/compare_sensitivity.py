"""Sensitivity of `bench compare` on this machine (run by hand; prints figures, asserts nothing):

1. False positives: regressions or improvements flagged over N A/A comparisons (two `bench run`s of the same code).
2. Detection: for injected slowdowns of 1 .. 20% of a ~1 ms cell, how many of N comparisons flag a
   regression, and the smallest slowdown detected reliably (>= 90% of trials, and every larger one too).

    .venv/bin/python tests/benchmarks/compare_sensitivity.py              # 10 trials, full timing
    .venv/bin/python tests/benchmarks/compare_sensitivity.py --trials 3 --quick

The cell: `mlp_classifier` at batch 1 on the NumPy test target `test:numpy`, profile `cpu-1t`, with
BENCH_TEST_DELAY_MS=1.0 (a busy-wait inside the timed call) making it a ~1.08 ms call; a slowdown of s%
raises the delay by s% of the measured base median. Each run is a real `bench run` (its own worker
process, the engine's default stop rule), so run-to-run noise between processes is included.
Runs are interleaved by trial (base pair, then one run per slowdown) so that drift of the host hits
every level alike. Verdicts come from `suite.compare.compare_runs`, the code behind `bench compare`,
with the default factor 1.10 and with factor 1.0 (significance only, p < 0.01). With the default
factor nothing below +10% can be flagged by design: the figure with factor 1.0 is the test's raw power.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

LEVELS = (0.01, 0.02, 0.03, 0.05, 0.10, 0.12, 0.15, 0.20)
FACTORS = (1.10, 1.0)
BASE_DELAY_MS = 1.0


def bench_run(results: Path, wdir: Path, run_id: str, delay_ms: float, quick: bool) -> None:
    cmd = [sys.executable, "-m", "suite.cli", "--workloads-dir", str(wdir), "run", "-w", "mlp_classifier",
           "-t", "test:numpy", "-p", "cpu-1t", "--results", str(results), "--run-id", run_id]
    env = {**os.environ, "BENCH_TEST_DELAY_MS": f"{delay_ms:.6f}"}
    subprocess.run(cmd + (["--quick"] if quick else []), cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="quick timing in each run (smoke test of this script)")
    ap.add_argument("--alpha", type=float, default=0.01)
    args = ap.parse_args()

    from suite.compare import compare_runs
    from suite.results import read_results

    tmp = Path(tempfile.mkdtemp(prefix="compare-sensitivity-"))
    wdir, results = tmp / "workloads", tmp / "results"
    wdir.mkdir()
    spec = yaml.safe_load((REPO / "workloads" / "mlp_classifier.yaml").read_text())
    spec["sweep"] = {"batch": [1]}  # one ~1 ms cell per run
    (wdir / "mlp_classifier.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    # Calibrate: the base cell's median, so that "s%" is s% of the real call, not of the delay alone.
    bench_run(results, wdir, "calib", BASE_DELAY_MS, args.quick)
    base_ms = float(read_results(results, ["calib"]).latency_median_s.iloc[0]) * 1e3
    print(f"cell: mlp_classifier batch=1 test:numpy @cpu-1t, delay {BASE_DELAY_MS} ms -> median {base_ms:.3f} ms; "
          f"{args.trials} trials; alpha {args.alpha}", flush=True)

    def verdict(a: str, b: str, factor: float) -> tuple[str, float, float]:
        (row,) = compare_runs(read_results(results, [a]), read_results(results, [b]), factor, args.alpha)
        return row["verdict"], row["ratio"], row["p_value"]

    fp = {f: 0 for f in FACTORS}
    hits = {(lvl, f): 0 for lvl in LEVELS for f in FACTORS}
    aa_ratios = []
    for t in range(args.trials):
        a, a2 = f"t{t}-a", f"t{t}-a2"
        bench_run(results, wdir, a, BASE_DELAY_MS, args.quick)
        bench_run(results, wdir, a2, BASE_DELAY_MS, args.quick)
        for lvl in LEVELS:
            bench_run(results, wdir, f"t{t}-s{lvl:g}", BASE_DELAY_MS + lvl * base_ms, args.quick)
        for f in FACTORS:
            v, ratio, _ = verdict(a, a2, f)
            fp[f] += v != "unchanged"  # an A/A "improvement" is as false as a regression
        aa_ratios.append(ratio)
        for lvl in LEVELS:
            for f in FACTORS:
                hits[(lvl, f)] += verdict(a, f"t{t}-s{lvl:g}", f)[0] == "regression"
        print(f"trial {t + 1}/{args.trials} done (A/A ratio {ratio:.3f})", flush=True)

    n = args.trials
    print(f"\nA/A ratio of medians: min {min(aa_ratios):.3f}, max {max(aa_ratios):.3f}")
    print(f"\n{'slowdown':>9}  " + "  ".join(f"detected (factor {f:g})" for f in FACTORS))
    for lvl in LEVELS:
        print(f"{lvl:>9.0%}  " + "  ".join(f"{hits[(lvl, f)]:>2}/{n}".ljust(len(f'detected (factor {f:g})'))
                                         for f in FACTORS))
    print(f"{'A/A':>9}  " + "  ".join(f"{fp[f]:>2}/{n} false positives".ljust(len(f'detected (factor {f:g})'))
                                      for f in FACTORS))
    for f in FACTORS:
        reliable = [lvl for i, lvl in enumerate(LEVELS)
                    if all(hits[(x, f)] >= 0.9 * n for x in LEVELS[i:])]
        smallest = f"{reliable[0]:.0%}" if reliable else f"none up to {LEVELS[-1]:.0%}"
        print(f"factor {f:g}: smallest slowdown detected reliably (>= 90% of trials): {smallest}; "
              f"false positives over {n} A/A comparisons: {fp[f]}")
    print(f"(raw runs kept in {results})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

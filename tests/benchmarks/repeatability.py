"""Repeatability of `bench run` (run by hand; prints figures): the share of cells whose medians agree
within ±5% between two runs of the same matrix.

    .venv/bin/bench run --quick --results /tmp/rep --run-id a
    .venv/bin/bench run --quick --results /tmp/rep --run-id b
    .venv/bin/python tests/benchmarks/repeatability.py /tmp/rep a b
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(results_dir: str, run_a: str, run_b: str, tol: float = 0.05) -> int:
    from suite.results import read_results

    df = read_results(results_dir, [run_a, run_b])
    df = df[df.status == "pass"]
    keys = ["workload", "params", "target", "profile", "mode"]
    a = df[df.run_id == run_a].set_index(keys).latency_median_s
    b = df[df.run_id == run_b].set_index(keys).latency_median_s
    both = a.to_frame("a").join(b.to_frame("b"), how="inner")
    ratio = both.b / both.a
    within = (ratio - 1).abs() <= tol
    print(f"{len(both)} cells timed in both runs; {within.mean():.1%} agree within ±{tol:.0%} "
          f"(median |ratio-1| {((ratio - 1).abs()).median():.1%}, worst {ratio.min():.2f}..{ratio.max():.2f})")
    for profile, grp in within.groupby(level="profile"):
        print(f"  {profile:<10} {grp.mean():.1%} of {len(grp)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))

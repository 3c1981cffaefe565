"""Repeatability of `bench run` (run by hand; prints figures, asserts nothing): two runs of the same
matrix, back to back, on the same code (A/A).

Prints, per profile: the share of cells timed in both runs whose medians agree within ±5%, the median
and worst ratio, how many cells either run flagged ``unstable`` or ``noisy``, and the false positives of
`bench compare` between them (regressions and improvements at the default factor 1.10 and alpha 0.01;
every one is false, since nothing changed).

    .venv/bin/bench run -p cpu -p cpu-1t --results /tmp/rep --run-id a --no-dashboard
    .venv/bin/bench run -p cpu -p cpu-1t --results /tmp/rep --run-id b --no-dashboard
    .venv/bin/python tests/benchmarks/repeatability.py /tmp/rep a b
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(results_dir: str, run_a: str, run_b: str, tol: float = 0.05) -> int:
    from suite.compare import compare_runs
    from suite.results import read_results

    df = read_results(results_dir, [run_a, run_b])
    keys = ["workload", "params", "target", "profile", "mode"]
    timed = df[df.status == "pass"]
    a = timed[timed.run_id == run_a].set_index(keys)
    b = timed[timed.run_id == run_b].set_index(keys)
    cols = ["latency_median_s", "unstable", "noisy"]
    both = a[cols].add_suffix("_a").join(b[cols].add_suffix("_b"), how="inner")
    both["noisy_either"] = both.noisy_a.fillna(False).astype(bool) | both.noisy_b.fillna(False).astype(bool)
    both["ratio"] = both.latency_median_s_b / both.latency_median_s_a
    both["within"] = (both.ratio - 1).abs() <= tol
    rows = compare_runs(df[df.run_id == run_a], df[df.run_id == run_b])
    for r in rows:
        r["false"] = r["verdict"] in ("regression", "improvement")
    for label, grp in [("all", both), *both.groupby(level="profile")]:
        prof = None if label == "all" else label
        flagged = [r for r in rows if r["false"] and (prof is None or r["profile"] == prof)]
        compared = [r for r in rows if r["verdict"] != "not comparable" and (prof is None or r["profile"] == prof)]
        dev = (grp.ratio - 1).abs()
        print(f"{label:<14} {len(grp):>4} cells: {grp.within.mean():6.1%} within ±{tol:.0%}, median |ratio-1| "
              f"{dev.median():5.1%}, worst ratio {grp.ratio.min():.2f}..{grp.ratio.max():.2f}; unstable "
              f"{int((grp.unstable_a | grp.unstable_b).sum())}; noisy {int(grp.noisy_either.sum())}; "
              f"bench compare A/A: {len(flagged)} of {len(compared)} flagged")
    for r in rows:
        if r["false"]:
            print(f"  {r['verdict']:<11} {r['workload']} {r['params']} {r['target']} @{r['profile']}: "
                  f"ratio {r['ratio']:.2f} (p {r['p_value']:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))

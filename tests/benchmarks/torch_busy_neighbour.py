"""torch's OpenMP wait policy next to a busy process, in the suite's own cells (run by hand; prints figures,
asserts nothing).

Four `bench run`s of the same torch cells on the 2-thread `cpu` profile: libgomp's default wait policy and
``OMP_WAIT_POLICY=PASSIVE``, each quiet and with one unpinned busy-loop process running, then the medians
side by side (ms). The workers inherit ``OMP_WAIT_POLICY`` from this process's environment.

    .venv/bin/python tests/benchmarks/torch_busy_neighbour.py --results /tmp/tps
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

RUN = ["run", "--no-dashboard", "-w", "mlp_classifier", "-w", "mobilenet_cnn", "-t", "torch:eager",
       "-t", "torch:compile", "-p", "cpu", "--quick", "--sweep", "all"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True)
    args = ap.parse_args()
    for policy in ("default", "PASSIVE"):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if policy != "default":
            env["OMP_WAIT_POLICY"] = policy
        for cond in ("quiet", "busy"):
            burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if cond == "busy" else None
            try:
                time.sleep(0.5 if burner else 0)
                subprocess.run([sys.executable, "-m", "suite.cli", *RUN, "--results", args.results, "--run-id",
                                f"{policy}-{cond}"], cwd=REPO, env=env, capture_output=True, text=True)
            finally:
                if burner is not None:
                    burner.kill()
                    burner.wait()
    from suite.results import read_results

    df = read_results(args.results)
    table = df[df.status == "pass"].pivot_table(index=["workload", "params", "target"], columns="run_id",
                                                values="latency_median_s") * 1e3
    print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())

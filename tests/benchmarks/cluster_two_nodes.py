"""The quick matrix of one workload on a two-node Ray cluster of this machine against the same plan run
locally: wall time of each and how many cells each node ran.

    .venv/bin/python tests/benchmarks/cluster_two_nodes.py [-w mlp_classifier]

Both runs start from the same warm caches (a first local run fills the artifact, reference and compiler
caches), so the figure compares scheduling, not exports. Each node is one Ray node with one CPU advertising
every profile available here (`bench node --print`); on one host the timed part of cells is still one at
a time (the host-wide timing lock), so what two nodes gain here is the verification, worker start-up and
build time of cells overlapping.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bench(*args: str) -> float:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "suite.cli", *args], cwd=REPO, capture_output=True, text=True)
    took = time.monotonic() - t0
    if out.returncode not in (0, 1):
        sys.exit(f"bench {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-w", "--workload", default="mlp_classifier")
    args = ap.parse_args()
    from ray.cluster_utils import Cluster

    from suite.results import read_results

    res = json.loads(subprocess.run([sys.executable, "-m", "suite.cli", "node", "--print"], cwd=REPO,
                                    capture_output=True, text=True, check=True).stdout)
    results = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    run = ["run", "--quick", "-w", args.workload, "--no-dashboard", "--results", str(results)]
    warm = bench(*run, "--run-id", "warm-up")
    t0 = time.monotonic()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=1, resources=res)
    c.wait_for_nodes()
    up = time.monotonic() - t0
    try:
        on_cluster = bench(*run, "--ray", c.address, "--run-id", "cluster")
    finally:
        c.shutdown()
    local = bench(*run, "--run-id", "local")
    df = read_results(results)
    cl, lo = df[df.run_id == "cluster"], df[df.run_id == "local"]
    print(f"workload {args.workload}, quick matrix: {len(lo)} cells ({lo.status.value_counts().to_dict()})")
    print(f"warm-up local run (fills the caches): {warm:.1f} s; cluster start (head + 2 nodes): {up:.1f} s")
    print(f"local run:            {local:.1f} s")
    print(f"2-node cluster run:   {on_cluster:.1f} s  (ratio local / cluster {local / on_cluster:.2f})")
    ran = cl[cl.node_id.notna()]
    for node, n in ran.groupby("node_id").size().items():
        print(f"  node {node[:8]}: {n} cells")
    print(f"  not run on a node (skipped / unsupported in the plan): {len(cl) - len(ran)}")
    same = (cl.set_index(["params", "target", "profile"]).status.sort_index()
            == lo.set_index(["params", "target", "profile"]).status.sort_index()).all()
    print(f"statuses equal cell for cell: {bool(same)}; results in {results}")


if __name__ == "__main__":
    main()

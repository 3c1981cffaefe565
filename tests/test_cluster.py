"""`bench run --ray` on a real Ray cluster of three nodes on this machine (ray.cluster_utils.Cluster).

Node A offers cpu-1t and has every framework; node B offers cpu-1t and a stand-in accelerator profile,
gpu-sim, and behaves as a runtime-only host: torch, tensorflow and jax cannot be imported there
($BENCH_BLOCK_IMPORTS, honoured by `bench node`'s detection and by the workers). Each node has one CPU.
The driver is `bench run --ray ADDRESS` itself, in a subprocess, as a user runs it.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO, bench

ray = pytest.importorskip("ray", reason="the [cluster] extra (ray) is not installed")

from ray.cluster_utils import Cluster  # noqa: E402

BLOCKED = "torch,tensorflow,jax"
CELLS = ["-w", "mlp_classifier", "-t", "test:numpy", "-t", "torch>onnx@onnxruntime"]
PROFILES = ["-p", "cpu-1t", "-p", "gpu-sim", "-p", "cuda"]


@pytest.fixture(scope="module")
def profiles_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("profiles")
    for name in ("cpu-1t", "cuda"):
        (d / f"{name}.yaml").write_text((REPO / "hardware_profiles" / f"{name}.yaml").read_text())
    (d / "gpu-sim.yaml").write_text(yaml.safe_dump({
        "name": "gpu-sim", "description": "a stand-in accelerator that only node B offers", "device": "cpu",
        "threads": 1, "precision": "float32", "targets": ["*"]}))
    return d


def _resources(profiles_dir, only, blocked=""):
    """What `bench node -p ... --print` advertises on a host (with $BENCH_BLOCK_IMPORTS as given)."""
    env = dict(os.environ, BENCH_BLOCK_IMPORTS=blocked)
    args = [a for p in only for a in ("-p", p)]
    out = bench("--profiles-dir", str(profiles_dir), "node", *args, "--print", env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def cluster(cache, profiles_dir):
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    a = c.add_node(num_cpus=1, resources=_resources(profiles_dir, ["cpu-1t"]))
    b = c.add_node(num_cpus=1, resources=_resources(profiles_dir, ["cpu-1t", "gpu-sim"], BLOCKED),
                   env_vars={"BENCH_BLOCK_IMPORTS": BLOCKED})
    c.wait_for_nodes()
    yield c, a.node_id, b.node_id
    c.shutdown()


@pytest.fixture(scope="module")
def runs(cluster, profiles_dir, tmp_path_factory):
    """The same plan on the cluster (first: its exports are made on a node) and on this host alone, each in
    its own results folder; (cluster rows, local rows, stderr of the cluster run, its results folder)."""
    c, _a, _b = cluster
    d, here = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("results-local")
    common = ["--profiles-dir", str(profiles_dir), "run", *CELLS, *PROFILES, "--quick", "--sweep", "all",
              "--no-dashboard"]
    on_cluster = bench(*common, "--results", str(d), "--ray", c.address, "--run-id", "cluster", timeout=600)
    assert on_cluster.returncode == 0, on_cluster.stdout + on_cluster.stderr
    local = bench(*common, "--results", str(here), "--run-id", "local", timeout=600)
    assert local.returncode == 0, local.stdout + local.stderr
    from suite.results import read_results

    return read_results(d), read_results(here), on_cluster.stderr, d


def test_cells_run_only_on_nodes_that_offer_their_profile(cluster, runs):
    _c, a, b = cluster
    df, _local, _err, _d = runs
    ran = df[df.status != "skipped"]
    assert len(ran) == 8 and (ran.status == "pass").all()
    assert set(ran[ran.profile == "gpu-sim"].node_id) == {b}  # only B offers gpu-sim
    assert set(ran[ran.profile == "cpu-1t"].node_id) <= {a, b}
    assert (ran.host == socket.gethostname()).all()
    cuda = df[df.profile == "cuda"]
    assert len(cuda) == 4 and (cuda.status == "skipped").all() and cuda.node_id.isna().all()
    assert cuda.status_reason.str.contains("no node of the cluster offers profile cuda").all()


def test_a_device_runs_one_cell_at_a_time(runs):
    df, _local, _err, _d = runs
    ran = df[df.status != "skipped"]
    assert ran.cell_started.notna().all() and (ran.cell_finished >= ran.cell_started).all()
    for _node, cells in ran.groupby("node_id"):
        spans = cells.sort_values("cell_started")[["cell_started", "cell_finished"]].to_numpy()
        for (_s0, end), (start, _e1) in zip(spans, spans[1:]):
            assert start >= end, f"two cells overlap on one node: {spans}"


def test_an_export_made_on_one_node_runs_on_a_node_without_its_framework(cluster, runs):
    c, a, b = cluster
    df, _local, err, _d = runs
    b_res = _resources_of(c.address, b)
    assert "bench-run:torch" not in b_res and "bench-export:torch_onnx_onnxruntime" not in b_res
    assert "bench-run:onnxruntime" in b_res
    # exported where torch is (A), run where it is not (B): the gpu-sim cells of the torch export route
    exports = [line for line in err.splitlines() if "export " in line and "torch>onnx@onnxruntime" in line]
    assert exports and all(f"({a[:8]})" in line for line in exports), err
    route = df[(df.target == "torch>onnx@onnxruntime") & (df.profile == "gpu-sim")]
    assert len(route) == 2 and (route.status == "pass").all() and set(route.node_id) == {b}
    assert (route.artifact_bytes > 0).all()


def _resources_of(address: str, node_id: str) -> dict:
    ray.init(address=address, logging_level="ERROR", log_to_driver=False, include_dashboard=False)
    try:
        return next(n["Resources"] for n in ray.nodes() if n["NodeID"] == node_id)
    finally:
        ray.shutdown()


def test_the_cluster_run_matches_a_local_run_cell_for_cell(runs):
    df, local, _err, _d = runs
    key = ["workload", "params", "target", "profile", "mode"]
    assert len(df) == len(local) == 12
    on_cluster = df.set_index(key).status.sort_index()
    here = local.set_index(key).status.sort_index()
    assert on_cluster.to_dict() == here.to_dict()
    assert local.node_id.isna().all() and df[df.status == "pass"].node_id.notna().all()


def test_the_dashboard_lists_every_host_of_a_cluster_run(cluster, runs, tmp_path):
    _c, a, b = cluster
    _df, _local, _err, d = runs
    out = bench("dashboard", "--results", str(d), "--out", str(tmp_path / "site"))
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "site" / "index.html").read_text()
    assert "Hosts (most recent run, one per cluster node)" in html and "2 nodes of a Ray cluster" in html
    assert f"({a[:8]})" in html and f"({b[:8]})" in html


def test_resume_of_a_cluster_run_runs_nothing_stored(cluster, runs, profiles_dir):
    c, _a, _b = cluster
    _df, _local, _err, d = runs
    out = bench("--profiles-dir", str(profiles_dir), "run", *CELLS, *PROFILES, "--quick", "--sweep", "all",
                "--no-dashboard", "--results", str(d), "--ray", c.address, "--run-id", "cluster", "--resume")
    assert out.returncode == 0, out.stderr
    assert "12 cells already stored, 0 to go" in out.stderr


def test_a_lost_node_crashes_its_cell_which_is_retried_on_another_node(cache, profiles_dir, tmp_path):
    """Two nodes offer cpu-1t; the node that starts the first cell is killed while it runs it."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        res = _resources(profiles_dir, ["cpu-1t"])
        nodes = {n.node_id[:8]: n for n in (c.add_node(num_cpus=1, resources=res) for _ in range(2))}
        c.wait_for_nodes()
        # each call 1.5 s: a cell (warmup, verification, at least 5 samples) lasts over 10 s, so the node is gone
        # before the cell it started can finish, even on a loaded host (0.4 s lost that race once in CI)
        env = dict(os.environ, BENCH_TEST_DELAY_MS="1500")
        cmd = [sys.executable, "-m", "suite.cli", "--profiles-dir", str(profiles_dir), "run", "-w", "mlp_classifier",
               "-t", "test:numpy", "-p", "cpu-1t", "--quick", "--sweep", "all", "--no-dashboard",
               "--results", str(tmp_path), "--run-id", "lost", "--ray", c.address]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed, lines = None, []
        deadline = time.monotonic() + 300
        for line in proc.stderr:
            lines.append(line)
            if killed is None and " started " in line:
                killed = next(k for k in nodes if f"({k})" in line)
                c.remove_node(nodes[killed], allow_graceful=False)
            assert time.monotonic() < deadline, "".join(lines)
        out = proc.stdout.read()
        assert proc.wait(timeout=60) == 0, out + "".join(lines)
    finally:
        c.shutdown()
    assert killed is not None, "".join(lines)
    from suite.results import read_results

    df = read_results(tmp_path)
    crashed = df[df.status == "crashed"]
    assert len(crashed) == 1, df[["params", "status", "status_reason"]]
    reason = crashed.status_reason.iloc[0]
    assert f"({killed})" in reason and "was lost while it ran the cell" in reason and "tried again" in reason
    again = df[(df.params == crashed.params.iloc[0]) & (df.status == "pass")]
    assert len(again) == 1 and not again.node_id.iloc[0].startswith(killed)
    assert (df.groupby("params").status.last() == "pass").all() and len(df) == 3
    assert "retried: mlp_classifier test:numpy @cpu-1t: crashed on" in out


def test_bad_cluster_input_is_one_line_and_exit_2(profiles_dir):
    out = bench("run", "--ray", "127.0.0.1:1", "-w", "mlp_classifier", "--quick", "--no-dashboard")
    assert out.returncode == 2 and out.stderr.strip() == "bench: error: no Ray cluster at '127.0.0.1:1': " \
        "Connection refused", out.stderr
    out = bench("run", "--ray", "auto", "-w", "mlp_classifier", "--quick", "--no-dashboard",
                env=dict(os.environ, BENCH_BLOCK_IMPORTS="ray"))
    assert out.returncode == 2 and out.stderr.strip() == \
        "bench: error: ray is not installed: pip install 'bench-suite[cluster]'"
    out = bench("run", "--ray", "auto", "--retries", "-1", "-w", "mlp_classifier")
    assert out.returncode == 2 and "--retries must be 0 or more" in out.stderr
    out = bench("--profiles-dir", str(profiles_dir), "node", "-p", "tpu", "--print")
    assert out.returncode == 2 and out.stderr.strip().startswith("bench: error: unknown profile 'tpu'")
    out = bench("--profiles-dir", str(profiles_dir), "node", "-p", "cuda")
    assert out.returncode == 2 and "offers none of the profiles asked for" in out.stderr


def test_a_node_advertises_what_it_can_run(profiles_dir):
    res = _resources(profiles_dir, [], BLOCKED)
    assert res["bench-device:cpu"] == 1 and res["bench-profile:cpu-1t"] == 1 and res["bench-profile:gpu-sim"] == 1
    assert "bench-profile:cuda" not in res  # no CUDA device on this host
    assert not any(k.endswith((":torch", ":tensorflow", ":jax")) for k in res)
    assert not any(k.startswith("bench-export:") for k in res if "onnx_onnx" not in k), res  # ONNX files only
    assert "bench-run:onnxruntime" in res
    full = _resources(profiles_dir, ["cpu-1t"])
    assert "bench-profile:gpu-sim" not in full and full["bench-run:torch"] == 1
    assert full["bench-export:torch_onnx_onnxruntime"] == 1 and full["bench-export:torch_export_torch"] == 1


def test_a_blocked_framework_cannot_be_imported_by_a_worker():
    code = "from suite.worker import _block_imports; _block_imports(); import torch"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, BENCH_BLOCK_IMPORTS="torch"))
    assert out.returncode == 1 and "blocked on this host by $BENCH_BLOCK_IMPORTS" in out.stderr
    out = bench("verify", "-w", "mlp_classifier", "-t", "torch:eager", env=dict(os.environ, BENCH_BLOCK_IMPORTS="torch"))
    assert "torch is not installed" in out.stdout

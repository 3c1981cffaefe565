"""The memory estimate (suite.memory) and the planner's refusal of cells that cannot fit."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO
from suite import memory
from suite.plan import make_plan
from suite.profiles import load_profiles
from suite.spec import load_workload, parse_workload
from suite.targets.registry import get_target

PROFILES = load_profiles(REPO / "hardware_profiles")
CPU = {"cpu": PROFILES["cpu"]}
AVAILABLE = {"cpu": (True, "")}

TWO_DENSE = {
    "name": "two_dense",
    "inputs": [{"name": "x", "shape": ["batch", 8]}],
    "sweep": {"batch": [2]},
    "graph": [{"name": "fc1", "op": "dense", "input": "x", "units": 16},
              {"name": "act", "op": "relu", "input": "fc1"},
              {"name": "fc2", "op": "dense", "input": "act", "units": 4}],
    "outputs": ["fc2"],
}

# By hand, batch 2, float32 (4 bytes), canonical weights float64 (8 bytes):
WEIGHTS = 8 * 16 + 16 + 16 * 4 + 4  # fc1 kernel + bias, fc2 kernel + bias = 212 elements
ACTIVATIONS = 2 * 16 + 2 * 16 + 2 * 4  # fc1, act, fc2 outputs = 72 elements (all kept in train mode)
LARGEST = 2 * 16  # fc1's (or act's) output: the most an inference run must hold at once
INPUTS = 2 * 8  # x


def _workload(optimizer=None, **changes):
    data = {**TWO_DENSE, **changes}
    if optimizer:
        data["train"] = {"loss": "mean_squared_error", "optimizer": optimizer}
    return parse_workload(data, "two_dense.yaml")


def test_inference_estimate_is_the_hand_count():
    est = memory.estimate(_workload(), {"batch": 2}, "inference")
    assert est == memory.Estimate(weights_bytes=212 * 4, canonical_bytes=212 * 8, activations_bytes=32 * 4,
                                  inputs_bytes=16 * 4)
    assert (WEIGHTS, ACTIVATIONS, LARGEST, INPUTS) == (212, 72, 32, 16)
    assert est.total_bytes == 848 + 1696 + 128 + 64 == 2736


@pytest.mark.parametrize("optimizer,state", [
    ({"kind": "sgd", "learning_rate": 0.1}, 0),
    ({"kind": "sgd", "learning_rate": 0.1, "momentum": 0.9}, 212 * 4),
    ({"kind": "adam", "learning_rate": 0.001}, 2 * 212 * 4),
], ids=["sgd", "sgd-momentum", "adam"])
def test_train_keeps_every_activation_and_adds_gradients_and_optimiser_state(optimizer, state):
    est = memory.estimate(_workload(optimizer), {"batch": 2}, "train")
    assert est.gradients_bytes == 212 * 4 and est.optimizer_bytes == state
    assert est.activations_bytes == 72 * 4
    assert est.total_bytes == 848 + 1696 + 288 + 64 + 848 + state
    assert est.total_bytes > memory.estimate(_workload(optimizer), {"batch": 2}, "inference").total_bytes


def test_batch_norm_statistics_get_no_gradient_and_views_no_memory():
    wl = _workload({"kind": "sgd", "learning_rate": 0.1},
                   graph=TWO_DENSE["graph"] + [{"name": "bn", "op": "batch_norm", "input": "fc2"},
                                               {"name": "flat", "op": "flatten", "input": "bn"}],
                   outputs=["flat"])
    est = memory.estimate(wl, {"batch": 2}, "train")
    assert est.weights_bytes == (212 + 4 * 4) * 4  # gamma, beta, moving_mean, moving_var
    assert est.gradients_bytes == (212 + 2 * 4) * 4  # gamma and beta only
    assert est.activations_bytes == (72 + 2 * 4) * 4  # bn's output; flatten is a view of it


def test_integer_inputs_count_their_own_size():
    wl = parse_workload({"name": "ids", "inputs": [{"name": "t", "shape": ["batch", 5], "dtype": "int64",
                                                    "distribution": {"kind": "randint", "low": 0, "high": 10}}],
                         "sweep": {"batch": [3]},
                         "graph": [{"name": "e", "op": "embedding", "input": "t", "vocab_size": 10, "dim": 4}],
                         "outputs": ["e"]})
    est = memory.estimate(wl, {"batch": 3}, "inference")
    assert est.inputs_bytes == 3 * 5 * 8 and est.weights_bytes == 10 * 4 * 4 and est.activations_bytes == 60 * 4
    assert est.canonical_bytes == 10 * 4 * 8


# 1000 x 100000 x 100000 float32 inputs alone are 36 TiB: refused on any machine
HUGE = {"name": "huge", "inputs": [{"name": "x", "shape": ["batch", 100000, 100000]}], "sweep": {"batch": [1000]},
        "graph": [{"name": "y", "op": "dense", "input": "x", "units": 100000}], "outputs": ["y"]}


def test_huge_shapes_are_integer_arithmetic_only():
    start = time.perf_counter()
    wl = parse_workload(HUGE, "huge.yaml")
    est = memory.estimate(wl, {"batch": 1000}, "inference")
    assert wl.shapes({"batch": 1000})["y"] == (1000, 100000, 100000)
    assert wl.flops({"batch": 1000}) == 2 * 10**18
    assert est.weights_bytes == (10**10 + 10**5) * 4 and est.activations_bytes == est.inputs_bytes == 10**13 * 4
    assert time.perf_counter() - start < 1.0


def test_estimate_is_fast_on_every_shipped_workload():
    from suite.spec import load_workloads

    points = [(wl, p) for wl in load_workloads(REPO / "workloads") for p in wl.param_grid()]
    start = time.perf_counter()
    for wl, p in points:
        memory.estimate(wl, p, "train" if wl.train else "inference")
    assert (time.perf_counter() - start) / len(points) < 0.005  # < 1 ms on a quiet machine


def test_plan_refuses_a_cell_that_cannot_fit_with_the_figure():
    wl = parse_workload(HUGE, "huge.yaml")
    est = memory.estimate(wl, {"batch": 1000}, "inference")
    cells = make_plan([wl], [get_target("torch:eager"), get_target("test:numpy")], CPU, AVAILABLE)
    limit, source = memory.memory_limit(0)
    assert {c.status for c in cells} == {"unsupported"}
    assert cells[0].reason == (f"needs ≥ {memory.format_bytes(est.total_bytes)} (weights 37.3 GiB, float64 weights "
                               f"74.5 GiB, activations 36.4 TiB, inputs 36.4 TiB) but the limit is "
                               f"{memory.format_bytes(limit)} ({source})")


def test_plan_worker_memory_limit_refuses_a_shipped_workload():
    wl = load_workload(REPO / "workloads" / "mlp_classifier.yaml")
    ok = make_plan([wl], [get_target("test:numpy")], CPU, AVAILABLE)
    assert {c.status for c in ok} == {None}
    cells = make_plan([wl], [get_target("test:numpy")], CPU, AVAILABLE, memory_limit=int(0.001 * 2**30))
    assert {c.status for c in cells} == {"unsupported"}
    assert all(c.reason.startswith("needs ≥ ") and c.reason.endswith("but the limit is 1.0 MiB "
                                                                        "(--worker-memory-gb 0.001)") for c in cells)


def test_accelerator_profile_holds_only_the_canonical_weights_and_inputs_on_the_host():
    est = memory.estimate(_workload(), {"batch": 2}, "inference")
    assert est.host_bytes("cpu") == est.total_bytes
    assert est.host_bytes("cuda") == est.canonical_bytes + est.inputs_bytes
    assert "of host memory" in est.describe("cuda")


def test_limit_is_the_smaller_of_the_flag_and_the_machine(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: (8 * 2**30, "machine's available memory"))
    assert memory.memory_limit(0) == (8 * 2**30, "machine's available memory")
    assert memory.memory_limit(2**30) == (2**30, "--worker-memory-gb 1")
    assert memory.limit_bytes(16 * 2**30) == 8 * 2**30
    monkeypatch.setattr(memory, "available_memory", lambda: (0, ""))
    assert memory.limit_bytes(0) == 0 and memory.limit_bytes(2**30) == 2**30


def test_available_memory_reads_the_machine():
    avail, source = memory.available_memory()
    assert avail > 0 and source in ("machine's available memory", "machine's total memory")


@pytest.mark.parametrize("n,text", [(12, "12 B"), (1536, "1.5 KiB"), (int(37.3 * 2**30), "37.3 GiB"),
                                    (4 * 2**50, "4.0 PiB")])
def test_format_bytes(n, text):
    assert memory.format_bytes(n) == text


# ---------------------------------------------------------------- through the CLI, no worker started

def _bench(args, tmp_path):
    """`bench ARGS` with a private TMPDIR: a worker subprocess leaves its bench-<family>-*.stderr file there."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "suite.cli", *args], capture_output=True, text=True, cwd=REPO,
                         env=env, timeout=300)
    return out, time.monotonic() - start


@pytest.mark.parametrize("args,expected", [
    (["-w", "HUGE"], "inputs 36.4 TiB) but the limit is"),
    (["-w", "mlp_classifier", "--worker-memory-gb", "0.001", "--mode", "all"], "(--worker-memory-gb 0.001)"),
], ids=["huge-shape", "worker-memory-gb"])
def test_cli_shows_unsupported_without_starting_a_worker(tmp_path, args, expected):
    huge = tmp_path / "huge.yaml"
    huge.write_text(yaml.safe_dump(HUGE))
    args = [str(huge) if a == "HUGE" else a for a in args]
    out, seconds = _bench(["verify", *args, "-t", "torch:eager"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "unsupported" in out.stdout and expected in out.stdout, out.stdout
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.glob("bench-*")), "a worker was started"
    assert seconds < 60

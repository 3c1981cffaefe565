"""`bench` exit codes and one-line errors for bad input."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

GOOD = """
name: tiny
inputs: [{name: x, shape: [batch, 4]}]
sweep: {batch: [1]}
graph: [{name: y, op: dense, input: x, units: 3}]
outputs: [y]
"""

BAD = {
    "malformed_yaml": ("name: [oops\n", "malformed YAML"),
    "unknown_op": (GOOD.replace("op: dense", "op: densse"), "graph[0].op: unknown op 'densse'"),
    "missing_field": (GOOD.replace("outputs: [y]\n", ""), "outputs: missing required field"),
    "bad_attr": (GOOD.replace("units: 3", "units: -3"), "graph[0].units: expected a positive integer"),
    "impossible_shape": (GOOD.replace("op: dense, input: x, units: 3", "op: conv2d, input: x, filters: 2, kernel_size: 3"),
                         "graph[0]: expected a rank-4 input"),
}


def bench(*args, cwd=REPO, timeout=300):
    return subprocess.run([sys.executable, "-m", "suite.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


@pytest.mark.parametrize("name", BAD)
def test_bad_workload_exits_2_with_one_line(name, tmp_path):
    text, expected = BAD[name]
    (tmp_path / f"{name}.yaml").write_text(text)
    out = bench("--workloads-dir", str(tmp_path), "verify")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("bench: error: ") and f"{name}.yaml" in lines[0] and expected in lines[0], lines[0]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args,expected", [
    (["verify", "-t", "torch:nope"], "unknown target 'torch:nope'"),
    (["verify", "-w", "no_such_workload"], "unknown workload 'no_such_workload'"),
    (["run", "-p", "no_such_profile"], "unknown profile 'no_such_profile'"),
    (["run", "--resume"], "--resume needs --run-id"),
], ids=["unknown-target", "unknown-workload", "unknown-profile", "resume-without-id"])
def test_bad_arguments_exit_2(args, expected):
    out = bench(*args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: ") and expected in lines[0], out.stderr


def test_list_shows_workloads_targets_profiles():
    out = bench("list")
    assert out.returncode == 0, out.stderr
    for word in ("mlp_classifier", "torch:eager", "tensorflow:xla", "jax:jit", "cpu-1t", "cuda"):
        assert word in out.stdout
    assert "test:crash" not in out.stdout


def test_env_reports_profile_availability():
    out = bench("env")
    assert out.returncode == 0, out.stderr
    assert "cpu " in out.stdout and "available" in out.stdout

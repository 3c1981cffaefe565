"""`bench` exit codes and one-line errors for bad input."""
from __future__ import annotations

import ctypes
import os
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


# Files given with -w: id -> (bytes, piece of the message).
BAD_FILES = {
    "binary_garbage": (b"\x00\xff\xfe garbage", "not a UTF-8 text file (byte 1 is 0xff)"),
    "latin1_text": ("name: caf\xe9\n".encode("latin-1"), "not a UTF-8 text file (byte 9 is 0xe9)"),
    "empty_file": (b"", "the file is empty (or only comments); expected a mapping with name, inputs"),
    "top_level_list": (b"- name: a\n- name: b\n", "expected a mapping at the top level, got list"),
    "top_level_scalar": (b"just words\n", "expected a mapping at the top level, got str"),
}


def _one_error_line(out, name: str, expected: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("bench: error: ") and name in lines[0] and expected in lines[0], lines[0]


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_workload_file_given_with_w(name, tmp_path):
    content, expected = BAD_FILES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    _one_error_line(bench("verify", "-w", str(path), "-t", "torch:eager"), str(path), expected)


DIR_HINT = "is a directory, not a workload file (give a .yaml file, or --workloads-dir DIR for a folder of them)"


@pytest.mark.parametrize("args,name,expected", [
    (["-w", "TMP/"], "TMP/", DIR_HINT),
    (["-w", "workloads"], "workloads", DIR_HINT),
    (["-w", "TMP/no_such.yaml"], "TMP/no_such.yaml", "no such file"),
    (["--workloads-dir", "TMP/no_such_folder"], "TMP/no_such_folder", "no such folder (--workloads-dir expects"),
    (["--workloads-dir", "workloads/mlp_classifier.yaml"], "workloads/mlp_classifier.yaml",
     "is a file, not a folder (--workloads-dir expects"),
    (["--profiles-dir", "TMP/no_such_folder"], "TMP/no_such_folder", "no such folder (--profiles-dir expects"),
    (["--profiles-dir", "hardware_profiles/cpu.yaml"], "hardware_profiles/cpu.yaml",
     "is a file, not a folder (--profiles-dir expects"),
    (["--profiles-dir", "TMP/profiles"], "TMP/profiles/cpu.yaml", "not a UTF-8 text file"),
], ids=["w-directory", "w-workloads-folder", "w-missing-path", "workloads-dir-missing", "workloads-dir-file",
        "profiles-dir-missing", "profiles-dir-file", "profile-garbage"])
def test_bad_paths_exit_2_with_one_line(args, name, expected, tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "cpu.yaml").write_bytes(b"\x00\xff\xfe garbage")
    args = [a.replace("TMP", str(tmp_path)) for a in args]
    if args[0] != "-w":  # global options come before the command
        args = args + ["verify", "-w", "mlp_classifier"]
    else:
        args = ["verify"] + args
    _one_error_line(bench(*args, "-t", "torch:eager"), name.replace("TMP", str(tmp_path)), expected)


def _without_dac_override():
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so a
    root process is refused a chmod-000 file like any user (prctl(PR_CAPBSET_DROP))."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_workload_file_exits_2_with_one_line(tmp_path):
    path = tmp_path / "locked.yaml"
    path.write_text(GOOD)
    path.chmod(0)
    cmd = [sys.executable, "-m", "suite.cli", "verify", "-w", str(path), "-t", "torch:eager"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300,
                             preexec_fn=_without_dac_override if os.geteuid() == 0 else None)
    except subprocess.SubprocessError as e:  # no CAP_SETPCAP: root reads any file, nothing to test
        pytest.skip(f"cannot drop root's file-permission override here: {e}")
    finally:
        path.chmod(0o644)
    _one_error_line(out, str(path), "cannot read: Permission denied")


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

"""`bench diagnose`: a failing cell is localized to the node whose mapping is wrong (injected bugs, native and
through an export route), earlier nodes are clean and later ones inherit; a passing cell gives "no
divergence"; an error gives its stage, not a localization; bad input is one line and exit code 2. Also the
`kind: file` input distribution the one-node workloads use."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import bench, skip_if_missing
from suite.spec import SpecError, load_workload, parse_workload


def _workload(folder: Path, name: str, graph: list[dict], inputs: list[dict], outputs: list[str],
              sweep: dict | None = None, seed: int = 7) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "description": "diagnose test", "seed": seed, "inputs": inputs,
                                    "sweep": sweep or {"batch": [2]}, "graph": graph, "outputs": outputs}))
    return path


X = [{"name": "x", "shape": ["batch", 12]}]
IMG = [{"name": "x", "shape": ["batch", 3, 9, 9]}]
SEQ = [{"name": "x", "shape": ["batch", 5, 6]}]

# A bug deep in a network: four dense layers, then GELU (the node asks for the tanh approximation; the
# bugged target uses the exact erf), then a dense head.
DEEP = [node for i in range(1, 4) for node in (
    {"name": f"fc{i}", "op": "dense", "input": "x" if i == 1 else f"act{i - 1}", "units": 16},
    {"name": f"act{i}", "op": "relu", "input": f"fc{i}"})] + [
    {"name": "fc4", "op": "dense", "input": "act3", "units": 16},
    {"name": "act4", "op": "gelu", "input": "fc4", "approximate": "tanh"},
    {"name": "head", "op": "dense", "input": "act4", "units": 4}]
DEEP_ORDER = ["fc1", "act1", "fc2", "act2", "fc3", "act3", "fc4", "act4", "head"]
CONV = [{"name": "conv", "op": "conv2d", "input": "x", "filters": 4, "kernel_size": 3, "padding": "same"},
        {"name": "act", "op": "relu", "input": "conv"},
        {"name": "pool", "op": "avg_pool2d", "input": "act", "pool_size": 3, "strides": 2, "padding": "same"},
        {"name": "flat", "op": "flatten", "input": "pool"},
        {"name": "head", "op": "dense", "input": "flat", "units": 5}]
LSTM = [{"name": "proj", "op": "dense", "input": "x", "units": 6},
        {"name": "lstm", "op": "lstm", "input": "proj", "units": 8, "return_sequences": False},
        {"name": "head", "op": "dense", "input": "lstm", "units": 3}]

DENSE = [{"name": "pre", "op": "relu", "input": "x"}, {"name": "fc", "op": "dense", "input": "pre", "units": 8},
         {"name": "out", "op": "tanh", "input": "fc"}]
GELU = [{"name": "fc", "op": "dense", "input": "x", "units": 16}, {"name": "act", "op": "gelu", "input": "fc"},
        {"name": "head", "op": "dense", "input": "act", "units": 4}]


def _attention(**attn) -> list[dict]:
    return [{"name": "ln", "op": "layer_norm", "input": "x"},
            {"name": "attn", "op": "attention", "input": "ln", "num_heads": 4, **attn},
            {"name": "res", "op": "add", "inputs": ["x", "attn"]},
            {"name": "head", "op": "dense", "input": "res", "units": 4}]


GRU = [{"name": "proj", "op": "dense", "input": "x", "units": 6},
       {"name": "gru", "op": "gru", "input": "proj", "units": 8},
       {"name": "head", "op": "dense", "input": "gru", "units": 3}]
RESIZE = [{"name": "conv", "op": "conv2d", "input": "x", "filters": 2, "kernel_size": 3, "padding": "same"},
          {"name": "up", "op": "resize", "input": "conv", "mode": "bilinear", "scale": 2},
          {"name": "flat", "op": "flatten", "input": "up"},
          {"name": "head", "op": "dense", "input": "flat", "units": 3}]
TOKENS = [{"name": "x", "shape": ["batch", 6, 16]}]

# (target, graph, inputs, culprit, nodes that must be clean, nodes that must inherit): one per injected
# inference bug of suite/targets/testing
BUGS = [
    ("torch:bug-dense-kernel", DENSE, X, "fc", ["pre"], ["out"]),
    ("jax:bug-gelu-tanh", GELU, X, "act", ["fc"], ["head"]),
    ("torch:bug-rope-interleaved", _attention(rope={"style": "half"}), TOKENS, "attn", ["ln"], ["res", "head"]),
    ("jax:bug-gqa-groups", _attention(num_kv_heads=2), TOKENS, "attn", ["ln"], ["res", "head"]),
    ("torch:bug-gru-gates", GRU, SEQ, "gru", ["proj"], ["head"]),
    ("torch:bug-resize-align-corners", RESIZE, IMG, "up", ["conv"], ["flat", "head"]),
    ("torch:bug-gelu-exact", DEEP, X, "act4", DEEP_ORDER[:7], ["head"]),
    ("torch:bug-conv-kernel", CONV, IMG, "conv", [], ["act", "pool", "flat", "head"]),
    ("tensorflow:bug-conv-kernel", CONV, IMG, "conv", [], ["act", "pool", "flat", "head"]),
    ("jax:bug-lstm-gates", LSTM, SEQ, "lstm", ["proj"], ["head"]),
    ("keras:bug-lstm-gates", LSTM, SEQ, "lstm", ["proj"], ["head"]),
]


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _verdicts(rep: dict) -> dict[str, str]:
    return {n["name"]: n["verdict"] for n in rep["nodes"]}


@pytest.mark.parametrize("target,graph,inputs,culprit,clean,inherit", BUGS, ids=[b[0] for b in BUGS])
def test_an_injected_bug_is_localized_to_its_node(target, graph, inputs, culprit, clean, inherit, tmp_path):
    skip_if_missing(target)
    wl = _workload(tmp_path, "bugged", graph, inputs, [graph[-1]["name"]])
    out = tmp_path / "diag"
    r = bench("diagnose", "-w", str(wl), "-t", target, "--out", str(out))
    assert r.returncode == 1, r.stderr
    rep = _report(out)
    assert rep["status"] == "fail" and rep["culprit"] == culprit, rep["summary"]
    verdicts = _verdicts(rep)
    assert verdicts[culprit] == "culprit"
    assert all(verdicts[n] == "clean" for n in clean), verdicts
    assert all(verdicts[n] == "inherited" for n in inherit), verdicts
    node = next(n for n in rep["nodes"] if n["name"] == culprit)
    assert node["own"]["status"] == "fail" and node["own"]["max_abs_err"] > 1e-4
    assert f"culprit: {culprit} (" in r.stdout and "| node | op |" in r.stdout
    bundle = out / "bundle"  # the culprit alone, cut to batch 1 where it still fails there
    small = load_workload(bundle / "workload.yaml")
    assert [n.name for n in small.nodes] == [culprit] and small.sweep["batch"] == (1,)
    assert (out / "bundle.zip").is_file()
    with np.load(bundle / "reference.npz") as ref, np.load(bundle / "actual.npz") as act:
        err = np.abs(ref[culprit] - act[culprit]).max()
    assert err > 1e-4
    fw = target.split(":")[0]
    # a plain PyTorch / JAX / TensorFlow / Keras script on the suite's code of the op, copied out (the bug included)
    run = _run_blocked(bundle, f"repro_{fw}.py")
    assert run.returncode == 1, run.stdout + run.stderr
    assert _printed_error(run.stdout, culprit) == pytest.approx(err, rel=0.01)  # the target's own numbers
    assert f"python repro_{fw}.py" in (bundle / "README.md").read_text()


def _run_blocked(bundle: Path, script: str):
    """Runs a bundle's script where the suite cannot be imported (python -I, suite blocked)."""
    blocked = (f"import os, sys; sys.modules['suite'] = None; f = os.path.abspath({script!r}); "
               "exec(compile(open(f).read(), f, 'exec'), {'__file__': f, '__name__': '__main__'})")
    return subprocess.run([sys.executable, "-I", "-c", blocked], cwd=bundle, capture_output=True, text=True,
                          timeout=300)


def _printed_error(stdout: str, output: str) -> float:
    line = next(ln for ln in stdout.splitlines() if ln.startswith(f"{output}: max abs error "))
    return float(line.split("max abs error ")[1].split(";")[0])


TIGHT = [{"name": "fc", "op": "dense", "input": "x", "units": 8}, {"name": "out", "op": "tanh", "input": "fc"}]


@pytest.mark.parametrize("target,script", [
    ("torch:eager", "repro_torch.py"), ("torch:compile", "repro_torch.py"), ("jax:jit", "repro_jax.py"),
    ("tensorflow:function", "repro_tensorflow.py"), ("tensorflow:xla", "repro_tensorflow.py"),
    ("keras[jax]", "repro_keras.py"), ("keras[tensorflow]", "repro_keras.py"), ("keras[torch]", "repro_keras.py"),
    ("torch>export@torch", "repro_torch_export.py"), ("jax>export@jax", "repro_jax_export.py"),
    ("tensorflow>savedmodel@tensorflow", "repro_saved_model.py")])
def test_native_and_round_trip_bundles_reproduce_without_the_suite(target, script, tmp_path):
    """float32 against a 1e-12 tolerance fails every node: the first is the culprit, and the bundle's script
    (the suite's torch code copied out, or the framework's own loader of the saved artifact) prints the
    same error the target had."""
    skip_if_missing(target)
    wl = _workload(tmp_path, "tight", TIGHT, X, ["out"])
    spec = yaml.safe_load(wl.read_text())
    wl.write_text(yaml.safe_dump({**spec, "tolerance": {"rtol": 1e-12, "atol": 1e-12}}))
    out = tmp_path / "diag"
    r = bench("diagnose", "-w", str(wl), "-t", target, "--out", str(out))
    assert r.returncode == 1, r.stderr
    assert _report(out)["culprit"] == "fc"
    bundle = out / "bundle"
    with np.load(bundle / "reference.npz") as ref, np.load(bundle / "actual.npz") as act:
        err = np.abs(ref["fc"] - act["fc"]).max()
    run = _run_blocked(bundle, script)
    assert run.returncode == 1, run.stdout + run.stderr
    assert _printed_error(run.stdout, "fc") == pytest.approx(err, rel=0.01) and err > 0
    assert f"python {script}" in (bundle / "README.md").read_text()
    imports_suite = re.compile(r"^\s*(import|from)\s+suite(\.|\s|$)", re.M)
    assert not imports_suite.search((bundle / script).read_text())
    assert not any(imports_suite.search(f.read_text()) for f in (bundle / "src").glob("*.py"))


def test_a_wrong_export_is_localized_through_the_route(tmp_path):
    """torch.onnx drops avg_pool2d's divisor_override (SAME average pooling with padding; README's known
    wrong results): the ONNX route's culprit is the pool, the conv before it is clean, and the one-node
    workload it wrote reproduces the failure with `bench verify`."""
    target = "torch>onnx@onnxruntime"
    skip_if_missing(target)
    wl = _workload(tmp_path, "pool_net", CONV, IMG, ["head"])
    out = tmp_path / "diag"
    r = bench("diagnose", "-w", str(wl), "-t", target, "--out", str(out),
              env={**os.environ, "BENCH_DIAGNOSE_SHRINK_CELLS": "4"})  # the bundle tries smaller sizes
    assert r.returncode == 1, r.stderr
    rep = _report(out)
    assert rep["culprit"] == "pool" and rep["culprit_op"] == "avg_pool2d", rep["summary"]
    assert _verdicts(rep) == {"conv": "clean", "act": "clean", "pool": "culprit", "flat": "inherited",
                              "head": "inherited"}
    one = out / "work" / "nodes" / "pool.yaml"
    assert load_workload(one).nodes[0].op == "avg_pool2d"
    again = bench("verify", "-w", str(one), "-t", target, "-p", "cpu")
    assert again.returncode == 1 and "fail" in again.stdout and "outside rtol" in again.stdout
    assert "| pool | avg_pool2d |" in (out / "report.md").read_text()
    # The repro bundle: the pool alone at batch 1, the ONNX file, and a script that needs no suite.
    bundle = out / "bundle"
    assert rep["bundle"] == str(bundle) and (out / "bundle.zip").is_file()
    assert (bundle / "artifact" / "model.onnx").is_file()
    # ... and smaller than batch 1: channels and height cut to 1, width to half (at 1 the pool is right), in 4 cells
    small = load_workload(bundle / "workload.yaml")
    assert small.shapes(small.param_grid()[0])["act"] == (1, 1, 1, 4), r.stderr
    readme = (bundle / "README.md").read_text()
    assert "shrunk from act [1, 4, 9, 9] to act [1, 1, 1, 4], 4 cells" in readme
    assert "`avg_pool2d` is wrong on its own" in readme and "python repro_onnxruntime.py" in readme
    blocked = ("import os, sys; sys.modules['suite'] = None; f = os.path.abspath('repro_onnxruntime.py'); "
               "exec(compile(open(f).read(), f, 'exec'), {'__file__': f, '__name__': '__main__'})")
    script = subprocess.run([sys.executable, "-I", "-c", blocked], cwd=bundle, capture_output=True, text=True,
                            timeout=120)
    assert script.returncode == 1, script.stderr
    assert "values outside rtol=0.0001" in script.stdout and "first at" in script.stdout
    assert "import suite" not in (bundle / "repro_onnxruntime.py").read_text()
    again = bench("verify", "-w", str(bundle / "workload.yaml"), "-t", target, "-p", "cpu")
    assert again.returncode == 1 and "outside rtol" in again.stdout


def test_a_passing_cell_gives_no_divergence(tmp_path):
    wl = _workload(tmp_path, "fine", CONV, IMG, ["head"])
    out = tmp_path / "diag"
    r = bench("diagnose", "-w", str(wl), "-t", "test:numpy", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "no divergence" in r.stdout
    rep = _report(out)
    assert rep["status"] == "pass" and rep["nodes"] == [] and rep["culprit"] is None and rep["bundle"] is None
    assert not (out / "work").exists() and not (out / "bundle").exists()


def test_an_error_gives_its_stage_not_a_localization(tmp_path):
    wl = _workload(tmp_path, "fine", CONV, IMG, ["head"])
    out = tmp_path / "diag"
    r = bench("diagnose", "-w", str(wl), "-t", "test:error", "--out", str(out))
    assert r.returncode == 1
    rep = _report(out)
    assert rep["status"] == "error" and rep["nodes"] == [] and rep["stage"] == "build"
    assert "not a numerical divergence: error at stage build: RuntimeError: injected failure" in r.stdout


def test_a_garbage_target_is_localized_to_the_first_node(tmp_path):
    """test:garbage scales every output: every node is wrong alone, the first is the culprit."""
    wl = _workload(tmp_path, "g", CONV, IMG, ["head"])
    out = tmp_path / "diag"
    r = bench("diagnose", "-w", str(wl), "-t", "test:garbage", "--out", str(out))
    assert r.returncode == 1, r.stderr
    rep = _report(out)
    assert rep["culprit"] == "conv"
    assert [n["verdict"] for n in rep["nodes"]] == ["culprit"] + ["own error"] * 4
    assert "also wrong alone: act, pool, flat, head" in rep["summary"]


# relu x3 (exact), then four dense layers without bias, each 3e-5 off (test:drift): no node is out of the 1e-4
# tolerance alone, four dense nodes in a row are.
DRIFT = [{"name": f"a{i}", "op": "relu", "input": "x" if i == 1 else f"a{i - 1}"} for i in (1, 2, 3)] + [
    {"name": f"f{i}", "op": "dense", "input": "a3" if i == 1 else f"f{i - 1}", "units": 12, "use_bias": False}
    for i in (1, 2, 3, 4)]


def _drifting(tmp_path: Path, name: str, graph: list[dict], output: str):
    """bench diagnose of test:drift (every dense node 3e-5 off) on ``graph`` at rtol 1e-4: (run, report)."""
    wl = _workload(tmp_path, name, graph, X, [output])
    spec = yaml.safe_load(wl.read_text())
    wl.write_text(yaml.safe_dump({**spec, "tolerance": {"rtol": 1e-4, "atol": 1e-9}}))
    r = bench("diagnose", "-w", str(wl), "-t", "test:drift", "--out", str(tmp_path / "diag"))
    assert r.returncode == 1, r.stderr
    return r, _report(tmp_path / "diag")


def test_an_accumulated_divergence_is_reduced_to_the_smallest_failing_window(tmp_path):
    r, rep = _drifting(tmp_path, "drifting", DRIFT, "f4")
    out = tmp_path / "diag"
    assert rep["culprit"] is None and rep["drift"] == "f4", rep["summary"]
    assert _verdicts(rep) == {"a1": "clean", "a2": "clean", "a3": "clean", "f1": "clean", "f2": "clean",
                              "f3": "clean", "f4": "inherited"}
    assert rep["reduced"] == ["f1", "f2", "f3", "f4"], rep["summary"]
    assert "reduced to 4 node(s) that still fail" in rep["summary"]
    window = load_workload(rep["reduced_workload"])
    assert [n.name for n in window.nodes] == ["f1", "f2", "f3", "f4"] and [s.name for s in window.inputs] == ["a3"]
    bundle = out / "bundle"  # the window at batch 1, reproduced by the suite's own command
    small = load_workload(bundle / "workload.yaml")
    assert [n.name for n in small.nodes] == ["f1", "f2", "f3", "f4"] and small.sweep["batch"] == (1,)
    assert "4 nodes drift out of tolerance together" in (bundle / "README.md").read_text()
    again = bench("verify", "-w", str(bundle / "workload.yaml"), "-t", "test:drift", "-p", "cpu")
    assert again.returncode == 1 and "fail" in again.stdout
    shorter = {**yaml.safe_load((bundle / "workload.yaml").read_text())}
    shorter["graph"] = shorter["graph"][1:]  # one node fewer (f2..f4 on f1's reference value) passes
    shorter["inputs"] = [{"name": "f1", "shape": ["batch", 12]}]
    (tmp_path / "shorter.yaml").write_text(yaml.safe_dump(shorter))
    assert bench("verify", "-w", str(tmp_path / "shorter.yaml"), "-t", "test:drift", "-p", "cpu").returncode == 0


# a branch joins the drifting path just before it leaves the tolerance: the window of nodes in graph order from
# f1 holds g1 too; delta debugging cuts it (m then reads g1's reference value)
BRANCHY = [{"name": "a1", "op": "relu", "input": "x"}, {"name": "b1", "op": "tanh", "input": "x"},
           {"name": "f1", "op": "dense", "input": "a1", "units": 12, "use_bias": False},
           {"name": "g1", "op": "relu", "input": "b1"}, {"name": "m", "op": "add", "inputs": ["f1", "g1"]},
           {"name": "f2", "op": "dense", "input": "m", "units": 12, "use_bias": False}]


def test_delta_debugging_cuts_a_branch_the_window_holds(tmp_path):
    r, rep = _drifting(tmp_path, "branchy", BRANCHY, "f2")
    assert rep["culprit"] is None and rep["drift"] == "m", rep["summary"]
    assert "3 node(s) f1..m: fail" in r.stderr  # the bisected window: f1, g1, m
    assert rep["reduced"] == ["f1", "m"], rep["summary"]
    window = load_workload(rep["reduced_workload"])
    assert [n.name for n in window.nodes] == ["f1", "m"] and sorted(s.name for s in window.inputs) == ["a1", "g1"]
    assert bench("verify", "-w", rep["reduced_workload"], "-t", "test:drift", "-p", "cpu").returncode == 1


@pytest.mark.parametrize("args,message", [
    (["-w", "mlp_classifier", "-t", "no:such"], "unknown target"),
    (["-w", "no_such_workload", "-t", "test:numpy"], "no_such_workload"),
    (["-w", "mlp_classifier", "-t", "test:numpy", "--param", "batch=3"], "sweeps batch over 1, 32"),
    (["-w", "mlp_classifier", "-t", "test:numpy", "--param", "seq=3"], "expected NAME=VALUE"),
    (["-w", "mlp_classifier", "-t", "test:numpy", "--param", "batch=x"], "expected an integer"),
    (["-w", "mlp_classifier", "-t", "test:numpy", "-p", "nope"], "unknown profile"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    r = bench("diagnose", *args, "--out", str(tmp_path / "d"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error:") and message in lines[0], r.stderr


# ---- inputs with fixed values (distribution kind: file) ----

def _file_workload(folder: Path, dist: dict, dtype: str = "float32", shape=("batch", 4)) -> dict:
    return {"name": "fixed", "seed": 0, "inputs": [{"name": "x", "shape": list(shape), "dtype": dtype,
                                                   "distribution": dist}],
            "sweep": {"batch": [2]}, "graph": [{"name": "y", "op": "relu", "input": "x"}], "outputs": ["y"]}


def test_file_inputs_are_read_and_their_content_is_the_identity(tmp_path):
    from suite.weights import make_inputs

    x = np.arange(8, dtype=np.float32).reshape(2, 4) - 3
    np.savez(tmp_path / "v.npz", x=x)
    path = tmp_path / "fixed.yaml"
    path.write_text(yaml.safe_dump(_file_workload(tmp_path, {"kind": "file", "path": "v.npz"})))
    wl = load_workload(path)
    np.testing.assert_array_equal(make_inputs(wl, {"batch": 2})["x"], x)
    first = wl.hash
    np.savez(tmp_path / "v.npz", x=x + 1)
    assert load_workload(path).hash != first  # new values: a new workload for every cache
    r = bench("verify", "-w", str(path), "-t", "test:numpy", "-p", "cpu")
    assert r.returncode == 0 and "pass" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("make,dist,dtype,message", [
    (None, {"kind": "file", "path": "missing.npz"}, "float32", "cannot read"),
    ("other", {"kind": "file", "path": "v.npz"}, "float32", "has no array named 'x' (it has: other)"),
    ("short", {"kind": "file", "path": "v.npz"}, "float32", "has shape [2, 3], the input needs [2, 4] at batch=2"),
    ("float", {"kind": "file", "path": "v.npz"}, "int32", "is float32, the input is int32"),
    ("text", {"kind": "file", "path": "v.npz"}, "float32", "is not a NumPy .npz file"),
    (None, {"kind": "file", "path": "v.txt"}, "float32", "expected the path of a .npz file"),
    (None, {"kind": "file"}, "float32", "path: missing required field for file"),
])
def test_bad_file_inputs_are_one_line(make, dist, dtype, message, tmp_path):
    arrays = {"other": {"other": np.zeros((2, 4), np.float32)}, "short": {"x": np.zeros((2, 3), np.float32)},
              "float": {"x": np.zeros((2, 4), np.float32)}}
    if make == "text":
        (tmp_path / "v.npz").write_text("not numpy")
    elif make:
        np.savez(tmp_path / "v.npz", **arrays[make])
    path = tmp_path / "fixed.yaml"
    path.write_text(yaml.safe_dump(_file_workload(tmp_path, dist, dtype)))
    with pytest.raises(SpecError) as e:
        load_workload(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_file_input_must_fit_every_sweep_point(tmp_path):
    np.savez(tmp_path / "v.npz", x=np.zeros((2, 4), np.float32))
    data = _file_workload(tmp_path, {"kind": "file", "path": str(tmp_path / "v.npz")})
    data["sweep"] = {"batch": [2, 4]}
    with pytest.raises(SpecError, match=r"needs \[4, 4\] at batch=4"):
        parse_workload(data, "<test>")


# ---- --diagnose on bench verify / bench run ----

def test_verify_diagnose_localizes_each_failing_cell(tmp_path):
    wl = _workload(tmp_path, "deep", DEEP, X, ["head"])
    (tmp_path / "results").mkdir()  # bench verify keeps its reports under ./results/diagnoses
    r = bench("verify", "-w", str(wl), "-t", "torch:bug-gelu-exact", "-t", "test:numpy", "-p", "cpu", "--diagnose",
              cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "diagnoses (1):" in r.stdout and "deep [batch=2] torch:bug-gelu-exact @cpu: culprit: act4 (gelu)" in r.stdout
    bundles = list((tmp_path / "results" / "diagnoses").glob("*/bundle.zip"))
    assert [b.parent.name for b in bundles] == ["deep-batch2-torch_bug-gelu-exact-cpu"]


def test_run_diagnose_stores_the_diagnosis_with_the_cell(tmp_path):
    from suite.results import read_results

    wl = _workload(tmp_path, "deep", DEEP, X, ["head"])
    res = tmp_path / "res"
    r = bench("run", "--quick", "-w", str(wl), "-t", "torch:bug-gelu-exact", "-t", "test:numpy", "-p", "cpu",
              "--results", str(res), "--no-dashboard", "--no-peak", "--diagnose")
    assert r.returncode == 1, r.stderr
    df = read_results(str(res)).set_index("target")
    bad, good = df.loc["torch:bug-gelu-exact"], df.loc["test:numpy"]
    assert bad.status == "fail" and bad.diagnosis_culprit == "act4" and bad.diagnosis_op == "gelu"
    assert bad.diagnosis_own_err > 1e-4 and bad.diagnosis_inherited_err >= bad.diagnosis_own_err * 0.5
    assert bad.diagnosis_summary.startswith("culprit: act4 (gelu)")
    assert Path(bad.diagnosis_bundle).is_dir() and str(res / "diagnoses" / bad.run_id) in bad.diagnosis_bundle
    import pandas as pd

    assert good.status == "pass" and pd.isna(good.diagnosis_culprit) and pd.isna(good.diagnosis_summary)
    # The dashboard: the culprit in the matrix's hover, and a Diagnoses section linking the bundle.
    pytest.importorskip("plotly", reason="the dashboard needs plotly: pip install -e '.[dashboard]'")
    from suite.dashboard.build import build_dashboard

    info = build_dashboard(str(res), str(tmp_path / "site"))
    html = info.index.read_text()
    section = html[html.index('<section id="diagnoses">'):]
    section = section[:section.index("</section>")]
    assert "act4" in section and "gelu" in section and "bundle.zip</a>" in section
    assert 'href="../res/diagnoses/' in section
    assert "diagnosis: culprit " in html and "act4\\u003c/b\\u003e (gelu)" in html  # the hover, JSON-escaped


MQA = [{"name": "ln", "op": "layer_norm", "input": "x"},
       {"name": "attn", "op": "attention", "input": "ln", "num_heads": 4, "num_kv_heads": 1, "use_bias": False,
        "rope": {"style": "interleaved", "base": 100.0}},
       {"name": "res", "op": "add", "inputs": ["x", "attn"]}]


@pytest.mark.parametrize("target,graph,inputs,culprit,script", [
    # the same wrong .onnx file run by OpenVINO (README: known wrong results)
    ("torch>onnx@openvino", CONV, IMG, "pool", "repro_openvino.py"),
    # litert-torch 0.10 gets multi-query attention (one key/value head) wrong (README: known wrong results)
    ("torch>tflite@litert", MQA, [{"name": "x", "shape": ["batch", 6, 16]}], "attn", "repro_litert.py"),
    # IREE's tanh-approximated GELU is 5e-5 off (README: known wrong results; the vit_tiny fail)
    ("torch>iree@iree", [{"name": "fc", "op": "dense", "input": "x", "units": 32},
                         {"name": "act", "op": "gelu", "input": "fc", "approximate": "tanh"},
                         {"name": "head", "op": "dense", "input": "act", "units": 4}],
     [{"name": "x", "shape": ["batch", 16], "distribution": {"kind": "uniform", "low": -16, "high": 16}}],
     "act", "repro_iree.py"),
], ids=["openvino", "litert", "iree"])
def test_the_bundle_script_of_other_runtimes_reproduces_without_the_suite(target, graph, inputs, culprit, script,
                                                                           tmp_path):
    skip_if_missing(target)
    # (seed 0, batch 4: points where IREE's GELU leaves the tolerance; it is within it at most inputs)
    wl = _workload(tmp_path, "net", graph, inputs, [graph[-1]["name"]], sweep={"batch": [4]}, seed=0)
    out = tmp_path / "diag"
    r = bench("diagnose", "-w", str(wl), "-t", target, "--out", str(out))
    assert r.returncode == 1, r.stderr
    assert _report(out)["culprit"] == culprit
    bundle = out / "bundle"
    assert f"python {script}" in (bundle / "README.md").read_text()
    blocked = (f"import os, sys; sys.modules['suite'] = None; f = os.path.abspath({script!r}); "
               "exec(compile(open(f).read(), f, 'exec'), {'__file__': f, '__name__': '__main__'})")
    run = subprocess.run([sys.executable, "-I", "-c", blocked], cwd=bundle, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1, run.stderr
    assert f"{culprit}: max abs error" in run.stdout and "values outside rtol=0.0001" in run.stdout

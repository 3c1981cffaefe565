"""`bench diagnose --mode train`: a failing training step is localized from the loss back. A backward bug in a
node without parameters is found by bisecting windows (every node with parameters is right alone); an
update bug at one op and an optimiser bug are told apart from gradient bugs; a passing step gives "no
divergence"; the bundle's workload reproduces with `bench verify --mode train`; bad input is one line and
exit 2. Also the fixed labels (``labels: {distribution: {kind: file}}``) the rewritten workloads use."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import bench, skip_if_missing
from suite.spec import SpecError, load_workload, parse_workload

SGD = {"kind": "sgd", "learning_rate": 0.05, "momentum": 0.9}
MLP = [{"name": "fc1", "op": "dense", "input": "x", "units": 16},
       {"name": "act1", "op": "relu", "input": "fc1"},
       {"name": "fc2", "op": "dense", "input": "act1", "units": 16},
       {"name": "act2", "op": "relu", "input": "fc2"},
       {"name": "head", "op": "dense", "input": "act2", "units": 4}]
LSTM = [{"name": "proj", "op": "dense", "input": "x", "units": 6},
        {"name": "lstm", "op": "lstm", "input": "proj", "units": 8, "return_sequences": False},
        {"name": "head", "op": "dense", "input": "lstm", "units": 3}]


def _workload(folder: Path, graph: list[dict], shape: list, optimizer: dict = SGD) -> Path:
    path = folder / "trained.yaml"
    path.write_text(yaml.safe_dump({
        "name": "trained", "description": "diagnose --mode train test", "seed": 3,
        "inputs": [{"name": "x", "shape": shape}], "sweep": {"batch": [4]}, "graph": graph, "outputs": ["head"],
        "train": {"loss": "softmax_cross_entropy", "optimizer": optimizer}}))
    return path


def _diagnose(wl: Path, target: str, out: Path):
    skip_if_missing(target)
    r = bench("diagnose", "--mode", "train", "-w", str(wl), "-t", target, "--out", str(out))
    return r, json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None


def _verdicts(rep: dict) -> dict[str, str]:
    return {n["name"]: n["verdict"] for n in rep["nodes"]}


def test_a_wrong_backward_without_parameters_is_found_by_bisecting_windows(tmp_path):
    r, rep = _diagnose(_workload(tmp_path, MLP, ["batch", 12]), "torch:bug-relu-straight-through", tmp_path / "d")
    assert r.returncode == 1, r.stderr
    assert rep["mode"] == "train" and rep["status"] == "fail"
    # from the loss back; the ReLU nearest the loss passes its gradient unmasked
    assert [n["name"] for n in rep["nodes"]] == ["head", "act2", "fc2", "act1", "fc1"]
    assert rep["culprit"] == "act2" and rep["culprit_op"] == "relu", rep["summary"]
    v = _verdicts(rep)
    assert v == {"head": "clean", "act2": "culprit", "fc2": "inherited", "act1": "clean", "fc1": "inherited"}
    nodes = {n["name"]: n for n in rep["nodes"]}
    for name in ("head", "fc2", "fc1"):  # every node with parameters is right alone
        assert nodes[name]["own"]["status"] == "pass" and nodes[name]["own"]["max_abs_err"] < 1e-6
    assert nodes["head"]["inherited"]["status"] == "pass"
    assert nodes["fc2"]["inherited"]["status"] == "fail" and nodes["fc2"]["inherited"]["cosine"] < 0.99
    assert rep["reduced"] == ["fc2", "act2"] and rep["drift"] == "fc2"
    assert "culprit: act2 (relu) passes a wrong gradient back" in r.stdout
    # the bundle: the window, in train mode, reproduced by the suite; a correct target passes it
    bundle = tmp_path / "d" / "bundle"
    assert (tmp_path / "d" / "bundle.zip").is_file()
    small = load_workload(bundle / "workload.yaml")
    assert [n.name for n in small.nodes] == ["fc2", "act2"] and small.train.loss == "mean_squared_error"
    with np.load(bundle / "reference.npz") as ref, np.load(bundle / "actual.npz") as act:
        assert np.abs(ref["grad.fc2.kernel"] - act["grad.fc2.kernel"]).max() > 1e-3
    readme = (bundle / "README.md").read_text()
    assert "`relu` (`act2`) passes a wrong gradient back" in readme and "bench verify --mode train" in readme
    rv = bench("verify", "--mode", "train", "-w", str(bundle / "workload.yaml"), "-t",
               "torch:bug-relu-straight-through", "-t", "torch:eager", "-p", "cpu")
    assert rv.returncode == 1 and "1 pass, 1 fail" in rv.stdout, rv.stdout + rv.stderr


BN = [{"name": "fc1", "op": "dense", "input": "x", "units": 16}, {"name": "bn", "op": "batch_norm", "input": "fc1"},
      {"name": "act", "op": "relu", "input": "bn"}, {"name": "head", "op": "dense", "input": "act", "units": 4}]


CONV = [{"name": "conv", "op": "conv2d", "input": "x", "filters": 4, "kernel_size": 3, "padding": "same"},
        {"name": "act", "op": "relu", "input": "conv"},
        {"name": "pool", "op": "avg_pool2d", "input": "act", "pool_size": 3, "strides": 2, "padding": "same"},
        {"name": "flat", "op": "flatten", "input": "pool"}, {"name": "head", "op": "dense", "input": "flat", "units": 5}]


@pytest.mark.parametrize("bug,good,graph,shape,culprit,script", [
    ("torch:bug-bn-eval-in-train", "torch:eager", BN, ["batch", 12], "bn", "repro_torch_train.py"),
    ("jax:bug-lstm-gates", "jax:jit", LSTM, ["batch", 5, 6], "lstm", "repro_jax_train.py"),
    ("tensorflow:bug-conv-kernel", "tensorflow:function", CONV, ["batch", 3, 9, 9], "conv",
     "repro_tensorflow_train.py"),
    ("keras:bug-lstm-gates", "keras[torch]", LSTM, ["batch", 5, 6], "lstm", "repro_keras_train.py"),
], ids=["torch", "jax", "tensorflow", "keras"])
def test_a_wrong_gradient_is_localized_and_its_script_reproduces_without_the_suite(bug, good, graph, shape, culprit,
                                                                                   script, tmp_path):
    from suite.diagnose import Diagnosis
    from suite.diagnose_train import train_script
    from suite.targets.registry import get_target

    r, rep = _diagnose(_workload(tmp_path, graph, shape), bug, tmp_path / "d")
    assert r.returncode == 1, r.stderr
    assert rep["culprit"] == culprit, rep["summary"]
    nodes = {n["name"]: n for n in rep["nodes"]}
    assert nodes[culprit]["verdict"] == "culprit" and nodes[culprit]["own"]["status"] == "fail"
    assert all(n["own"]["status"] == "pass" for name, n in nodes.items() if n["own"] and name != culprit)
    bundle = tmp_path / "d" / "bundle"
    readme = (bundle / "README.md").read_text()
    assert f"the gradient of `{graph[[g['name'] for g in graph].index(culprit)]['op']}` is wrong" in readme
    assert f"python {script}" in readme and "import suite" not in (bundle / script).read_text()
    run = _run_blocked(bundle, script)  # the framework and NumPy only, the suite blocked
    assert run.returncode == 1, run.stdout + run.stderr
    printed = [float(ln.split("max abs error ")[1].split(",")[0]) for ln in run.stdout.splitlines()
               if ln.startswith("gradient ")]
    assert max(printed) == pytest.approx(nodes[culprit]["own"]["max_abs_err"], rel=5e-3)  # the target's own (3 digits)
    # the same script for the production target, on the same bundle, finds every gradient right
    fine = tmp_path / "fine"
    fine.mkdir()
    for f in ("inputs.npz", "labels.npz", "weights.npz", "reference.npz"):
        (fine / f).write_bytes((bundle / f).read_bytes())
    name, source = train_script(get_target(good), load_workload(bundle / "workload.yaml"),
                                Diagnosis("trained", {}, good, "cpu", "fail", ""), fine)
    (fine / name).write_text(source)
    ok = _run_blocked(fine, name)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert all(float(ln.split("relative L2 error ")[1].split(",")[0]) < 1e-4 for ln in ok.stdout.splitlines()
               if ln.startswith("gradient "))


def _run_blocked(bundle: Path, script: str):
    blocked = (f"import os, sys; sys.modules['suite'] = None; f = os.path.abspath({script!r}); "
               "exec(compile(open(f).read(), f, 'exec'), {'__file__': f, '__name__': '__main__'})")
    return subprocess.run([sys.executable, "-I", "-c", blocked], cwd=bundle, capture_output=True, text=True,
                          timeout=300)


def test_an_update_bug_at_one_op_is_told_from_a_gradient_bug(tmp_path):
    adam = {"kind": "adam", "learning_rate": 0.001}
    r, rep = _diagnose(_workload(tmp_path, LSTM, ["batch", 5, 6], adam), "torch:bug-lstm-both-biases", tmp_path / "d")
    assert r.returncode == 1, r.stderr
    assert rep["culprit"] == "lstm", rep["summary"]
    nodes = {n["name"]: n for n in rep["nodes"]}
    assert all(n["inherited"]["status"] == "pass" and n["own"]["status"] == "pass" for n in nodes.values())
    assert nodes["lstm"]["update"]["status"] == "fail"
    assert nodes["head"]["update"]["status"] == "pass" and nodes["proj"]["update"]["status"] == "pass"
    assert "its gradients match the reference; its parameters after 2 step(s) do not" in rep["summary"]
    assert "the update of `lstm`'s parameters is wrong" in (tmp_path / "d" / "bundle" / "README.md").read_text()


def test_an_optimizer_bug_is_named_as_the_optimizer(tmp_path):
    r, rep = _diagnose(_workload(tmp_path, MLP, ["batch", 12]), "torch:bug-sgd-dampening", tmp_path / "d")
    assert r.returncode == 1, r.stderr
    assert rep["culprit"] == "optimizer" and rep["culprit_op"] == "sgd", rep["summary"]
    with_params = [n for n in rep["nodes"] if n["update"]]
    assert len(with_params) == 3 and all(n["update"]["status"] == "fail" for n in with_params)
    assert all(n["own"]["status"] == "pass" for n in with_params)  # every gradient is right
    assert "culprit: the optimizer (sgd)" in r.stdout


def test_a_passing_training_step_gives_no_divergence(tmp_path):
    r, rep = _diagnose(_workload(tmp_path, MLP, ["batch", 12]), "torch:eager", tmp_path / "d")
    assert r.returncode == 0, r.stderr
    assert rep["status"] == "pass" and rep["nodes"] == [] and rep["summary"].startswith("no divergence")
    assert not (tmp_path / "d" / "bundle").exists()


def test_verify_diagnose_localizes_a_failing_training_step(tmp_path):
    skip_if_missing("torch:bug-relu-straight-through")
    wl = _workload(tmp_path, MLP, ["batch", 12])
    (tmp_path / "results").mkdir()  # bench verify keeps its reports under ./results/diagnoses
    r = bench("verify", "--mode", "train", "-w", str(wl), "-t", "torch:bug-relu-straight-through", "-p", "cpu",
              "--diagnose", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "diagnoses (1):" in r.stdout and "culprit: act2 (relu) passes a wrong gradient back" in r.stdout, r.stdout
    bundles = list((tmp_path / "results" / "diagnoses").glob("*/bundle.zip"))
    assert [b.parent.name for b in bundles] == ["trained-batch4-torch_bug-relu-straight-through-cpu-train"]


@pytest.mark.parametrize("args,message", [
    (["-w", "mlp_classifier", "-t", "torch>onnx@onnxruntime", "--param", "batch=32"], "has no training step"),
    (["-w", "mlp_classifier", "-t", "torch:eager"], "has one value per channel at batch=1"),
    (["-w", "mlp_classifier", "-t", "torch:eager", "--mode", "fit"], "invalid choice"),
])
def test_bad_train_input_is_one_line_and_exit_2(args, message, tmp_path):
    r = bench("diagnose", "--mode", "train", *args, "--out", str(tmp_path / "d"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert message in lines[-1] and (len(lines) == 1 or "usage:" in r.stderr), r.stderr


def test_a_workload_without_train_section_is_refused(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump({"name": "plain", "inputs": [{"name": "x", "shape": ["batch", 4]}],
                                    "sweep": {"batch": [2]}, "graph": MLP[:1], "outputs": ["fc1"]}))
    r = bench("diagnose", "--mode", "train", "-w", str(path), "-t", "torch:eager", "--out", str(tmp_path / "d"))
    assert r.returncode == 2 and "declares no train: section" in r.stderr, r.stderr


# ---- fixed labels (train.labels.distribution kind: file) ----

def _labelled(folder: Path, labels: dict, shape=(2, 3)) -> dict:
    return {"name": "fixed_labels", "seed": 0, "inputs": [{"name": "x", "shape": ["batch", 4]}],
            "sweep": {"batch": [2]}, "graph": [{"name": "y", "op": "dense", "input": "x", "units": 3}],
            "outputs": ["y"], "train": {"loss": "mean_squared_error", "labels": labels,
                                        "optimizer": {"kind": "sgd", "learning_rate": 0.1}}}


def test_fixed_labels_are_read_and_their_content_is_the_identity(tmp_path):
    from suite.training import make_labels

    want = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.savez(tmp_path / "l.npz", labels=want)
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(_labelled(tmp_path, {"distribution": {"kind": "file", "path": "l.npz"}})))
    wl = load_workload(path)
    assert np.array_equal(make_labels(wl, {"batch": 2}), want)
    np.savez(tmp_path / "l.npz", labels=want + 1)
    assert load_workload(path).hash != wl.hash


@pytest.mark.parametrize("labels,arrays,message", [
    ({"distribution": {"kind": "file", "path": "l.npz"}}, {"other": np.zeros((2, 3), np.float32)},
     "has no array named 'labels'"),
    ({"distribution": {"kind": "file", "path": "l.npz"}}, {"labels": np.zeros((2, 4), np.float32)},
     "array 'labels' has shape [2, 4], the output y has [2, 3] at batch=2"),
    ({"distribution": {"kind": "file", "path": "l.npz"}}, {"labels": np.zeros((2, 3), np.int64)},
     "mean_squared_error needs floats"),
    ({"distribution": {"kind": "file", "path": "missing.npz"}}, None, "missing.npz"),
])
def test_bad_label_files_are_one_line(labels, arrays, message, tmp_path):
    if arrays is not None:
        np.savez(tmp_path / "l.npz", **arrays)
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(_labelled(tmp_path, labels)))
    with pytest.raises(SpecError) as e:
        load_workload(path)
    assert message in str(e.value) and "train.labels.distribution" in str(e.value)
    r = bench("verify", "--mode", "train", "-w", str(path), "-t", "test:numpy")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cross_entropy_takes_no_label_file(tmp_path):
    data = _labelled(tmp_path, {"distribution": {"kind": "file", "path": "l.npz"}})
    data["train"]["loss"] = "softmax_cross_entropy"
    with pytest.raises(SpecError, match="only mean_squared_error takes a label distribution"):
        parse_workload(data, str(tmp_path / "w.yaml"))

"""Train mode: the train: section, labels, losses, optimisers, the canonical mapping of native parameters,
the train verifier (it can fail, and for the right reasons), and torch's training step end to end."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO, run_cells, skip_if_missing
from suite.spec import SpecError, load_workload, parse_workload
from suite.training import (Optimizer, TrainReference, loss_and_grad, make_labels, reference_train,
                            unsupported_point)
from suite.verify import TrainResult, verify_train

MLP = {
    "name": "tiny_mlp",
    "inputs": [{"name": "x", "shape": ["batch", 6]}],
    "sweep": {"batch": [4]},
    "graph": [{"name": "h", "op": "dense", "input": "x", "units": 5},
              {"name": "a", "op": "tanh", "input": "h"},
              {"name": "logits", "op": "dense", "input": "a", "units": 3}],
    "outputs": ["logits"],
    "classes_axis": -1,
    "train": {"loss": "softmax_cross_entropy", "optimizer": {"kind": "sgd", "learning_rate": 0.1, "momentum": 0.9}},
}


def _wl(**train):
    data = json.loads(json.dumps(MLP))
    data["train"].update(train)
    return parse_workload(data, "tiny.yaml")


# ---- the train: section -------------------------------------------------------------------------

BAD_TRAIN = [
    ({"loss": "hinge"}, "train.loss: expected one of softmax_cross_entropy, mean_squared_error"),
    ({"optimizer": {"kind": "rmsprop", "learning_rate": 0.1}}, "train.optimizer: expected a mapping with kind"),
    ({"optimizer": {"kind": "sgd"}}, "train.optimizer.learning_rate: missing required field for sgd"),
    ({"optimizer": {"kind": "sgd", "learning_rate": -1}}, "train.optimizer.learning_rate: expected a positive"),
    ({"optimizer": {"kind": "sgd", "learning_rate": 0.1, "momentum": 1.5}}, "train.optimizer.momentum: expected a number in [0, 1)"),
    ({"optimizer": {"kind": "sgd", "learning_rate": 0.1, "nesterov": True}}, "train.optimizer.nesterov: nesterov needs a momentum"),
    ({"optimizer": {"kind": "adam", "learning_rate": 0.1, "momentum": 0.9}}, "train.optimizer.momentum: unknown field for adam"),
    ({"output": "h"}, "train.output: expected one of the workload outputs"),
    ({"steps": 0}, "train.steps: expected an integer from 1 to 100"),
    ({"labels": {"distribution": {"kind": "normal", "mean": 0, "std": 1}}}, "train.labels.distribution: only mean_squared_error"),
    ({"dropout": 0.1}, "train.dropout: unknown field"),
]


@pytest.mark.parametrize("train,message", BAD_TRAIN, ids=[m.split(":")[1] for _, m in BAD_TRAIN])
def test_bad_train_section_is_one_line(train, message):
    with pytest.raises(SpecError) as e:
        _wl(**train)
    assert str(e.value).startswith("tiny.yaml: " + message), str(e.value)
    assert "\n" not in str(e.value)


def test_bad_train_section_exits_2_from_the_cli(tmp_path):
    data = json.loads(json.dumps(MLP))
    data["train"]["loss"] = "hinge"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    p = subprocess.run([sys.executable, "-m", "suite.cli", "--workloads-dir", str(tmp_path), "verify", "--mode", "train"],
                       capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 2
    assert "train.loss: expected one of" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_defaults_and_every_shipped_workload_trains():
    spec = _wl().train
    assert spec.output == "logits" and spec.steps == 2
    assert dict(spec.optimizer) == {"kind": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": False}
    assert dict(_wl(optimizer={"kind": "adam", "learning_rate": 1e-3}).train.optimizer) == {
        "kind": "adam", "learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}
    for path in sorted((REPO / "workloads").glob("*.yaml")):
        assert load_workload(path).train is not None, path.name


# ---- labels, losses, optimisers -------------------------------------------------------------------

def test_labels_are_seeded_and_shaped():
    wl = _wl()
    a, b = make_labels(wl, {"batch": 4}), make_labels(wl, {"batch": 4})
    assert a.dtype == np.int64 and a.shape == (4,) and (a == b).all() and a.min() >= 0 and a.max() < 3
    other = make_labels(_wl(labels={"seed": 1}), {"batch": 4})
    assert not np.array_equal(np.concatenate([other, make_labels(_wl(labels={"seed": 2}), {"batch": 4})]),
                              np.concatenate([a, a]))  # another seed, another draw
    mse = _wl(loss="mean_squared_error")
    t = make_labels(mse, {"batch": 4})
    assert t.dtype == np.float32 and t.shape == (4, 3)


@pytest.mark.parametrize("kind", ["softmax_cross_entropy", "mean_squared_error"])
def test_loss_gradient_matches_finite_differences(kind):
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 5, 4))
    labels = rng.integers(0, 4, size=(3, 5)) if kind == "softmax_cross_entropy" else rng.normal(size=(3, 5, 4))
    loss, g = loss_and_grad(kind, y, labels)
    eps = 1e-6
    for idx in [(0, 0, 0), (2, 4, 3), (1, 2, 1)]:
        yp, ym = y.copy(), y.copy()
        yp[idx] += eps
        ym[idx] -= eps
        fd = (loss_and_grad(kind, yp, labels)[0] - loss_and_grad(kind, ym, labels)[0]) / (2 * eps)
        assert abs(fd - g[idx]) < 1e-8
    if kind == "softmax_cross_entropy":  # the plain definition: mean of -log p[label]
        p = np.exp(y) / np.exp(y).sum(-1, keepdims=True)
        assert loss == pytest.approx(-np.log(np.take_along_axis(p, labels[..., None], -1)).mean(), rel=1e-12)


def test_optimizers_follow_their_written_rules():
    p, g1, g2 = {"n": {"w": np.array([1.0, -2.0])}}, {"n": {"w": np.array([0.5, 1e-9])}}, {"n": {"w": np.array([0.25, -1.0])}}
    sgd = Optimizer({"kind": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": False})
    s1 = sgd.step(p, g1)
    s2 = sgd.step(s1, g2)
    np.testing.assert_allclose(s2["n"]["w"], p["n"]["w"] - 0.1 * g1["n"]["w"] - 0.1 * (0.9 * g1["n"]["w"] + g2["n"]["w"]))
    nest = Optimizer({"kind": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True})
    np.testing.assert_allclose(nest.step(p, g1)["n"]["w"], p["n"]["w"] - 0.1 * 1.9 * g1["n"]["w"])
    adam = Optimizer({"kind": "adam", "learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8})
    a1 = adam.step(p, g1)["n"]["w"]
    # first step: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps): ~lr * sign(g) unless |g| ~ eps
    np.testing.assert_allclose(a1, p["n"]["w"] - 0.01 * g1["n"]["w"] / (np.abs(g1["n"]["w"]) + 1e-8))
    assert abs(a1[1] - p["n"]["w"][1]) < 0.01 * 0.1


# ---- the verifier can fail, and for the right reasons ---------------------------------------------

@pytest.fixture(scope="module")
def tiny_ref():
    from suite.weights import init_weights, make_inputs

    wl = _wl()
    params = {"batch": 4}
    w, x, y = init_weights(wl, params), make_inputs(wl, params), make_labels(wl, params)
    return wl, reference_train(wl, w, x, y)


def _copy(tree):
    return {n: {k: np.array(v, dtype=np.float32) for k, v in ps.items()} for n, ps in tree.items()}


def _result(ref: TrainReference, **change):
    r = {"losses": list(ref.losses), "grads": _copy(ref.grads), "params": _copy(ref.params),
         "step_grads": [_copy(g) for g in ref.step_grads]}
    r.update(change)
    return TrainResult(**r)


def test_reference_step_passes_itself(tiny_ref):
    wl, ref = tiny_ref
    num, extra = verify_train(wl, _result(ref), ref)
    assert num.status == "pass", num.reason
    assert extra["loss"] == pytest.approx(ref.losses[0]) and extra["grad_cosine"] > 0.999999
    assert len(ref.losses) == 2 and ref.losses[1] < ref.losses[0]  # a step of SGD lowers the loss on its batch


def test_wrong_gradient_layout_fails(tiny_ref):
    wl, ref = tiny_ref
    grads = _copy(ref.grads)
    k = grads["h"]["kernel"]
    grads["h"]["kernel"] = k.reshape(k.shape[::-1]).T.copy()  # reshaped, not transposed: the classic slip
    num, _ = verify_train(wl, _result(ref, grads=grads), ref)
    assert num.status == "fail" and "gradient h/kernel: relative L2 error" in num.reason


def test_wrong_update_fails_and_loss_is_checked(tiny_ref):
    wl, ref = tiny_ref
    params = _copy(ref.params)
    params["logits"]["bias"] = params["logits"]["bias"] + 1e-3
    num, _ = verify_train(wl, _result(ref, params=params), ref)
    assert num.status == "fail" and "parameter logits/bias" in num.reason
    num, _ = verify_train(wl, _result(ref, losses=[ref.losses[0], ref.losses[1] * 1.01]), ref)
    assert num.status == "fail" and num.reason.startswith("loss at step 2")


def test_one_element_off_passes_a_whole_tensor_off_fails(tiny_ref):
    """A ReLU kink flip moves one gradient element; a porting bug moves the tensor."""
    wl, ref = tiny_ref
    grads = _copy(ref.grads)
    k = grads["h"]["kernel"]
    k.flat[0] += 2e-4 * np.linalg.norm(k)
    assert verify_train(wl, _result(ref, grads=grads), ref)[0].status == "pass"
    grads["h"]["kernel"] = k * 1.01
    assert verify_train(wl, _result(ref, grads=grads), ref)[0].status == "fail"


def test_nan_and_missing_values(tiny_ref):
    wl, ref = tiny_ref
    grads = _copy(ref.grads)
    grads["logits"]["kernel"][0, 0] = np.nan
    num, _ = verify_train(wl, _result(ref, grads=grads), ref)
    assert num.status == "nan" and "gradient logits/kernel" in num.reason
    grads = _copy(ref.grads)
    del grads["h"]
    assert verify_train(wl, _result(ref, grads=grads), ref)[0].status == "shape_mismatch"
    assert verify_train(wl, _result(ref, losses=[ref.losses[0]]), ref)[0].status == "shape_mismatch"


# ---- mapping native parameters back to the canonical layout --------------------------------------

def test_canonical_map_inverts_a_permuting_mapping(tiny_ref):
    from suite.targets.common.train_map import CanonicalMap, index_weights
    from suite.weights import init_weights

    wl, _ = tiny_ref
    w = init_weights(wl, {"batch": 4})
    idx = index_weights(wl, w)

    def native(tree):  # a torch-like mapping: kernels transposed, biases split in two halves
        return {"h.weight": tree["h"]["kernel"].T, "h.bias_a": tree["h"]["bias"][:2], "h.bias_b": tree["h"]["bias"][2:],
                "out.weight": tree["logits"]["kernel"].T, "out.bias": tree["logits"]["bias"],
                "out.extra": np.zeros(3)}  # a native constant with no canonical counterpart

    cmap = CanonicalMap(wl, w, native(idx))
    back = cmap.to_canonical(native(w))
    for n in w:
        for k in w[n]:
            np.testing.assert_array_equal(back[n][k], w[n][k])
    dup = native(idx)
    dup["out.bias"] = idx["h"]["bias"][:3]  # two native elements claim one canonical element
    with pytest.raises(ValueError, match="h/bias: some elements have more than one native counterpart"):
        CanonicalMap(wl, w, dup)


# ---- plan: what cannot train says why ------------------------------------------------------------

def test_plan_marks_untrainable_cells(cpu_profile):
    from suite.plan import make_plan
    from suite.targets.registry import get_target

    mlp = load_workload(REPO / "workloads" / "mlp_classifier.yaml")
    assert "one value per channel at batch=1" in unsupported_point(mlp, {"batch": 1})
    assert unsupported_point(mlp, {"batch": 32}) is None
    data = json.loads(json.dumps(MLP))
    del data["train"]
    no_train = parse_workload(data, "no_train.yaml")
    cells = make_plan([mlp, no_train], [get_target("torch:eager"), get_target("torch>onnx@onnxruntime")],
                      {"cpu": cpu_profile}, {"cpu": (True, "")}, mode="train")
    why = {(c.workload.name, c.params_dict["batch"], c.target.id): (c.status, c.reason) for c in cells}
    assert why[("mlp_classifier", 1, "torch:eager")][0] == "unsupported"
    assert why[("mlp_classifier", 32, "torch:eager")] == (None, "")
    assert why[("mlp_classifier", 32, "torch>onnx@onnxruntime")] == (
        "unsupported", "torch>onnx@onnxruntime has no training step (export formats and runtimes are inference artifacts)")
    assert why[("tiny_mlp", 4, "torch:eager")] == ("unsupported", "workload tiny_mlp declares no train: section")
    assert all(c.mode == "train" for c in cells)


# ---- torch end to end through the worker -----------------------------------------------------------

TORCH_CASES = [("mlp_classifier", 32), ("text_classifier", 1), ("lstm_classifier", 1), ("resnet_cnn", 1)]


@pytest.fixture(scope="module")
def torch_records(cpu_profile):
    skip_if_missing("torch:eager")
    wls = [load_workload(REPO / "workloads" / f"{w}.yaml") for w, _ in TORCH_CASES]
    recs = run_cells(wls, ["torch:eager", "torch:bug-lstm-both-biases", "torch:bug-sgd-dampening"], cpu_profile,
                     mode="train")
    return {(w, json.loads(p)["batch"], t): r for (w, p, t), r in recs.items()}


@pytest.mark.parametrize("workload,batch", TORCH_CASES)
def test_torch_training_step_matches_the_reference(torch_records, workload, batch):
    rec = torch_records[(workload, batch, "torch:eager")]
    assert rec["status"] == "pass", rec.get("status_reason")
    assert rec["mode"] == "train" and rec["loss"] > 0 and rec["loss_abs_err"] < 1e-4
    assert rec["grad_cosine"] > 0.9999 and rec["param_max_abs_err"] < 1e-3
    assert rec["step_peak_bytes"] > 0 and rec["step_extra_bytes"] >= 0


def test_training_both_lstm_biases_is_caught(torch_records):
    """Forward pass and gradients agree; the bias moves twice per step, which only the update shows."""
    rec = torch_records[("lstm_classifier", 1, "torch:bug-lstm-both-biases")]
    assert rec["status"] == "fail", rec.get("status_reason")
    assert "/bias" in rec["status_reason"] or rec["status_reason"].startswith("loss at step 2")
    assert rec["grad_cosine"] > 0.9999  # the gradients themselves are right
    assert torch_records[("mlp_classifier", 32, "torch:bug-lstm-both-biases")]["status"] == "pass"  # no LSTM


def test_sgd_dampening_is_caught_on_the_second_step(torch_records):
    rec = torch_records[("mlp_classifier", 32, "torch:bug-sgd-dampening")]
    assert rec["status"] == "fail" and "parameter" in rec["status_reason"], rec.get("status_reason")
    assert rec["loss_abs_err"] < 1e-4 and rec["grad_cosine"] > 0.9999  # step 1 is right, the momentum is not


def test_bench_run_train_stores_timed_rows(tmp_path):
    skip_if_missing("torch:eager")
    p = subprocess.run([sys.executable, "-m", "suite.cli", "run", "--mode", "all", "--quick", "-t", "torch:eager",
                        "-w", "text_classifier", "-p", "cpu-1t", "--sweep", "all", "--results", str(tmp_path),
                        "--no-dashboard"],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    from suite.results import read_results

    df = read_results(tmp_path)
    assert sorted(df["mode"].unique()) == ["inference", "train"]
    train = df[df["mode"] == "train"]
    assert len(train) == 2 and (train["status"] == "pass").all()
    assert (train["latency_median_s"] > 0).all() and train["step_peak_bytes"].notna().all()
    inf = df[df["mode"] == "inference"].set_index("params")["latency_median_s"]
    # a training step does more work than a forward pass of the same cell
    assert (train.set_index("params")["latency_median_s"] > inf).all()
    assert "train" in p.stdout

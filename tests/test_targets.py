"""Every op and every shipped workload, in every framework target, against the NumPy reference.

Each target's cells run in one worker subprocess (cached per session), then one test per
(target, case) asserts on its record, so the first failure hides nothing.
"""
from __future__ import annotations

import json

import pytest

from conftest import REPO, run_cells, skip_if_missing
from opcases import CASES
from suite.spec import load_workload, load_workloads
from suite.targets.registry import TARGETS

# production targets that build graph workloads (the registry holds no test targets; the onnx>... routes start
# from a source ONNX file: tests/test_sources.py)
NATIVE = [t for t, i in TARGETS.items() if i.framework != "onnx"]
SHIPPED = sorted(p.stem for p in (REPO / "workloads").glob("*.yaml"))

# Export targets convert every cell (0.3-4 s each), so every op case x 12 export targets would cost
# CI over 20 min. Float formats get the cases whose mapping an exporter can break (asymmetric padding,
# groups, axis remaps, NHWC around flatten/transpose/concat, int ids, recurrence, multiple outputs);
# the quantised / delegate variants of a format share its conversion path, so they get three. Every
# shipped workload still runs on every target (test_shipped_workload_matches_reference).
EXPORT_CASES = ("conv_same_even_k", "conv_grouped", "avg_pool_same", "softmax_axis1", "matmul_tb",
                "transpose_after_conv", "concat_channels", "embedding_int32", "lstm_sequence", "residual_dag",
                # ops of today's architectures that no shipped workload exercises in this form
                "relu6", "pad_after_conv", "slice_channels_after_conv", "attention_mqa_rope_interleaved_nobias",
                "gru_sequence", "gru_noreset_sequence", "conv_t_same_s2_k3", "resize_nearest_3x1")
VARIANT_CASES = ("conv_depthwise_s2", "attention_causal", "lstm_last")
# Cells an export target refuses, keyed by (target, op or workload/case name), with the text the
# reason must contain (checked, not just allowed).
EXPECTED_UNSUPPORTED = {
    ("tensorflow>tflite-int8-full@litert", "lstm"): "segfaults",
    ("tensorflow>tflite-int8-full@litert", "gru"): "segfaults",
    # tf2onnx's Loop for the last-state LSTM (no TensorArray) has an int32/int64 mismatch
    ("tensorflow>onnx@onnxruntime", "lstm_classifier"): "invalid ONNX model",
    ("tensorflow>onnx@onnxruntime", "lstm_last"): "invalid ONNX model",
    ("tensorflow>onnx@onnxruntime", "gru_classifier"): "invalid ONNX model",  # the same for the last-state GRU
    # jax2onnx 0.17 refuses jax.image.resize's bilinear method with its default antialias=True, even when
    # upsampling (where antialiasing changes nothing); nearest converts
    ("jax>onnx@onnxruntime", "unet_tiny"): "resize with antialias=True is not supported yet",
    # OpenVINO's PyTorch frontend refuses avg_pool2d(divisor_override=...) (TF-style SAME averaging)
    ("torch>openvino@openvino", "avg_pool_same"): "do not support divisor_override",
    # IREE 3.13's torch input conversion has no lowering for the recurrent aten ops iree-turbine emits (nn.LSTM,
    # nn.GRU; the reset_after=False GRU is written out step by step in the torch model, and passes)
    ("torch>iree@iree", "lstm"): "failed to legalize operation 'torch.operator' that was explicitly marked illegal "
                                 "(torch.aten.lstm.input)",
    ("torch>iree@iree", "gru_classifier"): "(torch.aten.gru.input)",
    ("torch>iree@iree", "gru_sequence"): "(torch.aten.gru.input)",
    # ... nor for F.pad with negative pads (a crop): the torch model crops a SAME transposed conv that way
    ("torch>iree@iree", "conv_t_same_s2_k3"): "slice along dimension 2 runs out-of-bounds: 8 >= 8",
}
# Known runtime errors on a model the converter produced, keyed like EXPECTED_UNSUPPORTED: the run is an
# `error` with the runtime's own words (checked).
EXPECTED_ERROR = {
    # OpenVINO 2026.4's CPU plugin cannot run the Loop that a TF while_loop over time converts to
    ("tensorflow>openvino@openvino", "lstm"): "doesn't have compiled executor",
    ("tensorflow>openvino@openvino", "gru"): "doesn't have compiled executor",
}
# Known wrong results, kept visible as `fail` with figures (verification catching them is the point):
# (target, workload/case) -> the text the reason must contain.
EXPECTED_FAIL = {
    # (full-integer int8 of causal attention, cosine ~0.84-0.95, is no longer here: the exporter keeps
    # the q·kᵀ -> mask -> softmax -> ·v core in float, test_int8_full_keeps_causal_attention_float.)
    # torch.onnx (dynamo) exports avg_pool2d(divisor_override=1) as a plain AveragePool: the override
    # that implements TF-style SAME averaging is dropped silently, every value is wrong.
    ("torch>onnx@onnxruntime", "avg_pool_same"): "outside rtol",
    ("torch>onnx@openvino", "avg_pool_same"): "outside rtol",  # the same .onnx file, run by OpenVINO
    # IREE 3.13 lowers torch's gelu(approximate="tanh") up to 5.1e-5 off (tanh and x**3 alone are exact to
    # ~2e-7 on the same route): vit_tiny's logits miss rtol 1e-4 (max abs err 1.2e-4 at batch 1)
    ("torch>iree@iree", "vit_tiny"): "outside rtol",
    # litert-torch 0.10 gets attention with ONE key/value head (MQA) wrong on every value, with interleaved,
    # half or no RoPE alike (max abs err 1.8-2.2); the same attention with 4 kv heads passes, as does GQA
    # (llama_block)
    ("torch>tflite@litert", "attention_mqa_rope_interleaved_nobias"): "192 of 192 values outside rtol",
}


def cases_for(target):
    info = TARGETS[target]
    if info.export is None:
        return [c["name"] for c in CASES]
    variant = info.dtype != "float32" or getattr(info.options, "xnnpack", True) is False
    return list(VARIANT_CASES if variant else EXPORT_CASES)


def _expected_refusal(target, wl_ops, name):
    for (t, key), why in EXPECTED_UNSUPPORTED.items():
        if t == target and (key is None or key in wl_ops or key == name):
            return why
    return None


def _opcase_records(target, opcase_dir, cpu_profile, cache):
    key = ("ops", target)
    if key not in cache:
        wls = [load_workload(opcase_dir / f"{c}.yaml") for c in cases_for(target)]
        cache[key] = run_cells(wls, [target], cpu_profile)
    return cache[key]


def _shipped_records(target, cpu_profile, cache):
    key = ("shipped", target)
    if key not in cache:
        cache[key] = run_cells(load_workloads(REPO / "workloads"), [target], cpu_profile)
    return cache[key]


def _assert_pass(rec, wl_ops=()):
    known = EXPECTED_FAIL.get((rec["target"], rec["workload"]))
    if known is not None:
        assert rec["status"] == "fail" and known in rec["status_reason"], rec.get("status_reason")
        assert rec["max_abs_err"] is not None and rec["cosine"] is not None  # figures, not just a verdict
        return
    for (t, key), words in EXPECTED_ERROR.items():
        if t == rec["target"] and (key in wl_ops or key == rec["workload"]):
            assert rec["status"] == "error" and words in rec["status_reason"], rec.get("status_reason")
            return
    why = _expected_refusal(rec["target"], set(wl_ops), rec["workload"])
    if why is not None:
        assert rec["status"] == "unsupported" and why in rec["status_reason"], rec.get("status_reason")
        return
    assert rec["status"] == "pass", f"{rec['status']}: {rec.get('status_reason')} (max_abs_err={rec.get('max_abs_err')})"
    quantised = TARGETS[rec["target"]].dtype != "float32"
    assert rec["max_abs_err"] is not None and rec["cosine"] > (0.99 if quantised else 0.9999)
    assert rec["layout"], "a target must record the native layout it used"
    if TARGETS[rec["target"]].export is not None:
        assert rec["export_s"] is not None and rec["artifact_bytes"] > 0


def _ops(name):
    return {n["op"] for c in CASES if c["name"] == name for n in c["graph"]}


@pytest.mark.parametrize("target,case", [(t, c) for t in NATIVE for c in cases_for(t)])
def test_op_matches_reference(target, case, opcase_dir, cpu_profile, verified_cache):
    skip_if_missing(target)
    records = _opcase_records(target, opcase_dir, cpu_profile, verified_cache)
    (rec,) = [r for (w, _, _), r in records.items() if w == case]
    _assert_pass(rec, _ops(case))


@pytest.mark.parametrize("workload", SHIPPED)
@pytest.mark.parametrize("target", NATIVE)
def test_shipped_workload_matches_reference(target, workload, cpu_profile, verified_cache):
    skip_if_missing(target)
    records = _shipped_records(target, cpu_profile, verified_cache)
    recs = [r for (w, _, _), r in records.items() if w == workload]
    batches = {json.loads(r["params"])["batch"] for r in recs}
    assert 1 in batches and len(batches) >= 2, batches
    ops = {n.op for n in load_workload(REPO / "workloads" / f"{workload}.yaml").nodes}
    for rec in recs:
        _assert_pass(rec, ops)


def test_int8_full_keeps_causal_attention_float(cpu_profile, verified_cache):
    """Selective quantisation is recorded: causal attention's core stays float and the layout says so;
    a workload without it (non-causal attention) stays fully int8."""
    target = "tensorflow>tflite-int8-full@litert"
    skip_if_missing(target)
    records = _shipped_records(target, cpu_profile, verified_cache)
    for (w, _, _), rec in records.items():
        if w == "gpt_block":
            assert "float: BATCH_MATMUL, SOFTMAX, ADD, MUL" in rec["layout"], rec["layout"]
        if w == "transformer_encoder":
            assert "float:" not in rec["layout"], rec["layout"]

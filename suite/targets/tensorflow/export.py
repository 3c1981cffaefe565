"""TensorFlow exporters, run in a tensorflow export worker: tf2onnx, the TFLite converter, SavedModel.

The graph is the one ``tensorflow:function`` builds (:mod:`suite.targets.tensorflow.model`): raw TF ops over
tf.Variables in NHWC/HWIO. The exported artifact keeps that native I/O layout (an edge app feeds NHWC
images); the manifest records which inputs are NHWC and which outputs are, so the runtime target
transposes outside anything timed.

TFLite variants (``info.options.quant``):

* ``none``: float32.
* ``float16``: weights stored as float16 (``supported_types=[tf.float16]``), computed in float32 by
  the CPU kernels after dequantisation.
* ``dynamic``: post-training dynamic-range quantisation: int8 weights, activations quantised on the
  fly per op; float I/O.
* ``full``: post-training full-integer quantisation calibrated with a representative dataset of
  ``REPRESENTATIVE_SAMPLES`` seeded input batches (seeds distinct from the verification inputs);
  ops without an int8 kernel fall back to float (the converter's default), I/O stays float.
  Selective quantisation: in a workload with causal attention, the ops of ``options.float_ops``
  (BATCH_MATMUL, SOFTMAX) and the score scale / causal-mask MUL, ADD between q·kᵀ and the softmax
  stay float (``tf.lite.experimental.QuantizationDebugger`` denylists); the rest is int8. Measured,
  TF 2.21, gpt_block: the -inf mask ruins the int8 range of the scores (cosine 0.935); denylisting
  BATCH_MATMUL + SOFTMAX alone changes nothing, the whole q·kᵀ -> softmax chain gives 0.999.
  Non-causal attention (transformer_encoder) passes fully int8 (0.9998) and is left as is.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
from pathlib import Path

import numpy as np

from suite.targets.base import BuildContext, UnsupportedError
from suite.targets.common.convert import check_onnx, first_line, tf_version_key
from suite.targets.tensorflow.model import LAYOUT, forward_module
from suite.targets.tensorflow.runtime import import_tf

REPRESENTATIVE_SAMPLES = 8
QUANT = ("none", "float16", "dynamic", "full")


def tf_function(ctx: BuildContext):
    """(module, concrete function, input specs, to_nhwc flags, output nhwc flags) of the cell's graph."""
    tf = import_tf()
    module, in_specs, to_nhwc, out_nhwc = forward_module(tf, ctx)
    concrete = module.forward.get_concrete_function()
    return module, concrete, in_specs, to_nhwc, list(out_nhwc)


def _io(ctx, to_nhwc, out_nhwc):
    return {"inputs": [{"name": s.name, "dtype": s.dtype, "nhwc": bool(f)} for s, f in zip(ctx.workload.inputs, to_nhwc)],
            "outputs_nhwc": [bool(f) for f in out_nhwc]}


def to_onnx(ctx: BuildContext, out_dir: Path) -> dict:
    """tf2onnx ``convert.from_function`` (variables frozen to constants), opset ``options.opset``."""
    import tf2onnx

    module, concrete, in_specs, to_nhwc, out_nhwc = tf_function(ctx)
    path = out_dir / "model.onnx"
    tf2onnx.convert.from_function(module.forward, input_signature=in_specs, custom_op_handlers=ERFC_HANDLER,
                                  opset=ctx.info.options.opset, output_path=str(path))
    check_onnx(path, f"tf2onnx {tf2onnx.__version__}")
    return dict(_io(ctx, to_nhwc, out_nhwc), artifact=path.name, layout=LAYOUT + "; ONNX (tf2onnx)",
                versions=dict(tf_version_key(), tf2onnx=tf2onnx.__version__))


def _erfc_to_onnx(ctx, node, name, args):
    """tf2onnx 1.17 has no handler for TF's Erfc (tf.nn.gelu(approximate=False) uses it) and writes an
    ONNX node no runtime knows: rewrite it as 1 - Erf(x) (ONNX has Erf since opset 9)."""
    node.type = "Erf"
    neg = ctx.insert_new_node_on_output("Neg", node.output[0], name=node.name + "_neg")
    one = ctx.make_const(node.name + "_one", np.array(1.0, dtype=np.float32))
    add = ctx.insert_new_node_on_output("Add", neg.output[0], name=node.name + "_one_minus")
    add.input.append(one.output[0])


ERFC_HANDLER = {"Erfc": (_erfc_to_onnx, [])}


def representative_inputs(ctx: BuildContext, n: int = REPRESENTATIVE_SAMPLES):
    """Seeded input batches for calibration, from seeds the verification inputs never use."""
    from suite.weights import make_inputs

    return [make_inputs(dataclasses.replace(ctx.workload, seed=ctx.workload.seed + 1000 + i), ctx.params)
            for i in range(n)]


def _score_chain_nodes(tf, model: bytes) -> list[tuple[str, str]]:
    """(op, output tensor name) of the MUL / ADD ops between a BATCH_MATMUL and the SOFTMAX it feeds
    (attention's scale and causal mask), found by walking the graph back from each SOFTMAX."""
    it = tf.lite.Interpreter(model_content=model)
    ops = it._get_ops_details()  # no public graph walk in tf.lite; read-only
    producer = {t: op for op in ops for t in op["outputs"]}
    names = {d["index"]: d["name"] for d in it.get_tensor_details()}
    out = []
    for op in ops:
        if op["op_name"] != "SOFTMAX":
            continue
        chain, cur = [], producer.get(op["inputs"][0])
        while cur is not None and cur["op_name"] in ("MUL", "ADD"):
            chain.append((cur["op_name"], names[cur["outputs"][0]]))
            cur = next((producer[t] for t in cur["inputs"] if t in producer), None)
        if cur is not None and cur["op_name"] == "BATCH_MATMUL":
            out += chain
    return out


def convert_tflite(tf, module, concrete, ctx, to_nhwc, quant: str) -> tuple[bytes, str]:
    """Runs the TFLite converter on a concrete function with the quantisation variant ``quant``.

    Returns (flatbuffer, layout note: what ``full`` kept in float, "" when nothing)."""
    if quant not in QUANT:
        raise ValueError(f"quant={quant!r}: expected one of {', '.join(QUANT)}")
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    if quant != "none":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if quant == "float16":
        conv.target_spec.supported_types = [tf.float16]
    if quant == "full":
        samples = representative_inputs(ctx)
        names = [s.name for s in ctx.workload.inputs]

        def dataset():
            for inputs in samples:
                yield [np.transpose(inputs[n], (0, 2, 3, 1)) if img else inputs[n]
                       for n, img in zip(names, to_nhwc)]

        conv.representative_dataset = dataset
        float_ops = list(ctx.info.options.float_ops)
        if float_ops and any(n.op == "attention" and n.attrs.get("causal") for n in ctx.workload.nodes):
            dbg_opts = tf.lite.experimental.QuantizationDebugOptions
            dbg = tf.lite.experimental.QuantizationDebugger(
                converter=conv, debug_dataset=dataset, debug_options=dbg_opts(denylisted_ops=float_ops))
            nodes = _score_chain_nodes(tf, dbg.calibrated_model)
            if nodes:
                dbg.options = dbg_opts(denylisted_ops=float_ops, denylisted_nodes=[n for _, n in nodes])
            kept = float_ops + sorted({op for op, _ in nodes})
            return dbg.get_nondebug_quantized_model(), "; float: " + ", ".join(kept) + " (causal attention core)"
    return conv.convert(), ""


def to_tflite(ctx: BuildContext, out_dir: Path) -> dict:
    """The TFLite converter from the concrete function (float32, float16 or int8 per options.quant)."""
    tf = import_tf()
    quant = ctx.info.options.quant
    recurrent = sorted({n.op for n in ctx.workload.nodes if n.op in ("lstm", "gru")})
    if quant == "full" and recurrent:
        # Checked, not guessed: with TF 2.21 the converter's calibration of the LSTM's (and GRU's) WHILE
        # loop kills the process with SIGSEGV (no Python error to catch), so refuse before starting it.
        raise UnsupportedError(f"TFLite full-integer quantisation (TF 2.21) of op {', '.join(recurrent)}: "
                               "the converter segfaults calibrating the tf.while_loop (WHILE op); use tflite-int8 "
                               "(dynamic range) for recurrent models")
    module, concrete, in_specs, to_nhwc, out_nhwc = tf_function(ctx)
    try:
        flat, kept_float = convert_tflite(tf, module, concrete, ctx, to_nhwc, quant)
    except Exception as e:  # converter refusals are messages about ops, not bugs of this suite
        raise UnsupportedError(f"TFLite converter (quant={quant}) failed: {first_line(e)}") from e
    path = out_dir / "model.tflite"
    path.write_bytes(flat)
    return dict(_io(ctx, to_nhwc, out_nhwc), artifact=path.name, layout=LAYOUT + f"; TFLite quant={quant}" + kept_float,
                versions=tf_version_key())


def to_saved_model(ctx: BuildContext, out_dir: Path) -> dict:
    """``tf.saved_model.save`` of the tf.Module (variables + the traced forward) into a directory."""
    tf = import_tf()
    module, concrete, in_specs, to_nhwc, out_nhwc = tf_function(ctx)
    path = out_dir / "saved_model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": concrete})
    return dict(_io(ctx, to_nhwc, out_nhwc), artifact=path.name, layout=LAYOUT + "; SavedModel",
                versions=tf_version_key())


def to_openvino(ctx: BuildContext, out_dir: Path) -> dict:
    """The cell's SavedModel (as ``to_saved_model``), converted by ``openvino.convert_model`` -> IR with
    float32 weights (``model.xml`` + ``.bin``); the SavedModel is a temporary step, not kept."""
    import shutil

    from suite.targets.common.convert import import_openvino, openvino_convert

    ov = import_openvino()

    tf = import_tf()
    module, concrete, in_specs, to_nhwc, out_nhwc = tf_function(ctx)
    saved = out_dir / "saved_model.tmp"
    tf.saved_model.save(module, str(saved), signatures={"serving_default": concrete})
    ov_model = openvino_convert(ov, str(saved))
    path = out_dir / "model.xml"
    ov.save_model(ov_model, str(path), compress_to_fp16=False)
    shutil.rmtree(saved, ignore_errors=True)
    return dict(_io(ctx, to_nhwc, out_nhwc), artifact=path.name,
                layout=LAYOUT + "; OpenVINO IR (convert_model from a SavedModel)",
                versions=dict(tf_version_key(), openvino=importlib.metadata.version("openvino")))

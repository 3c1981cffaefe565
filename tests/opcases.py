"""Small one-op (or few-op) workloads covering every op and its variants, shared by the tests.

Each case is (id, workload-as-data). ``op_workload`` wraps one node so every framework can be checked
op by op against the reference on small shapes.
"""
from __future__ import annotations

from suite.spec import parse_workload


def _wl(name, inputs, graph, outputs=None, batch=2, **extra):
    data = {
        "name": name,
        "inputs": [dict({"name": n, "shape": ["batch", *s]}, **kw) for n, s, kw in inputs],
        "sweep": {"batch": [batch]},
        "graph": graph,
        "outputs": outputs or [graph[-1]["name"]],
    }
    data.update(extra)
    return data


def _one(name, op, in_shape, **attrs):
    return _wl(name, [("x", in_shape, {})], [dict({"name": "y", "op": op, "input": "x"}, **attrs)])


IDS = {"kind": "randint", "low": 0, "high": 50}
WIDE = {"kind": "normal", "mean": 0, "std": 3}  # |x| of a few units

CASES = [
    _one("dense", "dense", [7], units=5),
    _one("dense_3d_nobias", "dense", [4, 6], units=3, use_bias=False),
    _one("conv_valid", "conv2d", [3, 9, 8], filters=4, kernel_size=3),
    _one("conv_same_s2", "conv2d", [3, 9, 8], filters=4, kernel_size=3, strides=2, padding="same"),
    _one("conv_same_even_k", "conv2d", [2, 7, 7], filters=3, kernel_size=[2, 4], padding="same"),
    _one("conv_dilated", "conv2d", [2, 11, 10], filters=3, kernel_size=3, dilation=2, padding="same"),
    _one("conv_grouped", "conv2d", [4, 6, 6], filters=6, kernel_size=3, groups=2, use_bias=False),
    _one("conv_depthwise_s2", "conv2d", [4, 9, 9], filters=4, kernel_size=3, groups=4, strides=2, padding="same"),
    _one("conv_1x1", "conv2d", [5, 4, 4], filters=8, kernel_size=1),
    _one("max_pool_valid", "max_pool2d", [3, 8, 8], pool_size=2),
    _one("max_pool_same", "max_pool2d", [3, 7, 7], pool_size=3, strides=2, padding="same"),
    _one("avg_pool_valid", "avg_pool2d", [3, 8, 8], pool_size=2),
    _one("avg_pool_same", "avg_pool2d", [3, 7, 7], pool_size=3, strides=2, padding="same"),
    _one("global_avg_pool", "global_avg_pool", [5, 4, 3]),
    _one("batch_norm_4d", "batch_norm", [4, 5, 5]),
    _one("batch_norm_2d", "batch_norm", [6], epsilon=1e-3),
    _one("layer_norm", "layer_norm", [5, 8]),
    _one("relu", "relu", [4, 5]),
    _one("gelu", "gelu", [4, 5]),
    _one("sigmoid", "sigmoid", [4, 5]),
    _one("tanh", "tanh", [4, 5]),
    _one("softmax", "softmax", [3, 6]),
    _one("softmax_axis1", "softmax", [3, 6], axis=1),
    _wl("add", [("a", [3, 4], {}), ("b", [3, 4], {})], [{"name": "y", "op": "add", "inputs": ["a", "b"]}]),
    _wl("add_broadcast", [("a", [3, 4], {}), ("b", [1, 4], {})], [{"name": "y", "op": "add", "inputs": ["a", "b"]}]),
    _wl("multiply", [("a", [3, 4], {}), ("b", [3, 4], {})], [{"name": "y", "op": "multiply", "inputs": ["a", "b"]}]),
    _wl("matmul", [("a", [3, 4], {}), ("b", [4, 5], {})], [{"name": "y", "op": "matmul", "inputs": ["a", "b"]}]),
    _wl("matmul_tb", [("a", [3, 4], {}), ("b", [5, 4], {})],
        [{"name": "y", "op": "matmul", "inputs": ["a", "b"], "transpose_b": True}]),
    _one("reshape", "reshape", [4, 6], shape=[3, -1]),
    _wl("flatten_nchw", [("x", [3, 4, 5], {})],
        [{"name": "c", "op": "conv2d", "input": "x", "filters": 2, "kernel_size": 3, "padding": "same"},
         {"name": "y", "op": "flatten", "input": "c"}]),
    _one("transpose", "transpose", [3, 4, 5], perm=[0, 2, 3, 1]),
    _wl("transpose_after_conv", [("x", [3, 4, 5], {})],
        [{"name": "c", "op": "conv2d", "input": "x", "filters": 2, "kernel_size": 1},
         {"name": "y", "op": "transpose", "input": "c", "perm": [0, 2, 3, 1]}]),
    _wl("concat_channels", [("x", [3, 4, 4], {})],
        [{"name": "a", "op": "conv2d", "input": "x", "filters": 2, "kernel_size": 1},
         {"name": "b", "op": "relu", "input": "x"},
         {"name": "y", "op": "concat", "inputs": ["a", "b"], "axis": 1}]),
    _wl("concat_last", [("a", [3, 4], {}), ("b", [3, 2], {})],
        [{"name": "y", "op": "concat", "inputs": ["a", "b"], "axis": -1}]),
    _one("mean", "mean", [4, 6], axis=1),
    _one("mean_keepdims", "mean", [4, 6], axis=[1, 2], keepdims=True),
    _wl("embedding", [("ids", [6], {"dtype": "int64", "distribution": IDS})],
        [{"name": "y", "op": "embedding", "input": "ids", "vocab_size": 50, "dim": 8}]),
    _wl("embedding_int32", [("ids", [6], {"dtype": "int32", "distribution": IDS})],
        [{"name": "y", "op": "embedding", "input": "ids", "vocab_size": 50, "dim": 8}]),
    _one("attention", "attention", [5, 8], num_heads=2),
    _one("attention_causal", "attention", [5, 8], num_heads=4, causal=True),
    _one("lstm_last", "lstm", [6, 3], units=4),
    _one("lstm_sequence", "lstm", [6, 3], units=4, return_sequences=True),
    _wl("residual_dag", [("x", [8], {})],
        [{"name": "h", "op": "dense", "input": "x", "units": 8},
         {"name": "r", "op": "relu", "input": "h"},
         {"name": "s", "op": "add", "inputs": ["x", "r"]},
         {"name": "y", "op": "layer_norm", "input": "s"}], outputs=["y", "h"]),
    _one("rms_norm", "rms_norm", [5, 8]),
    _one("rms_norm_3d_eps", "rms_norm", [3, 4, 6], epsilon=1e-2),
    _wl("rms_norm_after_conv", [("x", [3, 5, 6], {})],  # normalises canonical W, not NHWC's channels
        [{"name": "c", "op": "conv2d", "input": "x", "filters": 4, "kernel_size": 1},
         {"name": "y", "op": "rms_norm", "input": "c"}]),
    _one("gelu_tanh", "gelu", [4, 5], approximate="tanh"),
    # |x| of a few units: exact and tanh GELU differ by up to 5e-4 there, far outside float32 tolerance
    _wl("gelu_exact_wide", [("x", [6, 16], {"distribution": WIDE})],
        [{"name": "y", "op": "gelu", "input": "x", "approximate": "none"}]),
    _wl("gelu_tanh_wide", [("x", [6, 16], {"distribution": WIDE})],
        [{"name": "y", "op": "gelu", "input": "x", "approximate": "tanh"}]),
    _one("silu", "silu", [4, 5]),
    _wl("relu6", [("x", [6, 8], {"distribution": {"kind": "normal", "mean": 0, "std": 4}})],
        [{"name": "y", "op": "relu6", "input": "x"}]),
    _wl("hard_sigmoid", [("x", [6, 8], {"distribution": WIDE})],
        [{"name": "y", "op": "hard_sigmoid", "input": "x"}]),
    _wl("hard_swish", [("x", [6, 8], {"distribution": WIDE})], [{"name": "y", "op": "hard_swish", "input": "x"}]),
    _wl("hard_swish_after_conv", [("x", [3, 5, 6], {"distribution": WIDE})],  # keeps NHWC
        [{"name": "c", "op": "conv2d", "input": "x", "filters": 4, "kernel_size": 3, "padding": "same"},
         {"name": "y", "op": "hard_swish", "input": "c"}]),
    _one("slice_negative", "slice", [6, 10], axis=-1, start=-7, stop=-1, step=2),
    _one("slice_step_to_end", "slice", [8, 5], axis=1, start=1, step=3),
    _wl("slice_channels_after_conv", [("x", [3, 5, 6], {})],
        [{"name": "c", "op": "conv2d", "input": "x", "filters": 5, "kernel_size": 1},
         {"name": "y", "op": "slice", "input": "c", "axis": 1, "start": 1, "stop": 4}]),
    _one("pad_value", "pad", [3, 4], pads=[[1, 2], [0, 3]], value=-1.5),
    _wl("pad_after_conv", [("x", [3, 5, 6], {})],
        [{"name": "c", "op": "conv2d", "input": "x", "filters": 2, "kernel_size": 1},
         {"name": "y", "op": "pad", "input": "c", "pads": [[0, 1], [1, 2], [2, 0]]}]),
    _one("position_embedding", "position_embedding", [5, 8]),
    _one("class_token", "class_token", [5, 8]),
    _wl("class_token_then_positions", [("x", [4, 6], {})],
        [{"name": "t", "op": "class_token", "input": "x"},
         {"name": "y", "op": "position_embedding", "input": "t"}]),
    _one("dropout", "dropout", [4, 5], rate=0.3),
    _wl("dropout_after_conv", [("x", [3, 5, 6], {})],
        [{"name": "c", "op": "conv2d", "input": "x", "filters": 2, "kernel_size": 1},
         {"name": "y", "op": "dropout", "input": "c"}]),
    _one("attention_gqa_causal_rope_half", "attention", [6, 16], num_heads=4, num_kv_heads=2, causal=True,
         rope={"style": "half"}),
    _one("attention_mqa_rope_interleaved_nobias", "attention", [6, 16], num_heads=4, num_kv_heads=1,
         use_bias=False, rope={"style": "interleaved", "base": 100.0}),
    _one("attention_rope_half_fraction", "attention", [6, 16], num_heads=2, rope={"style": "half", "fraction": 0.5}),
    _one("gru_last", "gru", [6, 3], units=4),
    _one("gru_sequence", "gru", [6, 3], units=4, return_sequences=True),
    _one("gru_noreset_last", "gru", [6, 3], units=4, reset_after=False),
    _one("gru_noreset_sequence", "gru", [5, 3], units=4, return_sequences=True, reset_after=False),
    _one("conv_t_valid_s2_k3", "conv2d_transpose", [3, 4, 5], filters=4, kernel_size=3, strides=2),
    _one("conv_t_valid_outpad", "conv2d_transpose", [3, 4, 5], filters=2, kernel_size=[3, 2], strides=[2, 3],
         output_padding=[1, 2], use_bias=False),
    _one("conv_t_same_s2_k4", "conv2d_transpose", [3, 4, 5], filters=4, kernel_size=4, strides=2, padding="same"),
    _one("conv_t_same_s2_k3", "conv2d_transpose", [3, 4, 5], filters=4, kernel_size=3, strides=2, padding="same"),
    _one("conv_t_same_s3_k2", "conv2d_transpose", [2, 3, 4], filters=3, kernel_size=2, strides=3, padding="same"),
    _one("conv_t_same_s1_k2", "conv2d_transpose", [2, 4, 5], filters=3, kernel_size=[2, 3], padding="same"),
    _one("resize_nearest_x2", "resize", [3, 4, 5], mode="nearest", scale=2),
    _one("resize_bilinear_x2", "resize", [3, 4, 5], mode="bilinear", scale=2),
    _one("resize_bilinear_x2_align", "resize", [3, 4, 5], mode="bilinear", scale=2, align_corners=True),
    _one("resize_bilinear_2x3", "resize", [3, 4, 5], mode="bilinear", scale=[2, 3]),
    _one("resize_bilinear_3x4_align", "resize", [2, 4, 5], mode="bilinear", scale=[3, 4], align_corners=True),
    _one("resize_nearest_3x1", "resize", [3, 4, 5], mode="nearest", scale=[3, 1]),
]


def op_workloads():
    """[(id, Workload)] for every case."""
    return [(c["name"], parse_workload(c, f"<case {c['name']}>")) for c in CASES]


def ops_covered() -> set[str]:
    return {n["op"] for c in CASES for n in c["graph"]}

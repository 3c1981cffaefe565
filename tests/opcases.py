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
    # ==== issue 12 [act]: op cases ====
    # ==== issue 12 [attn]: op cases ====
    # ==== issue 12 [gru]: op cases ====
    # ==== issue 12 [spatial]: op cases ====
]


def op_workloads():
    """[(id, Workload)] for every case."""
    return [(c["name"], parse_workload(c, f"<case {c['name']}>")) for c in CASES]


def ops_covered() -> set[str]:
    return {n["op"] for c in CASES for n in c["graph"]}

"""Seeded weights (canonical layout, float64) and seeded inputs. NumPy only.

Each parameter gets its own generator seeded with (workload seed, crc32 of "node/param"), so
adding or renaming one node never changes the weights of another, and a run is reproducible
across machines and NumPy versions that keep PCG64.
"""
from __future__ import annotations

import math
import zlib
from typing import Mapping

import numpy as np

from suite.ops import OPS


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _glorot(rng, shape, fan_in, fan_out):
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def _init_param(rng, op: str, pname: str, shape: tuple[int, ...], attrs) -> np.ndarray:
    if op in ("position_embedding", "class_token"):  # ViT's learned position table and class token
        return rng.normal(0.0, 0.02, size=shape)
    if op == "gru" and pname == "recurrent_bias":  # like every bias
        return rng.normal(0.0, 0.1, size=shape)
    if op == "gru" and pname in ("kernel", "recurrent_kernel"):  # per gate block (z, r, n), like the LSTM
        return _glorot(rng, shape, shape[0], shape[1] // 3)
    if op == "conv2d_transpose" and pname == "kernel":  # IOHW: fan_in = C*kh*kw, fan_out = filters*kh*kw
        rf = shape[2] * shape[3]
        return _glorot(rng, shape, shape[0] * rf, shape[1] * rf)
    if pname in ("bias", "beta", "moving_mean") or (op == "attention" and pname.startswith("b")):
        return rng.normal(0.0, 0.1, size=shape)
    if pname in ("gamma", "moving_var"):
        return rng.uniform(0.5, 1.5, size=shape)
    if pname == "table":
        return rng.normal(0.0, 1.0, size=shape)
    if op == "conv2d":  # OIHW, Glorot per group: fan_in = (C/g)*kh*kw, fan_out = (O/g)*kh*kw
        # (per group, or five depthwise blocks shrink the signal to ~1e-4 and outputs stop depending on inputs)
        rf = shape[2] * shape[3]
        return _glorot(rng, shape, shape[1] * rf, shape[0] // attrs["groups"] * rf)
    if op == "lstm":  # per gate block, as Keras' glorot over (in, units)
        return _glorot(rng, shape, shape[0], shape[1] // 4)
    return _glorot(rng, shape, shape[0], shape[1])


def init_weights(workload, params: Mapping[str, int] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Canonical float64 weights: node name -> parameter name -> array.

    Parameter shapes never depend on the batch size; other sweep values (e.g. a sequence length)
    may size a dense layer, so params is taken (defaults to the first point of the sweep).
    """
    params = params or workload.param_grid()[0]
    shapes = workload.shapes(params)
    out = {}
    for node in workload.nodes:
        pshapes = OPS[node.op].params([shapes[s] for s in node.inputs], dict(node.attrs))
        if pshapes:
            out[node.name] = {p: _init_param(_rng(workload.seed, f"{node.name}/{p}"), node.op, p, s, node.attrs)
                              for p, s in pshapes.items()}
    return out


def make_inputs(workload, params: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Seeded inputs (or an input's fixed values from its file) in canonical layout and their declared dtype
    (float32 / int32 / int64)."""
    shapes = workload.shapes(params)
    out = {}
    for spec in workload.inputs:
        rng = _rng(workload.seed, "input/" + spec.name)
        d, shape = spec.distribution, shapes[spec.name]
        if d["kind"] == "file":  # fixed values (suite.spec checked the array's shape at every sweep point)
            with np.load(d["path"], allow_pickle=False) as z:
                x = z[spec.name]
            if tuple(x.shape) != tuple(shape):
                raise ValueError(f"{d['path']}: array {spec.name!r} has shape {list(x.shape)}, expected {list(shape)}")
        elif d["kind"] == "normal":
            x = rng.normal(d["mean"], d["std"], size=shape)
        elif d["kind"] == "uniform":
            x = rng.uniform(d["low"], d["high"], size=shape)
        else:
            x = rng.integers(d["low"], d["high"], size=shape)
        out[spec.name] = x.astype(spec.dtype)
    return out

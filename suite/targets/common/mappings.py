"""Weight mappings shared by several frameworks, written once (NumPy only, no framework import).

Each function takes canonical float64 arrays (workloads/README.md: conv OIHW, dense (in, out), attention
``wq, wk, wv, wo`` (in, out), LSTM gate blocks i, f, g, o) and returns float32 arrays in a native
layout. A framework's ``weights.py`` composes these; a mapping used by one framework only stays there.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

LSTM_GATES = ("i", "f", "g", "o")  # canonical gate-block order of kernel / recurrent_kernel / bias columns


def f32(a) -> np.ndarray:
    """A contiguous float32 copy: what every native parameter is."""
    return np.ascontiguousarray(a, dtype=np.float32)


def conv_hwio(kernel_oihw: np.ndarray) -> np.ndarray:
    """OIHW -> HWIO (TensorFlow, Keras, Flax); with groups, I is C/groups in both."""
    return f32(np.asarray(kernel_oihw).transpose(2, 3, 1, 0))


def is_depthwise(attrs: Mapping, in_channels: int, kernel_in: int = 1) -> bool:
    """Whether a conv2d maps to a depthwise convolution (groups == C, one input channel per group).

    Depthwise kernels (TensorFlow's depthwise_conv2d, Keras' DepthwiseConv2D) cannot stride and dilate at
    once; that case stays a grouped convolution.
    """
    return (attrs["groups"] > 1 and attrs["groups"] == in_channels and kernel_in == 1
            and not (max(attrs["dilation"]) > 1 and max(attrs["strides"]) > 1))


def depthwise_kernel(kernel_oihw: np.ndarray, groups: int) -> np.ndarray:
    """OIHW ``(C*m, 1, kh, kw)`` -> depthwise ``(kh, kw, C, m)``: output channel c*m + j is canonical
    output channel c*m + j, so reshape (C, m, kh, kw) then move the window axes first."""
    o, _, kh, kw = kernel_oihw.shape
    return f32(np.asarray(kernel_oihw).reshape(groups, o // groups, kh, kw).transpose(2, 3, 0, 1))


def attention_heads(w: Mapping[str, np.ndarray], num_heads: int,
                    num_kv_heads: int | None = None) -> dict[str, np.ndarray]:
    """Canonical attention -> per-head DenseGeneral kernels (Keras MultiHeadAttention and
    GroupedQueryAttention, Flax MHDPA).

    Output column index is ``head * hd + j`` (the reference's reshape(n, l, h, hd)), so a row-major
    reshape of the out axis gives (heads, hd); ``wo``'s input axis splits the same way. Key and value have
    ``num_kv_heads`` heads (default: num_heads). Biases only where the node has them (use_bias).

    Returns:
        ``{"q": (D, h, hd), "bq": (h, hd), "k": (D, hkv, hd), "bk": (hkv, hd), "v", "bv", "o": (h, hd, D),
        "bo": (D,)}``.
    """
    d = w["wq"].shape[0]
    hd = d // num_heads
    heads = {"q": num_heads, "k": num_kv_heads or num_heads, "v": num_kv_heads or num_heads}
    out = {}
    for key, h in heads.items():
        out[key] = f32(w[f"w{key}"].reshape(d, h, hd))
        if f"b{key}" in w:
            out[f"b{key}"] = f32(w[f"b{key}"].reshape(h, hd))
    out["o"] = f32(w["wo"].reshape(num_heads, hd, d))
    if "bo" in w:
        out["bo"] = f32(w["bo"])
    return out


def attention_packed(w: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical attention -> packed ``in_proj`` (torch.nn.MultiheadAttention): weights are (out, in).

    Returns:
        ``{"in_proj_weight": (3D, D) = [wq.T; wk.T; wv.T], "in_proj_bias": (3D,), "out_proj_weight": wo.T,
        "out_proj_bias": bo}``.
    """
    return {"in_proj_weight": f32(np.concatenate([w["wq"].T, w["wk"].T, w["wv"].T], axis=0)),
            "in_proj_bias": f32(np.concatenate([w["bq"], w["bk"], w["bv"]])),
            "out_proj_weight": f32(w["wo"].T), "out_proj_bias": f32(w["bo"])}


def lstm_gate_blocks(a: np.ndarray, units: int, order=LSTM_GATES) -> dict[str, np.ndarray]:
    """Splits the last axis of a fused LSTM array (kernel, recurrent kernel or bias, canonical i, f, g, o)
    into one block per gate, keyed by gate letter; ``order`` names the gate of each block as stored."""
    return {gate: f32(a[..., k * units:(k + 1) * units]) for k, gate in enumerate(order)}


def lstm_fused(blocks: Mapping[str, np.ndarray], order=LSTM_GATES) -> np.ndarray:
    """Per-gate blocks -> one fused array with the gates in ``order`` (the inverse of lstm_gate_blocks)."""
    return f32(np.concatenate([blocks[g] for g in order], axis=-1))


# ---- GRU gate blocks ----
GRU_GATES = ("z", "r", "n")  # canonical gate-block order of a GRU's kernel / recurrent_kernel / bias columns


def gates_reordered(a: np.ndarray, units: int, order, canonical=GRU_GATES) -> np.ndarray:
    """The last axis of a fused gate array (blocks of ``units`` in ``canonical`` order) re-blocked into
    ``order``, e.g. a GRU's canonical z, r, n into torch's r, z, n."""
    return lstm_fused(lstm_gate_blocks(a, units, canonical), order)


# ---- transposed-convolution kernels ----
def conv_transpose_hwoi(kernel_iohw: np.ndarray) -> np.ndarray:
    """Canonical conv2d_transpose kernel IOHW (C, filters, kh, kw) -> (kh, kw, filters, C): the layout of
    ``tf.nn.conv2d_transpose``, Keras' Conv2DTranspose and ``lax.conv_transpose(transpose_kernel=True)`` with
    'HWIO' (the kernel of the forward conv whose gradient the transposed conv is: O of that conv is C)."""
    return f32(np.asarray(kernel_iohw).transpose(2, 3, 1, 0))

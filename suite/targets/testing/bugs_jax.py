"""Test-only jax targets with a deliberate porting bug, wrapped around the production jax target.

Each bug replaces one entry of a production table while the production build runs (``mock.patch``), so
tests can prove that verification catches it; production modules carry no bug branches.

* ``jax:bug-lstm-gates``: the canonical LSTM gate blocks read in i, g, f, o order instead of i, f, g, o
  (a classic gate-order porting mistake): the production mapping fed with the f and g blocks swapped.
* ``jax:bug-gelu-tanh``: ``jax.nn.gelu`` called at its default (``approximate=True``, tanh) whatever the
  node asks: the classic JAX/Keras-vs-PyTorch GELU trap.
* ``jax:bug-gqa-groups``: each kv head tiled over the query heads (``jnp.tile``: query head h reads kv head
  h % Hkv) instead of repeated for a contiguous group (``h // (H / Hkv)``, Hugging Face's repeat_kv).
"""
from __future__ import annotations

from unittest import mock

from suite.targets.common.mappings import lstm_fused, lstm_gate_blocks
from suite.targets.common.nhwc import Val
from suite.targets.jax import ops, weights
from suite.targets.testing.wrap import planted

_WRONG_GATE_ORDER = ("i", "g", "f", "o")


def _lstm_gates_igfo(p, a):
    u = a["units"]
    # lstm_gate_blocks names block k after _WRONG_GATE_ORDER[k]; lstm_fused lays them out again in the
    # canonical order, so the production mapping then reads block 1 as g and block 2 as f.
    swapped = {k: lstm_fused(lstm_gate_blocks(v, u, _WRONG_GATE_ORDER)) for k, v in p.items()}
    return weights.lstm(swapped, a)


def _gelu_default(jx, g, node, vals, p):
    return Val(jx.jax.nn.gelu(vals[0].t), vals[0].nhwc)  # approximate=True by default: tanh


def _attention_kv_tiled(jx, g, node, vals, p):
    x = g.tracker.canon(vals[0])
    q, k, v = ops.attention_qkv(jx, x, p, node.attrs)
    groups = q.shape[2] // k.shape[2]
    k, v = (jx.jnp.tile(t, (1, 1, groups, 1)) for t in (k, v))  # kv heads 0, 1, .., 0, 1, ..: h % Hkv
    return Val(ops.attention_out(jx, ops.attention_core(jx, q, k, v, node.attrs["causal"]), p))


BUGS = {  # target id -> a context manager that plants the bug while the production build runs
    "jax:bug-lstm-gates": lambda: mock.patch.dict(weights.WEIGHTS, {"lstm": _lstm_gates_igfo}),
    "jax:bug-gelu-tanh": lambda: mock.patch.dict(ops.OPS, {"gelu": _gelu_default}),
    "jax:bug-gqa-groups": lambda: mock.patch.dict(ops.OPS, {"attention": _attention_kv_tiled}),
}


unsupported, build, build_train = planted("jax", BUGS)

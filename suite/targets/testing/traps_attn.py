"""Test-only targets with the attention traps of issue 12, wrapped around production targets.

* ``torch:bug-rope-interleaved``: the production torch build with the interleaved rotation (pairs
  (2i, 2i + 1), GPT-J / Meta's original Llama) applied where the node asks for the half split (pairs
  (i, i + r/2), GPT-NeoX / Hugging Face Llama): the classic mistake of loading Hugging Face Llama weights
  into Meta-style rotary code (or the reverse) without permuting the q/k projections.
* ``jax:bug-gqa-groups``: the production JAX build with each kv head tiled over the query heads
  (``jnp.tile``: query head h reads kv head h % Hkv) instead of repeated for a contiguous group
  (``h // (H / Hkv)``, Hugging Face's repeat_kv): the classic tile-vs-repeat mistake.
"""
from __future__ import annotations

from unittest import mock

from suite.targets.common.nhwc import Val
from suite.targets.jax import ops as jax_ops
from suite.targets.testing.wrap import planted
from suite.targets.torch import ops as torch_ops


def _jax_attention_tiled(jx, g, node, vals, p):
    x = g.tracker.canon(vals[0])
    q, k, v = jax_ops.attention_qkv(jx, x, p, node.attrs)
    groups = q.shape[2] // k.shape[2]
    k, v = (jx.jnp.tile(t, (1, 1, groups, 1)) for t in (k, v))  # kv heads 0, 1, .., 0, 1, ..: h % Hkv
    return Val(jax_ops.attention_out(jx, jax_ops.attention_core(jx, q, k, v, node.attrs["causal"]), p))


_JAX_BUGS = {"jax:bug-gqa-groups": lambda: mock.patch.dict(jax_ops.OPS, {"attention": _jax_attention_tiled})}
_TORCH_BUGS = {"torch:bug-rope-interleaved":
               lambda: mock.patch.dict(torch_ops.ROPE, {"half": torch_ops.ROPE["interleaved"]})}

_jax = planted("jax", _JAX_BUGS)
_torch = planted("torch", _TORCH_BUGS)
_BY_ID = {**{k: _jax for k in _JAX_BUGS}, **{k: _torch for k in _TORCH_BUGS}}


def _pick(info):
    try:
        return _BY_ID[info.id]
    except KeyError:
        raise ValueError(f"{info.id}: no injected attention bug (expected one of {', '.join(_BY_ID)})") from None


def unsupported(workload, info) -> str | None:
    if info.id not in _BY_ID:
        return f"{info.id}: no injected attention bug (expected one of {', '.join(_BY_ID)})"
    return _BY_ID[info.id][0](workload, info)


def build(ctx):
    return _pick(ctx.info)[1](ctx)


def build_train(ctx):
    return _pick(ctx.info)[2](ctx)

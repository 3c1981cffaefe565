"""Test-only targets with the GELU approximation trap (issue 12), wrapped around production targets.

``jax.nn.gelu`` and ``keras.ops.gelu`` default to the tanh approximation, PyTorch's ``nn.GELU`` to the exact
erf form; a port that calls the function without passing ``approximate`` silently changes the op. The two
forms differ by up to ~5e-4 around |x| ~ 2.7 (and by far more than float32 tolerance relative to the
small outputs at negative x), so an op case with inputs of a few units catches either direction.

* ``jax:bug-gelu-tanh``: the production JAX build with ``jax.nn.gelu`` called with its default
  (``approximate=True``, tanh) whatever the node asks.
* ``torch:bug-gelu-exact``: the production torch build with ``nn.GELU()`` at its default (exact erf)
  whatever the node asks: the reverse mistake, on a node that asks for ``approximate: tanh``.
"""
from __future__ import annotations

from unittest import mock

from suite.targets.common.nhwc import Val
from suite.targets.jax import ops as jax_ops
from suite.targets.testing.wrap import planted
from suite.targets.torch import ops as torch_ops


def _jax_gelu_default(jx, g, node, vals, p):
    return Val(jx.jax.nn.gelu(vals[0].t), vals[0].nhwc)  # approximate=True by default: tanh


def _torch_gelu_default(t, a, in_shapes, w):
    return t.nn.GELU()  # approximate="none" by default: exact erf


_JAX_BUGS = {"jax:bug-gelu-tanh": lambda: mock.patch.dict(jax_ops.OPS, {"gelu": _jax_gelu_default})}
_TORCH_BUGS = {"torch:bug-gelu-exact": lambda: mock.patch.dict(torch_ops.OPS, {"gelu": _torch_gelu_default})}

_jax = planted("jax", _JAX_BUGS)
_torch = planted("torch", _TORCH_BUGS)
_BY_ID = {**{k: _jax for k in _JAX_BUGS}, **{k: _torch for k in _TORCH_BUGS}}


def _pick(info):
    try:
        return _BY_ID[info.id]
    except KeyError:
        raise ValueError(f"{info.id}: no injected GELU bug (expected one of {', '.join(_BY_ID)})") from None


def unsupported(workload, info) -> str | None:
    if info.id not in _BY_ID:
        return f"{info.id}: no injected GELU bug (expected one of {', '.join(_BY_ID)})"
    return _BY_ID[info.id][0](workload, info)


def build(ctx):
    return _pick(ctx.info)[1](ctx)


def build_train(ctx):
    return _pick(ctx.info)[2](ctx)

"""Channels-last layout tracking, shared by the targets that keep images NHWC (TensorFlow, Keras 3, JAX).

Every traced tensor carries a flag: True for a 4-D tensor stored NHWC. Convolutions and pools produce
NHWC; element-wise ops keep the flag; the shape-preserving ops below work in whichever layout their
inputs are in; everything else reads the canonical (NCHW) tensor, transposed at most once per tensor.
Framework-free: the target passes its own transpose / softmax / add / multiply / concat.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

TO_NHWC_AXIS = (0, 3, 1, 2)  # canonical NCHW axis -> its NHWC position
NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


class Val:
    """A traced tensor with its layout: ``nhwc`` is True for 4-D tensors stored NHWC."""

    __slots__ = ("t", "nhwc", "_canon")

    def __init__(self, t, nhwc=False):
        self.t, self.nhwc, self._canon = t, nhwc, None


@dataclass(frozen=True)
class Ops:
    """The framework's primitives the tracker needs: ``fn(tensor(s), perm/axis)``."""

    transpose: Callable[[Any, Any], Any]
    softmax: Callable[..., Any]
    add: Callable[[Any, Any], Any]
    multiply: Callable[[Any, Any], Any]
    concat: Callable[[list, int], Any]


class Tracker:
    def __init__(self, ops: Ops):
        self.ops = ops

    def canon(self, v: Val):
        """The canonical tensor; one transpose per tensor at most, shared by all consumers."""
        if not v.nhwc:
            return v.t
        if v._canon is None:
            v._canon = self.ops.transpose(v.t, NHWC_TO_NCHW)
        return v._canon

    def nhwc(self, v: Val):
        return v.t if v.nhwc else self.ops.transpose(v.t, NCHW_TO_NHWC)

    def layout_free(self, op: str, vals: list[Val], a) -> Val | None:
        """softmax / add / multiply / concat / transpose in the inputs' own layout; None for other ops."""
        o, v = self.ops, vals[0]
        if op == "softmax":
            if v.nhwc:  # shape-preserving: remap the axis instead of transposing
                return Val(o.softmax(v.t, axis=TO_NHWC_AXIS[a["axis"] % 4]), True)
            return Val(o.softmax(v.t, axis=a["axis"]))
        if op in ("add", "multiply"):
            fn = o.add if op == "add" else o.multiply
            if all(x.nhwc for x in vals):  # the same permutation on both sides keeps broadcasting
                return Val(fn(vals[0].t, vals[1].t), True)
            return Val(fn(self.canon(vals[0]), self.canon(vals[1])))
        if op == "concat":
            if all(x.nhwc for x in vals):
                return Val(o.concat([x.t for x in vals], TO_NHWC_AXIS[a["axis"] % 4]), True)
            return Val(o.concat([self.canon(x) for x in vals], a["axis"]))
        if op == "transpose":
            if v.nhwc:  # compose with NHWC -> NCHW: one transpose instead of two
                return Val(o.transpose(v.t, [TO_NHWC_AXIS[p] for p in a["perm"]]))
            return Val(o.transpose(v.t, a["perm"]))
        return None

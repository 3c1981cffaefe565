"""Roofline figures of a timed cell: achieved FLOP/s, arithmetic intensity and the fraction of the roof.

No framework imports; shapes come from the op catalogue through ``Workload.shapes`` (as in
:mod:`suite.memory`), FLOPs from ``Workload.flops`` (the ``flops`` column), the peak from :mod:`suite.peak`.

**Arithmetic intensity** (FLOP/byte) = forward FLOPs of one call / bytes that call must move at least::

    bytes = p * sum of every node's parameter elements          (weights: read once)
          + sum of every graph input's elements * its size      (float inputs at the activation size a,
                                                                 integer ids at their own: int64 = 8)
          + a * sum of every node's output elements             (every intermediate activation and every
                                                                 model output: written once)
          reshape / flatten / transpose / slice outputs are views of their input and count nothing

``p`` and ``a`` are the bytes of a parameter and of an activation element at the cell's dtype
(:data:`ELEMENT_BYTES`): float32 4 and 4; float16 / bfloat16 2 and 2; float16-weights (TFLite fp16
storage) 2 and 4; int8 1 and 4 (dynamic-range quantisation keeps activations in float32; full-integer
models move less, so their intensity is underestimated). Each tensor is counted once: an activation written
by one node and read by the next is one tensor's bytes, not two, and nothing is counted for re-reading a
tensor that fell out of cache, for fusion that never writes an intermediate, or for an op's internal
temporaries (attention scores, im2col buffers, recurrent gate states). It is the compulsory traffic of an
ideal schedule with a cache as large as a layer and no fusion.

**Roofline fraction** = achieved / min(peak_flops, intensity × peak_bandwidth), with achieved = flops /
latency_median_s and the peak of the cell's profile measured on this host (``bench peak``). Only inference
cells get these columns: the ``flops`` column counts the forward pass, and a training step's FLOPs
(roughly 3x, depending on which inputs need gradients) are not counted by the catalogue.
"""
from __future__ import annotations

import math
from typing import Mapping

from suite.memory import DTYPE_BYTES, VIEW_OPS
from suite.ops import OPS

# cell dtype -> (bytes of a parameter element, bytes of an activation element)
ELEMENT_BYTES: dict[str, tuple[int, int]] = {
    "float32": (4, 4), "float64": (8, 8), "float16": (2, 2), "bfloat16": (2, 2),
    "float16-weights": (2, 4), "int8": (1, 4),
}


def traffic_bytes(workload, params: Mapping[str, int], dtype: str = "float32") -> int:
    """Bytes one forward call moves at least: parameters + inputs + every node's output (module docstring).

    Args:
        workload: a validated suite.spec.Workload.
        params: the sweep values of the cell.
        dtype: the cell's dtype column (a key of :data:`ELEMENT_BYTES`; unknown ones count as float32).
    Returns:
        the byte count.
    """
    p_bytes, a_bytes = ELEMENT_BYTES.get(dtype or "float32", ELEMENT_BYTES["float32"])
    shapes = workload.shapes(params)
    weights = activations = 0
    for node in workload.nodes:
        pshapes = OPS[node.op].params([shapes[s] for s in node.inputs], dict(node.attrs))
        weights += sum(math.prod(s) for s in pshapes.values())
        if node.op not in VIEW_OPS:
            activations += math.prod(shapes[node.name])
    inputs = sum(math.prod(shapes[s.name]) * (a_bytes if s.dtype.startswith("float") else DTYPE_BYTES[s.dtype])
                 for s in workload.inputs)
    return weights * p_bytes + inputs + activations * a_bytes


def arithmetic_intensity(workload, params: Mapping[str, int], dtype: str = "float32") -> float | None:
    """Forward FLOPs / :func:`traffic_bytes` (FLOP/byte); None when either is zero."""
    flops, moved = workload.flops(params), traffic_bytes(workload, params, dtype)
    return flops / moved if flops and moved else None


def attainable(intensity: float, peak_flops: float, peak_bytes: float) -> float:
    """The roof at an intensity: min(compute peak, intensity × bandwidth)."""
    return min(peak_flops, intensity * peak_bytes)


def figures(flops: int | None, latency_s: float | None, intensity: float | None, peak=None) -> dict:
    """The roofline columns of one cell (null where an input is missing).

    Args:
        flops: the cell's ``flops`` column.
        latency_s: its ``latency_median_s``.
        intensity: :func:`arithmetic_intensity` of the cell.
        peak: the :class:`suite.peak.Peak` of its profile on this host, or None (no fraction then).
    Returns:
        the fields of :class:`suite.record.Roofline`.
    """
    achieved = flops / latency_s if flops and latency_s and latency_s > 0 else None
    out = {"achieved_flops_per_s": achieved, "arithmetic_intensity": intensity}
    if achieved is not None and peak is not None and peak.flops_per_s and peak.bytes_per_s:
        out.update(peak_flops_per_s=peak.flops_per_s, peak_bytes_per_s=peak.bytes_per_s,
                   peak_flops_library=peak.flops_library)
        if intensity:
            out["roofline_fraction"] = achieved / attainable(intensity, peak.flops_per_s, peak.bytes_per_s)
    return out


def with_roofline(cell, identity, result, peak=None):
    """``result`` with its :class:`suite.record.Roofline` filled: inference cells with FLOPs and a median only.

    Args:
        cell: the planned cell (its workload and sweep point give the intensity).
        identity: the cell's :class:`suite.record.Identity` (flops, dtype, mode).
        result: the :class:`suite.record.Result` from the worker.
        peak: the cached :class:`suite.peak.Peak` of the cell's profile here, or None.
    Returns:
        the Result (unchanged when the cell was not timed or is a train cell).
    """
    from dataclasses import replace

    from suite.record import Roofline

    latency = result.timing.latency_median_s
    if identity.mode != "inference" or not identity.flops or not latency:
        return result
    intensity = arithmetic_intensity(cell.workload, cell.params_dict, identity.dtype)
    return replace(result, roofline=Roofline(**figures(identity.flops, latency, intensity, peak)))

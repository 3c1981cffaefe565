"""Feeding an exported artifact: inputs in the artifact's dtype and layout, outputs back to canonical.

Shared by the runtime targets (ONNX Runtime, LiteRT, the round trips). NumPy only: a runtime target
must run where neither torch, tensorflow nor jax is installed. The manifest (see
:mod:`suite.targets.common.artifacts`) says, per input, the dtype the artifact takes and whether it is NHWC,
and per output whether it comes out NHWC.
"""
from __future__ import annotations

import numpy as np

_TO_NHWC = (0, 2, 3, 1)
_TO_NCHW = (0, 3, 1, 2)


def host_inputs(manifest: dict, host) -> list[np.ndarray]:
    """Canonical host inputs -> the artifact's arrays, in workload-input order."""
    out = []
    for spec in manifest["inputs"]:
        x = np.asarray(host[spec["name"]])
        if spec["nhwc"]:
            x = x.transpose(_TO_NHWC)
        out.append(np.ascontiguousarray(x, dtype=spec["dtype"]))
    return out


def canonical_outputs(manifest: dict, outputs) -> list[np.ndarray]:
    """Artifact outputs (workload-output order) -> canonical numpy arrays."""
    res = []
    for y, nhwc in zip(outputs, manifest["outputs_nhwc"]):
        y = np.asarray(y)
        y = y.transpose(_TO_NCHW) if nhwc else y
        res.append(y if y.dtype.kind == "f" else y.astype(np.float64))
    return res

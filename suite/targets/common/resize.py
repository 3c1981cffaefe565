"""Bilinear resizing as gathers and a lerp, for targets whose native resize cannot express a case.

NumPy only: the taps are shape-only constants that each target feeds to its own gather (``take``). Used
for ``align_corners`` in JAX and Keras (``jax.image.resize`` and ``keras.ops.image.resize`` are half-pixel
only) and for every bilinear resize in TensorFlow (XLA's ResizeBilinear is wrong for some integer scales).
"""
from __future__ import annotations

import numpy as np


def bilinear_taps(size: int, scale: int, align_corners: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, frac) of one axis upsampled ``scale`` times: out[d] = in[lo[d]] * (1 - frac[d]) + in[hi[d]] * frac[d].

    Half-pixel centres: src = (d + 0.5) / scale - 0.5 clamped to [0, size - 1]; align_corners:
    src = d * (size - 1) / (out - 1). lo = floor(src), hi = min(lo + 1, size - 1) (workloads/README.md).
    """
    out = size * scale
    d = np.arange(out, dtype=np.float64)
    if align_corners:
        src = d * ((size - 1) / (out - 1)) if out > 1 else np.zeros(out)
    else:
        src = np.clip((d + 0.5) / scale - 0.5, 0.0, size - 1)
    lo = np.floor(src).astype(np.int32)
    return lo, np.minimum(lo + 1, size - 1).astype(np.int32), (src - lo).astype(np.float32)

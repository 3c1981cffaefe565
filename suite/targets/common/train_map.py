"""Maps a target's native parameters (or their gradients) back to the canonical layout, for any target.

A target maps canonical weights to its native ones by transposes, reshapes, splits and concatenations
(its forward mapping, written once in the target module). Instead of writing each of those a second
time backwards, the target builds its native weights once more from *index weights*: every canonical
element replaced by 1 + its global position. Each native element then names the canonical element it
came from (0: a native constant such as torch's zeroed second LSTM bias), so native gradients and
parameters scatter back exactly. Indices stay exact in float32 up to 2**24 elements.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from suite.training import is_trainable

MAX_ELEMENTS = 2 ** 24


def index_weights(workload, weights) -> dict[str, dict[str, np.ndarray]]:
    """Canonical weights of the same shapes whose values are 1 + the element's global position."""
    out, offset = {}, 0
    for node in workload.nodes:
        ps = weights.get(node.name)
        if not ps:
            continue
        out[node.name] = {}
        for k, v in ps.items():
            out[node.name][k] = np.arange(offset + 1, offset + 1 + v.size, dtype=np.float64).reshape(v.shape)
            offset += v.size
    if offset >= MAX_ELEMENTS:
        raise ValueError(f"{offset} parameters: more than float32 can index exactly ({MAX_ELEMENTS})")
    return out


class CanonicalMap:
    """native name -> index array (from the index weights), inverted once.

    ``to_canonical(native)`` takes native arrays by the same names (gradients or parameters) and returns
    node -> param -> float64 array for every trainable canonical parameter. Each trainable canonical
    element must come from exactly one native element: anything else is a mapping the suite cannot
    invert, and raises.
    """

    def __init__(self, workload, weights, native_index: Mapping[str, np.ndarray]):
        self.shapes = {}  # (node, param) -> (offset, shape)
        offset = 0
        for node in workload.nodes:
            for k, v in weights.get(node.name, {}).items():
                if is_trainable(node.op, k):
                    self.shapes[(node.name, k)] = (offset, v.shape)
                offset += v.size
        self.total = offset
        self.where: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # native name -> (native flat idx, canon idx)
        seen = np.zeros(offset, dtype=np.int64)
        for name, idx in native_index.items():
            flat = np.rint(np.asarray(idx, dtype=np.float64).ravel()).astype(np.int64)
            pos = np.nonzero(flat > 0)[0]
            canon = flat[pos] - 1
            if canon.size and (canon.min() < 0 or canon.max() >= offset):
                raise ValueError(f"native parameter {name}: values are not canonical indices")
            self.where[name] = (pos, canon)
            np.add.at(seen, canon, 1)
        for (node, k), (off, shape) in self.shapes.items():
            n = int(np.prod(shape))
            counts = seen[off:off + n]
            if (counts != 1).any():
                what = "no" if (counts == 0).any() else "more than one"
                raise ValueError(f"canonical parameter {node}/{k}: some elements have {what} native counterpart")

    def to_canonical(self, native: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        flat = np.zeros(self.total, dtype=np.float64)
        for name, (pos, canon) in self.where.items():
            flat[canon] = np.asarray(native[name], dtype=np.float64).ravel()[pos]
        out: dict[str, dict[str, np.ndarray]] = {}
        for (node, k), (off, shape) in self.shapes.items():
            out.setdefault(node, {})[k] = flat[off:off + int(np.prod(shape))].reshape(shape)
        return out

"""What one cell needs in memory, estimated from shapes alone, so the planner can refuse a cell that cannot fit.

Nothing is allocated: parameter and output shapes come from the op catalogue (:mod:`suite.ops`) through
``Workload.shapes``, and every size is integer arithmetic, so a workload with a ``[batch, 100000, 100000]``
input costs the same to estimate as a small one. No framework imports.

The formula (``d`` = bytes of the compute dtype, 4 for float32; counts are elements at the sweep point)::

    weights     = d * sum of every node's parameter elements            (the target's copy)
    canonical   = 8 * the same                                          (the canonical float64 weights the
                                                                         worker holds for the whole cell)
    inputs      = sum of every input's elements * its dtype's size      (int64 ids: 8 bytes)
    activations = inference: d * the largest single node output         (an eager run frees the others as
                                                                         it goes; at least this one is live)
                  train: d * sum of every node's output elements        (kept for the backward pass)
                  reshape / flatten / transpose / slice outputs are views of their input and count nothing
    train mode:
      gradients = d * trainable parameter elements                      (batch norm statistics excluded)
      optimiser = sgd: gradients if momentum > 0 else 0; adam: 2 * gradients (m and v)
    total       = weights + canonical + inputs + activations [+ gradients + optimiser]

It is a lower bound of what the cell allocates, so a refused cell could not have run: the float64
reference's own working set is left out (it is cached on disk after the first computation, and computed
before the model is built, not alongside it), and so are framework overheads (the runtime itself, its
thread pools), workspaces, temporaries inside an op (attention scores, im2col buffers, gradients of
activations), compile caches and exported artifacts. On an accelerator profile the model, its
gradients and optimiser state live in device memory; only the canonical weights and the inputs are then
held against the host's limit (:meth:`Estimate.host_bytes`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

from suite.ops import OPS

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int32": 4, "int64": 8, "float64": 8}
VIEW_OPS = frozenset({"reshape", "flatten", "transpose", "slice"})  # outputs share the input's memory
CANONICAL_BYTES = 8  # the canonical weights are float64


@dataclass(frozen=True)
class Estimate:
    """Bytes one cell needs at least (see the module docstring for the formula)."""

    weights_bytes: int
    canonical_bytes: int
    activations_bytes: int
    inputs_bytes: int
    gradients_bytes: int = 0  # train mode only
    optimizer_bytes: int = 0  # train mode only

    @property
    def total_bytes(self) -> int:
        return (self.weights_bytes + self.canonical_bytes + self.activations_bytes + self.inputs_bytes
                + self.gradients_bytes + self.optimizer_bytes)

    def host_bytes(self, device: str = "cpu") -> int:
        """What must fit in host memory: everything on a CPU profile, else the canonical weights and the inputs."""
        return self.total_bytes if device == "cpu" else self.canonical_bytes + self.inputs_bytes

    def describe(self, device: str = "cpu") -> str:
        """``needs ≥ 74.5 GiB (weights 37.3 GiB, activations 37.2 GiB, ...)`` for a refusal reason."""
        if device != "cpu":
            return (f"needs ≥ {format_bytes(self.host_bytes(device))} of host memory (float64 weights "
                    f"{format_bytes(self.canonical_bytes)}, inputs {format_bytes(self.inputs_bytes)}; "
                    f"the model itself is on {device})")
        parts = [("weights", self.weights_bytes), ("float64 weights", self.canonical_bytes),
                 ("activations", self.activations_bytes), ("inputs", self.inputs_bytes),
                 ("gradients", self.gradients_bytes), ("optimiser state", self.optimizer_bytes)]
        shown = ", ".join(f"{name} {format_bytes(b)}" for name, b in parts if b or name in ("weights", "activations"))
        return f"needs ≥ {format_bytes(self.total_bytes)} ({shown})"


def estimate(workload, params: Mapping[str, int], mode: str = "inference", dtype_bytes: int = 4) -> Estimate:
    """The memory a cell of ``workload`` at sweep point ``params`` needs at least, from shapes only.

    Args:
        workload: a validated suite.spec.Workload.
        params: the sweep values of the cell.
        mode: ``inference`` or ``train`` (adds gradients and optimiser state).
        dtype_bytes: bytes per element of the target's compute dtype.
    Returns:
        the Estimate; ``total_bytes`` is the figure the planner compares with the limit.
    """
    shapes = workload.shapes(params)
    weights = trainable = activations = largest = 0
    non_trainable = _non_trainable() if mode == "train" else {}
    for node in workload.nodes:
        pshapes = OPS[node.op].params([shapes[s] for s in node.inputs], dict(node.attrs))
        for pname, shape in pshapes.items():
            n = math.prod(shape)
            weights += n
            if pname not in non_trainable.get(node.op, ()):
                trainable += n
        if node.op not in VIEW_OPS:
            n = math.prod(shapes[node.name])
            activations += n
            largest = max(largest, n)
    inputs = sum(math.prod(shapes[s.name]) * DTYPE_BYTES[s.dtype] for s in workload.inputs)
    grads = optim = 0
    if mode != "train":
        activations = largest
    else:
        grads = trainable
        opt = workload.train.optimizer
        optim = 2 * trainable if opt["kind"] == "adam" else (trainable if opt.get("momentum", 0) > 0 else 0)
    return Estimate(weights_bytes=weights * dtype_bytes, canonical_bytes=weights * CANONICAL_BYTES,
                    activations_bytes=activations * dtype_bytes, inputs_bytes=inputs,
                    gradients_bytes=grads * dtype_bytes, optimizer_bytes=optim * dtype_bytes)


def _non_trainable() -> Mapping[str, tuple[str, ...]]:
    from suite.gradients import NON_TRAINABLE  # imports NumPy: only in train mode

    return NON_TRAINABLE


def available_memory() -> tuple[int, str]:
    """(bytes, where the figure comes from): MemAvailable of /proc/meminfo, else the machine's total memory
    (os.sysconf), else (0, '') when neither can be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "machine's available memory"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "machine's total memory"
    except (AttributeError, ValueError, OSError):
        return 0, ""


def memory_limit(memory_limit_bytes: int = 0) -> tuple[int, str]:
    """(bytes, why) of the smaller of ``--worker-memory-gb`` (if > 0) and the machine's available memory;
    (0, '') when there is no limit to apply."""
    avail, source = available_memory()
    if memory_limit_bytes > 0 and (not avail or memory_limit_bytes <= avail):
        return memory_limit_bytes, f"--worker-memory-gb {memory_limit_bytes / 2**30:.3g}"
    return avail, source


def limit_bytes(memory_limit_bytes: int = 0) -> int:
    """The smaller of ``memory_limit_bytes`` (if > 0) and the machine's available memory; 0: no limit."""
    return memory_limit(memory_limit_bytes)[0]


def format_bytes(n: int) -> str:
    """``37.3 GiB``, ``512.0 KiB``, ``12 B``."""
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")

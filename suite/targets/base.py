"""The contract every target implements, defined once.

A target module (the ``module`` of its registry entry: a framework package such as
``suite.targets.torch``, or a runtime module such as ``suite.targets.runtimes.onnxruntime``) exposes:

``unsupported(workload, info) -> str | None``
    Returns a precise reason when the target cannot express the workload (e.g. ``"op lstm: ..."``),
    otherwise None. Must not import the framework.

``build(ctx: BuildContext) -> Built``
    Imports the framework (inside the function), maps the canonical float64 weights to the
    framework's native layout and dtype, and returns a :class:`Built`.

``build_train(ctx: BuildContext) -> BuiltTrain`` (optional)
    One training step; targets without it are ``unsupported`` in train mode.

Every framework folder (``suite/targets/{torch,tensorflow,jax,keras}/``) has the same files:

* ``ops.py``: ``OPS`` (op name -> one function per op, one signature within the framework) and
  ``UNSUPPORTED`` (op -> reason); ``weights.py``: ``WEIGHTS`` (op with parameters -> canonical-to-native
  mapping). tests/test_op_tables.py checks both against the catalogue (``suite.ops.OPS``).
* ``model.py`` (``build``, ``unsupported``), ``train.py`` (``build_train``), ``export.py`` (exporters,
  using model.py's public builder).
* ``runtime.py``: the runtime hooks. Called by the worker for its family (``suite.targets.registry.
  FAMILY_RUNTIMES``): ``worker_env(profile, family, threads) -> env`` (set before the framework is
  imported), ``pin_cores(profile, family, allowed) -> cores | None`` (affinity derived from the thread
  count, where the framework only honours that) and ``apply_threads(family, threads) -> (applied,
  warnings)`` (the framework's thread API, in the worker). Called by the folder's own modules: ``device``,
  ``synchronize``, ``peak_memory`` (and ``reset_peak_memory`` where the framework has one).

Layout and parameter-order mapping lives in the framework's ``weights.py`` (shared pieces in
``suite/targets/common/mappings.py``) and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from suite.targets.registry import TargetInfo


@dataclass(frozen=True)
class BuildContext:
    """Everything a target needs to build one cell's model.

    Attributes:
        workload: the validated :class:`suite.spec.Workload`.
        weights: node name -> parameter name -> float64 array, canonical layout.
        params: the sweep values of this cell, e.g. ``{"batch": 32}``.
        shapes: every tensor name (inputs and nodes) -> concrete canonical shape for ``params``.
        info: the :class:`TargetInfo` of the target being built.
        device: ``"cpu"``, ``"cuda"`` or ``"tpu"`` (from the hardware profile).
        threads: intra-op thread count from the profile (already applied to env vars by the worker).
        cache_dir: a directory the target may use for artifacts (exported files).
        artifact: for export targets, the folder holding the cell's exported artifact and its
            manifest (``suite.targets.common.artifacts``); the export phase produced it before the build.
    """

    workload: Any
    weights: Mapping[str, Mapping[str, np.ndarray]]
    params: Mapping[str, int]
    shapes: Mapping[str, tuple[int, ...]]
    info: TargetInfo
    device: str = "cpu"
    threads: int = 0
    cache_dir: str = ""
    artifact: str = ""


@dataclass
class Built:
    """A built model, ready to be verified and timed by the framework-agnostic engine.

    Attributes:
        prepare: host inputs (name -> canonical numpy array) -> the object ``run`` takes (device
            placement and layout conversion happen here, outside anything timed).
        run: prepared inputs -> native outputs (a tuple, one per workload output, in order).
        synchronize: blocks until the outputs returned by ``run`` are computed (CUDA sync, JAX
            ``block_until_ready``, ...). For frameworks that compute eagerly it may do nothing.
        to_numpy: native outputs -> list of numpy arrays in canonical layout, workload-output order.
        layout: the native layout this target uses, e.g. ``"NHWC/HWIO"``; recorded in results.
        versions: distribution name -> version of what this target ran with.
        compile_s: time spent building (tracing, exporting, loading) before the first call, or None.
        artifact_path / artifact_bytes: for exported formats.
        device_memory: returns peak device memory in bytes where the framework reports it.
    """

    prepare: Callable[[Mapping[str, np.ndarray]], Any]
    run: Callable[[Any], Any]
    to_numpy: Callable[[Any], list[np.ndarray]]
    synchronize: Callable[[Any], None] = lambda outputs: None
    layout: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    compile_s: float | None = None
    artifact_path: str | None = None
    artifact_bytes: int | None = None
    device_memory: Callable[[], int | None] | None = None


class UnsupportedError(Exception):
    """Raised by a target's build when it meets something it cannot express; becomes `unsupported`."""


@dataclass
class BuiltTrain:
    """A built training step (``train`` mode), ready to be verified and timed.

    The target module exposes ``build_train(ctx) -> BuiltTrain`` next to ``build``; ``ctx.workload.train``
    says the loss and optimiser. One step = forward (batch norm on batch statistics), loss, backward and
    the optimiser update, exactly what a real training loop does per batch.

    Attributes:
        prepare: (host inputs, host labels) -> the object ``step`` and ``gradients`` take (device
            placement, layout and dtype conversion happen here, outside anything timed).
        step: prepared -> the step's loss (native scalar; computed before the update). Mutates the
            model's parameters and optimiser state, as a training loop does.
        synchronize: blocks until the work ``step`` launched has finished (CUDA sync,
            ``block_until_ready``, ...), given what ``step`` returned.
        loss_value: what ``step`` returned -> float.
        gradients: prepared -> gradients of the loss at the *current* parameters, node -> param ->
            array in the canonical layout; no update is applied. Verification only.
        parameters: () -> the current trainable parameters, node -> param -> array, canonical layout.
        layout, versions, compile_s, device_memory: as :class:`Built`.
        reset_peak_memory: () -> None, starts a fresh device-memory peak (device_memory then reports
            the peak since), where the framework can.
    """

    prepare: Callable[[Mapping[str, np.ndarray], np.ndarray], Any]
    step: Callable[[Any], Any]
    loss_value: Callable[[Any], float]
    gradients: Callable[[Any], dict]
    parameters: Callable[[], dict]
    synchronize: Callable[[Any], None] = lambda outputs: None
    layout: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    compile_s: float | None = None
    device_memory: Callable[[], int | None] | None = None
    reset_peak_memory: Callable[[], None] | None = None

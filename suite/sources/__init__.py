"""Workloads with a ``source:`` model: one framework's real model through every route out of that framework.

A graph workload is written once in the suite's format and built natively by every framework; a source
workload is a model the user already has (a torchvision ResNet, a Hugging Face encoder, an ONNX file).
The suite builds it from its factory (or reads its file) with the framework's own seeded initialisation,
and checks every route out of that framework against **the source model itself run in float64 on the
CPU** (torch: a float64 copy of the module; onnx: the graph with float tensors cast to double, run by
``onnx.reference``).

Nothing here imports a framework. The source framework only ever runs in a subprocess of its own
(:mod:`suite.sources.main`): ``bench verify`` / ``bench run`` call :func:`prepare` before planning, which
builds each source model once, calls it on the declared inputs (every bad factory, argument, weights file
or input shape becomes one :class:`suite.spec.SpecError` line naming the field, exit code 2), and writes
the float64 reference of every sweep point to the reference cache, where every worker family reads it
(a runtime worker such as ONNX Runtime's cannot import torch).

Which targets run a source workload (:func:`target_reason`): those whose ``framework`` is the source's
(``torch:eager``, ``torch:compile``, ``torch>onnx@onnxruntime``, ``torch>export@torch``, ... for torch; the
``onnx>...`` routes for an ONNX file). The torch targets need no change: ``suite.targets.torch.model.
inference_model`` returns the source module (wrapped so it takes the workload's inputs and returns its
outputs as a tuple), and every torch exporter exports what it returns.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from suite.paths import cache_root

REFERENCE_VERSION = "source-v2"  # bump when the way a source reference is computed changes
ONNX_FILE_ROUTES = "onnx"  # the framework of the targets that start from an .onnx file: onnx sources only


OTHER_KIND = "not a route of this workload: "  # starts every reason of target_reason (suite.report groups them)


def not_a_route(r) -> bool:
    """Whether result row ``r`` (a mapping) is a target that is no route of its workload (a graph target on a
    source: model, or the reverse): the terminal report and the dashboard's matrix give such targets no column."""
    reason = r.get("status_reason")
    return r.get("status") == "unsupported" and isinstance(reason, str) and reason.startswith(OTHER_KIND)


ROUTE_FRAMEWORKS = {  # source framework -> (the framework of its native targets, of its export routes)
    "torch": ("torch", "torch"),
    "onnx": ("onnx", "onnx"),
    "flax": ("jax", "jax"),  # an NNX module is a JAX function over its state: jax:jit and the jax> exporters
    # a Keras model runs natively on each Keras backend, and is exported from its TensorFlow backend by the
    # tensorflow> exporters (SavedModel, TFLite, tf2onnx, OpenVINO); tensorflow:function/xla are not its routes
    "keras": ("keras", "tensorflow"),
}


def is_route(fw: str, info) -> bool:
    """Whether target ``info`` is a route out of source framework ``fw`` (:data:`ROUTE_FRAMEWORKS`)."""
    native, exported = ROUTE_FRAMEWORKS[fw]
    return info.framework == (exported if info.export is not None else native)


def target_reason(wl, info) -> str | None:
    """Why ``info`` cannot run workload ``wl`` because of the workload's kind (graph or source), or None.

    A source workload runs on the routes out of its own framework only (:func:`is_route`); the routes that
    start from an ONNX file (``onnx>...``) run ONNX source workloads only.
    """
    if wl.source is None:
        if info.framework == ONNX_FILE_ROUTES:
            return (f"{OTHER_KIND}{info.id} runs an ONNX file: it needs a workload with source: "
                    f"{{framework: onnx}}")
        return None
    fw = wl.source.framework
    if not is_route(fw, info):
        article = "an" if fw[0] in "aeio" else "a"
        return (f"{OTHER_KIND}{info.id} is not a route out of {fw}; {wl.name} is {article} {fw} model (source: "
                f"{describe(wl)}), which only the {fw} routes run")
    return None


MODEL_LIBRARIES = {  # model libraries a factory may come from: absent, their cells are skipped (not an error)
    "transformers": "pip install 'bench-suite[models]'", "safetensors": "pip install 'bench-suite[models]'",
    "torchvision": "pip install torchvision (the build that matches your torch)",
    "timm": "pip install timm (it needs torchvision)",
}
FRAMEWORK_LIBRARIES = {  # the library a source framework's model is built with: absent, its cells are skipped
    "torch": ("torch", "pip install 'bench-suite[torch]'"), "keras": ("keras", "pip install 'bench-suite[keras]'"),
    "flax": ("flax", "pip install 'bench-suite[models]'"), "onnx": ("onnx", "pip install 'bench-suite[onnx]'"),
}


def missing(wl) -> str | None:
    """'install X' when the source framework's library (:data:`FRAMEWORK_LIBRARIES`), or the known model
    library the factory comes from (:data:`MODEL_LIBRARIES`), is not installed (found without importing it),
    else None. Any other module that does not import is the user's mistake: :func:`prepare` refuses it with
    one line."""
    import importlib.util

    if wl.source is None:
        return None
    lib, hint = FRAMEWORK_LIBRARIES[wl.source.framework]
    if importlib.util.find_spec(lib) is None:
        return f"{lib} (the {wl.source.framework} source's framework) is not installed: {hint}"
    if not wl.source.factory:
        return None
    top = wl.source.factory.split(":")[0].split(".")[0]
    if top not in MODEL_LIBRARIES or importlib.util.find_spec(top) is not None:
        return None
    return f"{top} (the factory's library) is not installed: {MODEL_LIBRARIES[top]}"


def describe(wl) -> str:
    """``torch torchvision.models:resnet18`` / ``onnx model.onnx``: what the source is, in a few words."""
    s = wl.source
    return f"{s.framework} {s.factory or Path(s.file).name}"


def _digest(wl, params_key: str) -> str:
    return hashlib.sha256(f"{REFERENCE_VERSION}|{wl.hash}|{params_key}|{wl.seed}".encode()).hexdigest()[:20]


def reference_path(wl, params: dict) -> Path:
    """Where the float64 reference of one sweep point of a source workload is cached."""
    key = json.dumps(dict(params), sort_keys=True)
    return cache_root() / "reference" / f"{wl.name}-{_digest(wl, key)}.npz"


def weights_path(wl) -> Path:
    """Where the seeded weights of a source model that every route loads are cached (keras: its backends'
    initialisers differ, so the weights are made once: :func:`suite.sources.keras.prepare`)."""
    return cache_root() / "source-weights" / f"{wl.name}-{_digest(wl, 'weights')}.npz"


def _needs_weights(wl) -> bool:
    return wl.source.framework == "keras" and bool(wl.source.factory) and not wl.source.weights


def load_reference(wl, params: dict) -> list[np.ndarray] | None:
    """The cached float64 reference outputs of one sweep point, or None when absent (or unreadable)."""
    path = reference_path(wl, params)
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            return [z[f"out{i}"] for i in range(len(wl.outputs))]
    except Exception:  # noqa: BLE001 - a torn or foreign file: recomputed by prepare
        return None


FLOAT32_REFERENCE_WIDEN = 10.0  # rtol and atol x this when the reference itself is float32 (README)


def reference_dtype(wl, params: dict) -> tuple[str, str]:
    """(dtype, note) of the cached reference of one sweep point: ``float64``, or ``float32`` with why."""
    try:
        with np.load(reference_path(wl, params)) as z:
            if "reference_dtype" in z.files:
                return str(z["reference_dtype"]), str(z["reference_note"])
    except Exception:  # noqa: BLE001 - absent or torn: the reference() call said so already
        pass
    return "float64", ""


def reference(wl, params: dict, timeout: float = 1800) -> list[np.ndarray]:
    """The float64 reference of one sweep point, computed in a subprocess of the source framework when it
    is not cached yet (a worker reaches this only when the cache was emptied after :func:`prepare`)."""
    refs = load_reference(wl, params)
    if refs is None:
        prepare([wl], [dict(params)], timeout=timeout)
        refs = load_reference(wl, params)
        if refs is None:
            raise RuntimeError(f"{wl.name}: the source reference was not written to {reference_path(wl, params)}")
    return refs


def prepare(workloads, points: list[dict] | None = None, timeout: float = 1800) -> dict[str, float]:
    """Checks each source workload and caches its float64 references (one subprocess per workload).

    Args:
        workloads: validated workloads; graph workloads are passed over.
        points: the sweep points to reference (default: every point of each workload's grid); points that
            are not in a workload's grid are passed over for it.
        timeout: seconds a workload's subprocess may take.
    Returns:
        workload name -> seconds its subprocess took (absent when every reference was cached already).
    Raises:
        suite.spec.SpecError: one line, naming the workload file and the field at fault, when the model
            cannot be built or called (its framework's message follows).
    """
    import time

    from suite.spec import SpecError

    took = {}
    for wl in workloads:
        if wl.source is None:
            continue
        grid = wl.param_grid()
        wanted = [p for p in grid if points is None or any(dict(q) == p for q in points)] or grid[:1]
        todo = [p for p in wanted if load_reference(wl, p) is None]
        if not todo and _needs_weights(wl) and not weights_path(wl).exists():
            todo = wanted[:1]  # the references are cached but the weights every route loads are gone
        if not todo:
            continue
        cmd = [sys.executable, "-m", "suite.sources.main", "--workload", str(wl.path), "--points", json.dumps(todo)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=source_env(),
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SpecError(f"{wl.path}: source: building and running the model in float64 took more than "
                            f"{timeout:.0f} s") from None
        took[wl.name] = time.perf_counter() - t0
        if proc.returncode != 0:
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(ERROR_PREFIX)]
            if lines:
                raise SpecError(lines[-1][len(ERROR_PREFIX):])
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise SpecError(f"{wl.path}: source: the {wl.source.framework} subprocess failed "
                            f"(exit {proc.returncode}): {tail}"[:600])
    return took


ERROR_PREFIX = "@@bench-source-error "  # the one line suite.sources.main prints for a bad source


OFFLINE_ENV = {  # every hub the model libraries know: offline (nothing is downloaded at run time)
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
    "TIMM_OFFLINE": "1",
}


def source_env() -> dict:
    """The environment of a process that builds source models: this one's, the hubs offline."""
    return {**os.environ, **OFFLINE_ENV}

"""Keras 3 runtime hooks: the backend's own hooks (suite/targets/<backend>/runtime.py) plus KERAS_BACKEND.

The worker family is ``keras-<backend>``; Keras picks its backend once, at import, so it is set in the
environment before import. KERAS_HOME: Keras writes keras.json on import; keep it in the suite's cache,
not in ~/.keras.

Device, sync and memory are the backend's hooks too; their signatures differ per backend (jax syncs on
the outputs, TensorFlow on a GPU flag, torch on a device), so :func:`device_hooks` binds them to the
cell's device once, behind one :class:`DeviceHooks` shape for the model and train modules.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable

from suite.paths import cache_root


def backend_of(family: str) -> str:
    return family.split("-", 1)[1]


def backend_runtime(backend: str):
    """The runtime hooks module of a Keras backend (torch, tensorflow, jax)."""
    return importlib.import_module(f"suite.targets.{backend}.runtime")


def worker_env(profile, family: str, threads: int) -> dict[str, str]:
    backend = backend_of(family)
    env = dict(backend_runtime(backend).worker_env(profile, backend, threads))
    env["KERAS_BACKEND"] = backend
    env["KERAS_HOME"] = os.environ.get("KERAS_HOME") or str(cache_root() / "keras")
    return env


def busy_host_env(profile, family: str, threads: int) -> dict[str, str]:
    """The backend's settings for a worker started on a busy host (torch: passive OpenMP waiting)."""
    backend = backend_of(family)
    hook = getattr(backend_runtime(backend), "busy_host_env", None)
    return hook(profile, backend, threads) if hook else {}


def pin_cores(profile, family: str, allowed: list[int]) -> tuple[int, ...] | None:
    backend = backend_of(family)
    return backend_runtime(backend).pin_cores(profile, backend, allowed)


def apply_threads(family: str, threads: int) -> tuple[dict, list[str]]:
    backend = backend_of(family)
    return backend_runtime(backend).apply_threads(backend, threads)


@dataclass(frozen=True)
class DeviceHooks:
    """The backend's device hooks bound to one cell's device.

    Attributes:
        synchronize: outputs -> None; blocks until the work that produced them (or, where the backend
            syncs the whole device, all queued work) is done.
        peak_memory: () -> peak device memory in bytes, or None (CPU).
        reset_peak_memory: () -> None, a fresh peak; None where the backend has no reset (jax).
    """

    synchronize: Callable[[Any], None]
    peak_memory: Callable[[], int | None]
    reset_peak_memory: Callable[[], None] | None


def device_hooks(backend: str, device: str) -> DeviceHooks:
    """The backend's ``device(device)`` (torch: TF32 off and the memory peak reset on CUDA; TensorFlow:
    refuses cuda without a GPU; jax: the profile platform's first device) and its sync / memory hooks."""
    rt = backend_runtime(backend)
    if backend == "jax":
        dev = rt.device(device)
        return DeviceHooks(rt.synchronize, lambda: rt.peak_memory(dev), None)
    if backend == "tensorflow":
        gpu, _ = rt.device(device)
        return DeviceHooks(lambda _outputs: rt.synchronize(gpu), lambda: rt.peak_memory(gpu),
                           lambda: rt.reset_peak_memory(gpu))
    if backend == "torch":
        dev = rt.device(device)
        return DeviceHooks(lambda _outputs: rt.synchronize(dev), lambda: rt.peak_memory(dev),
                           lambda: rt.reset_peak_memory(dev))
    raise ValueError(f"keras backend {backend!r}: expected jax, tensorflow or torch")

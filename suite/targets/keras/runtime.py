"""Keras 3 runtime hooks: the backend's own hooks (suite/targets/<backend>/runtime.py) plus KERAS_BACKEND.

The worker family is ``keras-<backend>``; Keras picks its backend once, at import, so it is set in the
environment before import. KERAS_HOME: Keras writes keras.json on import; keep it in the suite's cache,
not in ~/.keras.
"""
from __future__ import annotations

import importlib
import os

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


def pin_cores(profile, family: str, allowed: list[int]) -> tuple[int, ...] | None:
    backend = backend_of(family)
    return backend_runtime(backend).pin_cores(profile, backend, allowed)


def apply_threads(family: str, threads: int) -> tuple[dict, list[str]]:
    backend = backend_of(family)
    return backend_runtime(backend).apply_threads(backend, threads)

"""JAX runtime hooks: threads, environment before import, device, sync, memory.

Thread control on CPU (checked with jax 0.10.2): the classic recipe
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"`` (jax issues #743,
#1539) is still accepted but no longer limits a jitted matmul — it ran on both cores of a 2-core host
with or without it. What does work is the CPU affinity mask: XLA sizes its intra-op pool from the cores
the process may use when the CPU client is created. So :func:`pin_cores` pins a jax worker to the first
``threads`` allowed cores when the profile limits threads without giving an affinity; the worker applies
it before ``import jax``. The XLA_FLAGS recipe is still set for threads == 1 (harmless, and effective on
older XLA runtimes). The Keras jax backend and the jax2tf export family use these hooks too.
"""
from __future__ import annotations

import importlib.metadata
import os
import sys

_PLATFORMS = {"cpu": "cpu", "cuda": "gpu", "tpu": "tpu"}


def worker_env(profile, family: str, threads: int) -> dict[str, str]:
    env = {"JAX_PLATFORMS": profile.device}
    if profile.device == "cpu" and threads == 1:
        env["XLA_FLAGS"] = merge_xla_flags(os.environ.get("XLA_FLAGS", ""),
                                           ["--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"])
    if family == "jax2tf":  # the jax -> TensorFlow export worker runs TensorFlow too
        from suite.targets.tensorflow import runtime as tf_runtime

        env.update(tf_runtime.worker_env(profile, family, threads))
    return env


def merge_xla_flags(existing: str, flags: list[str]) -> str:
    parts = existing.split()
    keys = {f.lstrip("-").split("=")[0] for f in flags}
    kept = [p for p in parts if p.lstrip("-").split("=")[0] not in keys]
    return " ".join(kept + flags)


def pin_cores(profile, family: str, allowed: list[int]) -> tuple[int, ...] | None:
    """The first ``threads`` allowed cores when a CPU profile limits threads without an affinity: the only
    limit XLA CPU honours (module docstring). None when nothing needs pinning."""
    if profile.device != "cpu" or not profile.threads or profile.threads >= len(allowed):
        return None
    return tuple(sorted(allowed)[:profile.threads])


def apply_threads(family: str, threads: int) -> tuple[dict, list[str]]:
    warnings = []
    if "jax" in sys.modules:
        warnings.append("jax was imported before apply_in_process; its CPU thread pool may ignore the limit")
    return {"thread_spinning": "default (XLA's Eigen pool spins; no setting)"}, warnings


def device(name: str):
    """The first jax device of the profile's platform (cpu, gpu, tpu)."""
    import jax

    return jax.devices(_PLATFORMS[name])[0]


def synchronize(outputs) -> None:
    import jax

    jax.block_until_ready(outputs)


def peak_memory(dev) -> int | None:
    """``peak_bytes_in_use`` of the device's allocator since the process started; None on the CPU (jax
    exposes no reset of the peak)."""
    stats = dev.memory_stats()
    return stats.get("peak_bytes_in_use") if stats else None


def versions() -> dict[str, str]:
    import jax

    return {"jax": jax.__version__, "jaxlib": importlib.metadata.version("jaxlib")}

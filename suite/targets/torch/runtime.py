"""PyTorch runtime hooks: threads, environment before import, device, sync, memory.

Called by the worker (``suite.profiles.worker_env`` / ``apply_in_process``, through
``suite.targets.registry.FAMILY_RUNTIMES``) and by this folder's model and train modules; the Keras
torch backend uses them too. Imports torch only inside functions.
"""
from __future__ import annotations

import os


def worker_env(profile, family: str, threads: int) -> dict[str, str]:
    """Nothing beyond the OpenMP/BLAS variables every worker gets: torch reads OMP_NUM_THREADS."""
    return {}


# Set in a timing worker started while other processes keep the profile's cores busy (suite.scheduler):
# libgomp's default spin-waiting turns a busy neighbour into a 50-600x slowdown of the suite's torch cells
# on 2 cores (README, "Threads"); passive waiting holds them at 1-2x. Cells timed so are noisy (not
# torch's default policy) and are timed again, in a fresh worker with the default, once the host is quiet.
BUSY_HOST_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def busy_host_env(profile, family: str, threads: int) -> dict[str, str]:
    """What a worker started on a busy host sets instead of the defaults (multi-threaded CPU profiles only)."""
    return dict(BUSY_HOST_ENV) if profile.device == "cpu" and threads > 1 else {}


def pin_cores(profile, family: str, allowed: list[int]) -> tuple[int, ...] | None:
    """torch honours its thread API; no pinning is derived from ``threads``."""
    return None


def apply_threads(family: str, threads: int) -> tuple[dict, list[str]]:
    """torch.set_num_threads(threads), one inter-op thread; returns (applied, warnings)."""
    import torch

    warnings = []
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable once, before any inter-op work has started
        warnings.append("torch inter-op threads already set")
    # The wait policy stays libgomp's default (spin, then sleep), as torch's users run it; recorded so a
    # figure says what it was measured with (README, "Threads").
    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "gomp_spincount": os.environ.get("GOMP_SPINCOUNT", "default")}, warnings


def device(name: str):
    """The torch device of a profile's device name, prepared for honest float32 numerics.

    On CUDA: TF32 off (it would make float32 matmuls and convolutions ~1e-3 accurate, and verification
    would mean nothing), and the process-wide memory peak reset so it reports this cell.
    """
    import torch

    dev = torch.device(name)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.cuda.reset_peak_memory_stats(dev)
    return dev


def synchronize(dev) -> None:
    """Blocks until the work queued on ``dev`` is done (CUDA); eager CPU work is already done."""
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_memory(dev) -> int | None:
    """Peak allocated device memory since the last reset, in bytes; None on the CPU."""
    import torch

    return int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None


def reset_peak_memory(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

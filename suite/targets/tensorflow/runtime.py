"""TensorFlow runtime hooks: threads, environment before import, device, sync, memory.

Called by the worker (``suite.profiles``, through ``suite.targets.registry.FAMILY_RUNTIMES``) and by
this folder's model, train and export modules; the Keras tensorflow backend uses them too. Imports
tensorflow only inside functions.
"""
from __future__ import annotations

import os


def worker_env(profile, family: str, threads: int) -> dict[str, str]:
    """TensorFlow reads these when its runtime starts; inter-op 1 keeps ops of one model serial so the
    intra-op budget is the whole thread budget (the same choice as torch)."""
    return {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}


def pin_cores(profile, family: str, allowed: list[int]) -> tuple[int, ...] | None:
    return None


def apply_threads(family: str, threads: int) -> tuple[dict, list[str]]:
    """tf.config.threading intra-op = threads, inter-op = 1; returns (applied, warnings)."""
    tf = import_tf()
    warnings = []
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # raised once the TF runtime is initialised; env vars already apply
        warnings.append("tensorflow runtime already initialised; thread counts from env only")
    return {"tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "thread_spinning": "default (Eigen pool spins)"}, warnings


def import_tf():
    """``import tensorflow`` with its C++ start-up logs kept out of the worker's output."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def device(name: str, threads: int = 0) -> tuple[bool, str]:
    """Applies the thread count where still possible and checks the device.

    Returns:
        (gpu, TensorFlow device name, e.g. ``/GPU:0``).
    Raises:
        UnsupportedError: a cuda profile, and TensorFlow sees no GPU.
    """
    from suite.targets.base import UnsupportedError

    tf = import_tf()
    if threads > 0:
        try:  # only possible before the TF runtime starts; the worker's env vars cover later builds
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        except RuntimeError:
            pass
    gpu = name == "cuda"
    if gpu and not tf.config.list_physical_devices("GPU"):
        raise UnsupportedError("device cuda: TensorFlow sees no GPU (is tensorflow[and-cuda] installed?)")
    return gpu, "/GPU:0" if gpu else "/CPU:0"


def synchronize(gpu: bool) -> None:
    """A tf.function called eagerly returns computed CPU tensors; on a GPU, wait for the device."""
    if gpu:
        import_tf().test.experimental.sync_devices()


def peak_memory(gpu: bool) -> int | None:
    return int(import_tf().config.experimental.get_memory_info("GPU:0")["peak"]) if gpu else None


def reset_peak_memory(gpu: bool) -> None:
    if gpu:
        import_tf().config.experimental.reset_memory_stats("GPU:0")

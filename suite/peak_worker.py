"""One library's peak measurement, in its own subprocess (started by :mod:`suite.peak`).

Run as ``python -m suite.peak_worker --library L --profile-json J --size N --copy-bytes B --seconds S``.
The parent sets the profile's environment (:func:`suite.profiles.worker_env` of the library's worker
family); here :func:`suite.profiles.apply_in_process` applies the affinity and the framework's thread API
*before* the library is imported, exactly as a cell's worker does, so the figure is the one a cell of
the profile can reach. torch, tensorflow and jax never share this process. One JSON line is printed:
``{"library", "version", "gemm": {...}, "copy": {...} (numpy only), "applied": {...}}``.

What is timed:

* GEMM: ``C = A @ B`` of two ``N x N`` float32 matrices (2 N^3 FLOPs), the output buffer reused where
  the library allows it. One warm-up call, then calls (grouped so one sample lasts at least 1 ms) until
  ``seconds`` have passed and at least three samples exist; the figure is the *best* sample (an
  attainable peak, not a typical speed).
* Copy (NumPy only): ``dst[:] = src`` of two ``B``-byte arrays, split in one contiguous slice per
  profile thread, each copied by its own thread (``np.copyto`` releases the GIL), so a multi-core profile
  is measured with all its cores. Bytes moved = 2 B per copy (read + write, the STREAM convention; a CPU
  without streaming stores also reads the destination line before writing it, so the DRAM traffic is up
  to 3 B and the figure a conservative bandwidth). Best of at least five copies.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any, Callable

MIN_SAMPLE_S = 1e-3


def _best(call: Callable[[], Any], sync: Callable[[Any], None], seconds: float, min_samples: int) -> float:
    """Best seconds per call: warm-up, loops calibrated to ``MIN_SAMPLE_S``, then samples for ``seconds``."""
    sync(call())
    t0 = time.perf_counter()
    sync(call())
    first = time.perf_counter() - t0
    loops = max(1, math.ceil(MIN_SAMPLE_S / max(first, 1e-9)))
    best, n, start = first, 1, time.perf_counter()
    while n < min_samples or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for _ in range(loops):
            out = call()
        sync(out)
        best = min(best, (time.perf_counter() - t0) / loops)
        n += 1
    return best


def _numpy_gemm(n: int):
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    c = np.empty((n, n), dtype=np.float32)
    return (lambda: np.matmul(a, b, out=c)), (lambda out: None), np.__version__


def _torch_gemm(n: int):
    import torch

    torch.manual_seed(0)
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)

    def call():
        with torch.inference_mode():
            return torch.mm(a, b, out=c)
    return call, (lambda out: None), torch.__version__  # CPU ops are synchronous


def _jax_gemm(n: int):
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.standard_normal((n, n), dtype=np.float32)) for _ in range(2))
    f = jax.jit(jnp.matmul)
    return (lambda: f(a, b)), (lambda out: out.block_until_ready()), jax.__version__


def _tensorflow_gemm(n: int):
    from suite.targets.tensorflow.runtime import import_tf

    tf = import_tf()
    a, b = tf.random.stateless_normal((n, n), seed=(0, 1)), tf.random.stateless_normal((n, n), seed=(0, 2))
    f = tf.function(tf.linalg.matmul)
    f(a, b)  # trace once, outside the timing
    return (lambda: f(a, b)), (lambda out: None), tf.__version__  # eager CPU results are computed on return


# library -> GEMM factory: (call, sync, version)
GEMMS = {"numpy": _numpy_gemm, "torch": _torch_gemm, "jax": _jax_gemm, "tensorflow": _tensorflow_gemm}


def copy_bandwidth(nbytes: int, threads: int, seconds: float, min_samples: int = 5) -> dict:
    """Best bytes/s of a ``nbytes`` array copy split over ``threads`` threads (see the module docstring)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    n = max(threads, nbytes // 8)
    src = np.ones(n, dtype=np.float64)  # written once so every page is mapped before timing
    dst = np.zeros(n, dtype=np.float64)
    bounds = [(i * n // threads, (i + 1) * n // threads) for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        def copy():
            if threads == 1:
                np.copyto(dst, src)
                return
            list(pool.map(lambda b: np.copyto(dst[b[0]:b[1]], src[b[0]:b[1]]), bounds))
        best = _best(copy, lambda out: None, seconds, min_samples)
    moved = 2 * n * 8
    return {"bytes": n * 8, "threads": threads, "best_s": best, "bytes_per_s": moved / best}


def measure(library: str, n: int, copy_bytes: int, threads: int, seconds: float) -> dict:
    """GEMM (and for numpy the copy) of one library in this process; see the module docstring."""
    call, sync, version = GEMMS[library](n)
    best = _best(call, sync, seconds, 3)
    out: dict[str, Any] = {"library": library, "version": version,
                           "gemm": {"n": n, "best_s": best, "flops_per_s": 2.0 * n ** 3 / best}}
    if library == "numpy" and copy_bytes > 0:
        out["copy"] = copy_bandwidth(copy_bytes, threads, seconds / 2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m suite.peak_worker")
    ap.add_argument("--library", required=True, choices=sorted(GEMMS))
    ap.add_argument("--family", required=True)
    ap.add_argument("--profile-json", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--copy-bytes", type=int, default=0)
    ap.add_argument("--seconds", type=float, required=True)
    args = ap.parse_args(argv)
    channel = sys.stdout
    sys.stdout = sys.stderr  # whatever a framework prints stays off the result line

    from suite.profiles import Profile, apply_in_process

    profile = Profile(**json.loads(args.profile_json))
    applied = apply_in_process(profile, args.family)  # before the library is imported
    res = measure(args.library, args.size, args.copy_bytes, applied["threads"], args.seconds)
    res["applied"] = applied
    channel.write(json.dumps(res, default=str) + "\n")
    channel.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

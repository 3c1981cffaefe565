"""Synthetic results stores for the dashboard tests and benchmark, written through suite.results."""
from __future__ import annotations

import datetime as dt

import numpy as np

from suite.results import write_records

WORKLOADS = ["mlp_classifier", "resnet_cnn", "mobilenet_cnn", "transformer_encoder", "gpt_block",
             "lstm_classifier", "text_classifier"]
TARGETS = {  # target -> (framework, format, runtime, relative speed)
    "torch:eager": ("torch", "native", "eager", 1.0),
    "torch:compile": ("torch", "native", "compile", 0.7),
    "tensorflow:function": ("tensorflow", "native", "function", 1.3),
    "tensorflow:xla": ("tensorflow", "native", "xla", 0.9),
    "jax:jit": ("jax", "native", "jit", 0.8),
    "torch>onnx@onnxruntime": ("torch", "onnx", "onnxruntime", 0.6),
    "tensorflow>tflite@litert": ("tensorflow", "tflite", "litert", 0.75),
}
EXTRA_TARGETS = {  # the rest of the registry's ids, for views that must hold every target (label layout)
    "torch>export@torch": ("torch", "export", "torch", 1.05),
    "tensorflow>onnx@onnxruntime": ("tensorflow", "onnx", "onnxruntime", 0.65),
    "jax>onnx@onnxruntime": ("jax", "onnx", "onnxruntime", 0.62),
    "tensorflow>savedmodel@tensorflow": ("tensorflow", "savedmodel", "tensorflow", 1.35),
    "tensorflow>tflite@litert-noxnnpack": ("tensorflow", "tflite", "litert", 1.6),
    "tensorflow>tflite-fp16@litert": ("tensorflow", "tflite", "litert", 0.78),
    "tensorflow>tflite-int8@litert": ("tensorflow", "tflite", "litert", 0.5),
    "tensorflow>tflite-int8-full@litert": ("tensorflow", "tflite", "litert", 0.45),
    "jax>tflite@litert": ("jax", "tflite", "litert", 0.8),
    "jax>export@jax": ("jax", "export", "jax", 0.82),
    "keras[jax]": ("keras", "native", "jax", 0.85),
    "keras[tensorflow]": ("keras", "native", "tensorflow", 1.4),
    "keras[torch]": ("keras", "native", "torch", 1.2),
}
ALL_TARGETS = {**TARGETS, **EXTRA_TARGETS}
PROFILES = {"cpu": 2, "cpu-1t": 1, "mobile-runtime": 2, "cuda": 0}
EVIL = "<script>alert(1)</script>"
EVIL_REASON = "</script><img src=x onerror=alert(2)> & \u2028 broke"


def _record(rng, run, start, commit, wl, batch, target, profile, slow=1.0):
    fw, fmt, rt, speed = ALL_TARGETS.get(target, ("torch", "native", "eager", 1.0))
    base = dict(run_id=run, timestamp=start, git_commit=commit, host="synthetic", cpu_model="Synthetic CPU 9000",
                cpu_count=2, python_version="3.11.9", platform="Linux-x86_64", suite_version="0.1.0",
                workload=wl, workload_hash="abc", params={"batch": batch}, batch_size=batch, target=target,
                framework=fw, framework_version="1.0", format=fmt, runtime=rt, runtime_version="2.0",
                profile=profile, device="cuda" if profile == "cuda" else "cpu", threads=PROFILES.get(profile, 2),
                dtype="float32", layout="NCHW", versions={fw: "1.0", "numpy": "2.0"})
    if profile == "cuda":
        return {**base, "status": "skipped", "status_reason": "profile cuda not available: no CUDA device"}
    if profile == "mobile-runtime" and fmt == "native":
        return {**base, "status": "unsupported", "status_reason": f"profile mobile-runtime does not run {target}"}
    if wl == "lstm_classifier" and fmt == "tflite":
        return {**base, "status": "error", "status_reason": "ConverterError: LSTM op not lowered\nTraceback ..."}
    if wl == EVIL:
        return {**base, "status": "fail", "status_reason": EVIL_REASON, "max_abs_err": 0.5, "max_rel_err": 2.0}
    med = 1e-4 * (1 + WORKLOADS.index(wl) if wl in WORKLOADS else 1) * speed * batch ** 0.6 * slow
    med *= (2.0 if profile == "cpu-1t" else 1.0)
    n = int(rng.integers(20, 51))
    samples = med * rng.lognormal(0.0, 0.08, n)
    m = float(np.median(samples))
    return {**base, "status": "pass", "max_abs_err": 1e-6, "max_rel_err": 1e-5, "cosine": 1.0,
            "mismatch_fraction": 0.0, "rtol": 1e-4, "atol": 1e-5, "first_call_s": m * 20,
            "compile_s": m * 300 if rt in ("compile", "xla", "jit") else None,
            "export_s": 1.5 if fmt != "native" else None, "artifact_bytes": 4_000_000 if fmt != "native" else None,
            "latency_median_s": m, "latency_mean_s": float(samples.mean()),
            "latency_p90_s": float(np.quantile(samples, 0.9)), "latency_p99_s": float(np.quantile(samples, 0.99)),
            "latency_iqr_s": float(np.subtract(*np.quantile(samples, [0.75, 0.25]))),
            "latency_ci_low_s": m * 0.98, "latency_ci_high_s": m * 1.02, "n_samples": n, "loops": 10,
            "unstable": bool(rng.random() < 0.1), "stop_reason": "stable", "samples_s": samples.tolist(),
            "throughput": batch / m, "peak_rss_bytes": 300_000_000}


def write_store(results_dir, n_runs: int = 3, workloads=None, targets=None, profiles=None, seed: int = 0,
                evil: bool = False, regress_last: bool = True, commits: bool = True) -> int:
    """Writes ``n_runs`` runs of the matrix (one Parquet file per run); returns the number of rows.

    The last run is 1.6x slower on resnet_cnn when ``regress_last`` (a regression to mark);
    ``evil`` adds a workload named ``<script>alert(1)</script>`` that fails with a hostile reason.
    """
    rng = np.random.default_rng(seed)
    workloads = list(workloads or WORKLOADS) + ([EVIL] if evil else [])
    targets = list(targets or TARGETS)
    profiles = list(profiles or PROFILES)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    total = 0
    for i in range(n_runs):
        run = f"run{i:04d}"
        start = t0 + dt.timedelta(hours=6 * i)
        commit = f"{i:040x}" if commits else None  # None: a checkout without git
        recs = []
        for wl in workloads:
            for batch in (1, 32):
                for tg in targets:
                    for pr in profiles:
                        slow = 1.6 if (regress_last and i == n_runs - 1 and wl == "resnet_cnn") else 1.0
                        recs.append(_record(rng, run, start, commit, wl, batch, tg, pr, slow))
        write_records(recs, results_dir, run, "all")
        total += len(recs)
    return total

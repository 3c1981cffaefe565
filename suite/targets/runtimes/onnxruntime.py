"""ONNX Runtime targets (``<framework>>onnx@onnxruntime``): load an exported .onnx file and run it.

Imports onnxruntime and NumPy only — never torch, tensorflow or jax — so an artifact exported on a
workstation runs on a box with just ``onnxruntime`` and ``numpy`` (``bench run --artifacts DIR``).
The artifact was produced by the export phase (see :mod:`suite.targets.common.artifacts`).

Threads: ``intra_op_num_threads`` = the profile's thread count, ``inter_op_num_threads`` = 1 with
sequential execution (one model's ops run one after another; the intra-op budget is the whole budget,
as for the native targets). Graph optimisations are ONNX Runtime's default (all), as deployed.
"""
from __future__ import annotations

import importlib.metadata
import time

from suite.targets.common import io_layout
from suite.targets.common.artifacts import artifact_path
from suite.targets.base import Built, BuildContext


def unsupported(workload, info) -> str | None:
    return None  # the exporter decides; its refusal becomes the cell's reason


def build(ctx: BuildContext) -> Built:
    import onnxruntime as ort

    path, man = artifact_path(ctx)
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(int(ctx.threads or 0), 0)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    t0 = time.perf_counter()
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    wl_names = [s["name"] for s in man["inputs"]]
    if sorted(in_names) == sorted(wl_names):
        feed_names = wl_names  # by name where the exporter kept the workload's names
    elif len(in_names) == len(wl_names):
        feed_names = in_names  # else positionally: both exporters keep the signature's order
    else:
        raise ValueError(f"{path.name}: inputs {in_names} do not match the workload's {wl_names}")

    def prepare(host):
        return dict(zip(feed_names, io_layout.host_inputs(man, host)))

    return Built(prepare=prepare, run=lambda feed: sess.run(out_names, feed),
                 to_numpy=lambda outs: io_layout.canonical_outputs(man, outs),
                 layout=f"{man.get('layout', '')}; intra_op_threads={so.intra_op_num_threads}", compile_s=load_s, artifact_path=str(path),
                 artifact_bytes=man.get("artifact_bytes"),
                 versions=dict(man.get("versions", {}), onnxruntime=importlib.metadata.version("onnxruntime")))

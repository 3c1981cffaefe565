"""OpenVINO targets (``<framework>>openvino@openvino``, ``torch>onnx@openvino``): load an exported model
and run it with OpenVINO's CPU plugin.

Imports openvino and NumPy only — never torch, tensorflow or jax — so an artifact exported on a
workstation runs on a box with just ``openvino`` and ``numpy`` (``bench run --artifacts DIR``).
Artifacts (produced by the export phase, :mod:`suite.targets.common.artifacts`):

* ``torch>openvino@openvino``: ``openvino.convert_model`` of the ``torch:eager`` module, saved as
  OpenVINO IR (``model.xml`` + ``model.bin``) with float32 weights;
* ``tensorflow>openvino@openvino``: ``openvino.convert_model`` of the cell's SavedModel, saved as IR;
* ``torch>onnx@openvino``: the ``torch>onnx@onnxruntime`` route's .onnx file, read by OpenVINO's ONNX
  frontend (the same file ONNX Runtime runs, exported once: ``Export.same_artifact_as``).

Settings (recorded in ``layout``):

* ``INFERENCE_NUM_THREADS`` = the profile's thread count (0: OpenVINO's default, every core of the
  process's affinity), ``PERFORMANCE_HINT`` = ``LATENCY`` (one stream: one request at a time, as
  every other target is timed), ``NUM_STREAMS`` = 1.
* ``INFERENCE_PRECISION_HINT`` = ``f32``: on CPUs with bfloat16 or AMX units the plugin would
  otherwise run float32 models in bfloat16 by default, which is a different computation from the one
  every other float32 route is judged by.
* ``ENABLE_CPU_PINNING`` is left at OpenVINO's default; the worker process is already pinned to the
  profile's cores, and the plugin's threads stay inside that affinity.
"""
from __future__ import annotations

import importlib.metadata
import time

from suite.targets.common import io_layout
from suite.targets.common.artifacts import artifact_path
from suite.targets.base import Built, BuildContext

DEVICE = "CPU"


def unsupported(workload, info) -> str | None:
    return None  # the converter decides; its refusal becomes the cell's reason


def compile_config(threads: int, precision: str = "f32") -> dict:
    """The CPU plugin's configuration for a profile's thread count (see the module docstring)."""
    cfg = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_PRECISION_HINT": precision}
    if threads and threads > 0:
        cfg["INFERENCE_NUM_THREADS"] = str(int(threads))
    return cfg


def plugin_message(e: BaseException) -> str:
    """OpenVINO's exception text without its "Exception from <source>:<line>:" lines, on one line."""
    lines = [ln.strip() for ln in str(e).splitlines()]
    said = [ln for ln in lines if ln and not ln.startswith("Exception from ")]
    return "OpenVINO: " + "; ".join(dict.fromkeys(said)) if said else str(e)


def _name(port) -> str:
    try:
        return port.get_any_name().split(":")[0]  # TensorFlow's "x:0"
    except RuntimeError:  # a port without a tensor name
        return ""


def build(ctx: BuildContext) -> Built:
    import openvino as ov

    path, man = artifact_path(ctx)
    core = ov.Core()
    cfg = compile_config(int(ctx.threads or 0), ctx.info.options.precision)
    t0 = time.perf_counter()
    try:
        compiled = core.compile_model(core.read_model(str(path)), DEVICE, cfg)
    except RuntimeError as e:
        raise RuntimeError(plugin_message(e)) from None
    load_s = time.perf_counter() - t0
    request = compiled.create_infer_request()
    n_out = len(compiled.outputs)
    if n_out != len(man["outputs_nhwc"]):
        raise ValueError(f"{path.name}: {n_out} outputs, the workload has {len(man['outputs_nhwc'])}")
    if len(compiled.inputs) != len(man["inputs"]):
        raise ValueError(f"{path.name}: {len(compiled.inputs)} inputs, the workload has {len(man['inputs'])}")

    wl_names = [s["name"] for s in man["inputs"]]
    ov_names = [_name(p) for p in compiled.inputs]
    if sorted(ov_names) == sorted(wl_names):  # by name where the converter kept the workload's names
        order = [wl_names.index(n) for n in ov_names]
    else:  # else positionally: the exporters keep the signature's order
        order = list(range(len(wl_names)))

    def prepare(host):
        xs = io_layout.host_inputs(man, host)
        return [xs[i] for i in order]

    def run(xs):
        try:
            request.infer(xs, share_inputs=True)
        except RuntimeError as e:  # OpenVINO's first lines are source locations: keep what they say
            raise RuntimeError(plugin_message(e)) from None
        return tuple(request.get_output_tensor(i).data.copy() for i in range(n_out))

    threads = compiled.get_property("INFERENCE_NUM_THREADS")
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: its short name, "f32"
    precision = precision.get_type_name() if hasattr(precision, "get_type_name") else str(precision)
    return Built(prepare=prepare, run=run, to_numpy=lambda outs: io_layout.canonical_outputs(man, outs),
                 layout=f"{man.get('layout', '')}; OpenVINO {DEVICE} threads={threads} precision={precision} "
                        f"hint=LATENCY", compile_s=load_s, artifact_path=str(path),
                 artifact_bytes=man.get("artifact_bytes"),
                 versions=dict(man.get("versions", {}), openvino=importlib.metadata.version("openvino")))

"""LiteRT targets (``*>tflite*@litert``, ``@litert-noxnnpack``): run a .tflite flatbuffer.

The interpreter comes from ``ai_edge_litert`` or, where only that is installed, ``tflite_runtime``
(same ``Interpreter`` API). Never imports tensorflow: the artifact comes from the export phase
(:mod:`suite.targets.common.artifacts`) or a folder given with ``bench run --artifacts``.

* ``options.xnnpack`` (:class:`suite.targets.registry.LiteRTOptions`): True keeps the default delegates (XNNPACK on CPU); False builds the
  interpreter with ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (the reference builtin kernels).
* ``num_threads`` = the profile's thread count (1 when the profile leaves it unset).
* Inputs and outputs are found through the model's signature (names from the exporter's
  TensorSpecs), because the flatbuffer's tensor order need not be the signature's.
"""
from __future__ import annotations

import importlib.metadata
import re
import time

from suite.targets.common import io_layout
from suite.targets.common.artifacts import artifact_path
from suite.targets.base import Built, BuildContext


def unsupported(workload, info) -> str | None:
    return None  # the converter decides; its refusal becomes the cell's reason


def interpreter_module():
    """(module with Interpreter / OpResolverType, distribution name): ai_edge_litert, else tflite_runtime."""
    try:
        from ai_edge_litert import interpreter

        return interpreter, "ai-edge-litert"
    except ImportError:
        from tflite_runtime import interpreter

        return interpreter, "tflite-runtime"


def _order_key(name: str):
    m = re.search(r"(\d+)$", name)
    return (int(m.group(1)) if m else -1, name)


def build(ctx: BuildContext) -> Built:
    interp_mod, dist = interpreter_module()
    path, man = artifact_path(ctx)
    kwargs = {"model_path": str(path), "num_threads": int(ctx.threads) if ctx.threads else 1}
    if not ctx.info.options.xnnpack:
        kwargs["experimental_op_resolver_type"] = interp_mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    t0 = time.perf_counter()
    it = interp_mod.Interpreter(**kwargs)
    sigs = it.get_signature_list()
    key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
    runner = it.get_signature_runner(key)
    in_det, out_det = runner.get_input_details(), runner.get_output_details()
    load_s = time.perf_counter() - t0
    wl_names = [s["name"] for s in man["inputs"]]
    if sorted(in_det) == sorted(wl_names):
        in_names = wl_names
    else:  # names mangled by a converter: the signature's order is the function's argument order
        in_names = sorted(in_det, key=_order_key)
    out_names = sorted(out_det, key=_order_key)

    def run(arrays):
        # The signature runner owns the signature's (sub)graph tensors: feeding through it is the only
        # index-safe way; it returns copies, so the next invoke cannot overwrite earlier outputs.
        outs = runner(**dict(zip(in_names, arrays)))
        return [outs[n] for n in out_names]

    return Built(prepare=lambda host: io_layout.host_inputs(man, host), run=run,
                 to_numpy=lambda outs: io_layout.canonical_outputs(man, outs),
                 layout=man.get("layout", "") + ("" if ctx.info.options.xnnpack else "; no XNNPACK")
                 + f"; num_threads={kwargs['num_threads']}",
                 compile_s=load_s, artifact_path=str(path), artifact_bytes=man.get("artifact_bytes"),
                 versions=dict(man.get("versions", {}), **{dist: importlib.metadata.version(dist)}))

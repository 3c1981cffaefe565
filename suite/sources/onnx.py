"""An ONNX source model: an .onnx file, referenced in float64 by ``onnx.reference``, run by the ONNX routes.

Reference (:func:`run_float64`): the graph with every float tensor made double (initializers, constants,
``Cast`` targets, declared value types), run by ``onnx.reference.ReferenceEvaluator`` on the inputs in
float64. Routes (``onnx>onnx@onnxruntime``, ``onnx>openvino@openvino``): the export phase
(:func:`to_onnx`, run in an ONNX Runtime worker: onnx and NumPy only) writes the file with just the
workload's outputs, in its order, and the runtimes run that file.

Inputs map to the graph's inputs by name when every workload input name is one of them, else by position;
outputs are the graph outputs named by ``outputs:`` (default: the first).
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np

from suite.sources.guard import SourceError
from suite.targets.common.convert import first_line

_FLOAT, _DOUBLE = 1, 11  # onnx.TensorProto.FLOAT, DOUBLE


def _load(wl):
    import onnx

    try:
        model = onnx.load(wl.source.file)
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - not an ONNX file, or an invalid graph
        raise SourceError("source.file", f"{wl.source.file}: not a valid ONNX model: {first_line(e)}") from e
    return model


def graph_inputs(model) -> list[str]:
    """The graph's real inputs (initializers listed as inputs by old exporters left out)."""
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def feed_names(model, wl) -> list[str]:
    """The graph input each workload input feeds, in workload-input order (by name, else by position)."""
    names = graph_inputs(model)
    wanted = [s.name for s in wl.inputs]
    if set(wanted) <= set(names) and len(wanted) == len(names):
        return wanted
    if len(wanted) != len(names):
        raise SourceError("inputs", f"the ONNX graph takes {len(names)} input(s) ({', '.join(names)}), the workload "
                                    f"declares {len(wanted)}")
    return names


def output_names(model, wl) -> list[str]:
    """The graph outputs the workload's outputs are, in its order."""
    names = [o.name for o in model.graph.output]
    if not wl.source.declared_outputs:
        return names[:1]
    missing = [n for n in wl.outputs if n not in names]
    if missing:
        raise SourceError("outputs", f"the ONNX graph has no output {missing[0]!r}; it has {', '.join(names)}")
    return list(wl.outputs)


def _keep_outputs(model, names: list[str]) -> None:
    by_name = {o.name: o for o in model.graph.output}
    kept = [by_name[n] for n in names]
    del model.graph.output[:]
    model.graph.output.extend(kept)


def _to_double(model) -> None:
    """Every float tensor of the graph (and its subgraphs) made double, in place."""
    from onnx import numpy_helper

    def tensor(t):
        if t.data_type == _FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))

    def value_type(v):
        tt = v.type.tensor_type
        if tt.elem_type == _FLOAT:
            tt.elem_type = _DOUBLE

    def graph(g):
        for t in g.initializer:
            tensor(t)
        for v in list(g.input) + list(g.output) + list(g.value_info):
            value_type(v)
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    tensor(a.t)
                if a.name == "to" and node.op_type == "Cast" and a.i == _FLOAT:
                    a.i = _DOUBLE
                if a.name == "dtype" and a.i == _FLOAT:
                    a.i = _DOUBLE
                if a.HasField("g"):
                    graph(a.g)
                for sub in a.graphs:
                    graph(sub)

    graph(model.graph)


def run_reference(wl, inputs: dict, dtype: str = "float64") -> list:
    """The reference: the graph in float64, run by ``onnx.reference`` (``dtype`` float32: the graph as it is,
    for one that cannot run in float64)."""
    from onnx.reference import ReferenceEvaluator

    model = _load(wl)
    feeds, outs = feed_names(model, wl), output_names(model, wl)
    _keep_outputs(model, outs)
    if dtype == "float64":
        _to_double(model)
    arrays = {}
    for spec, name in zip(wl.inputs, feeds):
        x = inputs[spec.name]
        arrays[name] = x.astype(dtype) if x.dtype.kind == "f" else x
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    for name in feeds:  # integer inputs in the graph's own integer type
        if arrays[name].dtype.kind in "iu" and types.get(name) in (6, 7):  # INT32, INT64
            arrays[name] = arrays[name].astype(np.int32 if types[name] == 6 else np.int64)
    out = ReferenceEvaluator(model).run(None, arrays)
    return [np.asarray(o, dtype=np.float64) for o in out]


def parameter_count(wl) -> int | None:
    """Elements of the file's initializers (its weights), from the file size as an upper bound for float32."""
    return Path(wl.source.file).stat().st_size // 4


def _elem_dtype(elem_type: int) -> str:
    return {1: "float32", 6: "int32", 7: "int64", 11: "float64"}.get(elem_type, "float32")


def to_onnx(ctx, out_dir: Path) -> dict:
    """The export phase of the ONNX routes: the source file with only the workload's outputs, as model.onnx."""
    import onnx

    wl = ctx.workload
    model = _load(wl)
    feeds, outs = feed_names(model, wl), output_names(model, wl)
    _keep_outputs(model, outs)
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    path = out_dir / "model.onnx"
    onnx.save(model, str(path))
    # workload input names; a runtime feeds them by name when the graph has those names, else by position
    return {"inputs": [{"name": s.name, "dtype": _elem_dtype(types.get(g, 1)), "nhwc": False}
                       for s, g in zip(wl.inputs, feeds)],
            "outputs_nhwc": [False] * len(outs), "artifact": path.name,
            "layout": f"the source ONNX file ({Path(wl.source.file).name}), outputs {', '.join(outs)}",
            "versions": {"onnx": importlib.metadata.version("onnx")}}

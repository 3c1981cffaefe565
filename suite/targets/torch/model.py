"""PyTorch targets: ``torch:eager`` and ``torch:compile`` (inductor), inference.

The workload graph becomes a real ``torch.nn.Module``: one module per node, built by the op table
(:mod:`suite.targets.torch.ops`) from weights mapped by the weight table (:mod:`suite.targets.torch.weights`,
which documents torch's native layouts), both looked up at build time. Training: :mod:`suite.targets.torch.train`;
exporters: :mod:`suite.targets.torch.export` (same public builder, so an export target differs from the
native one only by the export and the runtime).
"""
from __future__ import annotations

import functools
import time
import types

import numpy as np

from suite.targets.base import Built, BuildContext
from suite.targets.common.optables import has_params, lookup
import suite.targets.torch.runtime as runtime
from suite.targets.torch.ops import OPS, UNSUPPORTED, native
from suite.targets.torch.weights import WEIGHTS

LAYOUT = "NCHW/OIHW; linear (out,in); lstm ifgo split-bias; mha packed in_proj"


def unsupported(workload, info) -> str | None:
    """Every op of workloads/README.md has a torch form (ops.UNSUPPORTED is empty); nothing is refused."""
    for node in workload.nodes:
        if node.op in UNSUPPORTED:
            return f"op {node.op}: {UNSUPPORTED[node.op]}"
    return None


@functools.lru_cache(maxsize=None)
def graph_class():
    """``Graph``: runs the nodes in file (topological) order, keeping every value in a dict by name.

    Defined on first use so that importing this module never imports torch.
    """
    import torch

    class _Graph(torch.nn.Module):
        def __init__(self, workload, nodes):
            super().__init__()
            self.nodes = torch.nn.ModuleDict(nodes)
            self.input_names = [s.name for s in workload.inputs]
            self.order = [(n.name, list(n.inputs)) for n in workload.nodes]
            self.output_names = list(workload.outputs)

        def forward(self, *inputs):
            values = dict(zip(self.input_names, inputs))
            for name, srcs in self.order:
                values[name] = self.nodes[name](*[values[s] for s in srcs])
            return tuple(values[o] for o in self.output_names)

    return _Graph


def node_module(node, params, in_shapes):
    """One workload node -> an nn.Module called with the node's input tensors (through the op tables).

    Args:
        node: the workload node.
        params: its canonical float64 parameters ({} for ops without any).
        in_shapes: the canonical shapes of its inputs.
    """
    build_op = lookup(OPS, node.op, "torch")
    w = lookup(WEIGHTS, node.op, "torch", "weight table")(params, node.attrs) if has_params(node.op) else {}
    return build_op(native(), node.attrs, in_shapes, w)


def graph(ctx: BuildContext, weights, *, compiled: bool = False):
    """The workload as an nn.Module (on the CPU, in train mode as constructed).

    Args:
        ctx: the cell (workload and shapes).
        weights: canonical weights (the cell's, or index weights for the train mapping).
        compiled: the model will go through ``torch.compile``: give it its own forward code object.
    """
    wl = ctx.workload
    Graph = graph_class()
    nodes = {n.name: node_module(n, weights.get(n.name, {}), [ctx.shapes[s] for s in n.inputs]) for n in wl.nodes}
    model = Graph(wl, nodes)
    if compiled:
        # Dynamo keys its cache on the forward *code object* and, past recompile_limit (8) entries,
        # silently runs eager. Every cell's model would share Graph.forward's code, so from the
        # ninth cell in a worker "torch:compile" would time eager. A per-model copy of the code
        # object gives each model its own cache entry.
        code = Graph.forward.__code__.replace(co_name=f"forward_{wl.name}")
        model.forward = types.MethodType(types.FunctionType(code, Graph.forward.__globals__), model)
    return model


def inference_model(ctx: BuildContext, *, compiled: bool = False):
    """The ``torch:eager`` module of this cell on the CPU: eval mode, no parameter requires grad."""
    model = graph(ctx, ctx.weights, compiled=compiled).eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    return model


def zero_inputs(ctx: BuildContext, dev=None) -> tuple:
    """Zero inputs of the cell's shapes (int64 ids: zeros are valid ids for embeddings too)."""
    import torch

    return tuple(torch.zeros(ctx.shapes[s.name], dtype=torch.int64 if s.dtype.startswith("int") else torch.float32,
                             device=dev) for s in ctx.workload.inputs)


def setup(ctx: BuildContext):
    """The cell's torch device (runtime.device: honest float32, memory peak reset) with threads applied."""
    import torch

    dev = runtime.device(ctx.device)
    if ctx.threads and ctx.threads > 0:
        torch.set_num_threads(ctx.threads)
    return dev


def prepare_fn(ctx: BuildContext, dev):
    """host inputs (name -> numpy) -> the tuple of tensors on ``dev`` the model is called with."""
    import torch

    int_inputs = {s.name for s in ctx.workload.inputs if s.dtype.startswith("int")}
    names = [s.name for s in ctx.workload.inputs]

    def prepare(host):
        # Embedding wants int64 ids; the cast happens here, outside anything timed.
        return tuple(torch.from_numpy(np.ascontiguousarray(host[n], dtype=np.int64 if n in int_inputs
                                                           else np.float32)).to(dev).contiguous()
                     for n in names)

    return prepare


def build(ctx: BuildContext) -> Built:
    """Builds the cell's nn.Module on ctx.device; compiles and warms it when options.compile."""
    import torch

    compiled = ctx.info.options.compile
    dev = setup(ctx)
    model = inference_model(ctx, compiled=compiled).to(dev)
    prepare = prepare_fn(ctx, dev)

    def synchronize(_outputs=None):
        runtime.synchronize(dev)

    fn, compile_s = model, None
    if compiled:
        # Without allow_rnn, dynamo refuses nn.LSTM and silently runs it eagerly: torch:compile would
        # time eager LSTMs. The flag only affects this worker process, which runs torch targets alone.
        torch._dynamo.config.allow_rnn = True
        fn = torch.compile(model, dynamic=False)
        dummy = zero_inputs(ctx, dev)
        t0 = time.perf_counter()
        with torch.inference_mode():
            fn(*dummy)  # first call traces and compiles
        synchronize()
        compile_s = time.perf_counter() - t0

    def run(prepared):
        with torch.inference_mode():
            return fn(*prepared)

    def to_numpy(outputs):
        out = [o.detach().to("cpu").numpy() for o in outputs]
        return [o if o.dtype.kind == "f" else o.astype(np.float64) for o in out]

    return Built(prepare=prepare, run=run, to_numpy=to_numpy, synchronize=synchronize, layout=LAYOUT,
                 versions={"torch": torch.__version__}, compile_s=compile_s,
                 device_memory=lambda: runtime.peak_memory(dev))

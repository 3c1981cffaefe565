"""PyTorch targets: ``torch:eager`` and ``torch:compile`` (inductor), inference.

The workload graph becomes a real ``torch.nn.Module``: one module per node, built by the op table
(:mod:`suite.targets.torch.ops`) from weights mapped by the weight table (:mod:`suite.targets.torch.weights`,
which documents torch's native layouts), both looked up at build time, and called from a ``forward``
generated per workload as straight-line code (:func:`forward_source`). Training: :mod:`suite.targets.torch.train`;
exporters: :mod:`suite.targets.torch.export` (same public builder, so an export target differs from the
native one only by the export and the runtime).
"""
from __future__ import annotations

import functools
import linecache
import time

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
    """``Graph``: the base of every generated model: the node modules in a ModuleDict ``nodes``.

    Defined on first use so that importing this module never imports torch.
    """
    import torch

    class _Graph(torch.nn.Module):
        def __init__(self, nodes):
            super().__init__()
            self.nodes = torch.nn.ModuleDict(nodes)

    return _Graph


def forward_source(workload) -> str:
    """The straight-line ``forward`` of a workload: one statement per node, in file (topological) order.

    Generated code, not a loop over the graph: what runs per call is what a hand-written module of the
    same layers runs (one submodule call per node), so torch:eager times PyTorch, not the suite's dispatch.
    Modules are locals ``m_<node>``, values ``v_<node>``; node names are identifiers (checked by the spec).
    A value is ``del``-ed right after its last use, as a hand-written chain frees each activation when
    the next one replaces it: kept alive to the end, a CNN's activations cannot reuse the allocator's
    warm blocks (mobilenet_cnn batch 1 ran 2.5% slower than ``nn.Sequential`` of the same modules).
    """
    args = ", ".join(f"v_{s.name}" for s in workload.inputs)
    last = {}  # value -> index of the node that reads it last
    for i, n in enumerate(workload.nodes):
        for src in n.inputs:
            last[src] = i
    keep = set(workload.outputs) | {s.name for s in workload.inputs}  # the caller holds the inputs anyway
    # the node modules as locals, in one unpacking (ModuleDict keeps the nodes' order)
    lines = [f"def forward(self, {args}):", f"    ({''.join(f'm_{n.name}, ' for n in workload.nodes)}) = self.nodes.values()"]
    for i, n in enumerate(workload.nodes):
        lines.append(f"    v_{n.name} = m_{n.name}({', '.join(f'v_{s}' for s in n.inputs)})")
        dead = [v for v in dict.fromkeys(n.inputs) if last[v] == i and v not in keep]
        if dead:
            lines.append(f"    del {', '.join(f'v_{v}' for v in dead)}")
    lines.append(f"    return ({''.join(f'v_{o}, ' for o in workload.outputs)})")
    return "\n".join(lines) + "\n"


def graph_type(workload):
    """A ``Graph`` subclass whose ``forward`` is generated for this workload (its own code object, so
    each model also gets its own torch.compile cache entry)."""
    source, filename = forward_source(workload), f"<generated forward of {workload.name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # readable tracebacks
    namespace: dict = {}
    exec(compile(source, filename, "exec"), namespace)
    return type(f"Graph_{workload.name}", (graph_class(),), {"forward": namespace["forward"]})


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


def graph(ctx: BuildContext, weights):
    """The workload as an nn.Module with a generated forward (on the CPU, in train mode as constructed).

    Args:
        ctx: the cell (workload and shapes).
        weights: canonical weights (the cell's, or index weights for the train mapping).
    """
    wl = ctx.workload
    nodes = {n.name: node_module(n, weights.get(n.name, {}), [ctx.shapes[s] for s in n.inputs]) for n in wl.nodes}
    return graph_type(wl)(nodes)


def inference_model(ctx: BuildContext):
    """The ``torch:eager`` module of this cell on the CPU: eval mode, no parameter requires grad (a source:
    workload's own module, wrapped: :mod:`suite.sources.torch`)."""
    if ctx.workload.source is not None:
        from suite.sources.torch import inference_model as source_model

        return source_model(ctx)
    model = graph(ctx, ctx.weights).eval()
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
    model = inference_model(ctx).to(dev)
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

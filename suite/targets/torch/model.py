"""PyTorch targets: ``torch:eager`` and ``torch:compile`` (inductor).

The workload graph becomes a real ``torch.nn.Module``: native modules where torch has one (Linear,
Conv2d, BatchNorm, LayerNorm, Embedding, MultiheadAttention, LSTM), ``torch.nn.functional`` for the
rest. Canonical float64 weights are mapped here, and only here, to torch's layouts in float32:

* dense ``kernel (in, out)`` -> ``Linear.weight (out, in)`` (transpose);
* conv ``OIHW`` is torch's native layout; TensorFlow-style ``same`` padding is asymmetric, so it is
  an explicit pad before an unpadded conv/pool (torch's ``padding='same'`` is symmetric, stride 1 only);
* attention ``wq, wk, wv (in, out)`` -> packed ``in_proj_weight (3D, D) = [wq.T; wk.T; wv.T]``;
* LSTM gate order is i, f, g, o in both; ``weight_ih = kernel.T``, ``weight_hh = recurrent_kernel.T``;
  torch adds two biases, so the canonical one goes in ``bias_ih`` and ``bias_hh`` is zero.

Train mode (:func:`build_train`): the same module in ``train()`` mode (batch norm on batch statistics),
every mapped parameter trainable except LSTM's ``bias_hh``, which stays frozen at zero: training both
of torch's biases would move the canonical single bias twice per step. Loss via ``F.cross_entropy`` /
``F.mse_loss``, optimiser ``torch.optim.SGD`` / ``torch.optim.Adam``; ``torch:compile`` compiles the
model (forward and backward through AOTAutograd), the optimiser step runs eagerly.

Test-only: ``info.options["inject_bug"]`` deliberately mis-maps weights so tests can prove that
verification catches a porting bug. Values: ``"dense_kernel_not_transposed"`` (the (in, out) buffer
reshaped to (out, in) instead of transposed), ``"conv_kernel_hwio"`` (the OIHW kernel read as if it
were HWIO), and for train mode ``"lstm_train_both_biases"`` (``bias_hh`` trained too: the forward
pass and gradients agree, the updated bias does not) and ``"sgd_dampening"`` (SGD with
dampening = momentum: the first step agrees, the second does not). Never set it outside tests.
"""
from __future__ import annotations

import functools
import time
import types

import numpy as np

from suite.ops import same_padding
from suite.targets.base import Built, BuildContext, BuiltTrain, UnsupportedError

LAYOUT = "NCHW/OIHW; linear (out,in); lstm ifgo split-bias; mha packed in_proj"
INJECTABLE_BUGS = ("dense_kernel_not_transposed", "conv_kernel_hwio", "lstm_train_both_biases", "sgd_dampening")


def unsupported(workload, info) -> str | None:
    """Every op of workloads/README.md has a torch form; nothing is refused."""
    bug = None
    if bug is not None and bug not in INJECTABLE_BUGS:
        return f"option inject_bug={bug!r}: expected one of {', '.join(INJECTABLE_BUGS)}"
    return None


@functools.lru_cache(maxsize=None)
def _fn_module():
    """``_Fn``: a module around a function plus constant buffers (moved by ``.to(device)``).

    Defined on first use so that importing this module never imports torch.
    """
    import torch

    class _Fn(torch.nn.Module):
        def __init__(self, fn, **buffers):
            super().__init__()
            self.fn = fn
            for k, v in buffers.items():
                self.register_buffer(k, v)

        def forward(self, *xs):
            return self.fn(self, *xs)

    class _Graph(torch.nn.Module):
        """Runs the nodes in file (topological) order, keeping every value in a dict by name."""

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

    return _Fn, _Graph


def _same_pads(shape, k, s, d, padding):
    """F.pad amounts (left, right, top, bottom) for TensorFlow's rule; None when there is nothing to pad."""
    if padding != "same":
        return None
    _, top, bottom = same_padding(shape[2], k[0], s[0], d[0])
    _, left, right = same_padding(shape[3], k[1], s[1], d[1])
    pads = (left, right, top, bottom)
    return pads if any(pads) else None


def _t(a):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _node_module(node, p, in_shapes, bug):
    """One workload node -> an nn.Module called with the node's input tensors."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    Fn, _ = _fn_module()
    a, op = node.attrs, node.op
    x_shape = in_shapes[0]

    if op == "dense":
        m = nn.Linear(x_shape[-1], a["units"], bias=a["use_bias"])
        k = p["kernel"]
        w = k.reshape(k.shape[1], k.shape[0]) if bug == "dense_kernel_not_transposed" else k.T
        m.weight.data.copy_(_t(w))
        if a["use_bias"]:
            m.bias.data.copy_(_t(p["bias"]))
        return m
    if op == "conv2d":
        conv = nn.Conv2d(x_shape[1], a["filters"], a["kernel_size"], stride=a["strides"],
                         dilation=a["dilation"], groups=a["groups"], bias=a["use_bias"], padding=0)
        k = p["kernel"]
        if bug == "conv_kernel_hwio":  # the classic TF->torch slip: same buffer, wrong axis meaning
            o, i, kh, kw = k.shape
            k = k.reshape(kh, kw, i, o).transpose(3, 2, 0, 1)
        conv.weight.data.copy_(_t(k))
        if a["use_bias"]:
            conv.bias.data.copy_(_t(p["bias"]))
        pads = _same_pads(x_shape, a["kernel_size"], a["strides"], a["dilation"], a["padding"])
        return nn.Sequential(nn.ZeroPad2d(pads), conv) if pads else conv
    if op == "max_pool2d":
        pool = nn.MaxPool2d(a["pool_size"], a["strides"])
        pads = _same_pads(x_shape, a["pool_size"], a["strides"], (1, 1), a["padding"])
        # -inf padding never wins a max, which is TensorFlow's rule.
        return nn.Sequential(nn.ConstantPad2d(pads, float("-inf")), pool) if pads else pool
    if op == "avg_pool2d":
        pads = _same_pads(x_shape, a["pool_size"], a["strides"], (1, 1), a["padding"])
        if not pads:
            return nn.AvgPool2d(a["pool_size"], a["strides"])
        k, s = a["pool_size"], a["strides"]
        # TensorFlow divides by the number of real (unpadded) elements in each window. torch's
        # count_include_pad=False only knows symmetric padding, so sum windows over the explicitly
        # padded input and divide by a precomputed count of real positions.
        ones = F.pad(torch.ones((1, 1) + tuple(x_shape[2:])), pads)
        count = F.avg_pool2d(ones, k, s, divisor_override=1)
        return Fn(lambda m, x: F.avg_pool2d(F.pad(x, pads), k, s, divisor_override=1) / m.count, count=count)
    if op == "global_avg_pool":
        return Fn(lambda m, x: x.mean(dim=(2, 3)))
    if op == "batch_norm":
        c = x_shape[1]
        m = (nn.BatchNorm2d if len(x_shape) == 4 else nn.BatchNorm1d)(c, eps=a["epsilon"])
        m.weight.data.copy_(_t(p["gamma"]))
        m.bias.data.copy_(_t(p["beta"]))
        m.running_mean.copy_(_t(p["moving_mean"]))
        m.running_var.copy_(_t(p["moving_var"]))
        return m.eval()  # inference: use the moving statistics, never the batch's
    if op == "layer_norm":
        m = nn.LayerNorm(x_shape[-1], eps=a["epsilon"])
        m.weight.data.copy_(_t(p["gamma"]))
        m.bias.data.copy_(_t(p["beta"]))
        return m
    if op == "relu":
        return nn.ReLU()
    if op == "gelu":
        return nn.GELU(approximate="none")  # the exact erf form, as the contract says
    if op == "sigmoid":
        return nn.Sigmoid()
    if op == "tanh":
        return nn.Tanh()
    if op == "softmax":
        return nn.Softmax(dim=a["axis"])
    if op == "add":
        return Fn(lambda m, x, y: x + y)
    if op == "multiply":
        return Fn(lambda m, x, y: x * y)
    if op == "matmul":
        if a["transpose_b"]:
            return Fn(lambda m, x, y: torch.matmul(x, y.transpose(-1, -2)))
        return Fn(lambda m, x, y: torch.matmul(x, y))
    if op == "reshape":
        shape = tuple(a["shape"])
        return Fn(lambda m, x: x.reshape((x.shape[0],) + shape))
    if op == "flatten":
        return nn.Flatten(1)  # NCHW is canonical, so flatten order already matches
    if op == "transpose":
        perm = tuple(a["perm"])
        return Fn(lambda m, x: x.permute(perm))
    if op == "concat":
        axis = a["axis"]
        return Fn(lambda m, *xs: torch.cat(xs, dim=axis))
    if op == "mean":
        axes, keep = tuple(a["axis"]), a["keepdims"]
        return Fn(lambda m, x: x.mean(dim=axes, keepdim=keep))
    if op == "embedding":
        m = nn.Embedding(a["vocab_size"], a["dim"])
        m.weight.data.copy_(_t(p["table"]))
        return m
    if op == "attention":
        d, length = x_shape[-1], x_shape[1]
        mha = nn.MultiheadAttention(d, a["num_heads"], batch_first=True, bias=True)
        mha.in_proj_weight.data.copy_(_t(np.concatenate([p["wq"].T, p["wk"].T, p["wv"].T], axis=0)))
        mha.in_proj_bias.data.copy_(_t(np.concatenate([p["bq"], p["bk"], p["bv"]])))
        mha.out_proj.weight.data.copy_(_t(p["wo"].T))
        mha.out_proj.bias.data.copy_(_t(p["bo"]))
        if a["causal"]:
            # Boolean attn_mask: True marks a position that may NOT be attended (j > i).
            mask = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
            fn = Fn(lambda m, x: m.mha(x, x, x, attn_mask=m.mask, need_weights=False)[0], mask=mask)
        else:
            fn = Fn(lambda m, x: m.mha(x, x, x, need_weights=False)[0])
        return _attach(fn, mha=mha)
    if op == "lstm":
        units, feats = a["units"], x_shape[-1]
        lstm = nn.LSTM(feats, units, batch_first=True)
        lstm.weight_ih_l0.data.copy_(_t(p["kernel"].T))
        lstm.weight_hh_l0.data.copy_(_t(p["recurrent_kernel"].T))
        lstm.bias_ih_l0.data.copy_(_t(p["bias"]))
        lstm.bias_hh_l0.data.zero_()  # torch sums two biases; the canonical model has one
        if a["return_sequences"]:
            return _attach(Fn(lambda m, x: m.lstm(x)[0]), lstm=lstm)
        return _attach(Fn(lambda m, x: m.lstm(x)[1][0][0]), lstm=lstm)  # h_n of the single layer
    raise NotImplementedError(f"op {op}: no torch mapping")  # unreachable for validated workloads


def _attach(fn_module, **children):
    for k, v in children.items():
        fn_module.add_module(k, v)
    return fn_module


def _setup(ctx: BuildContext):
    """Validates the bug option, configures threads and CUDA precision; returns (device, bug)."""
    import torch

    bug = None
    if bug is not None and bug not in INJECTABLE_BUGS:
        raise ValueError(f"inject_bug={bug!r}: expected one of {', '.join(INJECTABLE_BUGS)}")
    device = torch.device(ctx.device)
    if device.type == "cuda":
        # TF32 would make float32 matmuls/convs ~1e-3 accurate: verification would mean nothing.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        # The peak is process-wide; reset it so device_memory reports this cell, not an earlier one.
        torch.cuda.reset_peak_memory_stats(device)
    if ctx.threads and ctx.threads > 0:
        torch.set_num_threads(ctx.threads)
    return device, bug


def _graph(ctx: BuildContext, weights, bug):
    """The workload as an nn.Module (on the CPU, in train mode as constructed)."""
    wl = ctx.workload
    _, Graph = _fn_module()
    nodes = {n.name: _node_module(n, weights.get(n.name, {}), [ctx.shapes[s] for s in n.inputs], bug)
             for n in wl.nodes}
    model = Graph(wl, nodes)
    if ctx.info.options.compile:
        # Dynamo keys its cache on the forward *code object* and, past recompile_limit (8) entries,
        # silently runs eager. Every cell's model would share Graph.forward's code, so from the
        # ninth cell in a worker "torch:compile" would time eager. A per-model copy of the code
        # object gives each model its own cache entry.
        code = Graph.forward.__code__.replace(co_name=f"forward_{wl.name}")
        model.forward = types.MethodType(types.FunctionType(code, Graph.forward.__globals__), model)
    return model


def _io(ctx: BuildContext, device):
    """(prepare, synchronize) shared by the inference and training builds."""
    import torch

    int_inputs = {s.name for s in ctx.workload.inputs if s.dtype.startswith("int")}
    names = [s.name for s in ctx.workload.inputs]
    cuda = device.type == "cuda"

    def prepare(host):
        # Embedding wants int64 ids; the cast happens here, outside anything timed.
        return tuple(torch.from_numpy(np.ascontiguousarray(host[n], dtype=np.int64 if n in int_inputs
                                                           else np.float32)).to(device).contiguous()
                     for n in names)

    def synchronize(_outputs=None):
        if cuda:
            torch.cuda.synchronize(device)

    return prepare, synchronize


def build(ctx: BuildContext) -> Built:
    """Builds the cell's nn.Module on ctx.device; compiles and warms it when options['compile']."""
    import torch

    wl, info = ctx.workload, ctx.info
    device, bug = _setup(ctx)
    cuda = device.type == "cuda"
    int_inputs = {s.name for s in wl.inputs if s.dtype.startswith("int")}
    names = [s.name for s in wl.inputs]

    model = _graph(ctx, ctx.weights, bug).eval().to(device)
    for prm in model.parameters():
        prm.requires_grad_(False)
    prepare, synchronize = _io(ctx, device)

    fn, compile_s = model, None
    if info.options.compile:
        # Without allow_rnn, dynamo refuses nn.LSTM and silently runs it eagerly: torch:compile would
        # time eager LSTMs. The flag only affects this worker process, which runs torch targets alone.
        torch._dynamo.config.allow_rnn = True
        fn = torch.compile(model, dynamic=False)
        dummy = tuple(torch.zeros(ctx.shapes[n], dtype=torch.int64 if n in int_inputs else torch.float32,
                                  device=device) for n in names)
        t0 = time.perf_counter()
        with torch.inference_mode():
            fn(*dummy)  # first call traces and compiles; zeros are valid ids for embeddings too
        synchronize()
        compile_s = time.perf_counter() - t0

    def run(prepared):
        with torch.inference_mode():
            return fn(*prepared)

    def to_numpy(outputs):
        out = [o.detach().to("cpu").numpy() for o in outputs]
        return [o if o.dtype.kind == "f" else o.astype(np.float64) for o in out]

    def device_memory():
        return int(torch.cuda.max_memory_allocated(device)) if cuda else None

    return Built(prepare=prepare, run=run, to_numpy=to_numpy, synchronize=synchronize, layout=LAYOUT,
                 versions={"torch": torch.__version__}, compile_s=compile_s, device_memory=device_memory)


def _frozen(name: str, bug) -> bool:
    """Native parameters that stay constant in training: LSTM's second bias (zero, see the docstring)."""
    return name.endswith("lstm.bias_hh_l0") and bug != "lstm_train_both_biases"


def build_train(ctx: BuildContext) -> BuiltTrain:
    """One training step: forward in train mode, loss, backward, optimiser step (see the docstring)."""
    import torch
    from torch.nn import functional as F

    from suite.targets.common.train_map import CanonicalMap, index_weights
    from suite.training import classes_axis, label_shape

    wl, info, spec = ctx.workload, ctx.info, ctx.workload.train
    device, bug = _setup(ctx)
    cuda = device.type == "cuda"
    model = _graph(ctx, ctx.weights, bug).train().to(device)
    index_model = _graph(ctx, index_weights(wl, ctx.weights), bug)
    trained = [(n, p) for n, p in model.named_parameters() if not _frozen(n, bug)]
    for n, p in model.named_parameters():
        p.requires_grad_(not _frozen(n, bug))
    cmap = CanonicalMap(wl, ctx.weights, {n: p.detach().numpy() for n, p in index_model.named_parameters()
                                         if not _frozen(n, bug)})
    lstm_hh = {n.name: f"nodes.{n.name}.lstm.bias_hh_l0" for n in wl.nodes if n.op == "lstm"}
    opt_cfg = spec.optimizer
    params = [p for _, p in trained]
    if opt_cfg["kind"] == "sgd":
        opt = torch.optim.SGD(params, lr=opt_cfg["learning_rate"], momentum=opt_cfg["momentum"],
                              nesterov=opt_cfg["nesterov"],
                              # (torch refuses dampening with nesterov: the bug is injected without it)
                              dampening=opt_cfg["momentum"] if bug == "sgd_dampening" and not opt_cfg["nesterov"]
                              else 0.0)
    else:
        opt = torch.optim.Adam(params, lr=opt_cfg["learning_rate"], betas=(opt_cfg["beta_1"], opt_cfg["beta_2"]),
                               eps=opt_cfg["epsilon"])
    ax, out_i = classes_axis(wl), spec.output_index
    prepare_inputs, synchronize = _io(ctx, device)

    def loss_fn(outputs, labels):
        y = outputs[out_i]
        if spec.loss == "softmax_cross_entropy":
            y = y.movedim(ax, -1)
            return F.cross_entropy(y.reshape(-1, y.shape[-1]), labels.reshape(-1))
        return F.mse_loss(y, labels)

    fn, compile_s = model, None
    if info.options.compile:
        torch._dynamo.config.allow_rnn = True
        fn = torch.compile(model, dynamic=False)

    def prepare(host, labels):
        lab = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
        return prepare_inputs(host), lab

    def forward_backward(prepared):
        xs, labels = prepared
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(fn(*xs), labels)
        loss.backward()
        return loss

    if fn is not model:  # compile forward and backward now: gradients only, no update, weights unchanged
        host = {s.name: np.zeros(ctx.shapes[s.name], dtype=s.dtype) for s in wl.inputs}
        t0 = time.perf_counter()
        dtype = np.int64 if spec.loss == "softmax_cross_entropy" else np.float32
        try:
            forward_backward(prepare(host, np.zeros(label_shape(wl, ctx.params), dtype=dtype)))
        except Exception as e:  # the compiler cannot differentiate this model: say so, precisely
            first = (str(e).strip().splitlines() or [""])[0]
            raise UnsupportedError(f"torch.compile {torch.__version__} cannot compile this training graph: "
                                   f"{type(e).__name__}: {first}"[:400]) from None
        opt.zero_grad(set_to_none=True)
        synchronize()
        compile_s = time.perf_counter() - t0

    def step(prepared):
        loss = forward_backward(prepared)
        opt.step()
        return loss

    def native(tensors: dict) -> dict:
        return {n: t.detach().to("cpu").numpy() for n, t in tensors.items()}

    def gradients(prepared):
        forward_backward(prepared)
        grads = native({n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in trained})
        opt.zero_grad(set_to_none=True)
        return cmap.to_canonical(grads)

    def parameters():
        values = native(dict(model.named_parameters()))
        out = cmap.to_canonical(values)
        for node, hh in lstm_hh.items():  # torch adds both biases: the canonical bias is their sum
            out[node]["bias"] = out[node]["bias"] + values[hh]
        return out

    def device_memory():
        return int(torch.cuda.max_memory_allocated(device)) if cuda else None

    def reset_peak_memory():
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)

    return BuiltTrain(prepare=prepare, step=step, loss_value=lambda loss: float(loss.detach().item()),
                      gradients=gradients, parameters=parameters, synchronize=synchronize,
                      layout=LAYOUT + ("; compiled model, eager optimiser" if fn is not model else ""),
                      versions={"torch": torch.__version__}, compile_s=compile_s, device_memory=device_memory,
                      reset_peak_memory=reset_peak_memory)


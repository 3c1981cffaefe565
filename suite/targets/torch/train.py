"""PyTorch training step (``build_train``) of ``torch:eager`` and ``torch:compile``.

The same module as inference (:func:`suite.targets.torch.model.graph`) in ``train()`` mode (batch norm on
batch statistics), every mapped parameter trainable except LSTM's ``bias_hh``, which stays frozen at zero
(:func:`frozen`): training both of torch's biases would move the canonical single bias twice per step.
Loss via ``F.cross_entropy`` / ``F.mse_loss``, optimiser ``torch.optim.SGD`` / ``torch.optim.Adam``
(:data:`OPTIMIZERS`); ``torch:compile`` compiles the model (forward and backward through AOTAutograd), the
optimiser step runs eagerly.
"""
from __future__ import annotations

import time

import numpy as np

import suite.targets.torch.runtime as runtime
from suite.targets.base import BuildContext, BuiltTrain, UnsupportedError
from suite.targets.torch.model import LAYOUT, graph, prepare_fn, setup


def frozen(name: str) -> bool:
    """Native parameters that stay constant in training: LSTM's second bias (zero, see the docstring)."""
    return name.endswith("lstm.bias_hh_l0")


def sgd(torch, params, cfg):
    return torch.optim.SGD(params, lr=cfg["learning_rate"], momentum=cfg["momentum"], nesterov=cfg["nesterov"],
                           dampening=0.0)


def adam(torch, params, cfg):
    return torch.optim.Adam(params, lr=cfg["learning_rate"], betas=(cfg["beta_1"], cfg["beta_2"]), eps=cfg["epsilon"])


OPTIMIZERS = {"sgd": sgd, "adam": adam}  # optimiser kind of the workload's train: section -> constructor


def build_train(ctx: BuildContext) -> BuiltTrain:
    """One training step: forward in train mode, loss, backward, optimiser step (see the docstring)."""
    import torch
    from torch.nn import functional as F

    from suite.targets.common.train_map import CanonicalMap, index_weights
    from suite.training import classes_axis, label_shape

    wl, info, spec = ctx.workload, ctx.info, ctx.workload.train
    dev = setup(ctx)
    compiled = info.options.compile
    model = graph(ctx, ctx.weights).train().to(dev)
    index_model = graph(ctx, index_weights(wl, ctx.weights))  # never run: names native -> canonical
    trained = [(n, p) for n, p in model.named_parameters() if not frozen(n)]
    for n, p in model.named_parameters():
        p.requires_grad_(not frozen(n))
    cmap = CanonicalMap(wl, ctx.weights, {n: p.detach().numpy() for n, p in index_model.named_parameters()
                                         if not frozen(n)})
    lstm_hh = {n.name: f"nodes.{n.name}.lstm.bias_hh_l0" for n in wl.nodes if n.op == "lstm"}
    opt = OPTIMIZERS[spec.optimizer["kind"]](torch, [p for _, p in trained], spec.optimizer)
    ax, out_i = classes_axis(wl), spec.output_index
    prepare_inputs = prepare_fn(ctx, dev)

    def synchronize(_outputs=None):
        runtime.synchronize(dev)

    def loss_fn(outputs, labels):
        y = outputs[out_i]
        if spec.loss == "softmax_cross_entropy":
            y = y.movedim(ax, -1)
            return F.cross_entropy(y.reshape(-1, y.shape[-1]), labels.reshape(-1))
        return F.mse_loss(y, labels)

    fn, compile_s = model, None
    if compiled:
        torch._dynamo.config.allow_rnn = True
        fn = torch.compile(model, dynamic=False)

    def prepare(host, labels):
        lab = torch.from_numpy(np.ascontiguousarray(labels)).to(dev)
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

    return BuiltTrain(prepare=prepare, step=step, loss_value=lambda loss: float(loss.detach().item()),
                      gradients=gradients, parameters=parameters, synchronize=synchronize,
                      layout=LAYOUT + ("; compiled model, eager optimiser" if fn is not model else ""),
                      versions={"torch": torch.__version__}, compile_s=compile_s,
                      device_memory=lambda: runtime.peak_memory(dev),
                      reset_peak_memory=lambda: runtime.reset_peak_memory(dev))

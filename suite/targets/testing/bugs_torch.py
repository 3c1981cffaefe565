"""Test-only torch targets with a deliberate porting bug, wrapped around the production torch target.

Each bug replaces one entry of a production table while the production build runs (``mock.patch``), so
tests can prove that verification catches it; production modules carry no bug branches.

* ``torch:bug-dense-kernel``: the (in, out) dense kernel reshaped to (out, in) instead of transposed.
* ``torch:bug-conv-kernel``: the OIHW conv kernel read as if it were HWIO (the classic TF->torch slip:
  same buffer, wrong axis meaning).
* ``torch:bug-lstm-both-biases`` (train): ``bias_hh`` trained too; the forward pass and gradients agree,
  the updated bias does not.
* ``torch:bug-relu-straight-through`` (train): a hand-written ReLU (``autograd.Function``, as in a fused or
  custom kernel) whose backward passes the gradient through unmasked; the forward pass is right, so only
  gradients show it, and only through the parameters before it.
* ``torch:bug-bn-eval-in-train`` (train): batch norm left in eval mode while training (a module whose
  ``train()`` does nothing, as after a forgotten ``model.train()`` or Keras' ``training=False``): it
  normalises with the moving statistics, not the batch's; inference is right.
* ``torch:bug-sgd-dampening`` (train): SGD with dampening = momentum when not nesterov (torch refuses
  dampening with nesterov); the first step agrees, the second does not.

The porting traps of today's architectures (each is the named mistake; shapes agree, so nothing refuses it):

* ``torch:bug-gelu-exact``: ``nn.GELU()`` at its default (exact erf) whatever the node asks, the reverse of
  the JAX/Keras default trap, on a node that asks for ``approximate: tanh``.
* ``torch:bug-rope-interleaved``: the interleaved rotation (pairs (2i, 2i + 1), GPT-J / Meta's original
  Llama) where the node asks for the half split (pairs (i, i + r/2), GPT-NeoX / Hugging Face Llama): loading
  Hugging Face Llama weights into Meta-style rotary code (or the reverse) without permuting q/k.
* ``torch:bug-gru-gates``: the canonical (Keras) gate blocks z, r, n copied into ``nn.GRU`` as they are,
  without reordering to torch's r, z, n: the update gate's weights drive the reset gate and the reverse.
* ``torch:bug-resize-align-corners``: bilinear ``F.interpolate(..., align_corners=True)`` where the workload
  asks for half-pixel centres (``align_corners: false``), e.g. a port of TF1's ``resize_bilinear`` default.
"""
from __future__ import annotations

from unittest import mock

from suite.targets.common.mappings import f32
from suite.targets.torch import ops, train, weights
from suite.targets.testing.wrap import planted


def _dense_not_transposed(p, a):
    w = weights.dense(p, a)
    k = p["kernel"]
    w["weight"] = f32(k.reshape(k.shape[1], k.shape[0]))
    return w


def _conv_kernel_hwio(p, a):
    w = weights.conv2d(p, a)
    o, i, kh, kw = p["kernel"].shape
    w["weight"] = f32(p["kernel"].reshape(kh, kw, i, o).transpose(3, 2, 0, 1))
    return w


def _sgd_dampening(torch, params, cfg):
    if cfg["nesterov"]:
        return train.sgd(torch, params, cfg)
    return torch.optim.SGD(params, lr=cfg["learning_rate"], momentum=cfg["momentum"], nesterov=False,
                           dampening=cfg["momentum"])


def _relu_straight_through(t, a, in_shapes, w):
    class StraightThrough(t.torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clamp_min(0)

        @staticmethod
        def backward(ctx, g):
            return g  # should be g * (x > 0)

    return t.Fn(lambda m, x: StraightThrough.apply(x))


def _bn_eval_in_train(t, a, in_shapes, w):
    m = ops.batch_norm(t, a, in_shapes, w)
    m.train = lambda mode=True: m  # stays in eval mode: moving statistics in training too
    return m


def _gelu_default(t, a, in_shapes, w):
    return t.nn.GELU()  # approximate="none" by default: exact erf


def _gru_gates_not_reordered(p, a):
    w = {"weight_ih_l0": f32(p["kernel"].T), "weight_hh_l0": f32(p["recurrent_kernel"].T),
         "bias_ih_l0": f32(p["bias"])}
    if a["reset_after"]:
        w["bias_hh_l0"] = f32(p["recurrent_bias"])
    return w


def _resize_align_corners(t, a, in_shapes, w):
    if a["mode"] != "bilinear":
        return ops.resize(t, a, in_shapes, w)
    scale = tuple(float(s) for s in a["scale"])
    return t.Fn(lambda m, x: t.F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=True))


BUGS = {  # target id -> a context manager that plants the bug while the production build runs
    "torch:bug-dense-kernel": lambda: mock.patch.dict(weights.WEIGHTS, {"dense": _dense_not_transposed}),
    "torch:bug-conv-kernel": lambda: mock.patch.dict(weights.WEIGHTS, {"conv2d": _conv_kernel_hwio}),
    "torch:bug-lstm-both-biases": lambda: mock.patch.object(train, "frozen", lambda name: False),
    "torch:bug-sgd-dampening": lambda: mock.patch.dict(train.OPTIMIZERS, {"sgd": _sgd_dampening}),
    "torch:bug-relu-straight-through": lambda: mock.patch.dict(ops.OPS, {"relu": _relu_straight_through}),
    "torch:bug-bn-eval-in-train": lambda: mock.patch.dict(ops.OPS, {"batch_norm": _bn_eval_in_train}),
    "torch:bug-gelu-exact": lambda: mock.patch.dict(ops.OPS, {"gelu": _gelu_default}),
    "torch:bug-rope-interleaved": lambda: mock.patch.dict(ops.ROPE, {"half": ops.ROPE["interleaved"]}),
    "torch:bug-gru-gates": lambda: mock.patch.dict(weights.WEIGHTS, {"gru": _gru_gates_not_reordered}),
    "torch:bug-resize-align-corners": lambda: mock.patch.dict(ops.OPS, {"resize": _resize_align_corners}),
}


unsupported, build, build_train = planted("torch", BUGS)

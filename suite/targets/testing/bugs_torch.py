"""Test-only torch targets with a deliberate porting bug, wrapped around the production torch target.

Each bug replaces one entry of a production table while the production build runs (``mock.patch``), so
tests can prove that verification catches it; production modules carry no bug branches.

* ``torch:bug-dense-kernel``: the (in, out) dense kernel reshaped to (out, in) instead of transposed.
* ``torch:bug-conv-kernel``: the OIHW conv kernel read as if it were HWIO (the classic TF->torch slip:
  same buffer, wrong axis meaning).
* ``torch:bug-lstm-both-biases`` (train): ``bias_hh`` trained too; the forward pass and gradients agree,
  the updated bias does not.
* ``torch:bug-sgd-dampening`` (train): SGD with dampening = momentum when not nesterov (torch refuses
  dampening with nesterov); the first step agrees, the second does not.
"""
from __future__ import annotations

from unittest import mock

from suite.targets.common.mappings import f32
from suite.targets.torch import train, weights
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


BUGS = {  # target id -> a context manager that plants the bug while the production build runs
    "torch:bug-dense-kernel": lambda: mock.patch.dict(weights.WEIGHTS, {"dense": _dense_not_transposed}),
    "torch:bug-conv-kernel": lambda: mock.patch.dict(weights.WEIGHTS, {"conv2d": _conv_kernel_hwio}),
    "torch:bug-lstm-both-biases": lambda: mock.patch.object(train, "frozen", lambda name: False),
    "torch:bug-sgd-dampening": lambda: mock.patch.dict(train.OPTIMIZERS, {"sgd": _sgd_dampening}),
}


unsupported, build, build_train = planted("torch", BUGS)

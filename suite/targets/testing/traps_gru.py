"""Test-only torch target with the classic GRU porting trap, wrapped around the production torch target.

* ``torch:bug-gru-gates``: the canonical (Keras) gate blocks z, r, n copied into ``nn.GRU`` as they are,
  without reordering to torch's r, z, n: the update gate's weights drive the reset gate and the reverse.
  Shapes agree, so nothing refuses it; only the numbers are wrong (inference and train mode).
"""
from __future__ import annotations

from unittest import mock

from suite.targets.common.mappings import f32
from suite.targets.testing.wrap import planted
from suite.targets.torch import weights


def _gates_not_reordered(p, a):
    w = {"weight_ih_l0": f32(p["kernel"].T), "weight_hh_l0": f32(p["recurrent_kernel"].T),
         "bias_ih_l0": f32(p["bias"])}
    if a["reset_after"]:
        w["bias_hh_l0"] = f32(p["recurrent_bias"])
    return w


BUGS = {  # target id -> a context manager that plants the bug while the production build runs
    "torch:bug-gru-gates": lambda: mock.patch.dict(weights.WEIGHTS, {"gru": _gates_not_reordered}),
}


unsupported, build, build_train = planted("torch", BUGS)

"""Test-only jax targets with a deliberate porting bug, wrapped around the production jax target.

Each bug replaces one entry of a production table while the production build runs (``mock.patch``), so
tests can prove that verification catches it; production modules carry no bug branches.

* ``jax:bug-lstm-gates``: the canonical LSTM gate blocks read in i, g, f, o order instead of i, f, g, o
  (a classic gate-order porting mistake): the production mapping fed with the f and g blocks swapped.
"""
from __future__ import annotations

from unittest import mock

from suite.targets.common.mappings import lstm_fused, lstm_gate_blocks
from suite.targets.jax import weights
from suite.targets.testing.wrap import planted

_WRONG_GATE_ORDER = ("i", "g", "f", "o")


def _lstm_gates_igfo(p, a):
    u = a["units"]
    # lstm_gate_blocks names block k after _WRONG_GATE_ORDER[k]; lstm_fused lays them out again in the
    # canonical order, so the production mapping then reads block 1 as g and block 2 as f.
    swapped = {k: lstm_fused(lstm_gate_blocks(v, u, _WRONG_GATE_ORDER)) for k, v in p.items()}
    return weights.lstm(swapped, a)


BUGS = {  # target id -> a context manager that plants the bug while the production build runs
    "jax:bug-lstm-gates": lambda: mock.patch.dict(weights.WEIGHTS, {"lstm": _lstm_gates_igfo}),
}


unsupported, build, build_train = planted("jax", BUGS)

"""Test-only Keras 3 targets with a deliberate porting bug, wrapped around the production Keras target.

Each bug replaces one entry of a production table while the production build runs (``mock.patch``), so
tests can prove that verification catches it; production modules carry no bug branches.

* ``keras:bug-lstm-gates``: the LSTM gate blocks of kernel, recurrent kernel and bias read in i, g, f, o
  order instead of Keras' i, f, c(=g), o (a classic porting slip).
"""
from __future__ import annotations

import functools
from unittest import mock

from suite.targets.keras import model, train, weights

BUGS = {  # target id -> a context manager that plants the bug while the production build runs
    "keras:bug-lstm-gates": lambda: mock.patch.dict(
        weights.WEIGHTS, {"lstm": functools.partial(weights.lstm, gates=("i", "g", "f", "o"))}),
}


def _bug(info):
    try:
        return BUGS[info.id]
    except KeyError:
        raise ValueError(f"{info.id}: no injected keras bug (expected one of {', '.join(BUGS)})") from None


def unsupported(workload, info) -> str | None:
    if info.id not in BUGS:
        return f"{info.id}: no injected keras bug (expected one of {', '.join(BUGS)})"
    return model.unsupported(workload, info)


def build(ctx):
    with _bug(ctx.info)():
        return model.build(ctx)


def build_train(ctx):
    with _bug(ctx.info)():
        return train.build_train(ctx)

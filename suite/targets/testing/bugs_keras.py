"""Test-only Keras 3 targets with a deliberate porting bug, wrapped around the production Keras target.

Each bug replaces one entry of a production table while the production build runs (``mock.patch``), so
tests can prove that verification catches it; production modules carry no bug branches.

* ``keras:bug-lstm-gates``: the LSTM gate blocks of kernel, recurrent kernel and bias read in i, g, f, o
  order instead of Keras' i, f, c(=g), o (a classic porting slip).
"""
from __future__ import annotations

import functools
from unittest import mock

from suite.targets.keras import weights
from suite.targets.testing.wrap import planted

BUGS = {  # target id -> a context manager that plants the bug while the production build runs
    "keras:bug-lstm-gates": lambda: mock.patch.dict(
        weights.WEIGHTS, {"lstm": functools.partial(weights.lstm, gates=("i", "g", "f", "o"))}),
}


unsupported, build, build_train = planted("keras", BUGS)

"""Test-only: deliberate porting bugs wrapped around the production TensorFlow target.

Each bug id (``ctx.info.id``, suite/targets/testing/registry.py) names a wrapper that patches the production
target while it builds: here, one entry of the weight table (:data:`suite.targets.tensorflow.weights.WEIGHTS`)
is replaced by a wrong mapping for the duration of the production ``build`` / ``build_train`` call. The
production modules carry no bug branches; verification must catch each bug (tests/test_mapping_bugs.py).

* ``tensorflow:bug-conv-kernel``: the OIHW conv kernel merely reshaped to HWIO (``k.reshape(kh, kw, i, o)``)
  instead of transposed, in the plain and in the depthwise branch (there the wrong HWIO is reshaped to
  ``(kh, kw, groups, m)``).
"""
from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

from suite.targets.common.mappings import f32
from suite.targets.tensorflow import weights
from suite.targets.testing.wrap import planted


def _conv_kernel_not_transposed(p, a):
    """The wrong conv2d mapping: the same keys and shapes as weights.conv2d, the elements scrambled."""
    w = {k: f32(v) for k, v in p.items() if k != "kernel"}
    k = f32(p["kernel"])  # OIHW
    o, i, kh, kw = k.shape
    hwio = k.reshape(kh, kw, i, o)  # the bug: a reshape is not a transpose
    if weights.depthwise(a, k.shape):
        w["dw_kernel"] = f32(hwio.reshape(kh, kw, a["groups"], o // a["groups"]))
    else:
        w["kernel"] = hwio
    return w


@contextmanager
def _weight_table(**entries):
    with mock.patch.dict(weights.WEIGHTS, entries):
        yield


BUGS = {
    "tensorflow:bug-conv-kernel": lambda: _weight_table(conv2d=_conv_kernel_not_transposed),
}


unsupported, build, build_train = planted("tensorflow", BUGS)

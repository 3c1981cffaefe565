"""Test-only torch target with the classic resizing porting trap, wrapped around the production torch target.

* ``torch:bug-resize-align-corners``: bilinear ``F.interpolate(..., align_corners=True)`` where the workload
  asks for half-pixel centres (``align_corners: false``), e.g. a model ported from TF1's
  ``resize_bilinear`` default or from code that "fixes" torch's warning the wrong way. Shapes agree, so
  nothing refuses it; only the numbers are wrong, away from the corners (inference and train mode).
"""
from __future__ import annotations

from unittest import mock

from suite.targets.testing.wrap import planted
from suite.targets.torch import ops


def _resize_align_corners(t, a, in_shapes, w):
    if a["mode"] != "bilinear":
        return ops.resize(t, a, in_shapes, w)
    scale = tuple(float(s) for s in a["scale"])
    return t.Fn(lambda m, x: t.F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=True))


BUGS = {  # target id -> a context manager that plants the bug while the production build runs
    "torch:bug-resize-align-corners": lambda: mock.patch.dict(ops.OPS, {"resize": _resize_align_corners}),
}


unsupported, build, build_train = planted("torch", BUGS)

"""Numerical verification of a target's outputs against the float64 reference.

Default tolerances, per dtype the target computes in (one table):

| dtype    | rtol  | atol  | why |
|----------|-------|-------|-----|
| float32  | 1e-4  | 1e-5  | ~800 ulp of float32 relative: room for reassociation in reductions of a few thousand
|          |       |       | terms and for the framework's own exp/erf/tanh, far below any porting bug (those give
|          |       |       | errors of 1e-2 or more). atol covers elements whose reference is near 0. |
| float16  | 1e-2  | 1e-3  | 10-bit mantissa. |
| bfloat16 | 5e-2  | 1e-2  | 7-bit mantissa. |
| int8     | cosine and top-1 rules (quantised targets); rtol/atol reported only. |

An element is a mismatch when ``|out - ref| > atol + rtol * |ref|`` (NumPy's ``isclose`` rule).
A workload may override rtol/atol with its ``tolerance`` field.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

TOLERANCES: dict[str, dict[str, float]] = {
    "float32": {"rtol": 1e-4, "atol": 1e-5},
    "float16": {"rtol": 1e-2, "atol": 1e-3},
    "bfloat16": {"rtol": 5e-2, "atol": 1e-2},
}

# Statuses of a cell, in the order a summary lists them. "ok"-like statuses: pass, skipped, unsupported.
STATUSES = ("pass", "fail", "nan", "shape_mismatch", "error", "unsupported", "skipped", "crashed", "timeout")
GOOD_STATUSES = ("pass", "skipped", "unsupported")
REL_EPS = 1e-6  # max_rel_err = max |out - ref| / (|ref| + REL_EPS)


@dataclass(frozen=True)
class Numerics:
    status: str
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    cosine: float | None = None
    mismatch_fraction: float | None = None
    top1_agreement: float | None = None
    rtol: float | None = None
    atol: float | None = None
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def tolerance_for(workload, dtype: str = "float32") -> dict[str, float]:
    tol = dict(TOLERANCES[dtype])
    if workload is not None and workload.tolerance:
        tol.update(workload.tolerance)
    return tol


def compare(outputs: Sequence[np.ndarray], refs: Sequence[np.ndarray], rtol: float, atol: float,
            names: Sequence[str] | None = None, classes_axis: int | None = None) -> Numerics:
    """Compares every output with its reference; the figures are the worst over all outputs.

    Returns a Numerics whose status is pass, fail, nan or shape_mismatch.
    """
    names = list(names or [f"output[{i}]" for i in range(len(refs))])
    if len(outputs) != len(refs):
        return Numerics("shape_mismatch", reason=f"{len(outputs)} outputs, expected {len(refs)}")
    max_abs = max_rel = 0.0
    cos_min = 1.0
    bad = total = 0
    top1 = []
    for name, out, ref in zip(names, outputs, refs):
        out = np.asarray(out)
        if out.shape != ref.shape:
            return Numerics("shape_mismatch", reason=f"{name}: shape {list(out.shape)}, expected {list(ref.shape)}")
        out = out.astype(np.float64)
        finite = np.isfinite(out)
        if not finite.all() and np.isfinite(ref).all():
            frac = 1.0 - finite.mean()
            return Numerics("nan", mismatch_fraction=float(frac), rtol=rtol, atol=atol,
                            reason=f"{name}: {int((~finite).sum())} of {out.size} values are NaN/Inf")
        diff = np.abs(out - ref)
        max_abs = max(max_abs, float(diff.max(initial=0.0)))
        max_rel = max(max_rel, float((diff / (np.abs(ref) + REL_EPS)).max(initial=0.0)))
        bad += int((diff > atol + rtol * np.abs(ref)).sum())
        total += out.size
        cos_min = min(cos_min, cosine(out, ref))
        if classes_axis is not None and ref.ndim >= 2:
            top1.append(float((out.argmax(axis=classes_axis) == ref.argmax(axis=classes_axis)).mean()))
    frac = bad / total if total else 0.0
    status = "pass" if bad == 0 else "fail"
    reason = "" if bad == 0 else f"{bad} of {total} values outside rtol={rtol:g}, atol={atol:g}"
    return Numerics(status, max_abs, max_rel, cos_min, frac, min(top1) if top1 else None, rtol, atol, reason)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def verify_outputs(workload, outputs, refs, dtype: str = "float32") -> Numerics:
    tol = tolerance_for(workload, dtype)
    return compare(outputs, refs, tol["rtol"], tol["atol"], workload.outputs, workload.classes_axis)


def summarise(statuses: Mapping[str, int]) -> str:
    return ", ".join(f"{statuses[s]} {s}" for s in STATUSES if statuses.get(s))

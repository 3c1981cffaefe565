"""Numerical verification of a target's outputs against the float64 reference.

Default tolerances, per dtype the target computes in (one table):

| dtype    | rtol  | atol  | why |
|----------|-------|-------|-----|
| float32  | 1e-4  | 1e-5  | ~800 ulp of float32 relative: room for reassociation in reductions of a few thousand
|          |       |       | terms and for the framework's own exp/erf/tanh, far below any porting bug (those give
|          |       |       | errors of 1e-2 or more). atol covers elements whose reference is near 0. |
| float16  | 1e-2  | 1e-3  | 10-bit mantissa. |
| bfloat16 | 5e-2  | 1e-2  | 7-bit mantissa. |
| int8     | cosine >= 0.99 and top-1 agreement >= 0.9 on decidable rows (quantised targets); rtol/atol figures reported. |
| float16-weights | cosine >= 0.9999 and top-1 as int8 (float16 storage, float32 compute: TFLite fp16). |

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
    # Quantised (int8 weights/activations): element-wise errors of a few percent are expected, so the
    # verdict is cosine >= min_cosine and, where classes_axis is set, top-1 agreement >= min_top1.
    # rtol/atol still yield the element-wise figures (mismatch_fraction) reported next to them.
    # Top-1 is judged on decidable rows only: those whose reference top-1/top-2 margin exceeds twice the
    # row's error (random-weight LM heads have near-ties no quantised model can be asked to keep).
    "int8": {"rtol": 1e-1, "atol": 1e-1, "min_cosine": 0.99, "min_top1": 0.9},
    # float16 *storage* of float32 models (TFLite fp16): weights rounded to 11 bits, float32 compute.
    "float16-weights": {"rtol": 1e-2, "atol": 1e-3, "min_cosine": 0.9999, "min_top1": 0.9},
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
            names: Sequence[str] | None = None, classes_axis: int | None = None,
            min_cosine: float | None = None, min_top1: float | None = None) -> Numerics:
    """Compares every output with its reference; the figures are the worst over all outputs.

    With ``min_cosine`` (quantised dtypes) the verdict is cosine >= min_cosine and top-1 agreement
    >= ``min_top1`` (where classes_axis is set) instead of every element within rtol/atol.

    Returns a Numerics whose status is pass, fail, nan or shape_mismatch.
    """
    names = list(names or [f"output[{i}]" for i in range(len(refs))])
    if len(outputs) != len(refs):
        return Numerics("shape_mismatch", reason=f"{len(outputs)} outputs, expected {len(refs)}")
    max_abs = max_rel = 0.0
    cos_min = 1.0
    bad = total = 0
    top1, judged = [], []
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
            agree = out.argmax(axis=classes_axis) == ref.argmax(axis=classes_axis)
            top1.append(float(agree.mean()))
            if min_cosine is not None:  # decidable rows: reference margin > 2 x the row's error
                srt = np.sort(ref, axis=classes_axis)
                margin = np.take(srt, -1, axis=classes_axis) - np.take(srt, -2, axis=classes_axis)
                decidable = margin > 2 * diff.max(axis=classes_axis)
                judged.append(float(agree[decidable].mean()) if decidable.any() else 1.0)
    frac = bad / total if total else 0.0
    status = "pass" if bad == 0 else "fail"
    reason = "" if bad == 0 else f"{bad} of {total} values outside rtol={rtol:g}, atol={atol:g}"
    if min_cosine is not None:
        t1 = min(judged) if judged else None
        ok = cos_min >= min_cosine and (t1 is None or min_top1 is None or t1 >= min_top1)
        status = "pass" if ok else "fail"
        reason = "" if ok else (f"cosine {cos_min:.5f} (min {min_cosine:g})"
                                + (f", top-1 agreement on decidable rows {t1:.3f} (min {min_top1:g})"
                                   if t1 is not None else ""))
    return Numerics(status, max_abs, max_rel, cos_min, frac, min(top1) if top1 else None, rtol, atol, reason)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def verify_outputs(workload, outputs, refs, dtype: str = "float32", widen: float = 1.0) -> Numerics:
    """Outputs against the reference by the rule of ``dtype``; ``widen`` multiplies rtol and atol (a float32
    reference of a source: model, suite.sources.FLOAT32_REFERENCE_WIDEN)."""
    tol = dict(tolerance_for(workload, dtype))
    tol["rtol"], tol["atol"] = tol["rtol"] * widen, tol["atol"] * widen
    return compare(outputs, refs, tol["rtol"], tol["atol"], workload.outputs, workload.classes_axis,
                   tol.get("min_cosine"), tol.get("min_top1"))


def summarise(statuses: Mapping[str, int]) -> str:
    return ", ".join(f"{statuses[s]} {s}" for s in STATUSES if statuses.get(s))


@dataclass(frozen=True)
class TrainResult:
    """What a target's training step produced, mapped back to the canonical layout by the target."""

    losses: list  # loss of each step (before that step's update)
    grads: Mapping  # gradients of the first step: node -> param -> array
    params: Mapping  # trainable params after the last step: node -> param -> array
    step_grads: list | None = None  # the target's gradients before each step (step_grads[0] is grads)


def _check_tensor(kind, name, out, r, tol, norm_tol, allowance, problems):
    """One compared tensor: appends (status, reason) to ``problems`` when it is out of tolerance; returns
    (|out - r|, count of elements over ``tol``), or None when out is missing, misshapen or not finite. The
    verdict is element-wise (tol) or, with norm_tol, on the relative L2 error (||out - r|| - allowance) /
    max(||r||, floor) of the whole tensor."""
    if out is None:
        problems.append(("shape_mismatch", f"{kind} {name}: the target returned none"))
        return None
    out = np.asarray(out, dtype=np.float64)
    if out.shape != r.shape:
        problems.append(("shape_mismatch", f"{kind} {name}: shape {list(out.shape)}, expected {list(r.shape)}"))
        return None
    if not np.isfinite(out).all():
        problems.append(("nan", f"{kind} {name}: {int((~np.isfinite(out)).sum())} of {out.size} values are NaN/Inf"))
        return None
    d = np.abs(out - r)
    n_bad = int((d > tol).sum())
    if norm_tol is not None:
        rel = float(max(np.linalg.norm(d) - allowance, 0.0) / max(np.linalg.norm(r), norm_tol[1]))
        if rel > norm_tol[0]:
            problems.append(("fail", f"{kind} {name}: relative L2 error {rel:.2e} > {norm_tol[0]:g} "
                                     f"(max abs error {float(d.max()):.3g})"))
    elif n_bad:
        problems.append(("fail", f"{kind} {name}: {n_bad} of {out.size} values outside tolerance "
                                 f"(max abs error {float(d.max()):.3g})"))
    return d, n_bad


def verify_train(workload, got: TrainResult, ref, detail: dict | None = None) -> tuple[Numerics, dict]:
    """Compares a target's training steps with the float64 reference (suite.training.reference_train).

    Returns (Numerics, extra record fields). Checks, in order: the loss of every step against the
    reference's; every gradient of the first step (identical starting weights) against the reference's;
    every trainable parameter after the last step against the reference optimiser replayed in float64
    from the starting weights on the target's *own* gradients of each step. The last check isolates the
    optimiser (momentum, bias correction, epsilon, what is trained): the gradients of later steps are
    taken at the target's own weights, where a ReLU decision at float32 distance from its kink may
    legitimately have gone the other way, so comparing later parameters with the reference's would
    test float32 luck. Tolerances: suite.training. The Numerics figures are the worst over all compared
    values; the extra fields split them by kind. ``detail``, when given, receives the figures of every
    compared tensor by ``"gradient <node>/<param>"`` / ``"parameter <node>/<param>"`` (bench diagnose
    --mode train): status, max_abs_err, max_rel_err, cosine, mismatch_fraction, reason.
    """
    from suite.training import Optimizer
    from suite.training import TRAIN_TOLERANCES as T

    opt = workload.train.optimizer
    lr, steps = opt["learning_rate"], len(ref.losses)
    grad_max = max((float(np.abs(g).max(initial=0.0)) for ps in ref.grads.values() for g in ps.values()),
                   default=0.0)
    problems: list[tuple[str, str]] = []  # (status, reason), first one wins
    bad = total = 0
    max_abs = max_rel = 0.0
    cos_min = 1.0
    extra: dict = {"loss": float(got.losses[0]) if len(got.losses) else None}

    losses = np.asarray(got.losses, dtype=np.float64)
    if losses.shape != (steps,):
        problems.append(("shape_mismatch", f"{losses.size} losses, expected {steps} (one per step)"))
    elif not np.isfinite(losses).all():
        problems.append(("nan", f"loss is NaN/Inf at step {int(np.argmin(np.isfinite(losses))) + 1}"))
    else:
        diff = np.abs(losses - np.asarray(ref.losses))
        extra["loss_abs_err"] = float(diff.max())
        worse = diff > T["loss"]["atol"] + T["loss"]["rtol"] * np.abs(ref.losses)
        bad, total = int(worse.sum()), steps
        max_abs = float(diff.max())
        if worse.any():
            s = int(np.argmax(worse))
            problems.append(("fail", f"loss at step {s + 1}: {losses[s]:.7g}, reference {ref.losses[s]:.7g}"))

    def check(kind, name, out, r, tol, norm_tol=None, allowance=0.0):
        """Element-wise figures; the verdict is element-wise (tol) or, with norm_tol, on the relative
        L2 error (||out - r|| - allowance) / max(||r||, floor) of the whole tensor."""
        nonlocal bad, total, max_abs, max_rel
        before = len(problems)
        e = _check_tensor(kind, name, out, r, tol, norm_tol, allowance, problems)
        if e is not None:
            d, n_bad = e
            bad, total = bad + n_bad, total + d.size
            max_abs = max(max_abs, float(d.max(initial=0.0)))
            max_rel = max(max_rel, float((d / (np.abs(r) + REL_EPS)).max(initial=0.0)))
        if detail is not None:
            status, reason = problems[before] if len(problems) > before else ("pass", "")
            detail[f"{kind} {name}"] = {
                "status": status, "reason": reason,
                "max_abs_err": None if e is None else float(e[0].max(initial=0.0)),
                "max_rel_err": None if e is None else float((e[0] / (np.abs(r) + REL_EPS)).max(initial=0.0)),
                "cosine": None if e is None else cosine(np.asarray(out, dtype=np.float64), r),
                "mismatch_fraction": None if e is None else e[1] / max(e[0].size, 1)}
        return None if e is None else float(e[0].max(initial=0.0))

    g_err, g_cos, p_err = 0.0, 1.0, 0.0
    g_norm = float(np.sqrt(sum(float((g ** 2).sum()) for ps in ref.grads.values() for g in ps.values())))
    for node, ps in ref.grads.items():
        for k, r in ps.items():
            scale = max(float(np.abs(r).max(initial=0.0)), 0.1 * grad_max)
            kink = ref.kink[node][k]  # what ReLU decisions at float32 noise distance from the kink can move
            gtol = T["grad"]["rtol"] * np.abs(r) + T["grad"]["scale_atol"] * scale + kink
            out = got.grads.get(node, {}).get(k)
            e = check("gradient", f"{node}/{k}", out, r, gtol, (T["grad"]["rel_l2"], T["grad"]["floor"] * g_norm),
                      allowance=float(np.linalg.norm(kink)))
            if e is not None:
                g_err = max(g_err, e)
                if np.abs(r).max(initial=0.0) > 0.1 * grad_max:  # near-zero tensors: noise has no direction
                    g_cos = min(g_cos, cosine(np.asarray(out, dtype=np.float64), r))
    step_grads = list(got.step_grads) if got.step_grads is not None else [got.grads]
    if not problems and len(step_grads) != steps:
        problems.append(("shape_mismatch", f"{len(step_grads)} gradient sets, expected {steps} (one per step)"))
    elif not problems or (detail is not None and all(p[0] == "fail" for p in problems)):
        # replay the reference optimiser on the target's gradients, in float64 (for ``detail`` also after a
        # wrong loss or gradient: bench diagnose wants every update)
        replay = Optimizer(opt)
        expect = {n: dict(ps) for n, ps in ref.initial.items()}
        floor = {n: {k: np.full(v.shape, np.inf) for k, v in ps.items()} for n, ps in ref.initial.items()}
        for g in step_grads:
            g64 = {n: {k: np.asarray(g[n][k], dtype=np.float64) for k in ps} for n, ps in ref.initial.items()}
            for n, ps in g64.items():
                for k, v in ps.items():
                    floor[n][k] = np.minimum(floor[n][k], np.abs(v))
            expect = replay.step(expect, g64)
        for node, ps in expect.items():
            for k, pr in ps.items():
                slack = 0.0
                if opt["kind"] == "adam":
                    # TensorFlow's / Keras' "epsilon hat" is the textbook update with epsilon / sqrt(1 - b2^t)
                    # (31.6 epsilon at t = 1 for b2 = 0.999): the two differ by up to lr where |g| is near it.
                    eps_hat = opt["epsilon"] / np.sqrt(1.0 - opt["beta_2"])
                    slack = lr * steps * np.minimum(1.0, 2 * eps_hat / (floor[node][k] + opt["epsilon"]))
                e = check("parameter", f"{node}/{k}", got.params.get(node, {}).get(k), pr,
                          T["param"]["atol"] + T["param"]["rtol"] * np.abs(pr) + slack)
                if e is not None:
                    p_err = max(p_err, e)
    extra.update(grad_max_abs_err=g_err, grad_cosine=g_cos, param_max_abs_err=p_err)
    cos_min = g_cos
    frac = bad / total if total else 0.0
    if problems:
        order = {"nan": 0, "shape_mismatch": 1, "fail": 2}
        status = min((p[0] for p in problems), key=order.get)
        reason = next(r for s, r in problems if s == status)
        more = len(problems) - 1
        reason += f" (and {more} more)" if more else ""
    else:
        status, reason = "pass", ""
    return Numerics(status, max_abs, max_rel, cos_min, frac, None, T["grad"]["rtol"], None, reason), extra

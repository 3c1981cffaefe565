"""The entry points of `bench diagnose` and ``--diagnose``: run the cell, then localize it in inference
(:mod:`suite.diagnose`) or train mode (:mod:`suite.diagnose_train`) and write the report and the bundle.

Kept apart from both so that each depends on :mod:`suite.diagnose` only in one direction.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Callable

from suite.diagnose import CULPRIT, DIAGNOSED, Diagnosis, _localize, make_bundle, reduce_window, write_report


def diagnose_cell(cell, rec: dict, root: str | Path, **kw) -> dict:
    """``--diagnose`` of bench verify / run: the diagnosis columns of a failing cell (inference, or train of a
    graph workload) whose record is ``rec`` (it is not run again), its report under ``root``; {} for any
    other cell."""
    if rec.get("status") not in DIAGNOSED or (cell.mode == "train" and cell.workload.source is not None):
        return {}
    from suite.targets.common.artifacts import slug

    point = "-".join(f"{k}{v}" for k, v in cell.params)
    out = Path(root) / f"{cell.workload.name}-{point}-{slug(cell.target.id)}-{cell.profile.name}"
    out = out.with_name(out.name + "-train") if cell.mode == "train" else out
    diag = diagnose(cell.workload, cell.target, cell.profile, cell.params_dict, out, known=rec, mode=cell.mode, **kw)
    return diag.columns()


def diagnose(wl, info, profile, params: dict, out_dir: str | Path, *, timeout_s: float = 900.0,
             memory_limit: int = 0, artifacts_dir: str | None = None,
             log: Callable[[str], None] = lambda s: None, known: dict | None = None,
             mode: str = "inference") -> Diagnosis:
    """Runs the cell (unless ``known`` is its record already), and if it fails numerically, localizes where
    (see the module docstring; ``mode="train"``: suite.diagnose_train)."""
    from suite.plan import make_plan
    from suite.profiles import detect
    from suite.reference import reference_values
    from suite.scheduler import execute
    from suite.spec import load_workload
    from suite.verify import compare, tolerance_for
    from suite.weights import init_weights, make_inputs

    t0 = time.monotonic()
    out = Path(out_dir)
    work = out / "work"
    for old in (work, out / "bundle"):  # a previous diagnosis in the same folder
        if old.is_dir():
            shutil.rmtree(old)
    (out / "bundle.zip").unlink(missing_ok=True)
    avail = {profile.name: detect(profile)}

    def cells_of(workload, dump: str | None = None, mode: str = "inference"):
        cells = make_plan([workload], [info], {profile.name: profile}, avail, memory_limit=memory_limit, mode=mode)
        if len(cells) > 1:  # the workload itself: the chosen point (rewritten ones sweep one point)
            cells = [c for c in cells if c.params_dict == params]
        return [dataclasses.replace(c, dump=dump) for c in cells]

    def run(cells) -> dict[int, dict]:
        got: dict[int, dict] = {}
        execute(cells, lambda cell, rec: got.__setitem__(id(cell), rec), timeout_s=timeout_s,
                memory_limit=memory_limit, artifacts_dir=artifacts_dir)
        return got

    (cell,) = cells_of(wl, mode=mode)
    if known is None:
        log(f"diagnose {cell.label}: running the cell")
        rec = run([cell])[id(cell)]
    else:
        rec = known
    diag = Diagnosis(wl.name, params, info.id, profile.name, rec.get("status"), rec.get("status_reason") or "",
                     rec.get("stage"), out_dir=str(out), mode=mode)
    if diag.status == "pass":
        diag.summary = (f"no divergence: {info.id} matches the reference (max abs error {rec.get('max_abs_err'):.3g}, "
                        f"cosine {rec.get('cosine'):.6g})")
    elif diag.status not in DIAGNOSED:
        where = f" at stage {diag.stage}" if diag.stage else ""
        diag.summary = f"not a numerical divergence: {diag.status}{where}: {diag.reason}"
    elif mode == "train":
        from suite.diagnose_train import localize_train, make_train_bundle

        localize_train(diag, wl, params, work, cells_of, run, log)
        culprit = next((n for n in diag.nodes if n.verdict == CULPRIT), None)
        if diag.culprit == "optimizer":  # any node alone shows it: the first one from the loss
            culprit = next((n for n in diag.nodes if n.update and n.update["status"] in DIAGNOSED), None)
        small = diag.reduced_workload or (culprit.workload if culprit is not None else "")
        if small:
            diag.bundle = str(make_train_bundle(diag, small, info, profile, out / "bundle", cells_of, run, log))
    else:
        values = _localize(diag, wl, cell, params, work, cells_of, run, log, reference_values, init_weights,
                           make_inputs, compare, tolerance_for(wl, info.dtype or "float32"))
        small = None
        if diag.culprit is not None:
            small = load_workload(Path(next(n.workload for n in diag.nodes if n.name == diag.culprit)))
        elif diag.drift is not None:
            small = reduce_window(diag, wl, params, values, work, cells_of, run, log)
        if small is not None:
            diag.bundle = str(make_bundle(diag, small, info, profile, out / "bundle", cells_of, run, log,
                                          artifacts_dir))
    diag.seconds = round(time.monotonic() - t0, 1)
    write_report(diag, out)
    return diag

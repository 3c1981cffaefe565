"""`bench diagnose --mode train`: where a target's training step leaves the float64 reference.

The backward pass is walked from the loss (reverse graph order, the nodes the loss depends on). For every
node with trainable parameters, three questions:

* **in the graph**: the target's gradient of each of the node's parameters at the first step (identical
  starting weights) against the reference's (suite.gradients), judged by bench verify's own rule
  (suite.verify.verify_train, tensor by tensor); the worker saves what the target computed (``Cell.dump``).
* **alone**: the node alone in train mode, on the reference's values of its inputs (training-mode forward,
  cast to float32) and with the reference's gradient arriving at its output. It is a one-node workload
  whose loss is mean_squared_error against fixed labels ``y - c * g * n / 2`` (y the reference's output,
  g the reference's dLoss/dy, n its size), whose gradient at y is exactly ``c * g``: the gradient that
  reached the node in the graph, scaled by c to the output's magnitude (every gradient scales with it and
  the rule is relative), so float32 rounding of the node's forward pass stays negligible beside it.
* **update**: the node's parameters after the steps against the reference optimiser replayed in float64
  on the target's *own* gradients: what the optimiser and the choice of trained parameters did.

Verdicts, in order:

1. the **culprit** is the first node from the loss whose gradient is out of tolerance alone;
2. if every node is right alone but gradients in the graph are wrong from some node back (the one
   nearest the loss, k), a node between k and the loss passes a wrong gradient to its inputs. Windows of
   nodes from k forward (each with the reference's gradient at its last node) are bisected to the first
   end whose window fails: that end is the culprit (without it the window passes), the window the repro;
3. if every gradient matches and updated parameters do not: the optimiser when every node's update is
   off, else the first node whose parameters alone are updated differently (e.g. a parameter trained
   that should not be).

Same folder layout as inference (suite.diagnose): report.json / report.md, work/ with the rewritten
workloads (``bench verify --mode train -w work/nodes/<node>.yaml`` reruns one node), and a repro bundle
for a gradient culprit. NumPy and the suite only: targets run in their workers.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from suite.diagnose import (CULPRIT, INHERITED, KERAS_NODE, NOT_ISOLATED, OWN, Diagnosis, NodeReport, _ancestors, _num,
                            _raw_graph, _slug, _write_yaml, script_framework, summary_tail, window_workload)

BAD = ("nan", "shape_mismatch", "fail")  # worst first


def train_window_workload(wl, nodes: list, params: dict, values: dict, grad_out: np.ndarray, folder: Path,
                          stem: str) -> tuple[Path | None, str]:
    """``nodes`` of ``wl`` (graph order, connected, the last one the output) in train mode: what they read
    from outside fixed to the reference's values, and a loss whose gradient at the reference's output of the
    last node is ``grad_out`` scaled (module docstring). One step of the workload's optimiser. Returns
    (path, "") or (None, why it cannot be cut there)."""
    import yaml

    end = nodes[-1].name
    y = np.asarray(values[end], dtype=np.float64)
    g = np.asarray(grad_out, dtype=np.float64)
    if not np.abs(g).max(initial=0.0) > 0:
        return None, "no gradient reaches it from the loss"
    path, why = window_workload(wl, nodes, params, values, folder, stem)
    if path is None:
        return None, why
    c = max(float(np.abs(y).max(initial=0.0)), 1.0) / (float(np.abs(g).max()) * y.size / 2)
    np.savez(folder / f"{stem}.labels.npz", labels=(y - c * g * y.size / 2).astype(np.float32))
    data = yaml.safe_load(path.read_text())
    raw, _ = _raw_graph(wl)
    data["description"] += (f"; train mode, with the reference's gradient at {end} (scaled by {c:.3g}) as "
                            "mean_squared_error against fixed labels")
    data["train"] = {"loss": "mean_squared_error", "output": end,
                     "labels": {"distribution": {"kind": "file", "path": f"{stem}.labels.npz"}},
                     "optimizer": raw["train"]["optimizer"], "steps": wl.train.steps}
    _write_yaml(path, data)
    return path, ""


def _worst(figs: list[dict]) -> dict | None:
    """The figures of several tensors as one: the worst status, the largest errors, the lowest cosine."""
    if not figs:
        return None
    order = {s: i for i, s in enumerate(BAD)}
    worst = min(figs, key=lambda f: order.get(f["status"], len(BAD)))
    out = dict(worst)
    for k, pick in (("max_abs_err", max), ("max_rel_err", max), ("cosine", min), ("mismatch_fraction", max)):
        vals = [f[k] for f in figs if f.get(k) is not None]
        out[k] = pick(vals) if vals else None
    return out


def _by_node(detail: dict, kind: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for key, fig in detail.items():
        k, name = key.split(" ", 1)
        if k == kind:
            node, param = name.rsplit("/", 1)
            out.setdefault(node, []).append(dict(fig, param=param))
    return out


def _load_train(path: Path):
    """The TrainResult the worker saved (suite.worker._save_train)."""
    from suite.verify import TrainResult

    steps: dict[int, dict] = {}
    params: dict = {}
    with np.load(path) as z:
        losses = list(z["loss"])
        for key in z.files:
            if key.startswith("g"):
                step, name = key[1:].split(":", 1)
                n, k = name.rsplit("/", 1)
                steps.setdefault(int(step), {}).setdefault(n, {})[k] = z[key]
            elif key.startswith("p:"):
                n, k = key[2:].rsplit("/", 1)
                params.setdefault(n, {})[k] = z[key]
    step_grads = [steps[i] for i in sorted(steps)]
    return TrainResult(losses, step_grads[0] if step_grads else {}, params, step_grads)


def reference_point(wl, params: dict):
    """(TrainReference, training-mode values, dLoss/dvalue) of the first step, as the reference computes them
    (float32-rounded starting weights, as suite.training.reference_train)."""
    from suite.gradients import backprop, train_forward
    from suite.training import classes_axis, loss_and_grad, make_labels, reference_train
    from suite.weights import init_weights, make_inputs

    weights = init_weights(wl, params)
    inputs = make_inputs(wl, params)
    labels = make_labels(wl, params)
    ref = reference_train(wl, weights, inputs, labels)
    w = {n: {k: np.asarray(v, np.float32).astype(np.float64) for k, v in p.items()} for n, p in weights.items()}
    values = train_forward(wl, w, inputs, training=True)
    _, seed = loss_and_grad(wl.train.loss, values[wl.train.output], labels, classes_axis(wl))
    vgrads, _ = backprop(wl, w, values, {wl.train.output: seed}, training=True)
    return ref, values, vgrads


def localize_train(diag: Diagnosis, wl, params: dict, work: Path, cells_of, run, log) -> dict:
    """Fills ``diag`` (nodes, verdicts, culprit, summary); returns the reference's values (for the bundle)."""
    from suite.spec import load_workload
    from suite.training import trainable
    from suite.verify import verify_train
    from suite.weights import init_weights

    ref, values, vgrads = reference_point(wl, params)
    has_params = set(trainable(wl, init_weights(wl, params)))
    reached = _ancestors(wl, wl.train.output)
    order = [n for n in reversed(wl.nodes) if n.name in reached]  # the backward pass, from the loss
    work.mkdir(parents=True, exist_ok=True)
    dump = work / "train.out.npz"
    dump.unlink(missing_ok=True)
    (whole,) = cells_of(wl, str(dump), mode="train")
    jobs, node_cells, paths, notes, stems = [whole], {}, {}, {}, set()
    for node in order:
        if node.name not in has_params:
            notes[node.name] = "no parameters: its backward shows in the gradients of the nodes before it"
            continue
        stem = _slug(node.name)
        stem = f"{stem}_{len(stems)}" if stem in stems else stem
        stems.add(stem)
        path, why = train_window_workload(wl, [node], params, values, vgrads.get(node.name, 0.0), work / "nodes", stem)
        paths[node.name] = str(path or "")
        if path is None:
            notes[node.name] = why
            continue
        (node_cells[node.name],) = cells_of(load_workload(path), str(path.with_suffix(".out.npz")), mode="train")
        jobs.append(node_cells[node.name])
    log(f"diagnose (train) {whole.label}: {len(order)} nodes from the loss back: the training step once, and "
        f"{len(node_cells)} nodes with parameters alone")
    recs = run(jobs)
    detail: dict = {}
    if dump.exists():
        verify_train(wl, _load_train(dump), ref, detail)
    grads, updates = _by_node(detail, "gradient"), _by_node(detail, "parameter")
    for node in order:
        own, update = None, _worst(updates.get(node.name, []))
        if node.name in node_cells:
            own, own_update = _alone(node_cells[node.name], recs[id(node_cells[node.name])])
            update = own_update or update
        rep = NodeReport(node.name, node.op, _worst(grads.get(node.name, [])), own, note=notes.get(node.name, ""),
                         workload=paths.get(node.name, ""), update=update)
        diag.nodes.append(rep)
    whole_rec = recs[id(whole)]
    _train_verdicts(diag, wl, params, values, vgrads, work, cells_of, run, log,
                    None if detail else whole_rec)
    return values


def _alone(cell, rec: dict) -> tuple[dict | None, dict | None]:
    """(gradient figures, update figures) of a node run alone in train mode: its saved step checked
    tensor by tensor against its own float64 reference; the record's status when it did not run."""
    from suite.training import make_labels, reference_train
    from suite.verify import verify_train
    from suite.weights import init_weights, make_inputs

    if rec.get("status") not in ("pass",) + BAD or not Path(cell.dump).exists():
        return {"status": rec.get("status"), "max_abs_err": None, "max_rel_err": None, "cosine": None,
                "mismatch_fraction": None, "reason": rec.get("status_reason") or ""}, None
    wl, params = cell.workload, cell.params_dict
    ref = reference_train(wl, init_weights(wl, params), make_inputs(wl, params), make_labels(wl, params))
    detail: dict = {}
    verify_train(wl, _load_train(Path(cell.dump)), ref, detail)
    grads = [f for k, f in detail.items() if k.startswith("gradient ")]
    updates = [f for k, f in detail.items() if k.startswith("parameter ")]
    return _worst(grads), _worst(updates)


def _train_verdicts(diag: Diagnosis, wl, params, values, vgrads, work: Path, cells_of, run, log,
                    whole_failed: dict | None) -> None:
    for n in diag.nodes:
        own = n.own["status"] if n.own else None
        if own in BAD:
            n.verdict = OWN
        elif n.own and own != "pass":
            n.verdict = NOT_ISOLATED
            n.note = n.note or f"{own}: {n.own['reason']}"
        elif n.inherited and n.inherited["status"] in BAD:
            n.verdict = INHERITED
    first = next((n for n in diag.nodes if n.verdict == OWN), None)
    if first is not None:
        first.verdict = CULPRIT
        diag.culprit, diag.culprit_op = first.name, first.op
        before = sum(n.verdict == INHERITED for n in diag.nodes[diag.nodes.index(first) + 1:])
        diag.summary = (f"culprit: {first.name} ({first.op}): with the reference's inputs and the reference's "
                        f"gradient at its output, its parameter gradients are already out of tolerance "
                        f"({first.own['status']}, max abs error {_num(first.own.get('max_abs_err'))}); "
                        f"{before} node(s) before it inherit it")
    elif any(n.verdict == INHERITED for n in diag.nodes):
        _reduce_backward(diag, wl, params, values, vgrads, work, cells_of, run, log)
    else:
        off = [n for n in diag.nodes if n.update and n.update["status"] in BAD]
        updated = [n for n in diag.nodes if n.update]
        if off and len(off) == len(updated) > 1:
            opt = wl.train.optimizer
            for n in off:
                n.verdict, n.note = OWN, n.note or "updated wrong"
            diag.culprit, diag.culprit_op = "optimizer", opt["kind"]
            diag.summary = (f"culprit: the optimizer ({opt['kind']}): every gradient matches the reference, but the "
                            f"parameters of all {len(updated)} nodes after {wl.train.steps} step(s) differ from the "
                            f"reference optimiser replayed on the target's own gradients ({off[0].update['reason']})")
        elif off:
            n = off[0]  # the first from the loss
            n.verdict = CULPRIT
            for m in off[1:]:
                m.verdict = OWN
            diag.culprit, diag.culprit_op = n.name, n.op
            also = [m.name for m in off[1:]]
            diag.summary = (f"culprit: {n.name} ({n.op}): its gradients match the reference; its parameters after "
                            f"{wl.train.steps} step(s) do not ({n.update['reason']}), while other nodes' are "
                            f"right: what is trained or updated at this op differs"
                            + (f"; also updated wrong: {', '.join(also)}" if also else ""))
        else:
            diag.summary = ("no node's gradient or update is out of tolerance: the divergence is in the loss alone"
                            if whole_failed is None else "the training step's gradients were not saved")
    summary_tail(diag, whole_failed, "the training step did not run to the end")


def _descendants(wl, name: str) -> set[str]:
    out, changed = {name}, True
    while changed:
        changed = False
        for n in wl.nodes:
            if n.name not in out and any(s in out for s in n.inputs):
                out.add(n.name)
                changed = True
    return out


def _reduce_backward(diag: Diagnosis, wl, params, values, vgrads, work: Path, cells_of, run, log) -> None:
    """Every node is right alone, gradients in the graph are wrong from node k back: bisect the end of the
    window k..end (nodes that depend on k and that the loss depends on, graph order) to the first end whose
    window fails; that end passes a wrong gradient back (module docstring)."""
    from suite.spec import load_workload

    k = next(n for n in diag.nodes if n.verdict == INHERITED)
    reach = _ancestors(wl, wl.train.output) & _descendants(wl, k.name)
    chain = [n for n in wl.nodes if n.name in reach]  # chain[0] is k
    diag.drift = k.name
    tried: dict[int, tuple] = {}

    def probe(j: int):
        if j not in tried:
            keep = _ancestors(wl, chain[j].name) & reach
            subset = [n for n in chain if n.name in keep]
            path, why = train_window_workload(wl, subset, params, values, vgrads.get(chain[j].name, 0.0),
                                              work / "reduce", f"to_{_slug(chain[j].name)}")
            status = None
            if path is not None:
                (c,) = cells_of(load_workload(path), mode="train")
                status = run([c])[id(c)].get("status")
            log(f"diagnose (train): {len(subset)} node(s) from {k.name} to {chain[j].name}: {status or why}")
            tried[j] = (subset, path, status)
        return tried[j]

    head = (f"every node with parameters is right alone, but in the graph the gradients of {k.name} ({k.op}) "
            f"and before are out of tolerance: the gradient reaching {k.name} from the loss is wrong")
    last = len(chain) - 1
    if last == 0 or probe(last)[2] not in BAD:
        diag.summary = head + (f"; not reduced: from {k.name} to the output, cut out on the reference's inputs, it "
                               f"is {probe(last)[2] if last else 'the node alone'}")
        return
    lo, hi = 0, last  # lo passes (k alone, checked above), hi fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(mid)[2] in BAD:
            hi = mid
        else:
            lo = mid
    subset, path, status = probe(hi)
    end = chain[hi]
    rep = next((n for n in diag.nodes if n.name == end.name), None)
    if rep is not None:
        rep.verdict, rep.note = CULPRIT, "passes a wrong gradient back (reduced window)"
    diag.culprit, diag.culprit_op = end.name, end.op
    diag.reduced, diag.reduced_workload = [n.name for n in subset], str(path)
    diag.summary = (head + f"; culprit: {end.name} ({end.op}) passes a wrong gradient back: the window "
                    f"{k.name}..{end.name} ({len(subset)} nodes) {status} with the reference's gradient at its end, "
                    f"the window that stops before it passes ({len(tried)} cells)")


def make_train_bundle(diag: Diagnosis, small_path: str, info, profile, folder: Path, cells_of, run, log) -> Path:
    """The culprit's train-mode workload (one node, or the reduced window) with its inputs and labels, the
    float64 reference's gradients and the target's, a README; zipped beside the folder."""
    import yaml

    from suite.spec import load_workload
    from suite.training import make_labels, reference_train
    from suite.verify import verify_train
    from suite.weights import init_weights, make_inputs

    folder.mkdir(parents=True, exist_ok=True)
    wl = load_workload(small_path)
    params = wl.param_grid()[0]
    (cell,) = cells_of(wl, str(folder / "actual.npz"), mode="train")
    rec = run([cell])[id(cell)]
    weights, inputs, labels = init_weights(wl, params), make_inputs(wl, params), make_labels(wl, params)
    ref = reference_train(wl, weights, inputs, labels)
    np.savez(folder / "inputs.npz", **inputs)
    np.savez(folder / "labels.npz", labels=labels)
    np.savez(folder / "weights.npz", **{f"{n}.{k}": v for n, p in weights.items() for k, v in p.items()})
    np.savez(folder / "reference.npz", loss=np.asarray(ref.losses),
             **{f"grad.{n}.{k}": v for n, p in ref.grads.items() for k, v in p.items()},
             **{f"param.{n}.{k}": v for n, p in ref.params.items() for k, v in p.items()})
    worst = []
    if (folder / "actual.npz").exists():
        got = _load_train(folder / "actual.npz")
        np.savez(folder / "actual.npz", loss=np.asarray(got.losses, np.float64),
                 **{f"grad.{n}.{k}": np.asarray(v) for n, p in got.grads.items() for k, v in p.items()},
                 **{f"param.{n}.{k}": np.asarray(v) for n, p in got.params.items() for k, v in p.items()})
        detail: dict = {}
        verify_train(wl, got, ref, detail)
        worst = sorted(((k, f) for k, f in detail.items() if f["status"] in BAD),
                       key=lambda kf: -(kf[1]["max_abs_err"] or 0))
    data = yaml.safe_load(Path(wl.path).read_text())
    for entry in data["inputs"]:
        entry["distribution"] = {"kind": "file", "path": "inputs.npz"}
    data["train"]["labels"] = {"distribution": {"kind": "file", "path": "labels.npz"}}
    data["name"] = _slug(f"{diag.workload}_{diag.culprit}_train_repro")
    _write_yaml(folder / "workload.yaml", data)
    nodes = " → ".join(f"`{n.name}` ({n.op})" for n in wl.nodes)
    shapes = ", ".join(f"{s.name} {list(wl.shapes(params)[s.name])} {s.dtype}" for s in wl.inputs)
    script_lines = ["No standalone script for this bundle: the scripts build one node with parameters and check "
                    "its gradients; the suite's command above reproduces it."]
    if worst and any(k.startswith("gradient ") for k, _ in worst):
        from suite.standalone import NotStandalone

        try:
            made = train_script(info, wl, diag, folder, profile)
        except NotStandalone as e:
            made, script_lines = None, [f"No standalone script: the op's code cannot be copied out ({e})."]
        if made is not None:
            (folder / made[0]).write_text(made[1])
            needs = _TRAIN_NEEDS[script_framework(info)]
            script_lines = [f"Reproduce without the suite (NumPy and {needs} only; exit 1 when a gradient is off):",
                            "", "```sh", f"python {made[0]}", "```"]
    last = wl.nodes[-1]
    if diag.culprit == "optimizer":
        title = f"the {diag.culprit_op} optimizer's update is wrong"
    elif len(wl.nodes) > 1:
        title = f"`{last.op}` (`{last.name}`) passes a wrong gradient back"
    elif any(k.startswith("gradient ") for k, _ in worst):
        title = f"the gradient of `{last.op}` is wrong"
    else:
        title = f"the update of `{last.op}`'s parameters is wrong"
    lines = [f"# {info.id}: {title}", "",
             f"Found by `bench diagnose --mode train` in the workload `{diag.workload}` (culprit `{diag.culprit}`), "
             f"profile `{profile.name}`. This folder holds {'that node' if len(wl.nodes) == 1 else 'the window'} "
             "alone, on the values its inputs had there, with a mean squared error loss whose gradient at its "
             "output is the one that reached it in the graph (scaled).", "",
             f"- nodes: {nodes}", f"- inputs: {shapes}",
             f"- expected (NumPy float64: hand-written backward pass, the optimiser replayed on the target's own "
             f"gradients; `reference.npz`) vs actual (`actual.npz`): "
             f"**{rec.get('status')}**, {rec.get('status_reason') or ''}",
             *(f"  - {k}: max abs error {_num(f['max_abs_err'])}, cosine {_num(f['cosine'], '.6g')}"
               for k, f in worst[:5]),
             f"- versions: `{rec.get('versions') or '{}'}`", "",
             "Files: `workload.yaml` (the suite's workload, `train:` section included), `inputs.npz`, `labels.npz`, "
             "`weights.npz` (its parameters, float64, canonical layout: `<node>.<param>`), `reference.npz` and "
             "`actual.npz` (`loss` per step, `grad.<node>.<param>` of the first step, `param.<node>.<param>` after the "
             "last; the check of the parameters replays the reference optimiser on the target's own gradients, so "
             "the reference's `param.*` are the float64 trajectory, shown for scale).", "",
             "Reproduce with the suite:", "", "```sh",
             f"bench verify --mode train -w workload.yaml -t '{info.id}' -p {profile.name}", "```", "",
             *script_lines]
    (folder / "README.md").write_text("\n".join(lines) + "\n")
    (folder / "record.json").write_text(json.dumps({k: rec.get(k) for k in ("status", "status_reason", "versions")},
                                                   indent=1) + "\n")
    shutil.make_archive(str(folder), "zip", root_dir=folder.parent, base_dir=folder.name)
    return folder


_TRAIN_NEEDS = {"torch": "PyTorch", "jax": "JAX", "tensorflow": "TensorFlow", "keras": "Keras and its backend"}


def train_script(info, wl, diag: Diagnosis, folder: Path, profile=None) -> tuple[str, str] | None:
    """(file name, source) of a standalone script that redoes the first training step's gradients of a
    one-node bundle with its framework alone (torch, JAX, TensorFlow, Keras and its backend): the suite's own
    code of the op and of its weight mapping, copied into ``folder / "src"`` as for inference scripts (the bug
    of a test target included). None for a window. Raises :class:`suite.standalone.NotStandalone` when the code
    cannot be copied out."""
    import importlib
    import textwrap

    from suite.diagnose import _planted, import_line, mapping_lines
    from suite.gradients import NON_TRAINABLE
    from suite.standalone import Closure
    from suite.targets.common.optables import has_params, lookup
    from suite.training import TRAIN_TOLERANCES

    fw = script_framework(info)
    if fw not in _TRAIN_RUN or len(wl.nodes) != 1 or not has_params(wl.nodes[0].op):
        return None
    node = wl.nodes[0]
    closure = Closure()
    imp = import_line

    frozen = tuple(NON_TRAINABLE.get(node.op, ()))  # canonical names: TensorFlow's native names are the same
    with _planted(info):
        ops = importlib.import_module(f"suite.targets.{fw}.ops")
        weights = importlib.import_module(f"suite.targets.{fw}.weights")
        train = importlib.import_module(f"suite.targets.{fw}.train")
        lines = [f"import {fw}" if fw != "tensorflow" else "import tensorflow as tf",
                 imp(closure.add(lookup(ops.OPS, node.op, fw)), "build_module" if fw == "torch" else "op_fn")]
        lines += mapping_lines(closure, lookup(weights.WEIGHTS, node.op, fw, "weight table"))
        if fw in ("torch", "jax"):
            lines.append(imp(closure.add(ops.native), ""))
        if fw == "keras":  # the backend is chosen before keras is imported; gradients as the target takes them
            lines = ["import os", f"os.environ['KERAS_BACKEND'] = {info.options.backend!r}"] + lines
            lines.append(imp(closure.add(train.gradient_fn), ""))
        if fw == "torch":
            lines.append(imp(closure.add(train.frozen), ""))
        else:
            from suite.targets.common import nhwc

            lines += [imp(closure.add(ops.Graph), "")] + [imp(closure.add(c), "") for c in (nhwc.Tracker, nhwc.Ops,
                                                                                          nhwc.Val)]
        if fw == "jax":
            frozen = tuple(train.FROZEN.get(node.op, ()))
        attrs = closure.literal(dict(node.attrs))
    lines += closure.script_imports()
    closure.write(folder / "src", f"The suite's {fw} code of op {node.op}, for repro_{fw}_train.py; imports no suite.")
    shapes = wl.shapes(wl.param_grid()[0])
    in_nhwc = []
    if fw == "jax":
        from suite.targets.jax.model import nhwc_inputs

        in_nhwc = sorted(nhwc_inputs(wl, shapes))
    jit = bool(getattr(info.options, "jit_compile", False))
    doc = textwrap.fill(
        f"Needs only NumPy and {_TRAIN_NEEDS[fw]}. src/ holds the suite's own {fw} code of this op, copied "
        "verbatim (its builder, the mapping of its canonical weights to the native layout, which parameters "
        "train): the node is built from weights.npz in train mode as the target builds it, run on inputs.npz, "
        "its mean squared error against labels.npz differentiated, and each parameter's gradient, mapped back "
        "to the canonical layout, compared with reference.npz (the suite's hand-written float64 backward pass). "
        "Exit 1 when one is off by more than the suite's relative L2 tolerance.", 110)
    fields = dict(
        target=info.id, workload=diag.workload, node=node.name, op=node.op, doc=doc, attrs=attrs,
        imports="\n".join(f"{ln}  # noqa: E402" for ln in lines if ln), inputs=list(node.inputs),
        shapes={k: tuple(v) for k, v in shapes.items()}, rel_l2=TRAIN_TOLERANCES["grad"]["rel_l2"],
        threads=int(getattr(profile, "threads", 0) or 0), frozen=frozen, in_nhwc=in_nhwc, jit=jit,
        int_inputs=[s.name for s in wl.inputs if s.dtype.startswith("int")])
    source = _TRAIN_HEAD.format(**fields) + _TRAIN_RUN[fw].format(**fields) + _TRAIN_TAIL.format(**fields)
    return f"repro_{fw}_train.py", source


_TRAIN_HEAD = '''"""Standalone reproduction of a wrong gradient of {target}: node {node} ({op}) of {workload}, in training.

{doc}
"""
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "src"))

{imports}
NODE, OP = {node!r}, {op!r}
ATTRS = {attrs}
INPUTS = {inputs!r}  # the node's inputs, in order
SHAPES = {shapes!r}  # canonical (NCHW) shapes of its inputs and output
INT_INPUTS = {int_inputs!r}
REL_L2 = {rel_l2!r}  # bench verify --mode train: relative L2 error of each gradient
THREADS = {threads!r}
node = types.SimpleNamespace(name=NODE, op=OP, attrs=ATTRS, inputs=INPUTS)

stored = np.load(HERE / "weights.npz")  # canonical float64, "<node>.<param>"
params = {{k.split(".", 1)[1]: stored[k] for k in stored.files if k.split(".", 1)[0] == NODE}}
index, size = {{}}, 0  # every canonical element numbered 1, 2, ...: the mapping shows where each one goes
for k, v in params.items():
    index[k] = np.arange(size + 1, size + 1 + v.size, dtype=np.float64).reshape(v.shape)
    size += v.size
given = np.load(HERE / "inputs.npz")
labels = np.load(HERE / "labels.npz")["labels"].astype(np.float32)
'''

_TRAIN_RUN = {
    "torch": '''
if THREADS:
    torch.set_num_threads(THREADS)
in_shapes = [SHAPES[n] for n in INPUTS]
module = build_module(native(), ATTRS, in_shapes, map_weights(params, ATTRS)).train()
numbered = build_module(native(), ATTRS, in_shapes, map_weights(index, ATTRS))
where = {{n: p.detach().numpy() for n, p in numbered.named_parameters()}}
for n, p in module.named_parameters():
    p.requires_grad_(not frozen(n))
xs = [torch.from_numpy(np.ascontiguousarray(given[n], dtype=np.int64 if n in INT_INPUTS else np.float32))
      for n in INPUTS]
loss = torch.nn.functional.mse_loss(module(*xs), torch.from_numpy(labels))
loss.backward()
grads = {{n: p.grad.numpy() for n, p in module.named_parameters() if p.grad is not None}}
loss = loss.item()
version = f"torch {{torch.__version__}}"
''',
    "jax": '''
jax.config.update("jax_platforms", "cpu")
IN_NHWC = {in_nhwc!r}  # images read by a spatial op arrive NHWC, as the target feeds them
FROZEN = {frozen!r}  # native names kept constant in a step (batch norm's moving statistics)
jx = native()
jnp = jx.jnp
g = Graph(Tracker(Ops(jnp.transpose, jax.nn.softmax, jnp.add, jnp.multiply, jnp.concatenate)), True)
xs = [np.ascontiguousarray(given[n].transpose(0, 2, 3, 1) if n in IN_NHWC else given[n],
                           dtype=np.int32 if n in INT_INPUTS else np.float32) for n in INPUTS]
native_weights = map_weights(params, ATTRS)
where = map_weights(index, ATTRS)
train = {{k: v for k, v in native_weights.items() if k not in FROZEN}}
const = {{k: v for k, v in native_weights.items() if k in FROZEN}}


def loss_fn(train, xs):
    y = op_fn(jx, g, node, [Val(x, n in IN_NHWC) for n, x in zip(INPUTS, xs)], {{**const, **train}})
    t = jnp.transpose(y.t, (0, 3, 1, 2)) if y.nhwc else y.t
    return jnp.mean(jnp.square(t - labels))


loss, grads = jax.jit(jax.value_and_grad(loss_fn))(jax.device_put(train), xs)
grads = {{k: np.asarray(v) for k, v in grads.items()}}
loss = float(loss)
version = f"jax {{jax.__version__}}"
''',
    "tensorflow": '''
if THREADS:
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
FROZEN = {frozen!r}  # kept constant in a step (batch norm's moving statistics)
where = map_weights(index, ATTRS)
variables = {{k: tf.Variable(v, trainable=k not in FROZEN) for k, v in map_weights(params, ATTRS).items()}}
g = Graph(Tracker(Ops(tf.transpose, tf.nn.softmax, tf.add, tf.multiply, tf.concat)), SHAPES, True, None)
images = [len(SHAPES[n]) == 4 and n not in INT_INPUTS for n in INPUTS]  # rank-4 float inputs arrive NHWC
xs = [tf.constant(np.ascontiguousarray(given[n].transpose(0, 2, 3, 1) if img else given[n],
                                       dtype=np.int64 if n in INT_INPUTS else np.float32))
      for n, img in zip(INPUTS, images)]
trained = {{k: v for k, v in variables.items() if k not in FROZEN}}


def step(*xs):
    with tf.GradientTape() as tape:
        y = op_fn(tf, g, node, [Val(x, img) for x, img in zip(xs, images)], variables)
        t = tf.transpose(y.t, (0, 3, 1, 2)) if y.nhwc else y.t
        loss = tf.reduce_mean(tf.square(t - labels))
    return loss, tape.gradient(loss, trained)


loss, grads = tf.function(step, autograph=False, jit_compile={jit!r})(*xs)
grads = {{k: v.numpy() for k, v in grads.items()}}
loss = float(loss)
version = f"tensorflow {{tf.__version__}}"
''',
}

_TRAIN_RUN["keras"] = KERAS_NODE + '''model = keras.Model(inputs=inputs, outputs=o.transpose(y.t, (0, 3, 1, 2)) if y.nhwc else y.t)
mse = keras.losses.MeanSquaredError()
model.compile(loss=mse)  # jit_compile: Keras' "auto", as the target's model
for layer, _ in g.placed:
    layer.set_weights(map_weights(index, ATTRS))
where = {{v.path: v.numpy() for v in model.trainable_variables}}
for layer, _ in g.placed:
    layer.set_weights(map_weights(params, ATTRS))
target = o.convert_to_tensor(labels)
grads = dict(zip([v.path for v in model.trainable_variables],
                 gradient_fn(keras, keras.backend.backend(), model, mse)(xs, target)))
loss = float(o.convert_to_numpy(mse(target, model(xs, training=False))))
version = f"keras {{keras.__version__}} ({{keras.backend.backend()}})"
'''

_TRAIN_TAIL = '''
flat = np.zeros(size)
for n, grad in grads.items():  # scatter each native gradient to its canonical elements
    idx = np.rint(np.asarray(where[n], dtype=np.float64).ravel()).astype(np.int64)
    at = idx > 0
    flat[idx[at] - 1] = np.asarray(grad, dtype=np.float64).ravel()[at]
reference = np.load(HERE / "reference.npz")
print(f"{{version}}, numpy {{np.__version__}}; loss {{loss:.7g}}, reference {{reference['loss'][0]:.7g}}")
wrong, start = False, 0
for k, v in params.items():
    got, start = flat[start:start + v.size].reshape(v.shape), start + v.size
    if f"grad.{{NODE}}.{{k}}" not in reference.files:
        continue  # not trained (batch norm's moving statistics)
    r = reference[f"grad.{{NODE}}.{{k}}"]
    err = np.linalg.norm(got - r) / max(np.linalg.norm(r), 1e-30)
    cos = float((got * r).sum() / max(np.linalg.norm(got) * np.linalg.norm(r), 1e-300))
    print(f"gradient {{k}}: relative L2 error {{err:.3g}}, max abs error {{np.abs(got - r).max():.3g}}, "
          f"cosine {{cos:.6g}}")
    wrong |= bool(err > REL_L2)
sys.exit(1 if wrong else 0)
'''

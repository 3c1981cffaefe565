"""`bench diagnose`: where, node by node, a target's result leaves the float64 reference.

For a cell that fails numerically, two questions per node of the graph (in topological order):

* **inherited**: the target's value of the node, with the whole graph before it, against the reference's
  value of that node. The graph is rewritten with every node as an output and run once through the
  target, export routes included (the rewritten model is exported through the same route); the worker
  saves what the target returned (``Cell.dump``).
* **own**: the node alone, run by the target on the reference's values of its inputs (cast to their
  declared dtype: float32 for values between nodes), against the node in float64 on those same inputs.
  Each node becomes a one-node workload whose inputs are fixed values (``distribution: {kind: file}``),
  with the same node name and seed, hence the same weights; it is a cell like any other (isolated in a
  worker; exported first for an export route; a node the converter cannot take alone says so).

The **culprit** is the first node whose own error is out of the target's tolerance; a node out of
tolerance only through its inputs *inherits*. If no node is out of tolerance on its own but the result
is, the error accumulates (rounding over many nodes), and the report names the first node where the
inherited error leaves the tolerance, then reduces it to the smallest window of nodes ending there that
still fails on the reference's inputs (:func:`reduce_window`, a bisection of its first node, then
delta debugging over the sub-graphs of that window).
A passing cell gives "no divergence"; a cell that errors, is
unsupported, crashes or times out gives its stage and message, not a localization.

Everything lands in the output folder: ``report.json``, ``report.md``, and ``work/`` with the rewritten
workloads (valid workload files: ``bench verify -w work/nodes/<node>.yaml`` reruns one node), their input
values and the saved outputs. NumPy and the suite only: targets run in their workers.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

# Verdicts of a node, in the order a reader cares about them.
CULPRIT, OWN, INHERITED, CLEAN, NOT_ISOLATED = "culprit", "own error", "inherited", "clean", "not isolated"


@dataclasses.dataclass
class NodeReport:
    name: str
    op: str
    inherited: dict | None  # compare() figures of the node's value in the whole graph; None: not measured
    own: dict | None  # the one-node cell's status and figures; None: not run
    verdict: str = CLEAN
    note: str = ""
    workload: str = ""  # the node's one-node workload file (work/nodes/<node>.yaml); "" when not written
    update: dict | None = None  # train mode: the node's parameters after the steps (suite.diagnose_train)


@dataclasses.dataclass
class Diagnosis:
    workload: str
    params: dict
    target: str
    profile: str
    status: str  # the cell's own status: pass, fail, nan, error, ...
    reason: str
    stage: str | None = None
    culprit: str | None = None
    culprit_op: str | None = None
    summary: str = ""
    nodes: list[NodeReport] = dataclasses.field(default_factory=list)
    out_dir: str = ""
    bundle: str | None = None  # the repro bundle's folder (a .zip beside it), when a culprit was found
    drift: str | None = None  # no culprit: the first node whose value in the graph leaves the tolerance
    reduced: list[str] = dataclasses.field(default_factory=list)  # the smallest failing window ending there
    reduced_workload: str = ""  # its workload file (work/reduce/...)
    seconds: float = 0.0
    mode: str = "inference"  # or train (suite.diagnose_train): gradients, walked back from the loss

    @property
    def localized(self) -> bool:
        return bool(self.nodes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def columns(self) -> dict:
        """The record's diagnosis columns (suite.record.Diagnosis)."""
        node = next((n for n in self.nodes if n.name == self.culprit), None)
        return {"diagnosis_culprit": self.culprit, "diagnosis_op": self.culprit_op,
                "diagnosis_own_err": node.own.get("max_abs_err") if node and node.own else None,
                "diagnosis_inherited_err": node.inherited.get("max_abs_err") if node and node.inherited else None,
                "diagnosis_summary": self.summary, "diagnosis_bundle": self.bundle}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "node"


def _raw_graph(wl) -> tuple[dict, dict[str, dict]]:
    """The workload file's data and its graph entries by node name (what the rewritten workloads copy)."""
    from suite.spec import read_yaml

    data = read_yaml(wl.path)
    return data, {entry["name"]: entry for entry in data["graph"]}


def _input_entry(spec) -> dict:
    """A workload input as a file entry, with a file input's path made absolute (the copy lives elsewhere)."""
    dist = dict(spec.distribution)
    if dist["kind"] == "file":
        dist = {"kind": "file", "path": dist["path"]}
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype, "distribution": dist}


def _write_yaml(path: Path, data: dict) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120))


def all_nodes_workload(wl, params: dict, folder: Path) -> Path:
    """The workload with every node an output, at one sweep point (no train section, no classes axis)."""
    data, _ = _raw_graph(wl)
    out = {k: v for k, v in data.items() if k not in ("train", "classes_axis", "outputs", "sweep", "inputs")}
    out.update(name=_slug(f"{wl.name}_all_nodes"), description=f"{wl.name} with every node an output (bench diagnose)",
               inputs=[_input_entry(s) for s in wl.inputs], sweep={k: [v] for k, v in params.items()},
               outputs=[n.name for n in wl.nodes])
    path = folder / "all_nodes.yaml"
    _write_yaml(path, out)
    return path


def node_workload(wl, node, params: dict, values: dict[str, np.ndarray], folder: Path,
                  stem: str | None = None) -> tuple[Path | None, str]:
    """A one-node workload: ``node`` reading fixed values (the reference's, cast to each input's dtype) from
    ``<stem>.npz`` beside it (``stem``: the node's name made a file name). Returns (path, "") or (None, why it
    cannot be isolated)."""
    stem = stem or _slug(node.name)
    _, graph = _raw_graph(wl)
    declared = {s.name: s for s in wl.inputs}
    sources = list(dict.fromkeys(node.inputs))  # a node may read one value twice (add(x, x))
    arrays, entries = {}, []
    for src in sources:
        value = values[src]
        if value.ndim == 0 or value.shape[0] != params["batch"]:
            return None, f"its input {src!r} (shape {list(value.shape)}) does not lead with the batch dimension"
        dtype = declared[src].dtype if src in declared else "float32"
        arrays[src] = np.asarray(value).astype(dtype)
        entries.append({"name": src, "shape": ["batch", *value.shape[1:]], "dtype": dtype,
                        "distribution": {"kind": "file", "path": f"{stem}.npz"}})
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{stem}.npz", **arrays)
    data = {"name": _slug(f"{wl.name}_node_{node.name}"),
            "description": f"node {node.name} ({node.op}) of {wl.name} alone, on the reference's values of its inputs",
            "seed": wl.seed, "inputs": entries, "sweep": {k: [v] for k, v in params.items()},
            "graph": [graph[node.name]], "outputs": [node.name]}
    if wl.tolerance:
        data["tolerance"] = dict(wl.tolerance)
    path = folder / f"{stem}.yaml"
    _write_yaml(path, data)
    return path, ""


def window_workload(wl, nodes: list, params: dict, values: dict[str, np.ndarray], folder: Path,
                    stem: str) -> tuple[Path | None, str]:
    """A workload of some connected nodes of ``wl`` (in graph order) whose last one is the output; every value
    they read from outside the window is a fixed input (the reference's values, cast to the input's dtype,
    float32 between nodes) in ``<stem>.npz``. Returns (path, "") or (None, why it cannot be cut there)."""
    _, graph = _raw_graph(wl)
    declared = {s.name: s for s in wl.inputs}
    inside = {n.name for n in nodes}
    sources = list(dict.fromkeys(src for n in nodes for src in n.inputs if src not in inside))
    arrays, entries = {}, []
    for src in sources:
        value = np.asarray(values[src])
        if value.ndim == 0 or value.shape[0] != params["batch"]:
            return None, (f"the value {src!r} cut there (shape {list(value.shape)}) does not lead with the batch "
                          "dimension")
        dtype = declared[src].dtype if src in declared else "float32"
        arrays[src] = value.astype(dtype)
        entries.append({"name": src, "shape": ["batch", *value.shape[1:]], "dtype": dtype,
                        "distribution": {"kind": "file", "path": f"{stem}.npz"}})
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{stem}.npz", **arrays)
    what = (f"node {nodes[0].name} ({nodes[0].op})" if len(nodes) == 1 else
            f"nodes {nodes[0].name}..{nodes[-1].name} ({len(nodes)})")
    data = {"name": _slug(f"{wl.name}_{stem}"),
            "description": f"{what} of {wl.name}, on the reference's values of what they read",
            "seed": wl.seed, "inputs": entries, "sweep": {k: [v] for k, v in params.items()},
            "graph": [graph[n.name] for n in nodes], "outputs": [nodes[-1].name]}
    if wl.tolerance:
        data["tolerance"] = dict(wl.tolerance)
    path = folder / f"{stem}.yaml"
    _write_yaml(path, data)
    return path, ""


def _ancestors(wl, name: str) -> set[str]:
    """``name`` and every node it depends on."""
    return _upstream({n.name: n for n in wl.nodes}, name)


def _upstream(by_name: dict, name: str) -> set[str]:
    """``name`` and every node of ``by_name`` it reaches through inputs that are in ``by_name``."""
    out, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n in out or n not in by_name:
            continue
        out.add(n)
        todo.extend(by_name[n].inputs)
    return out


def reduce_window(diag: Diagnosis, wl, params: dict, values: dict, work: Path, cells_of, run, log):
    """No node is wrong alone but the graph is: the smallest window of nodes ending at the node where the
    error leaves the tolerance (``diag.drift``) that still fails the same way on the reference's values of
    what it reads. Bisection over the window's first node (in graph order, ancestors of the end only): the
    window from the first node is the whole prefix (it fails: the graph did), the end alone passes (no
    culprit); each probe is one isolated cell through the target's route. Then :func:`ddmin` cuts what the
    window holds that the failure does not need (a branch beside the path that drifts). Returns the workload
    (loaded), or None when even the prefix does not fail cut out of the graph."""
    from suite.spec import load_workload

    names = [n.name for n in wl.nodes]
    end = names.index(diag.drift)
    keep = _ancestors(wl, diag.drift)
    tried: dict[int, tuple] = {}
    seen: dict[frozenset, tuple] = {}  # every cell run, by its node set

    def test(subset: list, stem: str):
        key = frozenset(n.name for n in subset)
        if key not in seen:
            path, why = window_workload(wl, subset, params, values, work / "reduce", stem)
            status = None
            if path is not None:
                (c,) = cells_of(load_workload(path))
                status = run([c])[id(c)].get("status")
            log(f"diagnose: {len(subset)} node(s) {subset[0].name}..{diag.drift}: {status or why}")
            seen[key] = (path, status)
        return seen[key]

    def probe(start: int):
        if start not in tried:
            subset = [n for n in wl.nodes[start:end + 1] if n.name in keep]
            tried[start] = (subset, *test(subset, f"from_{_slug(names[start])}"))
        return tried[start]

    if probe(0)[2] != diag.status:
        diag.summary += (f"; not reduced: the graph up to {diag.drift}, cut out on the reference's inputs, is "
                         f"{probe(0)[2] or 'not a workload'}, not {diag.status}")
        return None
    lo, hi = 0, end
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(mid)[2] == diag.status:
            lo = mid
        else:
            hi = mid
    subset, path, _ = probe(lo)
    if len(subset) > 2:  # then cut what the window holds that the failure does not need (branches)
        subset, path = ddmin(subset, lambda sub, i: test(sub, f"dd{i}"), diag.status, path)
    diag.reduced, diag.reduced_workload = [n.name for n in subset], str(path)
    diag.summary += (f"; reduced to {len(subset)} node(s) that still {diag.status} on the reference's inputs: "
                     f"{', '.join(diag.reduced)} ({len(seen)} cells; without any one of them it does not {diag.status})")
    return load_workload(path)


def connected(nodes: list) -> list:
    """``nodes`` (graph order) pruned to the last one and what it reads within them: a node whose consumers
    were all removed would be dead (its consumers read the reference's value instead)."""
    live = _upstream({n.name: n for n in nodes}, nodes[-1].name)
    return [n for n in nodes if n.name in live]


def ddmin(nodes: list, test, status: str, path) -> tuple[list, object]:
    """Delta debugging (Zeller's ddmin, complements only) over the nodes before the last one: removes chunks
    of them while the rest (:func:`connected`: what a removed node fed reads the reference's value) still
    gives ``status``. Sub-graphs, not windows: a branch that does not matter is cut while the path that does
    is kept. ``test(subset, i)`` -> (path, status) runs one cell (memoised by the caller). Returns the
    1-minimal nodes (no single node can go) and their workload path."""
    body, last, n, i = nodes[:-1], nodes[-1], 2, 0
    while body:
        n = min(n, len(body))
        size = -(-len(body) // n)
        chunks = [body[k:k + size] for k in range(0, len(body), size)]
        for chunk in chunks:
            gone = {m.name for m in chunk}
            rest = connected([m for m in body if m.name not in gone] + [last])
            i += 1
            p, got = test(rest, i)
            if got == status:
                body, path, n = rest[:-1], p, max(n - 1, 2)
                break
        else:
            if size == 1:
                break
            n = min(n * 2, len(body))
    return body + [last], path


def _figures(n) -> dict:
    """The figures of a Numerics (or a record) a report shows."""
    get = n.get if isinstance(n, dict) else lambda k, d=None: getattr(n, k, d)
    return {"status": get("status"), "max_abs_err": get("max_abs_err"), "max_rel_err": get("max_rel_err"),
            "cosine": get("cosine"), "mismatch_fraction": get("mismatch_fraction"),
            "reason": get("reason") or get("status_reason") or ""}


DIAGNOSED = ("fail", "nan", "shape_mismatch")  # the statuses a diagnosis localizes


def _localize(diag, wl, cell, params, work, cells_of, run, log, reference_values, init_weights, make_inputs,
              compare, tol) -> None:
    from suite.spec import load_workload

    values = reference_values(wl, init_weights(wl, params), make_inputs(wl, params))
    work.mkdir(parents=True, exist_ok=True)
    dump = work / "all_nodes.out.npz"
    dump.unlink(missing_ok=True)
    jobs, notes = [], {}
    (all_cell,) = cells_of(load_workload(all_nodes_workload(wl, params, work)), str(dump))
    jobs.append(all_cell)
    node_cells, paths, stems = {}, {}, set()
    for node in wl.nodes:
        stem = _slug(node.name)
        if stem in stems:  # two names that make one file name (Conv, conv)
            stem = f"{stem}_{len(stems)}"
        stems.add(stem)
        path, why = node_workload(wl, node, params, values, work / "nodes", stem)
        paths[node.name] = str(path or "")
        if path is None:
            notes[node.name] = why
            continue
        (node_cells[node.name],) = cells_of(load_workload(path))
        jobs.append(node_cells[node.name])
    log(f"diagnose {cell.label}: {len(wl.nodes)} nodes: the whole graph with every node an output, and "
        f"{len(node_cells)} nodes alone")
    recs = run(jobs)
    all_rec = recs[id(all_cell)]
    got = None
    if dump.exists():
        with np.load(dump) as z:
            got = [z[f"out{i}"] for i in range(len(wl.nodes))]
    cmp_kw = dict(rtol=tol["rtol"], atol=tol["atol"], min_cosine=tol.get("min_cosine"), min_top1=tol.get("min_top1"))
    for i, node in enumerate(wl.nodes):
        inherited = None
        if got is not None:
            inherited = _figures(compare([got[i]], [np.asarray(values[node.name], np.float64)], names=[node.name],
                                         **cmp_kw))
        own = None
        if node.name in node_cells:
            own = _figures(recs[id(node_cells[node.name])])
        diag.nodes.append(NodeReport(node.name, node.op, inherited, own, note=notes.get(node.name, ""),
                                     workload=paths.get(node.name, "")))
    _verdicts(diag, all_rec if got is None else None)
    return values


def _verdicts(diag: Diagnosis, whole_failed: dict | None) -> None:
    bad = ("fail", "nan", "shape_mismatch")
    for n in diag.nodes:
        own = n.own["status"] if n.own else None
        if own in bad:
            n.verdict = OWN
        elif own != "pass":
            n.verdict = NOT_ISOLATED
            if n.own and not n.note:
                n.note = f"{own}: {n.own['reason']}"
        elif n.inherited and n.inherited["status"] in bad:
            n.verdict = INHERITED
    first = next((n for n in diag.nodes if n.verdict == OWN), None)
    later = 0
    if first is not None:
        first.verdict = CULPRIT
        diag.culprit, diag.culprit_op = first.name, first.op
        after = diag.nodes[diag.nodes.index(first) + 1:]
        later = sum(n.verdict == INHERITED for n in after)
        others = [n.name for n in after if n.verdict == OWN]
        diag.summary = (f"culprit: {first.name} ({first.op}): on the reference's inputs it is already out of "
                        f"tolerance ({first.own.get('status')}, max abs error {_num(first.own.get('max_abs_err'))}, cosine "
                        f"{_num(first.own.get('cosine'), '.6g')}); "
                        f"{later} later node(s) inherit it" + (f"; also wrong alone: {', '.join(others)}" if others else ""))
    else:
        drift = next((n for n in diag.nodes if n.verdict == INHERITED), None)
        if drift is not None:
            diag.drift = drift.name
            diag.summary = (f"no node is out of tolerance alone; the error accumulates and leaves the tolerance "
                            f"at {drift.name} ({drift.op}), max abs error {_num(drift.inherited.get('max_abs_err'))}")
        else:
            diag.summary = "no node is out of tolerance, alone or in the graph: the divergence was not localized"
    summary_tail(diag, whole_failed, "the graph with every node an output did not run")


def summary_tail(diag: Diagnosis, whole_failed: dict | None, what: str) -> None:
    """Appends the nodes that could not run alone, and why the whole (``what``) did not run, if it did not."""
    unisolated = [n.name for n in diag.nodes if n.verdict == NOT_ISOLATED]
    if unisolated:
        diag.summary += f"; not isolated: {', '.join(unisolated)}"
    if whole_failed is not None:
        reason = (whole_failed.get("status_reason") or "").splitlines()
        diag.summary += f"; {what} ({whole_failed.get('status')}: {reason[0] if reason else ''})"


def _num(v, fmt: str = ".3g") -> str:
    return "-" if v is None else format(v, fmt)


def _cell(f: dict | None) -> str:
    if not f:
        return "-"
    if f["status"] not in ("pass", "fail", "nan"):
        return f["status"]
    frac = f.get("mismatch_fraction")
    outside = "-" if frac is None else "<0.1%" if 0 < frac < 1e-3 else format(frac, ".1%")
    return f"{_num(f['max_abs_err'])} / {_num(f['cosine'], '.6g')} / {outside} {f['status']}"


def table(diag: Diagnosis) -> list[str]:
    """The per-node table as text lines (Markdown); in train mode, gradients from the loss back."""
    if diag.mode == "train":
        lines = ["| node | op | gradient in the graph: max abs / cosine / outside | gradient alone: max abs / "
                 "cosine / outside | update after the steps (alone) | verdict |", "|---|---|---|---|---|---|"]
    else:
        lines = ["| node | op | in the graph: max abs / cosine / outside | alone: max abs / cosine / outside | "
                 "verdict |", "|---|---|---|---|---|"]
    for n in diag.nodes:
        verdict = f"**{n.verdict}**" if n.verdict == CULPRIT else n.verdict
        if n.note:
            verdict += f" ({n.note})"
        update = f" {_cell(n.update)} |" if diag.mode == "train" else ""
        lines.append(f"| {n.name} | {n.op} | {_cell(n.inherited)} | {_cell(n.own)} |{update} {verdict} |")
    return lines


def write_report(diag: Diagnosis, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(diag.as_dict(), indent=1, default=str) + "\n")
    point = " ".join(f"{k}={v}" for k, v in diag.params.items())
    md = [f"# {diag.workload} [{point}] {diag.target} @{diag.profile}" + (" (train)" if diag.mode == "train" else ""),
          "",
          f"Cell: **{diag.status}**" + (f" ({diag.reason})" if diag.reason else ""), "", diag.summary, ""]
    if diag.nodes:
        train = " --mode train" if diag.mode == "train" else ""
        md += table(diag) + ["", f"Rerun one node alone: `bench verify{train} -w work/nodes/<node>.yaml -t "
                             f"'{diag.target}' -p {diag.profile}` (from this folder)."]
    if diag.reduced:
        md += ["", f"Reduced: {len(diag.reduced)} node(s) ({', '.join(diag.reduced)}) still {diag.status} on the "
               f"reference's inputs, one fewer does not: `{diag.reduced_workload}`."]
    if diag.bundle:
        md += ["", f"Repro bundle: `{diag.bundle}` (and `{diag.bundle}.zip`): the "
               + ("culprit alone" if diag.culprit else "reduced window")
               + ", with inputs, weights, reference, actual outputs, the artifact and a README."]
    (out / "report.md").write_text("\n".join(md) + "\n")


# ---- the repro bundle ----

def _batch_one(wl, folder: Path) -> Path | None:
    """The one-node workload at batch 1 (its fixed inputs cut to their first row), or None if it is already."""
    import yaml

    if wl.sweep["batch"] == (1,):
        return None
    data = yaml.safe_load(Path(wl.path).read_text())
    arrays = {}
    for spec in wl.inputs:
        with np.load(spec.distribution["path"]) as z:
            arrays[spec.name] = z[spec.name][:1]
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "inputs.npz", **arrays)
    for entry in data["inputs"]:
        entry["distribution"] = {"kind": "file", "path": "inputs.npz"}
    data["sweep"]["batch"] = [1]
    data["name"] = _slug(data["name"] + "_b1")
    path = folder / "workload.yaml"
    _write_yaml(path, data)
    return path


SHRINK_CELLS = 4  # at most this many cells try smaller sizes for a bundle ($BENCH_DIAGNOSE_SHRINK_CELLS; 0: none)


def _shrink(wl, rec: dict, expect: str, folder: Path, cells_of, run, log) -> tuple:
    """The bundle's workload made smaller still: each axis of its fixed inputs after the batch (sequence,
    channels or features, height, width) cut in turn, in every input of that size on that axis, to 1 and
    else to half, while the workload still loads (the ops allow the shape) and the cell still gives
    ``expect``; at most SHRINK_CELLS cells. A smaller feature or channel count gives the node new seeded
    weights of the new shape: the repro needs the failure, not those numbers. Returns (workload, record,
    what was shrunk) of the smallest that still fails, its outputs in ``folder/actual.npz``."""
    import yaml

    from suite.spec import SpecError, load_workload

    budget = int(os.environ.get("BENCH_DIAGNOSE_SHRINK_CELLS", SHRINK_CELLS))
    if budget <= 0 or any(s.distribution["kind"] != "file" for s in wl.inputs):
        return wl, rec, ""
    arrays = {}
    for spec in wl.inputs:
        with np.load(spec.distribution["path"]) as z:
            arrays[spec.name] = z[spec.name]
    before = ", ".join(f"{n} {list(a.shape)}" for n, a in arrays.items())
    tries, rank = 0, max(a.ndim for a in arrays.values())
    for axis in range(1, rank):
        for to_one in (True, False):
            size = next(a.shape[axis] for a in arrays.values() if a.ndim > axis)
            if size < 2 or tries >= budget:
                break
            keep = 1 if to_one else size // 2
            if not to_one and keep == 1:
                break  # 1 was just tried
            cut = {n: a.take(range(keep), axis=axis) if a.ndim > axis and a.shape[axis] == size else a
                   for n, a in arrays.items()}
            sub = folder / f"shrink{tries}"
            sub.mkdir(parents=True, exist_ok=True)
            np.savez(sub / "inputs.npz", **cut)
            data = yaml.safe_load(Path(wl.path).read_text())
            for entry in data["inputs"]:
                entry["shape"] = ["batch", *cut[entry["name"]].shape[1:]]
                entry["distribution"] = {"kind": "file", "path": "inputs.npz"}
            _write_yaml(sub / "workload.yaml", data)
            try:
                cand = load_workload(sub / "workload.yaml")
            except SpecError as e:
                log(f"diagnose: axis {axis} at {keep}: {str(e).splitlines()[0]}")
                continue
            tries += 1
            (cell,) = cells_of(cand, str(sub / "actual.npz"))
            got = run([cell])[id(cell)]
            shapes = ", ".join(f"{n} {list(a.shape)}" for n, a in cut.items())
            log(f"diagnose: {shapes}: {got.get('status')}")
            if got.get("status") == expect:
                wl, rec, arrays = cand, got, cut
                if (sub / "actual.npz").exists():
                    shutil.copyfile(sub / "actual.npz", folder / "actual.npz")
                break  # this axis is as small as it gets
    after = ", ".join(f"{n} {list(a.shape)}" for n, a in arrays.items())
    return wl, rec, (f"shrunk from {before} to {after}, {tries} cells" if after != before else "")


def make_bundle(diag: Diagnosis, node_wl, info, profile, folder: Path, cells_of, run, log,
                artifacts_dir: str | None) -> Path:
    """The culprit alone, as small as it still fails (batch 1 if it still fails there), with everything an
    upstream report needs: workload, inputs, weights, float64 reference and the target's outputs (.npz),
    the exported artifact, a README and, for an ONNX Runtime route, a script that needs only NumPy and ONNX
    Runtime. Zipped beside the folder."""
    from suite.spec import load_workload
    from suite.reference import reference_values
    from suite.targets.common.artifacts import cell_dir, is_export_target
    from suite.paths import cache_root
    from suite.weights import init_weights, make_inputs

    folder.mkdir(parents=True, exist_ok=True)
    wl, why_full, rec = node_wl, "", None
    small = _batch_one(node_wl, folder / "b1")
    if diag.culprit is not None:
        what, expect = f"{diag.culprit} alone", next(n for n in diag.nodes if n.name == diag.culprit).own["status"]
    else:
        what, expect = f"the {len(node_wl.nodes)} nodes of the reduced window", diag.status
    if small is not None:
        log(f"diagnose: trying {what} at batch 1")
        cand = load_workload(small)
        (cell,) = cells_of(cand, str(folder / "actual.npz"))
        got = run([cell])[id(cell)]
        if got.get("status") == expect:
            wl, rec = cand, got  # its run is the bundle's: outputs saved, figures in hand
        else:
            why_full = f"at batch 1 it is {got.get('status')}, so the bundle keeps batch {node_wl.sweep['batch'][0]}"
    if rec is None:
        (cell,) = cells_of(wl, str(folder / "actual.npz"))
        rec = run([cell])[id(cell)]
    if rec.get("status") == expect:
        wl, rec, shrunk = _shrink(wl, rec, expect, folder, cells_of, run, log)
        why_full = "; ".join(w for w in (why_full, shrunk) if w)
    params = wl.param_grid()[0]
    weights = init_weights(wl, params)
    inputs = make_inputs(wl, params)
    ref = reference_values(wl, weights, inputs)
    np.savez(folder / "inputs.npz", **inputs)
    np.savez(folder / "weights.npz", **{f"{n}.{k}": v for n, p in weights.items() for k, v in p.items()})
    np.savez(folder / "reference.npz", **{o: np.asarray(ref[o], np.float64) for o in wl.outputs})
    if (folder / "actual.npz").exists():  # rename out0.. to the output names
        with np.load(folder / "actual.npz") as z:
            actual = {o: z[f"out{i}"] for i, o in enumerate(wl.outputs)}
        np.savez(folder / "actual.npz", **actual)
    data = json.loads(json.dumps(_yaml_of(wl)))
    for entry in data["inputs"]:
        entry["distribution"] = {"kind": "file", "path": "inputs.npz"}
    data["name"] = _slug(f"{diag.workload}_{diag.culprit or diag.drift}_repro")
    _write_yaml(folder / "workload.yaml", data)
    for tried in [folder / "b1", *folder.glob("shrink*")]:
        shutil.rmtree(tried, ignore_errors=True)
    has_artifact = False
    if is_export_target(info):
        root = Path(artifacts_dir) if artifacts_dir else cache_root() / "artifacts"
        src = cell_dir(root, wl, params, info, profile.device)
        if src.is_dir():
            shutil.copytree(src, folder / "artifact", dirs_exist_ok=True)
            has_artifact = True
    tol = {k: rec.get(k) for k in ("rtol", "atol")}
    script = None
    made, no_script = None, ""
    if has_artifact:
        made = standalone_script(info, wl, diag, tol, profile)
    elif len(wl.nodes) > 1:
        no_script = ("No standalone script: the native scripts build one node, and this window has "
                     f"{len(wl.nodes)}; the suite's command above reproduces it.")
    else:
        from suite.standalone import NotStandalone

        try:
            made = native_script(info, wl, diag, tol, folder, profile)
        except NotStandalone as e:
            no_script = (f"No standalone script: the op's {info.family} code cannot be copied out of the suite "
                         f"({e}).")
    if made is not None:
        script = folder / made[0]
        script.write_text(made[1])
    needs = (_NEEDS.get(_script_key(info)) or _NATIVE_NEEDS.get(info.family, "")) if script is not None else ""
    _bundle_readme(folder, diag, wl, info, profile, rec, script, has_artifact, why_full, needs, no_script)
    shutil.make_archive(str(folder), "zip", root_dir=folder.parent, base_dir=folder.name)
    return folder


def _yaml_of(wl) -> dict:
    import yaml

    return yaml.safe_load(Path(wl.path).read_text())


def _bundle_readme(folder: Path, diag, wl, info, profile, rec: dict, script, has_artifact: bool,
                   why_full: str, needs: str = "", no_script: str = "") -> None:
    node = wl.nodes[0]
    attrs = ", ".join(f"{k}={v!r}" for k, v in node.attrs.items())
    shapes = ", ".join(f"{s.name} {list(wl.shapes(wl.param_grid()[0])[s.name])} {s.dtype}" for s in wl.inputs)
    versions = rec.get("versions") or "{}"
    if len(wl.nodes) == 1:
        head = [f"# {info.id}: `{node.op}` is wrong on its own", "",
                f"Found by `bench diagnose` in the workload `{diag.workload}` (node `{diag.culprit}`), profile "
                f"`{profile.name}`. This folder holds that node alone, on the values its inputs had there"
                + (f" ({why_full})" if why_full else "") + ".", "", f"- op: `{node.op}` ({attrs})"]
    else:
        chain = " → ".join(f"`{n.name}` ({n.op})" for n in wl.nodes)
        head = [f"# {info.id}: {len(wl.nodes)} nodes drift out of tolerance together", "",
                f"Found by `bench diagnose` in the workload `{diag.workload}`, profile `{profile.name}`: no node is "
                f"out of tolerance alone, but the error they add up leaves it at `{diag.drift}`. This folder holds "
                "the smallest window of nodes ending there that still fails, on the values its inputs had there "
                "(one node fewer passes)" + (f" ({why_full})" if why_full else "") + ".", "",
                f"- nodes: {chain}"]
    lines = [*head, f"- inputs: {shapes}",
             f"- expected (NumPy float64 of the same op on the same inputs, `reference.npz`) vs actual "
             f"(`actual.npz`): **{rec.get('status')}**, {rec.get('status_reason') or ''}; max abs error "
             f"{_num(rec.get('max_abs_err'))}, max rel error {_num(rec.get('max_rel_err'))}, cosine "
             f"{_num(rec.get('cosine'), '.6g')}, tolerance rtol={rec.get('rtol')}, atol={rec.get('atol')}",
             f"- versions: `{versions}`", "",
             "Files: `workload.yaml` (the suite's workload of "
             f"{'this one node' if len(wl.nodes) == 1 else 'these nodes'}), "
             "`inputs.npz` (its inputs, by name), "
             "`weights.npz` (its parameters, float64, canonical layout: `<node>.<param>`), `reference.npz`, "
             "`actual.npz` (by output name)" + (", `artifact/` (the exported model and its manifest)"
                                               if has_artifact else "")
             + (", `src/` (the suite's own code of this op, copied verbatim for the script)"
                if (folder / "src").is_dir() else "") + ".", "",
             "Reproduce with the suite:", "", "```sh",
             f"bench verify -w workload.yaml -t '{info.id}' -p {profile.name}", "```"]
    if script is not None:
        lines += ["", f"Reproduce without the suite (NumPy and {needs} only; exit 1 when the mismatch "
                      "shows):",
                  "", "```sh", f"python {script.name}", "```"]
    else:
        lines += ["", no_script or "No standalone script for this route yet: the suite's command above "
                                   "reproduces it."]
    (folder / "README.md").write_text("\n".join(lines) + "\n")


_SCRIPT_HEAD = '''"""Standalone reproduction of a wrong result of {target}: node {node} ({op}) of {workload}.

Needs only NumPy and {needs}. Loads artifact/ (the exported model and its manifest), feeds inputs.npz (in the
artifact's layout), compares with reference.npz (NumPy float64 of the same op on the same inputs).
Exit 1 when it mismatches.
"""
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RTOL, ATOL = {rtol!r}, {atol!r}
THREADS = {threads!r}  # the profile's thread count ({profile}), as the target ran; 0: the runtime's default
OUTPUTS = {outputs!r}
man = json.loads((HERE / "artifact" / "manifest.json").read_text())
ARTIFACT = HERE / "artifact" / man["artifact"]
NAMES = [s["name"] for s in man["inputs"]]  # the workload's input names, in order
given = np.load(HERE / "inputs.npz")
arrays = []
for spec in man["inputs"]:
    x = given[spec["name"]]
    if spec["nhwc"]:  # the artifact takes channels-last
        x = x.transpose(0, 2, 3, 1)
    arrays.append(np.ascontiguousarray(x, dtype=spec["dtype"]))
'''

_SCRIPT_RUN = {
    "onnxruntime": '''
import onnxruntime as ort

so = ort.SessionOptions()
so.intra_op_num_threads, so.inter_op_num_threads = THREADS, 1
sess = ort.InferenceSession(str(ARTIFACT), so, providers=["CPUExecutionProvider"])
names = [i.name for i in sess.get_inputs()]
feed = dict(zip(NAMES, arrays)) if sorted(names) == sorted(NAMES) else dict(zip(names, arrays))
outs = sess.run(None, feed)
print(f"onnxruntime {{ort.__version__}}, numpy {{np.__version__}}")
''',
    "litert": '''
try:
    from ai_edge_litert import interpreter
except ImportError:
    from tflite_runtime import interpreter


def order(name):  # converters number mangled names in argument order: serving_default_x_1:0 ...
    m = re.search(r"(\\d+)$", name)
    return (int(m.group(1)) if m else -1, name)


kwargs = {{"model_path": str(ARTIFACT), "num_threads": THREADS or 1}}
if {no_xnnpack!r}:  # the reference builtin kernels, without the XNNPACK delegate
    kwargs["experimental_op_resolver_type"] = interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
it = interpreter.Interpreter(**kwargs)
sigs = it.get_signature_list()
runner = it.get_signature_runner("serving_default" if "serving_default" in sigs else next(iter(sigs)))
ins, outs_d = runner.get_input_details(), runner.get_output_details()
names = NAMES if sorted(ins) == sorted(NAMES) else sorted(ins, key=order)
res = runner(**dict(zip(names, arrays)))
outs = [res[n] for n in sorted(outs_d, key=order)]
print(f"LiteRT interpreter ({{interpreter.__name__}}), numpy {{np.__version__}}")
''',
    "openvino": '''
import openvino as ov

core = ov.Core()
config = {{"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_PRECISION_HINT": {precision!r}}}
if THREADS:
    config["INFERENCE_NUM_THREADS"] = str(THREADS)
compiled = core.compile_model(core.read_model(str(ARTIFACT)), "CPU", config)


def name(port):
    try:
        return port.get_any_name().split(":")[0]
    except RuntimeError:
        return ""


names = [name(p) for p in compiled.inputs]
xs = [arrays[NAMES.index(n)] for n in names] if sorted(names) == sorted(NAMES) else arrays
request = compiled.create_infer_request()
request.infer(xs)
outs = [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]
print(f"openvino {{ov.__version__}}, numpy {{np.__version__}}")
''',
    "iree": '''
import iree.runtime as ireert

# the driver of the device the .vmfb was compiled for: local-task (CPU, llvm-cpu) or cuda
config = ireert.Config("cuda" if man.get("iree", {{}}).get("device") == "cuda" else "local-task")
context = ireert.SystemContext(config=config)
vm = ireert.VmModule.mmap(context.instance, str(ARTIFACT))
context.add_vm_module(vm)
res = context.modules[vm.name]["main"](*[ireert.asdevicearray(config.device, x) for x in arrays])
outs = [o.to_host() for o in (res if isinstance(res, (tuple, list)) else (res,))]
print(f"iree.runtime (iree-base-runtime), numpy {{np.__version__}}")
''',
}

_SCRIPT_RUN["torch.export"] = '''
import torch

module = torch.export.load(str(ARTIFACT)).module()
with torch.inference_mode():
    res = module(*[torch.from_numpy(x) for x in arrays])
outs = [o.numpy() for o in (res if isinstance(res, (tuple, list)) else (res,))]
print(f"torch {{torch.__version__}}, numpy {{np.__version__}}")
'''
_SCRIPT_RUN["saved_model"] = '''
import tensorflow as tf

loaded = tf.saved_model.load(str(ARTIFACT))
res = loaded.forward(*[tf.constant(x) for x in arrays])
outs = [o.numpy() for o in (res if isinstance(res, (tuple, list)) else (res,))]
print(f"tensorflow {{tf.__version__}}, numpy {{np.__version__}}")
'''
_SCRIPT_RUN["jax.export"] = '''
import jax

jax.config.update("jax_platforms", "cpu")
exported = jax.export.deserialize(bytearray(ARTIFACT.read_bytes()))
res = jax.jit(exported.call)(*arrays)
outs = [np.asarray(jax.device_get(o)) for o in (res if isinstance(res, (tuple, list)) else (res,))]
print(f"jax {{jax.__version__}}, numpy {{np.__version__}}")
'''

_SCRIPT_TAIL = '''
reference = np.load(HERE / "reference.npz")
wrong = False
for i, (name, y) in enumerate(zip(OUTPUTS, outs)):
    y = np.asarray(y)
    if man["outputs_nhwc"][i]:
        y = y.transpose(0, 3, 1, 2)
    y, r = y.astype(np.float64), reference[name]
    diff = np.abs(y - r)
    bad = diff > ATOL + RTOL * np.abs(r)
    print(f"{{name}}: max abs error {{diff.max():.3g}}; {{int(bad.sum())}} of {{bad.size}} values outside "
          f"rtol={{RTOL:g}}, atol={{ATOL:g}}")
    if bad.any():
        wrong = True
        at = tuple(int(j) for j in np.argwhere(bad)[0])
        print(f"  first at {{list(at)}}: got {{y[at]:.7g}}, expected {{r[at]:.7g}}")
sys.exit(1 if wrong else 0)
'''
_NEEDS = {"onnxruntime": "ONNX Runtime", "litert": "the LiteRT interpreter (ai-edge-litert or tflite-runtime)",
          "openvino": "OpenVINO", "iree": "IREE's runtime (iree-base-runtime)", "torch.export": "PyTorch",
          "saved_model": "TensorFlow", "jax.export": "JAX"}
_SCRIPT_NAME = {"torch.export": "repro_torch_export.py", "saved_model": "repro_saved_model.py",
                "jax.export": "repro_jax_export.py"}


def _script_key(info) -> str:
    """Which loader a bundle's script uses: the runtime's, or for a round trip (torch>export@torch, ...) the
    framework's own loader of its artifact."""
    load = getattr(info.options, "load", None)
    return load if info.module.endswith(".roundtrip") and load else info.runtime


_NATIVE_HEAD = '''"""Standalone reproduction of a wrong result of {target}: node {node} ({op}) of {workload}.

{doc}
"""
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "src"))

{imports}
RTOL, ATOL = {rtol!r}, {atol!r}
THREADS = {threads!r}  # the profile's thread count ({profile}), as the target ran; 0: the runtime's default
OUTPUTS = {outputs!r}
NODE = {node!r}
ATTRS = {attrs}
INPUTS = {inputs!r}  # the node's inputs, in order
SHAPES = {shapes!r}  # canonical (NCHW) shapes of its inputs and output
INT_INPUTS = {int_inputs!r}
man = {{"outputs_nhwc": [False] * len(OUTPUTS)}}  # outputs below are already canonical (NCHW)
node = types.SimpleNamespace(name=NODE, op={op!r}, attrs=ATTRS, inputs=INPUTS)

stored = np.load(HERE / "weights.npz")  # canonical float64, "<node>.<param>"
params = {{k.split(".", 1)[1]: stored[k] for k in stored.files if k.split(".", 1)[0] == NODE}}
native_weights = map_weights(params, ATTRS) if params else {{}}
given = np.load(HERE / "inputs.npz")
'''
_NATIVE_RUN = {
    "torch": '''
if THREADS:
    torch.set_num_threads(THREADS)
module = build_module(native(), ATTRS, [SHAPES[n] for n in INPUTS], native_weights).eval()
for p in module.parameters():
    p.requires_grad_(False)
xs = [torch.from_numpy(np.ascontiguousarray(given[n], dtype=np.int64 if n in INT_INPUTS else np.float32))
      for n in INPUTS]
{wrap}with torch.inference_mode():
    res = module(*xs)
outs = [o.numpy() for o in (res if isinstance(res, (tuple, list)) else (res,))]
print(f"torch {{torch.__version__}}, numpy {{np.__version__}}")
''',
    "jax": '''
jax.config.update("jax_platforms", "cpu")
IN_NHWC = {in_nhwc!r}  # images read by a spatial op arrive NHWC, as the target feeds them
jx = native()
jnp = jx.jnp
g = Graph(Tracker(Ops(jnp.transpose, jax.nn.softmax, jnp.add, jnp.multiply, jnp.concatenate)), False)
xs = [np.ascontiguousarray(given[n].transpose(0, 2, 3, 1) if n in IN_NHWC else given[n],
                           dtype=np.int32 if n in INT_INPUTS else np.float32) for n in INPUTS]
flags = []


def apply(p, xs):
    y = op_fn(jx, g, node, [Val(x, n in IN_NHWC) for n, x in zip(INPUTS, xs)], p)
    flags[:] = [y.nhwc]
    return y.t


y = np.asarray(jax.jit(apply)(jax.device_put(native_weights), xs))
outs = [y.transpose(0, 3, 1, 2) if flags[0] else y]
print(f"jax {{jax.__version__}}, numpy {{np.__version__}}")
''',
    "tensorflow": '''
variables = {{k: tf.Variable(v, trainable=False) for k, v in native_weights.items()}}
g = Graph(Tracker(Ops(tf.transpose, tf.nn.softmax, tf.add, tf.multiply, tf.concat)), SHAPES, False, None)
images = [len(SHAPES[n]) == 4 and n not in INT_INPUTS for n in INPUTS]  # rank-4 float inputs arrive NHWC
xs = [tf.constant(np.ascontiguousarray(given[n].transpose(0, 2, 3, 1) if img else given[n],
                                       dtype=np.int64 if n in INT_INPUTS else np.float32))
      for n, img in zip(INPUTS, images)]
flags = []


def forward(*xs):
    y = op_fn(tf, g, node, [Val(x, img) for x, img in zip(xs, images)], variables)
    flags[:] = [y.nhwc]
    return y.t


y = tf.function(forward, autograph=False, jit_compile={jit!r})(*xs).numpy()
outs = [y.transpose(0, 3, 1, 2) if flags[0] else y]
print(f"tensorflow {{tf.__version__}}, numpy {{np.__version__}}")
''',
}
KERAS_NODE = '''
o = keras.ops
g = Graph(Tracker(Ops(o.transpose, o.softmax, o.add, o.multiply, o.concatenate)), SHAPES, keras.backend.backend())
inputs, vals, xs = [], [], []
for n in INPUTS:
    shape = tuple(SHAPES[n])
    img = len(shape) == 4 and n not in INT_INPUTS  # rank-4 float inputs are channels_last images
    native = (shape[0], shape[2], shape[3], shape[1]) if img else shape
    t = keras.Input(shape=native[1:], batch_size=native[0], name=n, dtype="int32" if n in INT_INPUTS else "float32")
    inputs.append(t)
    vals.append(Val(t, img))
    x = given[n].transpose(0, 2, 3, 1) if img else given[n]
    xs.append(o.convert_to_tensor(np.ascontiguousarray(x, dtype=np.int32 if n in INT_INPUTS else np.float32)))
y = op_fn(keras, g, node, vals)
'''  # the Keras node of a script, on its inputs (no format fields: shared by the inference and train scripts)
_NATIVE_RUN["keras"] = KERAS_NODE + '''model = keras.Model(inputs=inputs, outputs=[y.t])
for layer, _ in g.placed:
    layer.set_weights(native_weights)
fn, _ = compile_model(model, keras.backend.backend(), xs)  # jax.jit / tf.function / eager, as the target does
res = fn(xs)
out = o.convert_to_numpy(res[0] if isinstance(res, (list, tuple)) else res)
outs = [out.transpose(0, 3, 1, 2) if y.nhwc else out]
print(f"keras {{keras.__version__}} ({{keras.backend.backend()}}), numpy {{np.__version__}}")
'''
_TORCH_WRAP = {
    "compile": ("module = torch.compile(module)\n", ", compiled by torch.compile (inductor) as torch:compile does"),
    "export": ("module = torch.export.export(module, tuple(xs)).module()\n", ", through torch.export"),
}
_NATIVE_NEEDS = {"torch": "PyTorch", "jax": "JAX", "tensorflow": "TensorFlow", "keras": "Keras 3 and its backend"}


def _planted(info):
    """The context a test-only target plants its bug in (suite.targets.testing), or a null context."""
    import contextlib
    import importlib

    bugs = getattr(importlib.import_module(info.module), "BUGS", None)
    return bugs[info.id]() if bugs and info.id in bugs else contextlib.nullcontext()


def script_framework(info) -> str:
    """The framework a target's standalone scripts are written for: its family, ``keras`` for every backend."""
    return "keras" if info.family.startswith("keras-") else info.family


def import_line(ref: str, alias: str) -> str:
    """``from module import name [as alias]`` of a Closure reference ``module:name``."""
    return "from {} import {}".format(*ref.split(":")) + (f" as {alias}" if alias else "")


def mapping_lines(closure, mapping) -> list[str]:
    """The script lines that define ``map_weights``: the weight table's entry copied out, with the arguments
    a ``functools.partial`` entry binds (Keras' gate order)."""
    if isinstance(mapping, functools.partial):
        bound = [closure.literal(a) for a in mapping.args]
        bound += [f"{k}={closure.literal(v)}" for k, v in mapping.keywords.items()]
        return ["import functools", import_line(closure.add(mapping.func), "_map_weights"),
                f"map_weights = functools.partial(_map_weights, {', '.join(bound)})"]
    return [import_line(closure.add(mapping), "map_weights")]


def native_script(info, node_wl, diag, tol: dict, folder: Path, profile=None) -> tuple[str, str] | None:
    """(file name, source) of the standalone script of a torch, JAX or TensorFlow target's culprit, writing
    the copied suite code it needs into ``folder / "src"``; None for other families (Keras). Raises
    :class:`suite.standalone.NotStandalone` when the op's code cannot be copied out."""
    import importlib

    from suite.standalone import Closure
    from suite.targets.common.optables import has_params, lookup

    fw = script_framework(info)
    if fw not in _NATIVE_RUN:
        return None
    node = node_wl.nodes[0]
    closure = Closure()
    imp = import_line

    with _planted(info):
        ops = importlib.import_module(f"suite.targets.{fw}.ops")
        weights = importlib.import_module(f"suite.targets.{fw}.weights")
        lines = [f"import {fw}" if fw != "tensorflow" else "import tensorflow as tf",
                 imp(closure.add(lookup(ops.OPS, node.op, fw)), "build_module" if fw == "torch" else "op_fn"),
                 imp(closure.add(ops.native), "") if fw in ("torch", "jax") else ""]
        if fw == "keras":  # the backend is chosen before keras is imported
            from suite.targets.keras import model as keras_model

            lines = ["import os", f"os.environ['KERAS_BACKEND'] = {info.options.backend!r}"] + lines
            lines.append(imp(closure.add(keras_model._compile), "compile_model"))
        if fw != "torch":
            from suite.targets.common import nhwc

            lines += [imp(closure.add(ops.Graph), "")] + [imp(closure.add(c), "") for c in (nhwc.Tracker, nhwc.Ops,
                                                                                          nhwc.Val)]
        mapping = lookup(weights.WEIGHTS, node.op, fw, "weight table") if has_params(node.op) else None
        lines += mapping_lines(closure, mapping) if mapping else ["map_weights = None"]
        attrs = closure.literal(dict(node.attrs))
    lines += closure.script_imports()
    closure.write(folder / "src", f"The suite's {fw} code of op {node.op}, for repro_{fw}.py; imports no suite.")
    shapes = node_wl.shapes(node_wl.param_grid()[0])
    variant = "export" if info.format == "export" else ("compile" if getattr(info.options, "compile", False)
                                                        else "eager")
    wrap, how = _TORCH_WRAP.get(variant, ("", "")) if fw == "torch" else ("", "")
    jit = bool(getattr(info.options, "jit_compile", False))
    if fw == "tensorflow" and jit:
        how = ", under tf.function(jit_compile=True) (XLA) as tensorflow:xla does"
    in_nhwc = []
    if fw == "jax":
        from suite.targets.jax.model import nhwc_inputs

        in_nhwc = sorted(nhwc_inputs(node_wl, shapes))
    import textwrap

    doc = textwrap.fill(
        f"Needs only NumPy and {_NATIVE_NEEDS[fw]}. src/ holds the suite's own {fw} code of this op, copied "
        f"verbatim (the builder of {node.op} and the mapping of its canonical weights to {fw}'s layout): the "
        f"node is built from weights.npz exactly as the target builds it, run on inputs.npz{how}, and compared "
        "with reference.npz (NumPy float64 of the same op on the same inputs). Exit 1 when it mismatches.", 110)
    fields = dict(
        target=info.id, workload=diag.workload, node=node.name, op=node.op, doc=doc, framework=fw,
        needs=_NATIVE_NEEDS[fw], imports="\n".join(f"{ln}  # noqa: E402" for ln in lines if ln),
        rtol=tol["rtol"], atol=tol["atol"], outputs=list(node_wl.outputs), attrs=attrs, inputs=list(node.inputs),
        threads=int(getattr(profile, "threads", 0) or 0), profile=getattr(profile, "name", "-"),
        shapes={k: tuple(v) for k, v in shapes.items()}, wrap=wrap, in_nhwc=in_nhwc, jit=jit,
        int_inputs=[s.name for s in node_wl.inputs if s.dtype.startswith("int")])
    source = _NATIVE_HEAD.format(**fields) + _NATIVE_RUN[fw].format(**fields) + _SCRIPT_TAIL.format()
    return f"repro_{fw}.py", source


def standalone_script(info, node_wl, diag, tol: dict, profile=None) -> tuple[str, str] | None:
    """(file name, source) of the bundle's script for the target's runtime, or None where there is none yet."""
    key = _script_key(info)
    if key not in _SCRIPT_RUN:
        return None
    fields = dict(target=info.id, workload=diag.workload, node=diag.culprit, op=node_wl.nodes[0].op,
                  rtol=tol["rtol"], atol=tol["atol"], outputs=list(node_wl.outputs), needs=_NEEDS[key],
                  threads=int(getattr(profile, "threads", 0) or 0), profile=getattr(profile, "name", "-"),
                  no_xnnpack=not getattr(info.options, "xnnpack", True),
                  precision=getattr(info.options, "precision", "f32"))
    source = _SCRIPT_HEAD.format(**fields) + _SCRIPT_RUN[key].format(**fields) + _SCRIPT_TAIL.format(**fields)
    return _SCRIPT_NAME.get(key, f"repro_{key}.py"), source

"""Workload files: load, validate, and freeze. Plain data; no framework imports.

Every validation error is a :class:`SpecError` whose message is one line:
``<file>: <field path>: <what was expected>``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from suite.ops import OPS, REQUIRED, ShapeError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WORKLOAD_NAME_RE = re.compile(r"^[a-z0-9_]+$")
DTYPES = ("float32", "int32", "int64")
DISTRIBUTIONS = {"normal": ("mean", "std"), "uniform": ("low", "high"), "randint": ("low", "high")}
TOP_FIELDS = {"name", "description", "tags", "seed", "inputs", "sweep", "graph", "outputs", "tolerance",
              "classes_axis", "train"}
LOSSES = ("softmax_cross_entropy", "mean_squared_error")
OPTIMIZERS = {  # kind -> {hyper-parameter: default (REQUIRED: must be given)}
    "sgd": {"learning_rate": REQUIRED, "momentum": 0.0, "nesterov": False},
    "adam": {"learning_rate": REQUIRED, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
}
TRAIN_FIELDS = ("loss", "output", "labels", "optimizer", "steps")


class SpecError(ValueError):
    """A bad workload or profile file. ``str(err)`` is the one line shown to the user."""


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple  # ints and sweep-parameter names; shape[0] == "batch"
    dtype: str
    distribution: Mapping[str, Any]


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: Mapping[str, Any]  # every attribute of the op, defaults filled in


@dataclass(frozen=True)
class TrainSpec:
    """How one training step of the workload is defined (the ``train:`` section)."""

    loss: str  # one of LOSSES
    output: str  # the workload output the loss reads
    output_index: int
    labels: Mapping[str, Any]  # {"seed": int} (+ "distribution" for mean_squared_error)
    optimizer: Mapping[str, Any]  # {"kind": "sgd"|"adam", hyper-parameters with defaults filled in}
    steps: int  # training steps bench verify runs from the same starting weights


@dataclass(frozen=True)
class Workload:
    """A validated workload. ``hash`` changes whenever anything that affects results changes."""

    name: str
    description: str
    tags: tuple[str, ...]
    seed: int
    inputs: tuple[InputSpec, ...]
    sweep: Mapping[str, tuple[int, ...]]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    tolerance: Mapping[str, float] | None
    classes_axis: int | None
    path: str
    hash: str = field(compare=False)
    train: TrainSpec | None = None

    def param_grid(self) -> list[dict[str, int]]:
        """Every combination of sweep values, in file order."""
        keys = list(self.sweep)
        return [dict(zip(keys, vals)) for vals in itertools.product(*(self.sweep[k] for k in keys))]

    def shapes(self, params: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
        """Concrete canonical shape of every input and node for the given sweep values."""
        return _infer_shapes(self, params)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def flops(self, params: Mapping[str, int]) -> int:
        """Forward FLOPs (a multiply-add counts 2) at the given sweep values."""
        shapes = self.shapes(params)
        return sum(OPS[n.op].flops([shapes[i] for i in n.inputs], shapes[n.name], dict(n.attrs))
                   for n in self.nodes)


def _fail(path: str, where: str, msg: str):
    raise SpecError(f"{path}: {where}: {msg}" if where else f"{path}: {msg}")


def _freeze(v):
    if isinstance(v, dict):
        return MappingProxyType({k: _freeze(x) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


def read_yaml(path: str | Path) -> Any:
    """Reads a YAML file; any problem becomes a one-line SpecError naming the file (and line)."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise SpecError(f"{path}: cannot read: {e.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{path}: malformed YAML: {where}{problem}") from None


def load_workload(path: str | Path) -> Workload:
    """Reads and validates one workload file. Raises SpecError (one line) on any problem."""
    return parse_workload(read_yaml(path), str(path))


def parse_workload(data: Any, path: str = "<workload>") -> Workload:
    """Validates a workload given as plain data (the parsed YAML)."""
    if not isinstance(data, dict):
        _fail(path, "", f"expected a mapping at the top level, got {type(data).__name__}")
    unknown = sorted(set(data) - TOP_FIELDS)
    if unknown:
        _fail(path, unknown[0], f"unknown field; expected one of {', '.join(sorted(TOP_FIELDS))}")
    for key in ("name", "inputs", "sweep", "graph", "outputs"):
        if key not in data:
            _fail(path, key, "missing required field")

    name = data["name"]
    if not isinstance(name, str) or not WORKLOAD_NAME_RE.match(name):
        _fail(path, "name", f"expected lower-case letters, digits and underscores, got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        _fail(path, "description", "expected a string")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        _fail(path, "tags", "expected a list of strings")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        _fail(path, "seed", f"expected a non-negative integer, got {seed!r}")

    sweep = _parse_sweep(data["sweep"], path)
    inputs = _parse_inputs(data["inputs"], sweep, path)
    names = {i.name for i in inputs}
    nodes = _parse_graph(data["graph"], names, path)

    outputs = data["outputs"]
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        _fail(path, "outputs", "expected a non-empty list of node names")
    known = names | {n.name for n in nodes}
    for i, o in enumerate(outputs):
        if o not in known:
            _fail(path, f"outputs[{i}]", f"unknown node {o!r}")

    tolerance = data.get("tolerance")
    if tolerance is not None:
        if not isinstance(tolerance, dict) or set(tolerance) - {"rtol", "atol"} or not tolerance:
            _fail(path, "tolerance", "expected a mapping with rtol and/or atol")
        for k, v in tolerance.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                _fail(path, f"tolerance.{k}", f"expected a non-negative number, got {v!r}")
        tolerance = {k: float(v) for k, v in tolerance.items()}
    classes_axis = data.get("classes_axis")
    if classes_axis is not None and (isinstance(classes_axis, bool) or not isinstance(classes_axis, int)):
        _fail(path, "classes_axis", f"expected an integer axis, got {classes_axis!r}")

    digest = hashlib.sha256(json.dumps(
        {k: data[k] for k in sorted(data) if k not in ("description", "tags")}, sort_keys=True, default=str
    ).encode()).hexdigest()[:16]
    train = _parse_train(data["train"], outputs, path) if "train" in data else None
    wl = Workload(name, description, tuple(tags), seed, inputs, MappingProxyType(sweep), nodes, tuple(outputs),
                  _freeze(tolerance), classes_axis, path, digest, train)
    # Every sweep point must flow through the graph: shape errors surface at load time.
    for params in wl.param_grid():
        _infer_shapes(wl, params)
    return wl


def _number(v, path, where, positive=False, below_one=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (positive and v == 0) \
            or (below_one and v >= 1):
        what = "a number in [0, 1)" if below_one else ("a positive number" if positive else "a non-negative number")
        _fail(path, where, f"expected {what}, got {v!r}")
    return float(v)


def _parse_train(train, outputs, path) -> TrainSpec:
    if not isinstance(train, dict):
        _fail(path, "train", "expected a mapping with loss, optimizer (and optionally output, labels, steps)")
    extra = sorted(set(train) - set(TRAIN_FIELDS))
    if extra:
        _fail(path, f"train.{extra[0]}", f"unknown field; expected one of {', '.join(TRAIN_FIELDS)}")
    for key in ("loss", "optimizer"):
        if key not in train:
            _fail(path, f"train.{key}", "missing required field")
    loss = train["loss"]
    if loss not in LOSSES:
        _fail(path, "train.loss", f"expected one of {', '.join(LOSSES)}, got {loss!r}")
    output = train.get("output", outputs[0])
    if output not in outputs:
        _fail(path, "train.output", f"expected one of the workload outputs ({', '.join(outputs)}), got {output!r}")
    labels = train.get("labels", {})
    if not isinstance(labels, dict) or set(labels) - {"seed", "distribution"}:
        _fail(path, "train.labels", "expected a mapping with seed and (mean_squared_error only) distribution")
    seed = labels.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        _fail(path, "train.labels.seed", f"expected a non-negative integer, got {seed!r}")
    lab = {"seed": seed}
    if "distribution" in labels:
        if loss != "mean_squared_error":
            _fail(path, "train.labels.distribution",
                  "only mean_squared_error takes a label distribution; cross-entropy labels are class ids")
        lab["distribution"] = _parse_distribution(labels["distribution"], "float32", "train.labels.distribution",
                                                  path)
    elif loss == "mean_squared_error":
        lab["distribution"] = {"kind": "normal", "mean": 0.0, "std": 1.0}
    opt = train["optimizer"]
    if not isinstance(opt, dict) or opt.get("kind") not in OPTIMIZERS:
        _fail(path, "train.optimizer", f"expected a mapping with kind one of {', '.join(OPTIMIZERS)}")
    kind = opt["kind"]
    allowed = OPTIMIZERS[kind]
    extra = sorted(set(opt) - {"kind", *allowed})
    if extra:
        _fail(path, f"train.optimizer.{extra[0]}", f"unknown field for {kind}; expected {', '.join(allowed)}")
    optimizer = {"kind": kind}
    for k, default in allowed.items():
        where = f"train.optimizer.{k}"
        if k not in opt:
            if default is REQUIRED:
                _fail(path, where, f"missing required field for {kind}")
            optimizer[k] = default
        elif k == "nesterov":
            if not isinstance(opt[k], bool):
                _fail(path, where, f"expected true or false, got {opt[k]!r}")
            optimizer[k] = opt[k]
        else:
            optimizer[k] = _number(opt[k], path, where, positive=k in ("learning_rate", "epsilon"),
                                   below_one=k in ("momentum", "beta_1", "beta_2"))
    if optimizer.get("nesterov") and not optimizer.get("momentum"):
        _fail(path, "train.optimizer.nesterov", "nesterov needs a momentum > 0")
    steps = train.get("steps", 2)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 100:
        _fail(path, "train.steps", f"expected an integer from 1 to 100, got {steps!r}")
    return TrainSpec(loss, output, list(outputs).index(output), MappingProxyType(lab), MappingProxyType(optimizer),
                     steps)


def _parse_sweep(sweep, path) -> dict[str, tuple[int, ...]]:
    if not isinstance(sweep, dict) or not sweep:
        _fail(path, "sweep", "expected a mapping of parameter name -> list of positive integers")
    if "batch" not in sweep:
        _fail(path, "sweep.batch", "missing required sweep parameter")
    out = {}
    for k, vals in sweep.items():
        if not isinstance(k, str) or not NAME_RE.match(k):
            _fail(path, f"sweep.{k}", "expected an identifier as parameter name")
        if not isinstance(vals, list) or not vals or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in vals):
            _fail(path, f"sweep.{k}", f"expected a non-empty list of positive integers, got {vals!r}")
        out[k] = tuple(vals)
    return out


def _parse_inputs(inputs, sweep, path) -> tuple[InputSpec, ...]:
    if not isinstance(inputs, list) or not inputs:
        _fail(path, "inputs", "expected a non-empty list of inputs")
    out, seen = [], set()
    for i, spec in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(spec, dict):
            _fail(path, where, "expected a mapping with name, shape, dtype")
        extra = sorted(set(spec) - {"name", "shape", "dtype", "distribution"})
        if extra:
            _fail(path, f"{where}.{extra[0]}", "unknown field; expected name, shape, dtype, distribution")
        for key in ("name", "shape"):
            if key not in spec:
                _fail(path, f"{where}.{key}", "missing required field")
        name = spec["name"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            _fail(path, f"{where}.name", f"expected an identifier, got {name!r}")
        if name in seen:
            _fail(path, f"{where}.name", f"duplicate input name {name!r}")
        seen.add(name)
        shape = spec["shape"]
        if not isinstance(shape, list) or not shape or shape[0] != "batch":
            _fail(path, f"{where}.shape", f"expected a list starting with 'batch', got {shape!r}")
        for j, d in enumerate(shape[1:], 1):
            if isinstance(d, str):
                if d not in sweep:
                    _fail(path, f"{where}.shape[{j}]", f"unknown sweep parameter {d!r}")
            elif isinstance(d, bool) or not isinstance(d, int) or d <= 0:
                _fail(path, f"{where}.shape[{j}]", f"expected a positive integer or a sweep name, got {d!r}")
        dtype = spec.get("dtype", "float32")
        if dtype not in DTYPES:
            _fail(path, f"{where}.dtype", f"expected one of {', '.join(DTYPES)}, got {dtype!r}")
        dist = spec.get("distribution", {"kind": "normal", "mean": 0.0, "std": 1.0})
        dist = _parse_distribution(dist, dtype, f"{where}.distribution", path)
        out.append(InputSpec(name, tuple(shape), dtype, MappingProxyType(dist)))
    return tuple(out)


def _parse_distribution(dist, dtype, where, path) -> dict:
    if not isinstance(dist, dict) or not isinstance(dist.get("kind"), str) or dist["kind"] not in DISTRIBUTIONS:
        _fail(path, where, f"expected a mapping with kind one of {', '.join(DISTRIBUTIONS)}")
    kind = dist["kind"]
    keys = DISTRIBUTIONS[kind]
    extra = sorted(set(dist) - {"kind", *keys})
    if extra:
        _fail(path, f"{where}.{extra[0]}", f"unknown field for {kind}; expected {', '.join(keys)}")
    for k in keys:
        if k not in dist:
            _fail(path, f"{where}.{k}", f"missing required field for {kind}")
        if isinstance(dist[k], bool) or not isinstance(dist[k], (int, float)):
            _fail(path, f"{where}.{k}", f"expected a number, got {dist[k]!r}")
    if dtype.startswith("int") != (kind == "randint"):
        _fail(path, f"{where}.kind", f"{dtype} inputs need {'randint' if dtype.startswith('int') else 'normal or uniform'}")
    if kind == "normal" and dist["std"] <= 0:
        _fail(path, f"{where}.std", "expected a positive number")
    if kind != "normal" and dist["high"] <= dist["low"]:
        _fail(path, f"{where}.high", "expected high > low")
    if kind == "randint" and not all(isinstance(dist[k], int) for k in keys):
        _fail(path, where, "randint bounds must be integers")
    return dict(dist)


def _parse_graph(graph, input_names, path) -> tuple[Node, ...]:
    if not isinstance(graph, list) or not graph:
        _fail(path, "graph", "expected a non-empty list of nodes")
    known = set(input_names)
    nodes = []
    for i, spec in enumerate(graph):
        where = f"graph[{i}]"
        if not isinstance(spec, dict):
            _fail(path, where, "expected a mapping with name, op, input(s)")
        for key in ("name", "op"):
            if key not in spec:
                _fail(path, f"{where}.{key}", "missing required field")
        name, op = spec["name"], spec["op"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            _fail(path, f"{where}.name", f"expected an identifier, got {name!r}")
        if name in known:
            _fail(path, f"{where}.name", f"duplicate name {name!r}")
        if not isinstance(op, str) or op not in OPS:
            _fail(path, f"{where}.op", f"unknown op {op!r}; expected one of {', '.join(sorted(OPS))}")
        opdef = OPS[op]
        if ("input" in spec) == ("inputs" in spec):
            _fail(path, where, "expected exactly one of 'input' (a name) or 'inputs' (a list of names)")
        srcs = [spec["input"]] if "input" in spec else spec["inputs"]
        key = "input" if "input" in spec else "inputs"
        if not isinstance(srcs, list) or not all(isinstance(s, str) for s in srcs):
            _fail(path, f"{where}.{key}", "expected a node name or a list of node names")
        if opdef.arity is None and len(srcs) < 2:
            _fail(path, f"{where}.inputs", f"op {op} expects two or more inputs, got {len(srcs)}")
        if opdef.arity is not None and len(srcs) != opdef.arity:
            _fail(path, f"{where}.{key}", f"op {op} expects {opdef.arity} input(s), got {len(srcs)}")
        for j, s in enumerate(srcs):
            if s not in known:
                hint = " (nodes must come after the nodes they read)" if any(
                    g.get("name") == s for g in graph if isinstance(g, dict)) else ""
                _fail(path, f"{where}.{key}" + (f"[{j}]" if key == "inputs" else ""), f"unknown node {s!r}{hint}")
        attr_names = {a.name for a in opdef.attrs}
        extra = sorted(set(spec) - {"name", "op", "input", "inputs"} - attr_names)
        if extra:
            expected = ", ".join(sorted(attr_names)) or "no attributes"
            _fail(path, f"{where}.{extra[0]}", f"unknown attribute for {op}; expected {expected}")
        attrs = {}
        for a in opdef.attrs:
            if a.name not in spec:
                if a.default is REQUIRED:
                    _fail(path, f"{where}.{a.name}", f"missing required attribute of {op}")
                attrs[a.name] = a.default
                continue
            try:
                attrs[a.name] = a.check(spec[a.name])
            except ValueError as e:
                _fail(path, f"{where}.{a.name}", str(e))
        if op in ("max_pool2d", "avg_pool2d") and attrs["strides"] is None:
            attrs["strides"] = attrs["pool_size"]
        known.add(name)
        nodes.append(Node(name, op, tuple(srcs), MappingProxyType(attrs)))
    return tuple(nodes)


def _infer_shapes(wl: Workload, params: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for spec in wl.inputs:
        shapes[spec.name] = tuple(params[d] if isinstance(d, str) else d for d in spec.shape)
    dtypes = {s.name: s.dtype for s in wl.inputs}
    for i, node in enumerate(wl.nodes):
        opdef = OPS[node.op]
        in_shapes = [shapes[s] for s in node.inputs]
        is_int = [dtypes.get(s, "float32").startswith("int") for s in node.inputs]
        if opdef.int_input and not all(is_int):
            _fail(wl.path, f"graph[{i}].input", f"op {node.op} expects an integer input")
        if not opdef.int_input and any(is_int):
            _fail(wl.path, f"graph[{i}].input", f"op {node.op} expects a float input; integer ids need an embedding")
        if node.op == "embedding":
            src = next((s for s in wl.inputs if s.name == node.inputs[0]), None)
            if src is not None and src.distribution["high"] > node.attrs["vocab_size"]:
                _fail(wl.path, f"graph[{i}].vocab_size",
                      f"input {src.name} draws ids up to {src.distribution['high'] - 1}, "
                      f"expected vocab_size > that, got {node.attrs['vocab_size']}")
        try:
            shapes[node.name] = tuple(int(d) for d in opdef.out_shape(in_shapes, dict(node.attrs)))
        except ShapeError as e:
            where = f"graph[{i}]" + (f".{e.field}" if e.field else "")
            pstr = ", ".join(f"{k}={v}" for k, v in params.items())
            _fail(wl.path, where, f"{e} (at {pstr})")
    return shapes


def load_workloads(directory: str | Path = "workloads", names: list[str] | None = None) -> list[Workload]:
    """Loads every *.yaml in directory (sorted), optionally only the given workload names."""
    files = sorted(Path(directory).glob("*.yaml"))
    wls = [load_workload(f) for f in files]
    seen = {}
    for wl in wls:
        if wl.name in seen:
            raise SpecError(f"{wl.path}: name: workload {wl.name!r} is also defined in {seen[wl.name]}")
        seen[wl.name] = wl.path
    if names:
        unknown = [n for n in names if n not in seen and not Path(n).is_file()]
        if unknown:
            raise SpecError(f"unknown workload {unknown[0]!r}; known: {', '.join(sorted(seen))}")
        extra = [load_workload(n) for n in names if n not in seen]
        wls = [w for w in wls if w.name in names] + extra
    return wls

"""Workload files: load, validate, and freeze. Plain data; no framework imports.

Each part of a file is validated by the pydantic models of :mod:`suite.spec_models` (which also
publish ``workloads/schema.json``); what needs the whole workload (names, shapes) is checked here.
Every validation error is a :class:`SpecError` whose message is one line:
``<file>: <field path>: <what was expected>``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import types
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Mapping, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from suite.ops import OPS, ShapeError
from suite.spec_models import STANDARD_NORMAL, KindedModel, NodeBase, SpecModel, TrainModel, WorkloadModel


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
class Source:
    """A real model instead of a graph (the ``source:`` section; built and referenced by :mod:`suite.sources`).

    ``file`` and ``weights`` are absolute paths; their contents (sha256) are part of the workload's hash."""

    framework: str  # torch | keras | flax | onnx
    factory: str | None  # "module:callable"
    kwargs: Mapping[str, Any]
    file: str | None
    weights: str | None
    declared_outputs: bool  # outputs: named in the file (else the model's first tensor, named "output")


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
    source: Source | None = None  # a source: workload (no nodes: the model is the source framework's own)

    @property
    def kind(self) -> str:
        """``graph``, or the framework of a source: workload (the ``source`` column of results)."""
        return "graph" if self.source is None else self.source.framework

    def param_grid(self) -> list[dict[str, int]]:
        """Every combination of sweep values, in file order."""
        keys = list(self.sweep)
        return [dict(zip(keys, vals)) for vals in itertools.product(*(self.sweep[k] for k in keys))]

    def shapes(self, params: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
        """Concrete canonical shape of every input and node for the given sweep values."""
        return _infer_shapes(self, params)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def flops(self, params: Mapping[str, int]) -> int | None:
        """Forward FLOPs (a multiply-add counts 2) at the given sweep values; None for a source: model (the
        suite does not count the FLOPs of a model it did not write)."""
        if self.source is not None:
            return None
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


# ---- pydantic's first error as one line ----

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any, path: str) -> M:
    """``model.model_validate(data)``, with pydantic's first error as one SpecError line.

    Args:
        model: a model of suite.spec_models (WorkloadModel, ProfileModel).
        data: the parsed YAML.
        path: the file name the message starts with.
    Returns:
        the validated model.
    Raises:
        SpecError: ``<file>: <field path>: <what was expected>``, e.g.
            ``bad.yaml: graph[3].units: expected a positive integer, got -4``.
    """
    try:
        return model.model_validate(data)
    except ValidationError as e:
        _fail(path, *first_error(e, model))


def _strip(tp):
    """Drops Annotated metadata and an Optional's None."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]
        else:
            return tp


def _union_members(tp) -> list[type[BaseModel]]:
    if get_origin(tp) in (Union, types.UnionType):
        return [m for m in get_args(tp) if isinstance(m, type) and issubclass(m, BaseModel)]
    return []


def _tag(model: type[BaseModel], discriminator: str) -> str | None:
    field = model.model_fields.get(discriminator)
    return get_args(field.annotation)[0] if field and get_origin(field.annotation) is Literal else None


def _walk(root: type[BaseModel], loc: tuple) -> tuple[list, list]:
    """Follows an error location through the model types.

    Returns:
        (parts, kinds): the path to show (union tags and dict-key markers dropped) and the type at each
        prefix of it (``kinds[0]`` is root, ``kinds[-1]`` the type at the full path; None where unknown).
    """
    parts, kinds, tp = [], [root], root
    for key in loc:
        tp = _strip(tp)
        members = _union_members(tp)
        if members and isinstance(key, str):
            member = next((m for m in members if key in (_tag(m, f) for f in m.model_fields)), None)
            if member is not None:  # a tag step of a discriminated union: not shown
                tp = kinds[-1] = member
                continue
        if key == "[key]":
            continue
        if get_origin(tp) is dict:  # a mapping key: shown after a dot even when YAML made it a number
            key = str(key)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(key) if isinstance(key, str) else None
            tp = field.annotation if field else None
        elif get_origin(tp) in (list, tuple):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            tp = None
        parts.append(key)
        kinds.append(tp)
    return parts, kinds


def format_path(parts: list) -> str:
    """``['graph', 3, 'units']`` -> ``graph[3].units`` (the style of every message and of the README)."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _show(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _mapping_with(tp) -> str:
    """'a mapping with <what it needs>' for a model or a tagged union of models."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        required = [n for n, f in tp.model_fields.items() if f.is_required()]
        return "a mapping" + (f" with {', '.join(required)}" if required else "")
    members = _union_members(tp)
    if members and all(issubclass(m, NodeBase) for m in members):
        return "a mapping with name, op, input(s)"
    if members and all(issubclass(m, KindedModel) for m in members):
        return f"a mapping with kind one of {', '.join(m.tag() for m in members)}"
    return "a mapping"


def first_error(err: ValidationError, root: type[BaseModel]) -> tuple[str, str]:
    """The error to show for a failed ``root.model_validate``.

    Returns:
        (field path, message): e.g. ``("graph[3].units", "expected a positive integer, got -4")``; the
        path is '' for the whole file. Missing and unknown fields are worded by the model that has them
        (``missing_message`` / ``unknown_message`` of suite.spec_models.SpecModel).
    """
    errors = err.errors(include_url=False)
    e = errors[0]
    if e["type"] == "missing":  # a misspelt field is both missing and unknown: name the misspelling
        e = next((x for x in errors if x["type"] == "extra_forbidden" and x["loc"][:-1] == e["loc"][:-1]), e)
    kind, loc, ctx, value = e["type"], tuple(e["loc"]), e.get("ctx") or {}, e.get("input")
    parts, kinds = _walk(root, loc)
    here = _strip(kinds[-1])
    owner = _strip(kinds[-2]) if len(kinds) > 1 else None
    owner = owner if isinstance(owner, type) and issubclass(owner, SpecModel) else SpecModel
    if kind == "spec":
        parts += [int(w) if w.isdigit() else w for w in ctx["where"].split(".") if w]
        msg = e["msg"]
    elif kind == "value_error":
        msg = str(ctx["error"])
    elif kind == "missing":
        msg = owner.missing_message(parts[-1])
    elif kind == "extra_forbidden":
        msg = owner.unknown_message(parts[-1])
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        disc = ctx["discriminator"].strip("'")
        tags = [_tag(m, disc) for m in _union_members(here)]
        got = value.get(disc) if isinstance(value, dict) else None
        if disc == "op":  # the op names the node's type: blame the field
            parts.append("op")
            msg = ("missing required field" if kind == "union_tag_not_found"
                   else f"unknown op {_show(got)}; expected one of {', '.join(sorted(tags))}")
        else:
            msg = f"expected a mapping with {disc} one of {', '.join(tags)}" + (
                f", got {disc} {_show(got)}" if kind == "union_tag_invalid" else "")
    elif kind in ("model_type", "model_attributes_type", "dict_type") and not loc and value is None:
        msg = f"the file is empty (or only comments); expected {_mapping_with(root)}"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        msg = (f"expected a mapping at the top level, got {type(value).__name__}" if not loc
               else f"expected {_mapping_with(here)}, got {_show(value)}")
    elif kind == "invalid_key":  # a number as a field name
        parts.pop()
        msg = f"expected field names (strings), got {_show(loc[-1])}"
    elif kind == "list_type":
        msg = f"expected a list, got {_show(value)}"
    elif kind == "string_type":
        msg = f"expected a string, got {type(value).__name__}"
    elif kind == "too_short" and ctx.get("min_length") == 1:
        msg = "expected a non-empty list"
    else:  # pydantic's own sentence, in our style
        msg = f"{e['msg'][:1].lower()}{e['msg'][1:]}, got {_show(value)}"
    return format_path(parts), msg


# ---- files ----

def read_yaml(path: str | Path) -> Any:
    """Reads a YAML file; any problem becomes a one-line SpecError naming the file (and line)."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not a UTF-8 text file (byte {e.start} is {e.object[e.start]:#04x})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{path}: malformed YAML: {where}{problem}") from None


def _kind(path: str | Path) -> str:
    """'file', 'dir', 'missing', 'other' (a device, a FIFO) or why the path cannot even be looked at."""
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as e:  # e.g. a folder on the way that may not be searched
        return f"cannot read: {e.strerror}"
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def check_folder(directory: str | Path, what: str, flag: str) -> None:
    """Raises a one-line SpecError unless ``directory`` is a folder (``what``: 'workloads', 'hardware profiles')."""
    kind = _kind(directory)
    if kind == "missing":
        raise SpecError(f"{directory}: no such folder ({flag} expects a folder of {what} .yaml files)")
    if kind != "dir":
        raise SpecError(f"{directory}: " + (kind if kind.startswith("cannot") else
                                            f"is a file, not a folder ({flag} expects a folder of {what} .yaml files)"))


def load_workload(path: str | Path) -> Workload:
    """Reads and validates one workload file. Raises SpecError (one line) on any problem."""
    if _kind(path) == "dir":
        raise SpecError(f"{path}: is a directory, not a workload file "
                        "(give a .yaml file, or --workloads-dir DIR for a folder of them)")
    return parse_workload(read_yaml(path), str(path))


def parse_workload(data: Any, path: str = "<workload>") -> Workload:
    """Validates a workload given as plain data (the parsed YAML).

    The pydantic models of :mod:`suite.spec_models` check each part; this function then checks what
    needs the whole workload (names that must exist, shapes that must flow) and freezes the result.
    """
    model = validate(WorkloadModel, data, path)
    sweep = dict(model.sweep)
    inputs = _inputs(model, path)
    source, outputs, nodes = None, tuple(model.outputs or ("output",)), ()
    if model.source is not None:
        source = _source(model.source, path, model.outputs is not None)
    else:
        nodes = _graph(model, {i.name for i in inputs}, path)
        known = {i.name for i in inputs} | {n.name for n in nodes}
        for i, o in enumerate(model.outputs):
            if o not in known:
                _fail(path, f"outputs[{i}]", f"unknown node {o!r}")
    tolerance = None if model.tolerance is None else {
        k: v for k, v in (("rtol", model.tolerance.rtol), ("atol", model.tolerance.atol)) if v is not None}

    hashed = {k: data[k] for k in sorted(data) if k not in ("description", "tags")}
    files = [i.distribution["sha256"] for i in inputs if i.distribution["kind"] == "file"]
    if files:  # fixed input values: their content, not their path, is part of the identity
        hashed["input_files"] = files
    train = _train(model.train, outputs, path) if model.train is not None else None
    if train is not None and train.labels.get("distribution", {}).get("kind") == "file":
        hashed["label_file"] = train.labels["distribution"]["sha256"]
    if source is not None:  # the model's file and weights (their content), and the factory's library version
        hashed["source_files"] = [_sha256(f) for f in (source.file, source.weights) if f]
        hashed["source_library"] = _library_version(source.factory)
        local = _local_module(source.factory, path)
        if local:  # a user's own module beside the workload file: its content (an edited model is recomputed)
            hashed["source_module"] = _sha256(local)
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode()).hexdigest()[:16]
    wl = Workload(model.name, model.description, tuple(model.tags), model.seed, inputs, MappingProxyType(sweep),
                  nodes, outputs, _freeze(tolerance), model.classes_axis, path, digest, train, source)
    # Every sweep point must flow through the graph: shape errors surface at load time.
    for params in wl.param_grid():
        shapes = _infer_shapes(wl, params)
        fixed = train.labels.get("distribution", {}) if train is not None else {}
        if fixed.get("kind") == "file" and tuple(fixed["shape"]) != tuple(shapes[train.output]):
            at = " ".join(f"{k}={v}" for k, v in params.items())
            _fail(path, "train.labels.distribution.path", f"array 'labels' has shape {fixed['shape']}, the output "
                                                           f"{train.output} has {list(shapes[train.output])} at {at}")
    return wl


def _relative_file(name: str, path: str, where: str, suffixes: tuple[str, ...]) -> str:
    """A file named in a workload (relative to the workload file), checked to exist; its absolute path."""
    f = Path(name).expanduser()
    if not f.is_absolute():
        f = (Path(path).parent if Path(path).is_file() else Path.cwd()) / f
    if suffixes and not f.name.endswith(suffixes):
        _fail(path, where, f"expected a {' or '.join(suffixes)} file, got {name!r}")
    kind = _kind(f)
    if kind != "file":
        _fail(path, where, f"{f}: " + ("no such file" if kind == "missing" else kind if kind.startswith("cannot")
                                       else "is not a regular file"))
    return str(f.resolve())


def _sha256(f: str) -> str:
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


SOURCE_FILES = {"onnx": (".onnx",), "keras": (".keras",)}  # the file a source framework reads
WEIGHT_FILES = {"torch": (".safetensors", ".pt", ".pth", ".bin"), "keras": (".weights.h5",), "flax": (".msgpack",)}


def _library_version(factory: str | None) -> str | None:
    """``dist==version`` of the distribution that provides the factory's top-level module (found through
    importlib.metadata, nothing imported), or None (a local module, or no factory)."""
    import importlib.metadata

    if not factory:
        return None
    top = factory.split(":")[0].split(".")[0]
    dists = importlib.metadata.packages_distributions().get(top) or []
    return ",".join(f"{d}=={importlib.metadata.version(d)}" for d in sorted(set(dists))) or None


def _local_module(factory: str | None, path: str) -> str | None:
    """The factory's module file when it is a user's module beside the workload file (``resnet:resnet18`` ->
    ``resnet.py``, or a package's ``__init__.py``), else None."""
    if not factory:
        return None
    base = Path(path).parent / factory.split(":")[0].replace(".", "/")
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return str(f)
    return None


def _source(src, path: str, declared_outputs: bool) -> Source:
    """The ``source:`` section resolved: files found (relative to the workload file) and checked to exist."""
    file = _relative_file(src.file, path, "source.file", SOURCE_FILES.get(src.framework, ())) if src.file else None
    weights = (_relative_file(src.weights, path, "source.weights", WEIGHT_FILES.get(src.framework, ()))
               if src.weights else None)
    return Source(src.framework, src.factory, _freeze(dict(src.kwargs)), file, weights, declared_outputs)


def _inputs(model: WorkloadModel, path: str) -> tuple[InputSpec, ...]:
    out, seen = [], set()
    for i, spec in enumerate(model.inputs):
        if spec.name in seen:
            _fail(path, f"inputs[{i}].name", f"duplicate input name {spec.name!r}")
        seen.add(spec.name)
        for j, d in enumerate(spec.shape[1:], 1):
            if isinstance(d, str) and d not in model.sweep:
                _fail(path, f"inputs[{i}].shape[{j}]", f"unknown sweep parameter {d!r}")
        dist = spec.distribution.model_dump()
        if dist["kind"] == "file":
            dist = _file_values(spec, dict(model.sweep), path, f"inputs[{i}].distribution.path")
        out.append(InputSpec(spec.name, spec.shape, spec.dtype, MappingProxyType(dist)))
    return tuple(out)


def _file_values(spec, sweep: dict, path: str, where: str) -> dict:
    """A ``kind: file`` input's distribution, checked (the array exists, its dtype kind and its shape at
    every sweep point fit) and resolved: {kind, path (absolute), sha256 of the file}."""
    f, arr, sha = _npz_array(spec.distribution.path, spec.name, path, where)
    want = "iu" if spec.dtype.startswith("int") else "f"
    if arr.dtype.kind not in want:
        _fail(path, where, f"array {spec.name!r} in {f} is {arr.dtype}, the input is {spec.dtype}")
    keys = list(sweep)
    for vals in itertools.product(*(sweep[k] for k in keys)):
        point = dict(zip(keys, vals))
        shape = tuple(point["batch"] if j == 0 else point[d] if isinstance(d, str) else d
                      for j, d in enumerate(spec.shape))
        if tuple(arr.shape) != shape:
            at = " ".join(f"{k}={v}" for k, v in point.items())
            _fail(path, where, f"array {spec.name!r} in {f} has shape {list(arr.shape)}, the input needs "
                               f"{list(shape)} at {at}")
    return {"kind": "file", "path": str(f.resolve()), "sha256": sha}


def _npz_array(name: str, array: str, path: str, where: str):
    """(file, the array named ``array`` in the .npz ``name`` (relative to the workload file), the file's
    sha256); a missing or unreadable file or array is a SpecError at ``where``."""
    import io
    import zipfile

    import numpy as np

    f = Path(name).expanduser()
    if not f.is_absolute():
        f = (Path(path).parent if Path(path).is_file() else Path.cwd()) / f
    problem, arr, raw = None, None, b""
    try:
        raw = f.read_bytes()
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            if array in z.files:
                arr = z[array]
            else:
                problem = f"{f} has no array named {array!r} (it has: {', '.join(z.files) or 'none'})"
    except OSError as e:
        problem = f"cannot read {f}: {e.strerror or e}"
    except (ValueError, zipfile.BadZipFile, EOFError):
        problem = f"{f} is not a NumPy .npz file"
    if problem:
        _fail(path, where, problem)
    return f, arr, hashlib.sha256(raw).hexdigest()


def _graph(model: WorkloadModel, input_names: set[str], path: str) -> tuple[Node, ...]:
    known = set(input_names)
    nodes = []
    for i, spec in enumerate(model.graph):
        where = f"graph[{i}]"
        if spec.name in known:
            _fail(path, f"{where}.name", f"duplicate name {spec.name!r}")
        srcs = spec.sources()
        key = "input" if spec.input is not None else "inputs"
        for j, s in enumerate(srcs):
            if s not in known:
                hint = " (nodes must come after the nodes they read)" if any(g.name == s for g in model.graph) else ""
                _fail(path, f"{where}.{key}" + (f"[{j}]" if key == "inputs" else ""), f"unknown node {s!r}{hint}")
        attrs = {a.name: getattr(spec, a.name) for a in OPS[spec.op].attrs}
        if spec.op in ("max_pool2d", "avg_pool2d") and attrs["strides"] is None:
            attrs["strides"] = attrs["pool_size"]
        known.add(spec.name)
        nodes.append(Node(spec.name, spec.op, srcs, MappingProxyType(attrs)))
    return tuple(nodes)


def _train(train: TrainModel, outputs: tuple[str, ...], path: str) -> TrainSpec:
    output = train.output if train.output is not None else outputs[0]
    if output not in outputs:
        _fail(path, "train.output", f"expected one of the workload outputs ({', '.join(outputs)}), got {output!r}")
    labels: dict[str, Any] = {"seed": train.labels.seed}
    if train.loss == "mean_squared_error":
        labels["distribution"] = (train.labels.distribution or STANDARD_NORMAL).model_dump()
        if labels["distribution"]["kind"] == "file":  # fixed labels (bench diagnose --mode train)
            where = "train.labels.distribution.path"
            f, arr, sha = _npz_array(labels["distribution"]["path"], "labels", path, where)
            if arr.dtype.kind != "f":
                _fail(path, where, f"array 'labels' in {f} is {arr.dtype}, mean_squared_error needs floats")
            labels["distribution"] = {"kind": "file", "path": str(f.resolve()), "sha256": sha,
                                      "shape": list(arr.shape)}
    return TrainSpec(train.loss, output, list(outputs).index(output), MappingProxyType(labels),
                     MappingProxyType(train.optimizer.model_dump()), train.steps)


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
    """Loads every *.yaml in directory (sorted), optionally only the given workload names.

    A name that is not a workload of the directory is read as a file path; a path that looks like one
    (a folder separator or a .yaml / .yml suffix) but is not there is "no such file", not "unknown workload".
    """
    check_folder(directory, "workload", "--workloads-dir")
    files = sorted(Path(directory).glob("*.yaml"))
    wls = [load_workload(f) for f in files]
    seen = {}
    for wl in wls:
        if wl.name in seen:
            raise SpecError(f"{wl.path}: name: workload {wl.name!r} is also defined in {seen[wl.name]}")
        seen[wl.name] = wl.path
    if names:
        for n in names:
            if n in seen or _kind(n) != "missing":  # a file, folder or unreadable path: load_workload says which
                continue
            if "/" in n or "\\" in n or n.endswith((".yaml", ".yml")):
                raise SpecError(f"{n}: no such file (a workload is a name in {directory} or a .yaml path)")
            raise SpecError(f"unknown workload {n!r}; known: {', '.join(sorted(seen))}")
        extra = [load_workload(n) for n in names if n not in seen]
        wls = [w for w in wls if w.name in names] + extra
    return wls

"""Pydantic models of workload and hardware-profile files: the validators, and the source of the JSON Schemas.

Each leaf value is checked by a small function that raises ``ValueError("expected ..., got ...")`` and
carries its own JSON Schema (:func:`_checked`), so a bad file reads the same as before pydantic and
the published schema describes exactly what is accepted. Node models are generated from the op
catalogue (:data:`suite.ops.OPS`), one per op, tagged by ``op``: the catalogue stays the only place
an op's attributes are written.

Checks that need the whole workload (names that must exist, shapes flowing through the graph) are in
:mod:`suite.spec`, after these models; so is :func:`suite.spec.validate`, which turns pydantic's first
error into the one-line ``<file>: <field path>: <what was expected>`` of a SpecError, asking the models
(``missing_message``, ``unknown_message``) how to word a missing or unknown field.

Regenerate the published schemas after changing a model or the op catalogue::

    python -m suite.spec_models > workloads/schema.json
    python -m suite.spec_models --profile > hardware_profiles/schema.json
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from typing import Annotated, Any, Callable, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic.functional_validators import AfterValidator, PlainValidator
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import PydanticCustomError

from suite import ops
from suite.ops import OPS, REQUIRED

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WORKLOAD_NAME_RE = re.compile(r"^[a-z0-9_]+$")
PROFILE_NAME_RE = re.compile(r"^[a-z0-9_-]+$")
DTYPES = ("float32", "int32", "int64")
LOSSES = ("softmax_cross_entropy", "mean_squared_error")
DEVICES = ("cpu", "cuda", "tpu")
SOURCE_FRAMEWORKS = ("torch", "keras", "flax", "onnx")  # source: models (suite.sources)
PRECISIONS = ("float32", "float16", "bfloat16")
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def fail_at(where: str, msg: str):
    """Raises, inside a validator, an error shown at ``<the validated object>.<where>`` (dotted, may be '')."""
    raise PydanticCustomError("spec", "{msg}", {"msg": msg, "where": where})


# ---- leaf types: a check (our message) and the JSON Schema that says the same ----

class _Described:
    """Annotation metadata: the JSON Schema of a value, a fresh copy per use (some pydantic versions add to it)."""

    def __init__(self, schema: dict):
        self.schema = schema

    def __get_pydantic_json_schema__(self, core_schema, handler) -> dict:
        return copy.deepcopy(self.schema)


def _checked(check: Callable[[Any], Any], schema: dict) -> Any:
    return Annotated[Any, PlainValidator(check), _Described(schema)]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _matching(regex: re.Pattern, what: str):
    def check(v):
        if not isinstance(v, str) or not regex.match(v):
            raise ValueError(f"expected {what}, got {v!r}")
        return v
    return _checked(check, {"type": "string", "pattern": regex.pattern})


def _one_of(choices: tuple[str, ...]):
    def check(v):
        if not isinstance(v, str) or v not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {v!r}")
        return v
    return _checked(check, {"enum": list(choices)})


def _int(what: str = "an integer", low: int | None = None, high: int | None = None):
    def check(v):
        if not _is_int(v) or (low is not None and v < low) or (high is not None and v > high):
            raise ValueError(f"expected {what}, got {v!r}")
        return v
    bounds = {k: b for k, b in (("minimum", low), ("maximum", high)) if b is not None}
    return _checked(check, {"type": "integer", **bounds})


def _number(what: str, ok: Callable[[float], bool], schema: dict, to_float: bool = True):
    def check(v):
        if not _is_number(v) or not ok(v):
            raise ValueError(f"expected {what}, got {v!r}")
        return float(v) if to_float else v
    return _checked(check, {"type": "number", **schema})


def _name_list(what: str, min_items: int):
    def check(v):
        if not isinstance(v, list) or len(v) < min_items or not all(isinstance(s, str) for s in v):
            raise ValueError(f"expected {what}, got {v!r}")
        return tuple(v)
    return _checked(check, {"type": "array", "items": {"type": "string"}, "minItems": min_items})


def _node_ref(v):
    if not isinstance(v, str):
        raise ValueError(f"expected a node name or a list of node names, got {v!r}")
    return v


def _sweep_values(v):
    if not isinstance(v, list) or not v or not all(_is_int(x) and x > 0 for x in v):
        raise ValueError(f"expected a non-empty list of positive integers, got {v!r}")
    return tuple(v)


def _sweep_name(v):
    if not isinstance(v, str) or not NAME_RE.match(v):
        raise ValueError("expected an identifier as parameter name")
    return v


def _shape(v):
    if not isinstance(v, list) or not v or v[0] != "batch":
        raise ValueError(f"expected a list starting with 'batch', got {v!r}")
    for j, d in enumerate(v[1:], 1):
        if not isinstance(d, str) and not (_is_int(d) and d > 0):
            fail_at(str(j), f"expected a positive integer or a sweep name, got {d!r}")
    return tuple(v)


def _affinity(v):
    if not isinstance(v, list) or not v or not all(_is_int(c) and c >= 0 for c in v):
        raise ValueError(f"expected null or a non-empty list of core ids, got {v!r}")
    if len(set(v)) != len(v):
        raise ValueError(f"expected distinct core ids, got {v!r}")
    return tuple(v)


def _targets(v):
    if not isinstance(v, list) or not v or not all(isinstance(t, str) and t for t in v):
        raise ValueError(f"expected a non-empty list of target-id glob patterns, got {v!r}")
    return tuple(v)


def _needs_batch(sweep: dict) -> dict:
    if "batch" not in sweep:
        fail_at("batch", "missing required sweep parameter")
    return sweep


Identifier = _matching(NAME_RE, "an identifier")
NonNegInt = _int("a non-negative integer", low=0)
Number = _number("a number", lambda v: True, {}, to_float=False)
NonNegNumber = _number("a non-negative number", lambda v: v >= 0, {"minimum": 0})
PosNumber = _number("a positive number", lambda v: v > 0, {"exclusiveMinimum": 0})
UnitInterval = _number("a number in [0, 1)", lambda v: 0 <= v < 1, {"minimum": 0, "exclusiveMaximum": 1})
Bool = _checked(ops._bool, {"type": "boolean"})
NodeRef = _checked(_node_ref, {"type": "string"})
NodeRefs = _name_list("a node name or a list of node names", 0)
OutputNames = _name_list("a non-empty list of node names", 1)
WorkloadName = _matching(WORKLOAD_NAME_RE, "lower-case letters, digits and underscores")
DType = _one_of(DTYPES)
Axis = _int("an integer axis")
RandintBound = _int("an integer (randint bounds are integers)")
NpzPath = _matching(re.compile(r"^.+\.npz$"), "the path of a .npz file")
SourceFramework = _one_of(SOURCE_FRAMEWORKS)
Factory = _matching(re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"),
                    "'module:callable' (an importable callable, e.g. torchvision.models:resnet18)")
FilePath = _matching(re.compile(r"^.+$"), "a file path")
Loss = _one_of(LOSSES)
Steps = _int("an integer from 1 to 100", low=1, high=100)
ProfileName = _matching(PROFILE_NAME_RE, "lower-case letters, digits, '-' and '_'")
Device = _one_of(DEVICES)
Precision = _one_of(PRECISIONS)
Threads = _int("a non-negative integer (0 = all cores)", low=0)
Affinity = _checked(_affinity, {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1,
                                "uniqueItems": True})
Targets = _checked(_targets, {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1})
_SWEEP_VALUES = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1}
SweepValues = _checked(_sweep_values, _SWEEP_VALUES)
Shape = _checked(_shape, {
    "type": "array", "minItems": 1, "prefixItems": [{"const": "batch"}],
    "items": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": NAME_RE.pattern}]},
    "description": "'batch' first, then positive integers or sweep-parameter names"})
Sweep = Annotated[dict[Annotated[Any, PlainValidator(_sweep_name)], SweepValues], AfterValidator(_needs_batch),
                  _Described({"type": "object", "required": ["batch"], "additionalProperties": _SWEEP_VALUES,
                              "propertyNames": {"pattern": NAME_RE.pattern}})]

# Schemas of the attribute checks of suite.ops (tests/test_schema.py checks every check used in OPS is here).
_POS_INT = {"type": "integer", "minimum": 1}
_INT_LIST = {"type": "array", "items": {"type": "integer"}, "minItems": 1}
ATTR_SCHEMAS: dict[Callable, dict] = {
    ops._pos_int: _POS_INT,
    ops._int: {"type": "integer"},
    ops._bool: {"type": "boolean"},
    ops._pos_float: {"type": "number", "exclusiveMinimum": 0},
    ops._pair: {"anyOf": [_POS_INT, {"type": "array", "items": _POS_INT, "minItems": 2, "maxItems": 2}]},
    ops._padding: {"enum": ["same", "valid"]},
    ops._int_list: _INT_LIST,
    ops._axes: {"anyOf": [{"type": "integer"}, _INT_LIST]},

    ops._gelu_approximate: {"enum": ["none", "tanh"]},
    ops._rate: {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    ops._number: {"type": "number"},
    ops._int_or_null: {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    ops._pad_pairs: {"type": "array", "minItems": 1,
                     "items": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2,
                               "maxItems": 2}},

    ops._nonneg_pair: {"anyOf": [{"type": "integer", "minimum": 0},
                                 {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2,
                                  "maxItems": 2}]},
    ops._resize_mode: {"enum": ["nearest", "bilinear"]},

    ops._rope: {"type": "object", "additionalProperties": False, "required": ["style"],
                "properties": {"style": {"enum": list(ops.ROPE_STYLES)},
                               "base": {"type": "number", "exclusiveMinimum": 1},
                               "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}}},
}


def _absent(description: str = "", **kw):
    """A field that may be left out (None then); the schema does not advertise ``null`` (see _SchemaGenerator)."""
    return Field(default=None, description=description or None, **kw)


# ---- models ----

class SpecModel(BaseModel):
    """Base of every model: strict types, unknown fields rejected, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def missing_message(cls, field: str) -> str:
        return "missing required field"

    @classmethod
    def unknown_message(cls, field: str) -> str:
        return f"unknown field; expected one of {', '.join(cls.model_fields)}"


class KindedModel(SpecModel):
    """A member of a union tagged by ``kind``: messages name the kind."""

    @classmethod
    def tag(cls) -> str:
        return get_args(cls.model_fields["kind"].annotation)[0]

    @classmethod
    def missing_message(cls, field: str) -> str:
        return f"missing required field for {cls.tag()}"

    @classmethod
    def unknown_message(cls, field: str) -> str:
        return f"unknown field for {cls.tag()}; expected {', '.join(f for f in cls.model_fields if f != 'kind')}"


class NormalDistribution(KindedModel):
    kind: Literal["normal"]
    mean: Number
    std: PosNumber


class UniformDistribution(KindedModel):
    kind: Literal["uniform"]
    low: Number
    high: Number

    @model_validator(mode="after")
    def _ordered(self):
        if self.high <= self.low:
            fail_at("high", "expected high > low")
        return self


class RandintDistribution(KindedModel):
    """Integer ids in [low, high): high is exclusive."""

    kind: Literal["randint"]
    low: RandintBound
    high: RandintBound

    @model_validator(mode="after")
    def _ordered(self):
        if self.high <= self.low:
            fail_at("high", "expected high > low")
        return self


class FileDistribution(KindedModel):
    """Fixed values: the array named like the input in a NumPy ``.npz`` file (a relative path is relative to
    the workload file), e.g. a value cut out of another workload by ``bench diagnose``. Its shape must be
    the input's at every sweep point; the file's content is part of the workload's hash."""

    kind: Literal["file"]
    path: NpzPath


Distribution = Annotated[Union[NormalDistribution, UniformDistribution, RandintDistribution, FileDistribution],
                         Field(discriminator="kind")]
FloatDistribution = Annotated[Union[NormalDistribution, UniformDistribution], Field(discriminator="kind")]
LabelDistribution = Annotated[Union[NormalDistribution, UniformDistribution, FileDistribution], Field(discriminator="kind")]
STANDARD_NORMAL = NormalDistribution(kind="normal", mean=0.0, std=1.0)


class InputModel(SpecModel):
    """One model input; integer dtypes need a randint distribution."""

    name: Identifier
    shape: Shape
    dtype: DType = "float32"
    distribution: Distribution = STANDARD_NORMAL

    @model_validator(mode="after")
    def _kind_fits_dtype(self):
        is_int = self.dtype.startswith("int")
        if self.distribution.kind != "file" and is_int != (self.distribution.kind == "randint"):
            fail_at("distribution.kind", f"{self.dtype} inputs need {'randint' if is_int else 'normal or uniform'}")
        return self


class NodeBase(SpecModel):
    """A graph node. One generated subclass per op of suite.ops.OPS adds ``op`` and the op's attributes."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["input"]}, {"required": ["inputs"]}]})
    name: Identifier
    input: NodeRef = _absent("the node or input this node reads")
    inputs: NodeRefs = _absent("the nodes or inputs this node reads")

    @classmethod
    def op_name(cls) -> str:
        return get_args(cls.model_fields["op"].annotation)[0]

    @classmethod
    def missing_message(cls, field: str) -> str:
        if any(a.name == field for a in OPS[cls.op_name()].attrs):
            return f"missing required attribute of {cls.op_name()}"
        return super().missing_message(field)

    @classmethod
    def unknown_message(cls, field: str) -> str:
        names = sorted(a.name for a in OPS[cls.op_name()].attrs)
        return f"unknown attribute for {cls.op_name()}; expected {', '.join(names) or 'no attributes'}"

    def sources(self) -> tuple[str, ...]:
        return (self.input,) if self.input is not None else tuple(self.inputs)

    @model_validator(mode="after")
    def _arity(self):
        if (self.input is None) == (self.inputs is None):
            fail_at("", "expected exactly one of 'input' (a name) or 'inputs' (a list of names)")
        key, n, op = ("input" if self.input is not None else "inputs"), len(self.sources()), OPS[self.op_name()]
        if op.arity is None and n < 2:
            fail_at(key, f"op {op.name} expects two or more inputs, got {n}")
        if op.arity is not None and n != op.arity:
            fail_at(key, f"op {op.name} expects {op.arity} input(s), got {n}")
        return self


def _node_model(opdef: ops.OpDef) -> type[NodeBase]:
    arity = {"minItems": 2} if opdef.arity is None else {"minItems": opdef.arity, "maxItems": opdef.arity}
    fields: dict[str, Any] = {
        "op": (Literal[opdef.name], ...),
        "inputs": (NodeRefs,
                   _absent("the nodes or inputs this node reads", json_schema_extra=arity)),
    }
    for a in opdef.attrs:
        tp = _checked(a.check, ATTR_SCHEMAS.get(a.check, {}))
        if a.default is REQUIRED:
            fields[a.name] = (tp, Field(description=f"required attribute of {opdef.name}"))
        elif a.default is None:
            fields[a.name] = (tp, _absent(f"attribute of {opdef.name} (default: see workloads/README.md)"))
        else:
            fields[a.name] = (tp, Field(default=a.default, description=f"attribute of {opdef.name}"))
    title = "".join(p.capitalize() for p in opdef.name.split("_")) + "Node"
    return create_model(title, __base__=NodeBase, __doc__=f"A node running op {opdef.name}.", **fields)


NODE_MODELS: dict[str, type[NodeBase]] = {name: _node_model(opdef) for name, opdef in OPS.items()}
NodeModel = Annotated[Union[tuple(NODE_MODELS.values())], Field(discriminator="op")]


class ToleranceModel(SpecModel):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})
    rtol: NonNegNumber = _absent("relative tolerance")
    atol: NonNegNumber = _absent("absolute tolerance")

    @model_validator(mode="after")
    def _not_empty(self):
        if self.rtol is None and self.atol is None:
            fail_at("", "expected a mapping with rtol and/or atol")
        return self


class SgdOptimizer(KindedModel):
    kind: Literal["sgd"]
    learning_rate: PosNumber
    momentum: UnitInterval = 0.0
    nesterov: Bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.nesterov and not self.momentum:
            fail_at("nesterov", "nesterov needs a momentum > 0")
        return self


class AdamOptimizer(KindedModel):
    kind: Literal["adam"]
    learning_rate: PosNumber
    beta_1: UnitInterval = 0.9
    beta_2: UnitInterval = 0.999
    epsilon: PosNumber = 1e-8


class LabelsModel(SpecModel):
    seed: NonNegInt = 0
    distribution: LabelDistribution = _absent("mean_squared_error only; default normal(0, 1); `kind: file` reads "
                                              "the array `labels` of an .npz (bench diagnose --mode train)")


class TrainModel(SpecModel):
    """The ``train:`` section: one training step of the workload."""

    loss: Loss
    output: NodeRef = _absent("the workload output the loss reads (default: the first output)")
    labels: LabelsModel = Field(default_factory=LabelsModel, description="label seed (and distribution)")
    optimizer: Annotated[Union[SgdOptimizer, AdamOptimizer], Field(discriminator="kind")]
    steps: Steps = 2

    @model_validator(mode="after")
    def _labels_fit_loss(self):
        if self.labels.distribution is not None and self.loss != "mean_squared_error":
            fail_at("labels.distribution",
                    "only mean_squared_error takes a label distribution; cross-entropy labels are class ids")
        return self


class SourceModel(SpecModel):
    """A real model of one framework instead of a graph (suite.sources): built by an importable factory or
    read from a file, with seeded weights unless a weights file is given."""

    framework: SourceFramework = Field(description="the framework the model is written in: " + ", ".join(SOURCE_FRAMEWORKS))
    factory: Factory = _absent("'module:callable' returning the model (torch: an nn.Module; keras: a keras.Model; "
                               "flax: an nnx.Module, given rngs=nnx.Rngs(seed) when it takes rngs)")
    kwargs: dict[str, Any] = Field({}, description="keyword arguments of the factory")
    file: FilePath = _absent("a saved model instead of a factory (onnx: the .onnx file; keras: a .keras file), "
                             "relative to the workload file")
    weights: FilePath = _absent("trained weights (torch: a .safetensors or state-dict .pt file; keras: a .weights.h5 "
                                "file; flax: a .msgpack of the model's nnx.State); default: the framework's seeded "
                                "initialisation")

    @model_validator(mode="after")
    def _one_way(self):
        if self.framework == "onnx":
            if self.file is None:
                fail_at("file", "an onnx source is a file: give file: path/to/model.onnx")
            if self.factory is not None:
                fail_at("factory", "an onnx source is read from file:, it has no factory")
        elif (self.factory is None) == (self.file is None):
            fail_at("factory", f"a {self.framework} source needs exactly one of factory: (module:callable) or file:")
        if self.file is not None and self.framework in ("torch", "flax"):
            fail_at("file", f"a {self.framework} source is built by factory: (module:callable); "
                            "trained weights go in weights:")
        if self.kwargs and self.factory is None:
            fail_at("kwargs", "kwargs are the factory's arguments; this source has no factory")
        if self.weights is not None and self.framework == "onnx":
            fail_at("weights", "an ONNX file holds its own weights")
        return self


class WorkloadModel(SpecModel):
    """A workload file (workloads/README.md describes every field)."""

    model_config = ConfigDict(title="Workload")
    name: WorkloadName = Field(
        description="the workload id used by -w, in results and on the dashboard")
    description: str = Field("", description="one sentence, shown on the dashboard")
    tags: list[str] = Field([], description="free-form labels")
    seed: NonNegInt = Field(0, description="seeds the weight initialiser and the inputs")
    inputs: list[InputModel] = Field(min_length=1, description="the model inputs")
    sweep: Sweep = Field(description="parameter name -> values; every combination is one cell; batch is required")
    graph: list[NodeModel] = Field(None, min_length=1, description="the nodes, each after the nodes it reads "
                                                                    "(or source:, a real model)")
    source: SourceModel = _absent("a real model of one framework instead of graph: (workloads/README.md)")
    outputs: OutputNames = Field(None, description="the model's outputs, in order (source: which of the model's "
                                                   "outputs, by key or position; default its first)")
    tolerance: ToleranceModel | None = Field(None, description="overrides the dtype defaults of suite/verify.py")
    classes_axis: Axis | None = Field(
        None, description="outputs are class scores along this axis (top-1 agreement is reported)")
    train: TrainModel = _absent("makes the workload runnable in train mode")

    @model_validator(mode="after")
    def _graph_or_source(self):
        if self.graph is None and self.source is None:
            fail_at("graph", "missing required field (a workload has graph: nodes, or source: a model)")
        if self.graph is not None and self.source is not None:
            fail_at("source", "a workload has graph: or source:, not both")
        if self.graph is not None and self.outputs is None:
            fail_at("outputs", "missing required field")
        if self.source is not None and self.train is not None:
            fail_at("train", "train mode is not available for source: workloads (inference routes only)")
        return self


class ProfileModel(SpecModel):
    """A hardware profile file (see suite/profiles.py)."""

    model_config = ConfigDict(title="Hardware profile")
    name: ProfileName = Field(
        description="unique profile name")
    description: str = Field("", description="one or two lines for bench list")
    device: Device = "cpu"
    threads: Threads = Field(
        0, description="intra-op threads; 0 = every core the process may use")
    affinity: Affinity | None = Field(
        None, description="core ids to pin the worker to; null = no pinning")
    precision: Precision = "float32"
    targets: Targets = Field(
        ["*"], description="fnmatch globs over target ids this profile runs")
    default: bool = Field(
        False, description="part of bench run's default matrix (no -p given); the others are one -p or "
                           "--all-profiles away")

    @model_validator(mode="after")
    def _threads_fit_affinity(self):
        if self.affinity is not None and self.threads > len(self.affinity):
            fail_at("threads", f"expected at most {len(self.affinity)} (the cores in affinity), got {self.threads}")
        return self


# ---- the published JSON Schemas ----

class _SchemaGenerator(GenerateJsonSchema):
    def default_schema(self, schema):
        if schema.get("default", ...) is None:  # a field one may leave out: do not suggest writing null
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


def _tidy(node: Any) -> None:
    """Drops pydantic's property titles (noise in an editor's hover) and evens out what differs between
    pydantic versions (2.6 wraps a described $ref in allOf and gives a const no type), so the published
    file is the same whichever version generated it."""
    if isinstance(node, dict):
        for prop in (node.get("properties") or {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        all_of = node.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and set(all_of[0]) == {"$ref"}:
            node["$ref"] = node.pop("allOf")[0]["$ref"]
        if isinstance(node.get("const"), str):
            node.setdefault("type", "string")
        for v in node.values():
            _tidy(v)
    elif isinstance(node, list):
        for v in node:
            _tidy(v)


def json_schema(model: type[BaseModel]) -> dict:
    """The JSON Schema (draft 2020-12) of a file validated by ``model``."""
    schema = model.model_json_schema(schema_generator=_SchemaGenerator)
    _tidy(schema)
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def schema_text(model: type[BaseModel]) -> str:
    """The schema as published: pretty-printed, sorted keys, trailing newline."""
    return json.dumps(json_schema(model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Prints the workload JSON Schema (with ``--profile``: the hardware profile schema)."""
    parser = argparse.ArgumentParser(prog="python -m suite.spec_models", description=main.__doc__)
    parser.add_argument("--profile", action="store_true", help="print the hardware profile schema instead")
    args = parser.parse_args(argv)
    sys.stdout.write(schema_text(ProfileModel if args.profile else WorkloadModel))
    return 0


if __name__ == "__main__":
    sys.exit(main())

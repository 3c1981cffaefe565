"""The published JSON Schemas (workloads/schema.json, hardware_profiles/schema.json): current, complete, and
agreeing with the pydantic models that validate the files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from suite import spec_models
from suite.ops import OPS, REQUIRED
from suite.profiles import load_profile
from suite.spec import SpecError, load_workload, parse_workload

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = {"workloads": spec_models.WorkloadModel, "hardware_profiles": spec_models.ProfileModel}
WORKLOAD_FILES = sorted((ROOT / "workloads").glob("*.yaml"))
PROFILE_FILES = sorted((ROOT / "hardware_profiles").glob("*.yaml"))
EDITOR_LINE = "# yaml-language-server: $schema=./schema.json"


def _schema(folder: str) -> dict:
    return json.loads((ROOT / folder / "schema.json").read_text())


def _validator(folder: str):
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(_schema(folder))


@pytest.mark.parametrize("folder", SCHEMAS)
def test_published_schema_is_current(folder):
    published = (ROOT / folder / "schema.json").read_text()
    flag = " --profile" if folder == "hardware_profiles" else ""
    assert published == spec_models.schema_text(SCHEMAS[folder]), (
        f"{folder}/schema.json is stale: run `python -m suite.spec_models{flag} > {folder}/schema.json`")


def test_main_prints_the_schema(capsys):
    assert spec_models.main([]) == 0
    assert capsys.readouterr().out == (ROOT / "workloads" / "schema.json").read_text()


@pytest.mark.parametrize("path", WORKLOAD_FILES + PROFILE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_file_names_its_schema(path):
    assert path.read_text().splitlines()[0] == EDITOR_LINE


@pytest.mark.parametrize("path", WORKLOAD_FILES, ids=lambda p: p.stem)
def test_shipped_workload_parses(path):
    wl = load_workload(path)
    assert wl.nodes and wl.outputs


@pytest.mark.parametrize("path", WORKLOAD_FILES, ids=lambda p: p.stem)
def test_shipped_workload_matches_schema(path):
    errors = [e.message for e in _validator("workloads").iter_errors(yaml.safe_load(path.read_text()))]
    assert not errors, errors


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.stem)
def test_shipped_profile_parses_and_matches_schema(path):
    load_profile(path)
    errors = [e.message for e in _validator("hardware_profiles").iter_errors(yaml.safe_load(path.read_text()))]
    assert not errors, errors


def test_schema_lists_every_op_and_its_attributes():
    schema = _schema("workloads")
    mapping = schema["properties"]["graph"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == set(OPS)
    for op, ref in mapping.items():
        node = schema["$defs"][ref.rsplit("/", 1)[1]]
        attrs = OPS[op].attrs
        assert node["properties"]["op"]["const"] == op
        assert set(node["properties"]) == {"name", "op", "input", "inputs"} | {a.name for a in attrs}, op
        assert set(node["required"]) == {"name", "op"} | {a.name for a in attrs if a.default is REQUIRED}, op


def test_every_attribute_check_has_a_schema():
    checks = {a.check.__name__ for op in OPS.values() for a in op.attrs if a.check not in spec_models.ATTR_SCHEMAS}
    assert not checks, f"add these suite.ops checks to spec_models.ATTR_SCHEMAS: {sorted(checks)}"


GOOD = {"name": "bad", "inputs": [{"name": "x", "shape": ["batch", 8]}], "sweep": {"batch": [2]},
        "graph": [{"name": "fc", "op": "dense", "input": "x", "units": 4}], "outputs": ["fc"]}


def _edit(**changes):
    data = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        data[key] = value
    return data


# id, data, field path, a piece of the message
BAD = [
    ("unknown_op", _edit(graph=[{"name": "fc", "op": "dense_relu", "input": "x", "units": 4}]), "graph[0].op",
     "unknown op 'dense_relu'; expected one of add, attention"),
    ("missing_units", _edit(graph=[{"name": "fc", "op": "dense", "input": "x"}]), "graph[0].units",
     "missing required attribute of dense"),
    ("units_wrong_type", _edit(graph=[{"name": "fc", "op": "dense", "input": "x", "units": "4"}]), "graph[0].units",
     "expected a positive integer, got '4'"),
    ("seed_wrong_type", _edit(seed=1.5), "seed", "expected a non-negative integer, got 1.5"),
    ("shape_dim_negative", _edit(inputs=[{"name": "x", "shape": ["batch", -8]}]), "inputs[0].shape[1]",
     "expected a positive integer or a sweep name, got -8"),
    ("sweep_not_a_list", _edit(sweep={"batch": 2}), "sweep.batch", "expected a non-empty list of positive integers, got 2"),
    ("sweep_without_batch", _edit(sweep={"seq": [2]}), "sweep.batch", "missing required sweep parameter"),
    ("distribution_kind", _edit(inputs=[{"name": "x", "shape": ["batch", 8], "distribution": {"kind": "gauss"}}]),
     "inputs[0].distribution", "expected a mapping with kind one of normal, uniform, randint, file, got kind 'gauss'"),
    ("optimizer_field", _edit(train={"loss": "mean_squared_error", "optimizer": {"kind": "adam", "lr": 0.1}}),
     "train.optimizer.lr", "unknown field for adam; expected learning_rate, beta_1, beta_2, epsilon"),
]


@pytest.mark.parametrize("data,field,expect", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_workload_names_the_field(data, field, expect):
    with pytest.raises(SpecError) as info:
        parse_workload(data, "bad.yaml")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"bad.yaml: {field}: "), msg
    assert expect in msg, msg


@pytest.mark.parametrize("data", [c[1] for c in BAD], ids=[c[0] for c in BAD])
def test_schema_rejects_bad_workload(data):
    assert any(True for _ in _validator("workloads").iter_errors(data))


def test_spec_modules_import_no_framework():
    code = ("import sys, suite.spec_models, suite.spec, suite.profiles; "
            "print([m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"

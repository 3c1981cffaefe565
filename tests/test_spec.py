"""Workload file validation: every bad file is one line naming the file, the field path and the expectation."""
from __future__ import annotations

import textwrap

import pytest
import yaml

from opcases import CASES
from suite.spec import SpecError, load_workload, load_workloads, parse_workload

GOOD = """\
name: good
description: A small valid workload.
inputs:
  - {name: x, shape: [batch, 8]}
sweep: {batch: [2]}
graph:
  - {name: fc, op: dense, input: x, units: 4}
outputs: [fc]
"""


def wl_text(inputs="  - {name: x, shape: [batch, 8]}", graph="  - {name: fc, op: dense, input: x, units: 4}",
            outputs="[fc]", sweep="{batch: [2]}", extra=""):
    """A workload file with one part replaced; the rest is the valid GOOD workload."""
    return f"name: bad\ninputs:\n{inputs}\nsweep: {sweep}\ngraph:\n{graph}\noutputs: {outputs}\n{extra}"


def g(*lines):
    return "\n".join(f"  - {line}" for line in lines)


# id, file text, field path (None: the whole file), a piece of the expectation
BAD = [
    ("malformed_yaml_unclosed_bracket", "name: bad\ninputs: [x, y\nsweep: {batch: [1]}\n", "malformed YAML",
     "expected ',' or ']'"),
    ("top_level_list", "- name: bad\n- graph: []\n", None, "expected a mapping at the top level, got list"),
    ("top_level_scalar", "just a string\n", None, "expected a mapping at the top level, got str"),
    ("top_level_number", "42\n", None, "expected a mapping at the top level, got int"),
    ("empty_file", "", None, "the file is empty (or only comments); expected a mapping with name, inputs"),
    ("only_comments", "# nothing here\n\n", None, "the file is empty"),
    ("missing_outputs", "name: bad\ninputs:\n  - {name: x, shape: [batch, 8]}\nsweep: {batch: [2]}\n"
     "graph:\n  - {name: fc, op: dense, input: x, units: 4}\n", "outputs", "missing required field"),
    ("unknown_top_level_field", wl_text(extra="layers: 3\n"), "layers", "unknown field; expected one of"),
    ("bad_workload_name", wl_text().replace("name: bad", "name: Bad-Name"), "name", "lower-case letters"),
    ("unknown_op", wl_text(graph=g("{name: fc, op: dense, input: x, units: 4}", "{name: act, op: swish, input: fc}"),
                           outputs="[act]"), "graph[1].op", "unknown op 'swish'; expected one of"),
    ("op_not_a_string", wl_text(graph=g("{name: fc, op: [dense], input: x, units: 4}")), "graph[0].op",
     "unknown op ['dense']; expected one of"),
    ("missing_op_attribute", wl_text(graph=g("{name: fc, op: dense, input: x}")), "graph[0].units",
     "missing required attribute of dense"),
    ("negative_units", wl_text(graph=g("{name: fc, op: dense, input: x, units: -4}")), "graph[0].units",
     "expected a positive integer, got -4"),
    ("bool_use_bias_as_string", wl_text(graph=g("{name: fc, op: dense, input: x, units: 4, use_bias: 'yes'}")),
     "graph[0].use_bias", "expected true or false"),
    ("unknown_attribute", wl_text(graph=g("{name: fc, op: dense, input: x, units: 4, activation: relu}")),
     "graph[0].activation", "unknown attribute for dense"),
    ("bad_padding", wl_text(inputs="  - {name: x, shape: [batch, 3, 8, 8]}",
                            graph=g("{name: fc, op: conv2d, input: x, filters: 2, kernel_size: 3, padding: full}")),
     "graph[0].padding", "expected 'same' or 'valid'"),
    ("unknown_input_reference", wl_text(graph=g("{name: a, op: dense, input: x, units: 4}",
                                                "{name: b, op: relu, input: a}",
                                                "{name: fc, op: dense, input: nope, units: 2}")),
     "graph[2].input", "unknown node 'nope'"),
    ("forward_reference", wl_text(graph=g("{name: a, op: relu, input: fc}", "{name: fc, op: dense, input: x, units: 4}")),
     "graph[0].input", "nodes must come after the nodes they read"),
    ("duplicate_node_name", wl_text(graph=g("{name: fc, op: dense, input: x, units: 4}",
                                            "{name: fc, op: relu, input: fc}")), "graph[1].name", "duplicate name 'fc'"),
    ("node_named_like_input", wl_text(graph=g("{name: x, op: dense, input: x, units: 4}"), outputs="[x]"),
     "graph[0].name", "duplicate name 'x'"),
    ("wrong_arity", wl_text(graph=g("{name: fc, op: add, input: x}")), "graph[0].input", "expects 2 input(s), got 1"),
    ("dense_then_conv_on_2d", wl_text(graph=g("{name: h, op: dense, input: x, units: 4}",
                                              "{name: fc, op: conv2d, input: h, filters: 2, kernel_size: 3}")),
     "graph[1]", "expected a rank-4 input"),
    ("reshape_impossible_size", wl_text(graph=g("{name: fc, op: reshape, input: x, shape: [3, 3]}")),
     "graph[0].shape", "cannot reshape [8] (8 elements) into [3, 3]"),
    ("reshape_two_minus_ones", wl_text(graph=g("{name: fc, op: reshape, input: x, shape: [-1, -1]}")),
     "graph[0].shape", "at most one -1"),
    ("conv_kernel_larger_than_input", wl_text(inputs="  - {name: x, shape: [batch, 3, 4, 4]}",
                                              graph=g("{name: fc, op: conv2d, input: x, filters: 2, kernel_size: 5}")),
     "graph[0].kernel_size", "does not fit an input of size 4 with padding 'valid'"),
    ("conv_groups_not_dividing_channels", wl_text(
        inputs="  - {name: x, shape: [batch, 3, 8, 8]}",
        graph=g("{name: fc, op: conv2d, input: x, filters: 4, kernel_size: 3, groups: 2}")),
     "graph[0].groups", "input channels 3 are not divisible by groups 2"),
    ("pool_larger_than_input", wl_text(inputs="  - {name: x, shape: [batch, 3, 2, 2]}",
                                       graph=g("{name: fc, op: max_pool2d, input: x, pool_size: 3}")),
     "graph[0].pool_size", "does not fit"),
    ("attention_heads_not_dividing_width", wl_text(inputs="  - {name: x, shape: [batch, 5, 10]}",
                                                   graph=g("{name: fc, op: attention, input: x, num_heads: 4}")),
     "graph[0].num_heads", "model width 10 is not divisible by num_heads 4"),
    ("concat_mismatched_dims", wl_text(inputs="  - {name: x, shape: [batch, 8]}\n  - {name: z, shape: [batch, 3, 2]}",
                                       graph=g("{name: a, op: dense, input: x, units: 6}",
                                               "{name: r, op: reshape, input: a, shape: [2, 3]}",
                                               "{name: fc, op: concat, inputs: [r, z], axis: 2}")),
     "graph[2]", "differ outside axis 2"),
    ("softmax_on_batch_axis", wl_text(graph=g("{name: fc, op: softmax, input: x, axis: 0}")), "graph[0].axis",
     "the batch axis (0) cannot be used here"),
    ("mean_repeated_axis", wl_text(inputs="  - {name: x, shape: [batch, 3, 4]}",
                                   graph=g("{name: fc, op: mean, input: x, axis: [1, -2]}")),
     "graph[0].axis", "names the same axis twice"),
    ("transpose_moves_batch", wl_text(inputs="  - {name: x, shape: [batch, 8, 2]}",
                                      graph=g("{name: fc, op: transpose, input: x, perm: [1, 0, 2]}")),
     "graph[0].perm", "perm[0] must be 0"),
    ("shape_fails_at_one_sweep_point_only", wl_text(inputs="  - {name: x, shape: [batch, seq]}",
                                                    sweep="{batch: [2], seq: [4, 3]}",
                                                    graph=g("{name: fc, op: reshape, input: x, shape: [2, -1]}")),
     "graph[0].shape", "(at batch=2, seq=3)"),
    ("missing_sweep_batch", wl_text(sweep="{seq: [4]}"), "sweep.batch", "missing required sweep parameter"),
    ("sweep_value_not_positive", wl_text(sweep="{batch: [0, 2]}"), "sweep.batch",
     "expected a non-empty list of positive integers"),
    ("shape_not_starting_with_batch", wl_text(inputs="  - {name: x, shape: [8, batch]}"), "inputs[0].shape",
     "expected a list starting with 'batch'"),
    ("unknown_sweep_name_in_shape", wl_text(inputs="  - {name: x, shape: [batch, seq]}"), "inputs[0].shape[1]",
     "unknown sweep parameter 'seq'"),
    ("bad_dtype", wl_text(inputs="  - {name: x, shape: [batch, 8], dtype: float64}"), "inputs[0].dtype",
     "expected one of float32, int32, int64, got 'float64'"),
    ("integer_input_into_dense", wl_text(
        inputs="  - {name: x, shape: [batch, 8], dtype: int32, distribution: {kind: randint, low: 0, high: 5}}"),
     "graph[0].input", "op dense expects a float input"),
    ("float_input_into_embedding", wl_text(graph=g("{name: fc, op: embedding, input: x, vocab_size: 10, dim: 4}")),
     "graph[0].input", "op embedding expects an integer input"),
    ("vocab_size_smaller_than_randint_high", wl_text(
        inputs="  - {name: x, shape: [batch, 8], dtype: int64, distribution: {kind: randint, low: 0, high: 100}}",
        graph=g("{name: fc, op: embedding, input: x, vocab_size: 50, dim: 4}")),
     "graph[0].vocab_size", "input x draws ids up to 99, expected vocab_size > that, got 50"),
    ("bad_distribution_kind", wl_text(inputs="  - {name: x, shape: [batch, 8], distribution: {kind: gamma}}"),
     "inputs[0].distribution", "expected a mapping with kind one of normal, uniform, randint"),
    ("distribution_kind_not_a_string", wl_text(inputs="  - {name: x, shape: [batch, 8], distribution: {kind: [normal]}}"),
     "inputs[0].distribution", "expected a mapping with kind one of"),
    ("distribution_missing_parameter", wl_text(
        inputs="  - {name: x, shape: [batch, 8], distribution: {kind: uniform, low: 0}}"),
     "inputs[0].distribution.high", "missing required field for uniform"),
    ("distribution_high_not_above_low", wl_text(
        inputs="  - {name: x, shape: [batch, 8], distribution: {kind: uniform, low: 1, high: 1}}"),
     "inputs[0].distribution.high", "expected high > low"),
    ("integer_input_with_normal", wl_text(
        inputs="  - {name: x, shape: [batch, 8], dtype: int32, distribution: {kind: normal, mean: 0, std: 1}}"),
     "inputs[0].distribution.kind", "int32 inputs need randint"),
    ("unknown_output", wl_text(outputs="[fc, logits]"), "outputs[1]", "unknown node 'logits'"),
    ("negative_tolerance", wl_text(extra="tolerance: {rtol: -1.0e-3}\n"), "tolerance.rtol",
     "expected a non-negative number"),
]


@pytest.mark.parametrize("text,field,expect", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_workload_is_one_clear_line(tmp_path, text, field, expect):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_workload(path)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{path}: "), msg
    if field is not None:
        assert msg.startswith(f"{path}: {field}: "), msg
    assert expect in msg, msg


def test_unreadable_file_is_one_line(tmp_path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(SpecError) as info:
        load_workload(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: cannot read") and "\n" not in msg


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, "name: caf\xe9\n".encode("latin-1"), b"name: a\x00b\n",
                                     b"\x00\xff\xfe garbage"],
                         ids=["binary", "latin-1", "nul-byte", "garbage"])
def test_binary_or_non_utf8_file_is_one_line(tmp_path, content):
    path = tmp_path / "garbage.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_workload(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    """The read's own OSError, whatever the user (root reads a chmod-000 file; tests/test_cli.py drops that)."""
    path = tmp_path / "locked.yaml"
    path.write_text(GOOD)

    def denied(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(path), "read_text", denied)
    with pytest.raises(SpecError) as info:
        load_workload(path)
    assert str(info.value) == f"{path}: cannot read: Permission denied"


def test_directory_is_not_a_workload_file(tmp_path):
    with pytest.raises(SpecError) as info:
        load_workload(tmp_path)
    assert str(info.value) == (f"{tmp_path}: is a directory, not a workload file "
                               "(give a .yaml file, or --workloads-dir DIR for a folder of them)")


@pytest.mark.parametrize("is_file,expect", [
    (False, "no such folder (--workloads-dir expects a folder of workload .yaml files)"),
    (True, "is a file, not a folder (--workloads-dir expects a folder of workload .yaml files)"),
], ids=["missing-folder", "file-as-folder"])
def test_workloads_dir_must_be_a_folder(tmp_path, is_file, expect):
    directory = tmp_path / "given.yaml"
    if is_file:
        directory.write_text(GOOD)
    with pytest.raises(SpecError) as info:
        load_workloads(directory)
    assert str(info.value) == f"{directory}: {expect}"


@pytest.mark.parametrize("name,expect", [
    ("no_such_workload", "unknown workload 'no_such_workload'; known: good"),
    ("DIR/missing.yaml", "DIR/missing.yaml: no such file (a workload is a name in DIR or a .yaml path)"),
    ("missing.yml", "missing.yml: no such file (a workload is a name in DIR or a .yaml path)"),
    ("DIR", "DIR: is a directory, not a workload file"),
], ids=["unknown-name", "missing-path", "missing-yml", "directory"])
def test_workload_names_and_paths(tmp_path, name, expect):
    (tmp_path / "good.yaml").write_text(GOOD)
    with pytest.raises(SpecError) as info:
        load_workloads(tmp_path, [name.replace("DIR", str(tmp_path))])
    assert str(info.value).startswith(expect.replace("DIR", str(tmp_path))), str(info.value)


def test_good_workload_loads_with_defaults(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    wl = load_workload(path)
    assert wl.name == "good" and wl.path == str(path) and wl.seed == 0
    assert wl.outputs == ("fc",)
    assert dict(wl.node("fc").attrs) == {"units": 4, "use_bias": True}
    assert dict(wl.inputs[0].distribution) == {"kind": "normal", "mean": 0.0, "std": 1.0}
    assert wl.inputs[0].dtype == "float32"
    assert wl.shapes({"batch": 2}) == {"x": (2, 8), "fc": (2, 4)}


def test_pool_strides_default_to_pool_size():
    data = {"name": "p", "inputs": [{"name": "x", "shape": ["batch", 2, 8, 8]}], "sweep": {"batch": [1]},
            "graph": [{"name": "y", "op": "max_pool2d", "input": "x", "pool_size": [2, 4]}], "outputs": ["y"]}
    wl = parse_workload(data)
    assert wl.node("y").attrs["strides"] == (2, 4)
    assert wl.shapes({"batch": 1})["y"] == (1, 2, 4, 2)


# ---------------------------------------------------------------- the shared op cases

@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_opcase_parses_from_yaml(tmp_path, case):
    path = tmp_path / f"{case['name']}.yaml"
    path.write_text(yaml.safe_dump(case, sort_keys=False))
    wl = load_workload(path)
    assert wl == parse_workload(case, str(path))
    assert wl.hash == parse_workload(case, str(path)).hash
    shapes = wl.shapes(wl.param_grid()[0])
    assert all(name in shapes for name in wl.outputs)


# ---------------------------------------------------------------- hash

def _base():
    return yaml.safe_load(textwrap.dedent("""\
        name: h
        description: first description
        tags: [a]
        seed: 0
        inputs:
          - {name: x, shape: [batch, 8], distribution: {kind: normal, mean: 0.0, std: 1.0}}
        sweep: {batch: [1, 2]}
        graph:
          - {name: fc, op: dense, input: x, units: 4}
        outputs: [fc]
        """))


def _set(path, value):
    def edit(d):
        *head, last = path
        for k in head:
            d = d[k]
        d[last] = value
    return edit


HASH_CHANGES = [
    ("units", _set(["graph", 0, "units"], 5)),
    ("use_bias", _set(["graph", 0, "use_bias"], False)),
    ("seed", _set(["seed"], 1)),
    ("input_shape", _set(["inputs", 0, "shape"], ["batch", 9])),
    ("distribution", _set(["inputs", 0, "distribution", "std"], 2.0)),
    ("sweep", _set(["sweep", "batch"], [1, 4])),
    ("node_name", lambda d: (_set(["graph", 0, "name"], "fc2")(d), _set(["outputs"], ["fc2"])(d))),
    ("tolerance", _set(["tolerance"], {"rtol": 1e-3})),
]
HASH_SAME = [
    ("description", _set(["description"], "a different sentence")),
    ("tags", _set(["tags"], ["b", "c"])),
    ("key_order", lambda d: d.update({"graph": [dict(reversed(list(d["graph"][0].items())))]})),
]


@pytest.mark.parametrize("edit", [c[1] for c in HASH_CHANGES], ids=[c[0] for c in HASH_CHANGES])
def test_hash_changes_with_result_affecting_field(edit):
    data = _base()
    before = parse_workload(data).hash
    edit(data)
    assert parse_workload(data).hash != before


@pytest.mark.parametrize("edit", [c[1] for c in HASH_SAME], ids=[c[0] for c in HASH_SAME])
def test_hash_ignores_presentation_fields(edit):
    data = _base()
    before = parse_workload(data).hash
    edit(data)
    assert parse_workload(data).hash == before


# ---------------------------------------------------------------- sweep and flops

def test_param_grid_covers_the_sweep_product():
    data = _base()
    data["sweep"] = {"batch": [1, 4], "seq": [3, 5, 7]}
    data["inputs"][0]["shape"] = ["batch", "seq", 8]
    wl = parse_workload(data)
    grid = wl.param_grid()
    assert len(grid) == 6
    assert {(p["batch"], p["seq"]) for p in grid} == {(b, s) for b in (1, 4) for s in (3, 5, 7)}
    assert grid[0] == {"batch": 1, "seq": 3} and grid[1] == {"batch": 1, "seq": 5}  # file order
    assert wl.shapes({"batch": 4, "seq": 7})["fc"] == (4, 7, 4)


FLOPS = [
    # id, case name, sweep values, expected FLOPs (multiply-add = 2)
    ("dense", "dense", {"batch": 2}, 2 * 2 * 5 * 7),
    ("dense_3d", "dense_3d_nobias", {"batch": 2}, 2 * (2 * 4 * 3) * 6),
    ("conv_valid", "conv_valid", {"batch": 2}, 2 * (2 * 4 * 7 * 6) * 3 * 3 * 3),
    ("conv_grouped", "conv_grouped", {"batch": 2}, 2 * (2 * 6 * 4 * 4) * 2 * 3 * 3),
    ("conv_depthwise_s2", "conv_depthwise_s2", {"batch": 2}, 2 * (2 * 4 * 5 * 5) * 1 * 3 * 3),
]


@pytest.mark.parametrize("name,params,want", [c[1:] for c in FLOPS], ids=[c[0] for c in FLOPS])
def test_flops_dense_and_conv(name, params, want):
    wl = parse_workload(next(c for c in CASES if c["name"] == name))
    assert wl.flops(params) == want > 0


def test_flops_scale_with_batch():
    data = _base()
    wl = parse_workload(data)
    assert wl.flops({"batch": 2}) == 2 * wl.flops({"batch": 1}) == 2 * 2 * 8 * 4

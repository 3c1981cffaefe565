"""The torch model's forward is generated straight-line code (no graph walk at call time)."""
from __future__ import annotations

import re

import pytest

from conftest import REPO
from opcases import op_workloads
from suite.spec import load_workload
from suite.targets.torch.model import forward_source


def test_forward_is_one_statement_per_node_in_order():
    wl = dict(op_workloads())["residual_dag"]
    src = forward_source(wl)
    body = [line.strip() for line in src.splitlines()[2:-1]]
    calls = [line for line in body if not line.startswith("del ")]
    assert len(calls) == len(wl.nodes)
    for line, node in zip(calls, wl.nodes):
        args = ", ".join(f"v_{s}" for s in node.inputs)
        assert line == f"v_{node.name} = m_{node.name}({args})"
    assert "for " not in src and "values[" not in src  # no loop, no dict of values


def test_each_value_is_freed_right_after_its_last_use():
    """Like a hand-written chain: an activation dies when nothing later reads it (graph outputs and the
    caller's inputs excepted), so the allocator reuses its warm blocks."""
    wl = dict(op_workloads())["residual_dag"]
    body = [line.strip() for line in forward_source(wl).splitlines()[2:-1]]
    keep = set(wl.outputs) | {s.name for s in wl.inputs}
    freed_at = {}
    for i, line in enumerate(body):
        if line.startswith("del "):
            for v in line[4:].split(", "):
                freed_at[v[2:]] = i
    for node in wl.nodes:
        readers = [i for i, line in enumerate(body)
                   if " = " in line and node.name in re.findall(r"\bv_(\w+)", line.split(" = ", 1)[1])]
        if node.name in keep or not readers:
            assert node.name not in freed_at
        else:
            assert freed_at[node.name] == readers[-1] + 1, (node.name, body)
    assert freed_at  # the DAG has values to free


def test_multiple_outputs_and_inputs_keep_their_order():
    wl = load_workload(REPO / "workloads" / "text_classifier.yaml")
    src = forward_source(wl)
    assert src.splitlines()[0] == f"def forward(self, {', '.join('v_' + s.name for s in wl.inputs)}):"
    assert src.splitlines()[-1].strip() == f"return ({''.join(f'v_{o}, ' for o in wl.outputs)})"


def test_each_model_has_its_own_code_object():
    """torch.compile caches per code object; a shared forward would make the ninth model run eager."""
    pytest.importorskip("torch")
    from suite.targets.torch.model import graph_type

    a = load_workload(REPO / "workloads" / "mlp_classifier.yaml")
    b = load_workload(REPO / "workloads" / "resnet_cnn.yaml")
    types = [graph_type(w) for w in (a, a, b)]  # kept alive, so ids are not reused
    assert len({id(t.forward.__code__) for t in types}) == 3  # identity: dynamo's cache hangs on the object

"""The torch model's forward is generated straight-line code (no graph walk at call time)."""
from __future__ import annotations

import pytest

from conftest import REPO
from opcases import op_workloads
from suite.spec import load_workload
from suite.targets.torch.model import forward_source


def test_forward_is_one_statement_per_node_in_order():
    wl = dict(op_workloads())["residual_dag"]
    src = forward_source(wl)
    body = src.splitlines()[2:-1]
    assert len(body) == len(wl.nodes)
    for line, node in zip(body, wl.nodes):
        args = ", ".join(f"v_{s}" for s in node.inputs)
        assert line.strip() == f"v_{node.name} = m_{node.name}({args})"
    assert "for " not in src and "values[" not in src  # no loop, no dict of values


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

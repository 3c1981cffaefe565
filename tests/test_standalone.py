"""suite/standalone.py: the op code of every framework copies out of the suite into plain modules that import
without the suite; what has no source form is refused with NotStandalone."""
from __future__ import annotations

import ast
import builtins
import importlib
import subprocess
import sys

import pytest

from suite.standalone import Closure, NotStandalone, _references, flat
from suite.targets.common import nhwc
from suite.targets.common.optables import has_params


@pytest.mark.parametrize("fw", ["torch", "jax", "tensorflow", "keras"])
def test_every_op_and_weight_mapping_copies_out_and_imports_without_the_suite(fw, tmp_path):
    ops = importlib.import_module(f"suite.targets.{fw}.ops")
    weights = importlib.import_module(f"suite.targets.{fw}.weights")
    assert len(ops.OPS) > 30
    modules = set()
    for op, fn in ops.OPS.items():
        closure = Closure()
        refs = [closure.add(fn), closure.add(ops.native) if fw in ("torch", "jax") else None]
        if fw != "torch":
            refs += [closure.add(ops.Graph)] + [closure.add(c) for c in (nhwc.Tracker, nhwc.Ops, nhwc.Val)]
        if has_params(op):
            refs.append(closure.add(weights.WEIGHTS[op]))
        folder = tmp_path / op
        written = closure.write(folder, f"{fw} {op}")
        modules.add(flat(ops.__name__))
        names = "; ".join(f"from {m} import {n}" for m, n in (r.split(":") for r in refs if r))
        code = (f"import sys; sys.modules['suite'] = None; sys.path.insert(0, {str(folder)!r}); {names}; "
                f"import {fw if fw != 'tensorflow' else 'json'}")  # the framework itself is imported later, by the script
        run = subprocess.run([sys.executable, "-I", "-c", code.replace(f"; import {fw}", "")], capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 0, f"{op}: {run.stderr[-2000:]}"
        assert all("import suite" not in p.read_text().replace("import suite_", "") for p in written), op
        for path in written:  # every name the copied code reads is defined in its copy (or a builtin)
            tree = ast.parse(path.read_text())
            names, _ = _references(tree)
            missing = names - set(dir(builtins)) - {"__name__", "__file__"}
            assert not missing, f"{op}: {path.name} reads undefined {sorted(missing)}"
    assert modules == {f"suite_targets_{fw}_ops"}


def test_a_lambda_in_a_table_is_not_standalone(monkeypatch):
    ops = importlib.import_module("suite.targets.torch.ops")
    monkeypatch.setattr(ops, "ROPE", {"half": lambda *a: None}, raising=False)
    with pytest.raises(NotStandalone, match="lambda|no source form"):
        Closure().add(ops.OPS["attention"])


def test_constants_and_dataclasses_keep_their_values(tmp_path):
    from suite.spec import load_workload  # noqa: F401  (the spec's dataclasses are what attributes hold)
    closure = Closure()
    value = {"a": (1, 2.5, None), "b": [True, "x"], "c": frozenset({3})}
    assert eval(closure.literal(value)) == value  # noqa: S307
    with pytest.raises(NotStandalone):
        closure.literal(object())

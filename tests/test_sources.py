"""source: workloads (suite.sources): a user's torch module or ONNX file through the routes out of its framework,
checked against the source model itself in float64.

Tiny models written here (a user's own module beside the workload file, an ONNX graph made with onnx.helper),
run as a user runs them: ``bench verify`` / ``bench run`` subprocesses. The pytest process never imports torch.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, bench
from suite.spec import SpecError, load_workload, parse_workload

MODULE = '''
import torch


class Tiny(torch.nn.Module):
    def __init__(self, hidden=16, skew=0.0):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, hidden)
        self.fc2 = torch.nn.Linear(hidden, 4)
        self.skew = skew

    def forward(self, inp):  # the workload calls its input x: fed by position
        y = self.fc2(torch.relu(self.fc1(inp)))
        if self.skew and y.dtype == torch.float32:  # wrong in float32 only: the routes must fail
            y = y + self.skew
        return y


class TwoHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 3)
        self.b = torch.nn.Linear(8, 2)

    def forward(self, x, scale):  # called by keyword: every input name is a parameter
        return {"first": self.a(x) * scale, "second": self.b(x)}


def tiny(hidden=16, skew=0.0):
    return Tiny(hidden, skew)


class NoDouble(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        if x.dtype == torch.float64:
            raise NotImplementedError("no float64 kernel for this op")
        return self.fc(x)


def no_double():
    return NoDouble()


def huge():
    return torch.nn.Sequential(torch.nn.Linear(100000, 100000), torch.nn.Linear(100000, 8))


def two_heads():
    return TwoHeads()


def not_a_module():
    return 42


def downloads():
    import urllib.request

    urllib.request.urlopen("http://192.0.2.1/weights.pt", timeout=5)
    return Tiny()
'''


def _write(d: Path, name: str, source: dict, inputs=None, **extra) -> Path:
    data = {"name": name, "source": source,
            "inputs": inputs or [{"name": "x", "shape": ["batch", 8]}], "sweep": {"batch": [1, 3]}, **extra}
    path = d / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory, cache):
    d = tmp_path_factory.mktemp("sources")
    (d / "user_models.py").write_text(textwrap.dedent(MODULE))
    return d


def _onnx_file(path: Path) -> None:
    """A two-layer MLP as ONNX (inputs named ``inp``), made with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (8, 16)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, 16).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 0.5, (16, 4)).astype(np.float32), "w2")]
    nodes = [helper.make_node("MatMul", ["inp", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Tanh", ["hb"], ["t"]), helper.make_node("MatMul", ["t", "w2"], ["out"]),
             helper.make_node("Softmax", ["out"], ["probs"], axis=-1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("inp", TensorProto.FLOAT, ["n", 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 4]),
                               helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


# ---- the file format ----

@pytest.mark.parametrize("source, extra, where", [
    ({"framework": "torch"}, {}, "source.factory: a torch source needs exactly one of factory"),
    ({"framework": "torch", "factory": "m:f", "file": "x.pt"}, {}, "source.factory"),
    ({"framework": "onnx", "factory": "m:f"}, {}, "source.file: an onnx source is a file"),
    ({"framework": "onnx", "file": "nowhere.onnx"}, {}, "source.file: "),
    ({"framework": "onnx", "file": "model.txt"}, {}, "source.file: expected a .onnx file"),
    ({"framework": "torch", "factory": "no colon"}, {}, "source.factory: expected 'module:callable'"),
    ({"framework": "caffe", "factory": "m:f"}, {}, "source.framework"),
    ({"framework": "torch", "factory": "m:f", "weights": "none.safetensors"}, {}, "source.weights: "),
    ({"framework": "torch", "factory": "m:f"}, {"graph": [{"name": "d", "op": "dense", "input": "x", "units": 2}],
                                                "outputs": ["d"]}, "source: a workload has graph: or source:"),
    ({"framework": "torch", "factory": "m:f"}, {"train": {"loss": "mean_squared_error",
                                                          "optimizer": {"kind": "sgd", "learning_rate": 0.1}}},
     "train: train mode is not available for source: workloads"),
])
def test_bad_source_sections_are_one_line(tmp_path, source, extra, where):
    data = {"name": "w", "source": source, "inputs": [{"name": "x", "shape": ["batch", 8]}],
            "sweep": {"batch": [1]}, **extra}
    with pytest.raises(SpecError) as e:
        parse_workload(data, str(tmp_path / "w.yaml"))
    msg = str(e.value)
    assert "\n" not in msg and where in msg, msg


def test_neither_graph_nor_source(tmp_path):
    with pytest.raises(SpecError, match="graph: missing required field .a workload has graph: nodes, or source:"):
        parse_workload({"name": "w", "inputs": [{"name": "x", "shape": ["batch", 8]}], "sweep": {"batch": [1]}},
                       "w.yaml")


def test_source_hash_follows_the_file_content(tmp_path):
    _onnx_file(tmp_path / "m.onnx")
    path = _write(tmp_path, "h", {"framework": "onnx", "file": "m.onnx"})
    before = load_workload(path)
    assert before.kind == "onnx" and before.nodes == () and before.outputs == ("output",)
    assert before.flops({"batch": 1}) is None and before.source.file == str((tmp_path / "m.onnx").resolve())
    (tmp_path / "m.onnx").write_bytes((tmp_path / "m.onnx").read_bytes() + b"")
    assert load_workload(path).hash == before.hash
    import onnx

    m = onnx.load(str(tmp_path / "m.onnx"))
    m.graph.initializer[2].float_data[:] = []
    arr = np.zeros((8, 16), np.float32)
    m.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(arr, "w1"))
    onnx.save(m, str(tmp_path / "m.onnx"))
    assert load_workload(path).hash != before.hash


# ---- bad models: one line, exit 2, before any cell runs ----

@pytest.mark.parametrize("source, inputs, expect", [
    ({"factory": "not_a_package_here:f"}, None,
     "source.factory: cannot import not_a_package_here: ModuleNotFoundError"),
    ({"factory": "user_models:nothing"}, None, "source.factory: user_models has no attribute 'nothing'"),
    ({"factory": "user_models:not_a_module"}, None, "source.factory: user_models:not_a_module returned a int, "
                                                    "expected a torch.nn.Module"),
    ({"factory": "user_models:tiny", "kwargs": {"width": 3}}, None, "source.kwargs: user_models:tiny(**{'width': 3}) "
                                                                    "failed: tiny() got an unexpected keyword"),
    ({"factory": "user_models:downloads"}, None, "source.kwargs: the factory tried to reach the network"),
    ({"factory": "user_models:tiny"}, [{"name": "x", "shape": ["batch", 5]}],
     "inputs: the model rejects the declared inputs at batch=1: RuntimeError"),
    # 10 billion parameters, counted on the meta device: refused before anything is allocated
    ({"factory": "user_models:huge"}, [{"name": "x", "shape": ["batch", 100000]}],
     "source: the model has 10,000,900,008 parameters: its float64 reference needs at least 111.8 GiB"),
])
def test_bad_models_are_refused_with_one_line(models, source, inputs, expect):
    path = _write(models, "bad", {"framework": "torch", **source}, inputs)
    res = bench("verify", "-w", str(path), "-p", "cpu", "-t", "torch:eager", timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("bench: error: ") and str(path) in lines[-1] and expect in lines[-1], res.stderr[-2000:]


def test_weights_file_that_does_not_fit(models):
    import subprocess as sp

    bad = models / "wrong.pt"
    sp.run([sys.executable, "-c", f"import torch; torch.save({{'fc1.weight': torch.zeros(2, 2)}}, {str(bad)!r})"],
           check=True)
    path = _write(models, "badweights", {"framework": "torch", "factory": "user_models:tiny", "weights": "wrong.pt"})
    res = bench("verify", "-w", str(path), "-p", "cpu", "-t", "torch:eager", timeout=300)
    assert res.returncode == 2 and "source.weights: " in res.stderr and "RuntimeError" in res.stderr, res.stderr[-1500:]


# ---- the routes out of torch, against the float64 source ----

TORCH_ROUTES = ["torch:eager", "torch>export@torch", "torch>onnx@onnxruntime"]


def test_torch_source_through_its_routes(models):
    path = _write(models, "tiny_src", {"framework": "torch", "factory": "user_models:tiny", "kwargs": {"hidden": 24}})
    res = bench("verify", "-w", str(path), "-p", "cpu", *sum((["-t", t] for t in TORCH_ROUTES + ["jax:jit"]), []),
                timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr  # jax:jit is unsupported (not a failure), the rest pass
    assert "tiny_src: source model (torch user_models:tiny) checked, float64 reference of 2 point(s)" in res.stderr
    assert "6 pass, 2 unsupported" in res.stdout, res.stdout
    assert ("unsupported   2 cells of tiny_src: targets that are not routes out of its framework (tiny_src is a "
            "torch model (source: torch user_models:tiny), which only the torch routes run)") in res.stdout
    headers = [ln for ln in res.stdout.splitlines() if ln.startswith("workload ")]
    assert headers and not any("jax:jit" in h for h in headers)  # no column for a target that is no route of it


def test_the_reference_is_the_float64_source(models):
    """A model that is wrong in float32 only: every route fails against its float64 self, with the size of the skew."""
    path = _write(models, "skewed", {"framework": "torch", "factory": "user_models:tiny", "kwargs": {"skew": 0.01}})
    res = bench("verify", "-w", str(path), "-p", "cpu", "-t", "torch:eager", "-t", "torch>onnx@onnxruntime",
                timeout=600)
    assert res.returncode == 1 and "4 fail" in res.stdout and "1.0e-02" in res.stdout, res.stdout


def test_keyword_inputs_and_named_outputs(models):
    path = _write(models, "heads", {"framework": "torch", "factory": "user_models:two_heads"},
                  [{"name": "x", "shape": ["batch", 8]}, {"name": "scale", "shape": ["batch", 1]}],
                  outputs=["second", "first"])
    res = bench("verify", "-w", str(path), "-p", "cpu", "-t", "torch:eager", "-t", "torch>onnx@onnxruntime",
                timeout=600)
    assert res.returncode == 0 and "4 pass" in res.stdout, res.stdout + res.stderr[-2000:]
    wl = load_workload(path)
    from suite import sources

    second, first = sources.load_reference(wl, {"batch": 3})
    assert second.shape == (3, 2) and first.shape == (3, 3) and second.dtype == np.float64
    bad = _write(models, "heads_bad", {"framework": "torch", "factory": "user_models:two_heads"},
                 [{"name": "x", "shape": ["batch", 8]}, {"name": "scale", "shape": ["batch", 1]}], outputs=["third"])
    res = bench("verify", "-w", str(bad), "-p", "cpu", "-t", "torch:eager", timeout=300)
    assert res.returncode == 2 and "outputs: the model's output has no 'third'; it has first, second" in res.stderr


def test_trained_weights_from_safetensors(models):
    """Weights given as a file are the model's (the reference moves with them) and every route runs them."""
    import subprocess as sp

    sp.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(models)!r})
        import user_models
        from safetensors.torch import save_file
        torch.manual_seed(123)
        save_file(user_models.tiny(24).state_dict(), {str(models / 'trained.safetensors')!r})
        """)], check=True)
    seeded = load_workload(_write(models, "tiny_src", {"framework": "torch", "factory": "user_models:tiny",
                                                       "kwargs": {"hidden": 24}}))
    path = _write(models, "trained", {"framework": "torch", "factory": "user_models:tiny", "kwargs": {"hidden": 24},
                                      "weights": "trained.safetensors"})
    res = bench("verify", "-w", str(path), "-p", "cpu", "-t", "torch:eager", "-t", "torch>export@torch", timeout=600)
    assert res.returncode == 0 and "4 pass" in res.stdout, res.stdout + res.stderr[-2000:]
    from suite import sources

    a = sources.load_reference(load_workload(path), {"batch": 1})[0]
    b = sources.load_reference(seeded, {"batch": 1})
    assert b is not None and not np.allclose(a, b[0])


def test_a_model_that_cannot_run_in_float64_is_judged_against_float32_widened(models):
    """The reference falls back to the float32 source, the cell says so (reference_dtype) and rtol/atol are 10x."""
    from conftest import run_cells
    from suite.profiles import load_profiles

    path = _write(models, "nodouble", {"framework": "torch", "factory": "user_models:no_double"})
    wl = load_workload(path)
    from suite import sources

    sources.prepare([wl])
    dtype, note = sources.reference_dtype(wl, {"batch": 1})
    assert dtype == "float32" and "NotImplementedError: no float64 kernel" in note
    profile = load_profiles(REPO / "hardware_profiles")["cpu"]
    recs = run_cells([wl], ["torch:eager", "torch>onnx@onnxruntime"], profile)
    assert {r["status"] for r in recs.values()} == {"pass"} and len(recs) == 4
    assert {r["reference_dtype"] for r in recs.values()} == {"float32"}
    assert all(r["rtol"] == pytest.approx(1e-3) and r["atol"] == pytest.approx(1e-4) for r in recs.values())
    graph = run_cells(load_workloads_named("mlp_classifier"), ["torch:eager"], profile)
    assert {r["reference_dtype"] for r in graph.values()} == {"float64"}


def load_workloads_named(name):
    from suite.spec import load_workloads

    return load_workloads(REPO / "workloads", [name])


# ---- an ONNX file ----

def test_onnx_source_positional_inputs_named_outputs(models):
    _onnx_file(models / "mlp.onnx")
    path = _write(models, "mlp_onnx", {"framework": "onnx", "file": "mlp.onnx"}, outputs=["probs"])
    res = bench("verify", "-w", str(path), "-p", "cpu", "-t", "onnx>onnx@onnxruntime", "-t", "torch:eager",
                timeout=600)
    assert "mlp_onnx: source model (onnx mlp.onnx) checked" in res.stderr, res.stderr[-2000:]
    assert "2 pass, 2 unsupported" in res.stdout, res.stdout
    assert "2 cells of mlp_onnx: targets that are not routes out of its framework (mlp_onnx is an onnx model" \
        in res.stdout
    from suite import sources

    (probs,) = sources.load_reference(load_workload(path), {"batch": 3})
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-12)  # softmax, computed in float64


def test_graph_workloads_refuse_the_onnx_file_routes():
    from suite.plan import make_plan
    from suite.profiles import load_profiles
    from suite.spec import load_workloads
    from suite.targets.registry import get_target

    profile = load_profiles(REPO / "hardware_profiles")["cpu"]
    cells = make_plan(load_workloads(REPO / "workloads", ["mlp_classifier"]), [get_target("onnx>onnx@onnxruntime")],
                      {"cpu": profile}, {"cpu": (True, "")})
    assert {c.status for c in cells} == {"unsupported"}
    assert "needs a workload with source: {framework: onnx}" in cells[0].reason


def test_missing_model_library_is_skipped_not_an_error(tmp_path):
    """A known model library that is not installed (timm is not in this environment) skips the cells, as a
    missing framework does; a module nobody knows is a mistake (exit 2, above)."""
    import importlib.util

    assert importlib.util.find_spec("timm") is None
    path = _write(tmp_path, "nolib", {"framework": "torch", "factory": "timm:create_model",
                                      "kwargs": {"model_name": "resnet18"}})
    res = bench("verify", "-w", str(path), "-p", "cpu", "-t", "torch:eager", timeout=300)
    assert res.returncode == 0 and "2 skipped" in res.stdout, res.stdout + res.stderr
    assert "timm (the factory's library) is not installed: pip install timm" in res.stdout


def test_run_stores_source_rows(models, tmp_path):
    path = _write(models, "tiny_src", {"framework": "torch", "factory": "user_models:tiny", "kwargs": {"hidden": 24}})
    res = bench("run", "--quick", "-w", str(path), "-p", "cpu-1t", "-t", "torch:eager", "-t", "torch>onnx@onnxruntime",
                "--results", str(tmp_path / "res"), "--no-dashboard", "--quiet-wait", "0", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    from suite.results import read_results

    df = read_results(str(tmp_path / "res"))
    assert set(df["source"]) == {"torch"} and set(df["status"]) == {"pass"} and len(df) == 2
    assert df["latency_median_s"].notna().all() and df["flops"].isna().all()


def test_source_hash_follows_a_local_factory_module(tmp_path):
    """An edited model in the user's module beside the workload file is a new workload (references, artifacts)."""
    (tmp_path / "mine.py").write_text("def make():\n    return 1\n")
    path = _write(tmp_path, "local", {"framework": "torch", "factory": "mine:make"})
    before = load_workload(path).hash
    assert load_workload(path).hash == before
    (tmp_path / "mine.py").write_text("def make():\n    return 2\n")
    assert load_workload(path).hash != before


def test_report_blanks_targets_that_are_no_route_of_a_row():
    """Two source kinds in one run: each target column belongs to one workload; the other rows leave it blank."""
    from suite.report import verify_table
    from suite.sources import OTHER_KIND

    def rec(wl, target, status, reason=None):
        return {"workload": wl, "params": '{"batch": 1}', "target": target, "profile": "cpu", "mode": "inference",
                "status": status, "status_reason": reason, "max_abs_err": 1e-7 if status == "pass" else None}

    records = [rec("a_torch", "torch:eager", "pass"), rec("a_torch", "keras[jax]", "unsupported", OTHER_KIND + "x"),
               rec("b_keras", "torch:eager", "unsupported", OTHER_KIND + "y"), rec("b_keras", "keras[jax]", "pass")]
    lines = verify_table(records).splitlines()
    header = lines[0].split()
    assert header == ["workload", "torch:eager", "keras[jax]"]
    row_a = next(ln for ln in lines if ln.startswith("a_torch"))
    row_b = next(ln for ln in lines if ln.startswith("b_keras"))
    assert row_a.split()[2:] == ["pass", "1.0e-07"] and "unsupported" not in row_a
    assert row_b.split()[2:] == ["pass", "1.0e-07"] and "unsupported" not in row_b

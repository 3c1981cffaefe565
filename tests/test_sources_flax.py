"""source: workloads of framework flax (suite.sources.flax): a user's Flax NNX module through every route out of
JAX, checked against the module itself run in float64.

Tiny modules written here (a user's own module beside the workload file), run as a user runs them: ``bench verify``
subprocesses. The pytest process never imports jax or flax (a helper subprocess writes the weights files).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, bench, skip_if_missing
from suite.spec import load_workload

if importlib.util.find_spec("flax") is None:  # a capability (found without importing it: this process stays jax-free)
    pytest.skip("flax is not installed: pip install 'bench-suite[models]'", allow_module_level=True)

MODULE = '''
from flax import nnx


class Tiny(nnx.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear: eval mode must use the running statistics and no dropout."""

    def __init__(self, hidden=16, *, rngs):
        self.fc1 = nnx.Linear(8, hidden, rngs=rngs)
        self.bn = nnx.BatchNorm(hidden, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)  # holds an RNG stream: state that is not weights
        self.fc2 = nnx.Linear(hidden, 4, rngs=rngs)

    def __call__(self, inp):  # the workload calls its input x: fed by position
        return self.fc2(self.drop(nnx.relu(self.bn(self.fc1(inp)))))


class Heads(nnx.Module):
    def __init__(self, rngs):
        self.emb = nnx.Embed(50, 6, rngs=rngs)
        self.a = nnx.Linear(6, 3, rngs=rngs)
        self.b = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x, ids):  # called by keyword: every input name is a parameter
        return {"first": self.a(self.emb(ids).mean(axis=1)), "second": self.b(x)}


def tiny(hidden=16, *, rngs):
    return Tiny(hidden, rngs=rngs)


def linear(rngs):
    return nnx.Linear(8, 4, bias_init=nnx.initializers.normal(1.0), rngs=rngs)


def needs_width(width, rngs):
    return nnx.Linear(8, width, rngs=rngs)


def huge(rngs):
    return nnx.Sequential(nnx.Linear(100000, 100000, rngs=rngs), nnx.Linear(100000, 8, rngs=rngs))


def not_a_module():
    return 42


def downloads(rngs):
    import urllib.request

    urllib.request.urlopen("http://192.0.2.1/weights.msgpack", timeout=5)
    return Tiny(rngs=rngs)
'''


def _write(d: Path, name: str, source: dict, inputs=None, **extra) -> Path:
    data = {"name": name, "source": {"framework": "flax", **source},
            "inputs": inputs or [{"name": "x", "shape": ["batch", 8]}], "sweep": {"batch": [1, 3]}, **extra}
    path = d / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _python(models: Path, code: str) -> str:
    """Runs ``code`` in a subprocess that can import flax and the user's module; returns its stdout."""
    head = f"import sys\nsys.path.insert(0, {str(models)!r})\n"
    out = subprocess.run([sys.executable, "-c", head + textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture(scope="module")
def models(tmp_path_factory, cache):
    d = tmp_path_factory.mktemp("flax_sources")
    (d / "user_flax.py").write_text(textwrap.dedent(MODULE))
    return d


@pytest.fixture(scope="module")
def files(models):
    """Written by one flax subprocess: the seeded weights of ``linear`` (lin.npz); a .msgpack state of ``tiny(24)``
    from another seed with batch statistics of its own (trained.msgpack, and its arrays in trained.npz); the seeded
    ``tiny(24)``'s arrays (seeded.npz); a state to be loaded into ``tiny(16)`` (wrong.msgpack)."""
    _python(models, f"""
        import os, numpy as np, user_flax
        from flax import nnx, serialization
        os.chdir({str(models)!r})
        m = user_flax.linear(nnx.Rngs(7))
        np.savez("lin.npz", kernel=np.asarray(m.kernel.value), bias=np.asarray(m.bias.value))

        def save(m, name):
            state = nnx.state(m, nnx.Not(nnx.RngState))  # the dropout's RNG stream is no weight (nor serialisable)
            pure = nnx.to_pure_dict(state)
            open(name + ".msgpack", "wb").write(serialization.msgpack_serialize(pure))
            np.savez(name + ".npz", **{{f"{{a}}.{{b}}": np.asarray(v) for a, d in pure.items() for b, v in d.items()}})

        trained = user_flax.tiny(24, rngs=nnx.Rngs(123))
        rng = np.random.default_rng(0)
        trained.bn.mean.value = rng.normal(0, 1, 24).astype(np.float32)
        trained.bn.var.value = rng.uniform(0.5, 2, 24).astype(np.float32)
        save(trained, "trained")
        save(user_flax.tiny(24, rngs=nnx.Rngs(0)), "seeded")
        os.rename("seeded.msgpack", "wrong.msgpack")
        """)
    return models


def _tiny(w: dict, x: np.ndarray) -> np.ndarray:
    """``Tiny`` in eval mode in NumPy float64: batch norm on the running statistics (epsilon 1e-5), no dropout."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    h = x @ w["fc1.kernel"] + w["fc1.bias"]
    h = (h - w["bn.mean"]) / np.sqrt(w["bn.var"] + 1e-5) * w["bn.scale"] + w["bn.bias"]
    return np.maximum(h, 0) @ w["fc2.kernel"] + w["fc2.bias"]


def _last_line(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _row(stdout: str, label: str) -> list[str]:
    """The statuses of one row of bench verify's table (``tiny_flax [batch=1]``), in column order."""
    for line in stdout.splitlines():
        if line.startswith(label + " "):
            return [cell.split()[0] for cell in line[len(label):].split("  ") if cell.strip()]
    raise AssertionError(f"no row {label!r} in:\n{stdout}")


# ---- the reference is the module itself in float64 ----

def test_reference_is_the_seeded_module_in_float64(files):
    """An nnx.Linear built with rngs=nnx.Rngs(seed): its float64 reference is x @ kernel + bias in NumPy float64."""
    from suite import sources
    from suite.weights import make_inputs

    wl = load_workload(_write(files, "lin", {"factory": "user_flax:linear"}, seed=7))
    sources.prepare([wl])
    assert sources.reference_dtype(wl, {"batch": 3}) == ("float64", "")
    with np.load(files / "lin.npz") as z:
        kernel, bias = z["kernel"].astype(np.float64), z["bias"].astype(np.float64)
    x = make_inputs(wl, {"batch": 3})["x"].astype(np.float64)
    (ref,) = sources.load_reference(wl, {"batch": 3})
    assert ref.dtype == np.float64 and ref.shape == (3, 4)
    np.testing.assert_allclose(ref, x @ kernel + bias, rtol=1e-12, atol=1e-12)
    assert np.abs(bias).min() > 0  # the seeded bias initializer ran (not the zeros default)


# ---- the routes out of JAX: one bench verify of two workloads, checked by the tests below ----

JAX_ROUTES = ["jax:jit", "jax>export@jax", "jax>onnx@onnxruntime", "jax>tflite@litert", "jax>stablehlo@iree"]
HEADS_INPUTS = [{"name": "x", "shape": ["batch", 8]},
                {"name": "ids", "shape": ["batch", 5], "dtype": "int64",
                 "distribution": {"kind": "randint", "low": 0, "high": 50}}]

PROBE = """
import sys
import suite.sources.flax, suite.targets.jax.model, suite.targets.jax.export  # importable without jax or flax
from suite.cli import main
rc = main({argv!r})
print("RC:", rc)
print("IMPORTED:" + ",".join(m for m in ("jax", "jaxlib", "flax", "torch", "tensorflow") if m in sys.modules))
"""


@pytest.fixture(scope="module")
def verified(files):
    """``bench verify`` (run by ``suite.cli.main`` in a probe process that then lists the frameworks it imported)
    of ``trained_flax`` (a .msgpack state; batch norm on running statistics, dropout off, an RNG stream in the
    state) and ``heads_flax`` (inputs by keyword, int ids, outputs from a dict by name), on every route out of JAX
    and on torch:eager (no route of a flax model)."""
    for t in JAX_ROUTES:
        skip_if_missing(t)
    one = {"sweep": {"batch": [3]}}  # one point each: the cost is in the processes (one per route), not the cells
    paths = [_write(files, "trained_flax", {"factory": "user_flax:tiny", "kwargs": {"hidden": 24},
                                            "weights": "trained.msgpack"}, **one),
             _write(files, "heads_flax", {"factory": "user_flax:Heads"}, HEADS_INPUTS, outputs=["second", "first"],
                    **one)]
    argv = ["verify", *sum((["-w", str(p)] for p in paths), []), "-p", "cpu",
            *sum((["-t", t] for t in JAX_ROUTES + ["torch:eager"]), [])]
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                         timeout=600, cwd=REPO)
    rc = [ln for ln in out.stdout.splitlines() if ln.startswith("RC: ")]
    imported = [ln for ln in out.stdout.splitlines() if ln.startswith("IMPORTED:")]
    assert rc and imported, out.stdout + out.stderr[-3000:]
    return {"rc": int(rc[-1][4:]), "stdout": out.stdout, "stderr": out.stderr, "imported": imported[-1][9:],
            "paths": paths}


def test_flax_source_through_every_jax_route(verified):
    """Every route out of JAX passes, the converters included (the NNX model traces to lax primitives they all
    convert); torch:eager is not a route of a flax model (no column)."""
    out = verified["stdout"]
    assert verified["rc"] == 0, out + verified["stderr"][-3000:]
    assert "trained_flax: source model (flax user_flax:tiny) checked, float64 reference of 1 point(s)" \
        in verified["stderr"]
    assert "10 pass" in out, out
    header = next(ln for ln in out.splitlines() if ln.startswith("workload "))
    assert all(t in header for t in JAX_ROUTES) and "torch:eager" not in header, header
    assert _row(out, "trained_flax [batch=3]") == ["pass"] * len(JAX_ROUTES), out


def test_trained_weights_from_msgpack(verified, files):
    """The reference is the model with the file's state (its batch statistics included) in eval mode, in float64:
    Tiny computed by hand in NumPy float64 with the file's arrays; the seeded model's outputs differ."""
    from suite import sources
    from suite.weights import make_inputs

    wl = load_workload(verified["paths"][0])
    x = make_inputs(wl, {"batch": 3})["x"].astype(np.float64)
    (ref,) = sources.load_reference(wl, {"batch": 3})
    with np.load(files / "trained.npz") as z:
        np.testing.assert_allclose(ref, _tiny(dict(z), x), rtol=1e-10, atol=1e-12)
    with np.load(files / "seeded.npz") as z:
        assert not np.allclose(ref, _tiny(dict(z), x), rtol=1e-3, atol=1e-3)


def test_keyword_inputs_int_ids_and_named_outputs(verified):
    """Inputs by keyword (int ids: int32 on the routes, int64 in the reference), outputs picked from a dict by name."""
    assert _row(verified["stdout"], "heads_flax [batch=3]") == ["pass"] * len(JAX_ROUTES), verified["stdout"]
    from suite import sources

    second, first = sources.load_reference(load_workload(verified["paths"][1]), {"batch": 3})
    assert second.shape == (3, 2) and first.shape == (3, 3) and first.dtype == np.float64


def test_bench_process_imports_neither_jax_nor_flax(verified):
    """The flax models are built and run in the reference subprocesses and the jax workers, never in bench (and
    importing suite.sources.flax or the jax target modules imports neither)."""
    assert verified["imported"] == "", verified["imported"]


def test_weights_file_that_does_not_fit(files):
    path = _write(files, "badweights_flax", {"factory": "user_flax:tiny", "kwargs": {"hidden": 16},
                                             "weights": "wrong.msgpack"})
    res = bench("verify", "-w", str(path), "-p", "cpu", "-t", "jax:jit", timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    line = _last_line(res)
    assert line.startswith("bench: error: ") and str(path) in line and "source.weights: " in line, res.stderr[-2000:]
    assert "wrong.msgpack: bn.bias has shape (24,) in the file, (16,) in the model" in line, line


# ---- bad models: one line, exit 2, before any cell runs ----

@pytest.mark.parametrize("source, extra, expect", [
    ({"factory": "user_flax:not_a_module"}, {},
     "source.factory: user_flax:not_a_module returned a int, expected a flax.nnx.Module"),
    ({"factory": "user_flax:needs_width"}, {},
     "source.kwargs: user_flax:needs_width(**{}) failed: needs_width() missing 1 required positional argument: "
     "'width'"),
    ({"factory": "user_flax:downloads"}, {}, "source.kwargs: the factory tried to reach the network"),
    ({"factory": "user_flax:Heads"}, {"inputs": [{"name": "x", "shape": ["batch", 8]},
                                                 {"name": "ids", "shape": ["batch", 5], "dtype": "int32",
                                                  "distribution": {"kind": "randint", "low": 0, "high": 50}}],
                                      "outputs": ["third"]},
     "outputs: the model's output has no 'third'; it has first, second"),
    # 10 billion parameters, counted on abstract arrays (nnx.eval_shape): refused before anything is allocated
    ({"factory": "user_flax:huge"}, {"inputs": [{"name": "x", "shape": ["batch", 100000]}]},
     "source: the model has 10,000,900,008 parameters: its float64 reference needs at least 111.8 GiB"),
], ids=["not-nnx", "missing-argument", "download", "unknown-output", "too-big"])
def test_bad_models_are_refused_with_one_line(models, source, extra, expect):
    path = _write(models, "bad_flax", source, **extra)
    res = bench("verify", "-w", str(path), "-p", "cpu", "-t", "jax:jit", timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    line = _last_line(res)
    assert line.startswith("bench: error: ") and str(path) in line and expect in line, res.stderr[-2000:]

"""Keras 3 source: workloads (suite.sources.keras): a user's keras.Model factory or .keras file on the three Keras
backends and through the tensorflow> exporters, checked against the model itself in float64.

Run as a user runs them (``bench verify`` subprocesses); the pytest process never imports keras or a backend.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import bench
from suite.spec import load_workload

MODULE = '''
import keras


def mlp(hidden=16):
    x = keras.Input(shape=(8,), name="x")
    h = keras.layers.Dense(hidden, activation="tanh", name="fc1")(x)
    return keras.Model(x, keras.layers.Dense(4, name="fc2")(h))


class Heads(keras.Model):  # subclassed, two inputs, a dict of outputs
    def __init__(self):
        super().__init__()
        self.a = keras.layers.Dense(3)
        self.b = keras.layers.Dense(2)

    def call(self, inputs):
        x, scale = inputs
        return {"first": self.a(x) * scale, "second": self.b(x)}


def heads():
    return Heads()


def pinned():  # a layer that fixes its own dtype: the float64 run still computes in float32
    x = keras.Input(shape=(8,))
    return keras.Model(x, keras.layers.Dense(4, dtype="float32")(x))


def not_a_model():
    return keras.layers.Dense(3)


def downloads():
    import urllib.request

    urllib.request.urlopen("http://192.0.2.1/weights.h5", timeout=5)
    return mlp()
'''

NATIVE = ["keras[jax]", "keras[tensorflow]", "keras[torch]"]
EXPORTED = ["tensorflow>savedmodel@tensorflow", "tensorflow>onnx@onnxruntime", "tensorflow>tflite@litert"]


def _write(d: Path, name: str, source: dict, inputs=None, **extra) -> Path:
    data = {"name": name, "source": {"framework": "keras", **source},
            "inputs": inputs or [{"name": "x", "shape": ["batch", 8]}], "sweep": {"batch": [1, 3]}, **extra}
    path = d / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _targets(*ids) -> list[str]:
    return sum((["-t", t] for t in ids), [])


def _keras_script(d: Path, code: str) -> None:
    """Runs ``code`` with keras on the jax backend in a subprocess (the user's own tooling)."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(d)!r})\n" + textwrap.dedent(code)],
                   check=True, env=env, cwd=d)


@pytest.fixture(scope="module")
def models(tmp_path_factory, cache):
    d = tmp_path_factory.mktemp("keras_sources")
    (d / "user_keras.py").write_text(textwrap.dedent(MODULE))
    return d


def test_factory_model_through_every_route_with_one_set_of_weights(models):
    """Seeded once, loaded by every backend: the three backends' own initialisers differ, so a backend that built
    its own weights would fail against the reference. The reference is the model in float64 (checked by hand)."""
    path = _write(models, "kmlp", {"factory": "user_keras:mlp", "kwargs": {"hidden": 12}})
    res = bench("verify", "-w", str(path), "-p", "cpu", *_targets(*NATIVE, *EXPORTED, "jax:jit"), timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert "kmlp: source model (keras user_keras:mlp) checked, float64 reference of 2 point(s)" in res.stderr
    assert "12 pass, 2 unsupported" in res.stdout, res.stdout
    assert "kmlp is a keras model (source: keras user_keras:mlp), which only the keras routes run" in res.stdout

    from suite import sources
    from suite.weights import make_inputs

    wl = load_workload(path)
    with np.load(sources.weights_path(wl)) as z:
        w1, b1, w2, b2 = (z[f"w{i}"] for i in range(4))
    assert w1.shape == (8, 12) and w1.dtype == np.float32 and np.abs(b1).sum() == 0  # Keras' seeded glorot, zeros
    x = make_inputs(wl, {"batch": 3})["x"].astype(np.float64)
    expect = np.tanh(x @ w1.astype(np.float64) + b1) @ w2.astype(np.float64) + b2
    (ref,) = sources.load_reference(wl, {"batch": 3})
    assert ref.dtype == np.float64 and sources.reference_dtype(wl, {"batch": 3}) == ("float64", "")
    np.testing.assert_allclose(ref, expect, rtol=1e-12, atol=1e-14)


def test_subclassed_model_two_inputs_named_outputs(models):
    inputs = [{"name": "x", "shape": ["batch", 8]}, {"name": "scale", "shape": ["batch", 1]}]
    path = _write(models, "kheads", {"factory": "user_keras:heads"}, inputs, outputs=["second", "first"])
    res = bench("verify", "-w", str(path), "-p", "cpu", *_targets("keras[torch]", "tensorflow>onnx@onnxruntime"),
                timeout=600)
    assert res.returncode == 0 and "4 pass" in res.stdout, res.stdout + res.stderr[-3000:]
    from suite import sources

    second, first = sources.load_reference(load_workload(path), {"batch": 3})
    assert second.shape == (3, 2) and first.shape == (3, 3)
    bad = _write(models, "kheads_bad", {"factory": "user_keras:heads"}, inputs, outputs=["third"])
    res = bench("verify", "-w", str(bad), "-p", "cpu", "-t", "keras[jax]", timeout=300)
    assert res.returncode == 2 and "outputs: the model's output has no 'third'; it has first, second" in res.stderr


def test_keras_file_and_weights_file(models):
    """A .keras file carries its weights; a .weights.h5 file replaces the seeded ones (the reference follows)."""
    _keras_script(models, f"""
        import keras, user_keras
        keras.utils.set_random_seed(5)
        m = user_keras.mlp(12)
        m.save({str(models / 'mlp.keras')!r})
        keras.utils.set_random_seed(6)
        user_keras.mlp(12).save_weights({str(models / 'trained.weights.h5')!r})
        user_keras.mlp(5).save_weights({str(models / 'other.weights.h5')!r})
        """)
    from_file = _write(models, "kfile", {"file": "mlp.keras"})
    trained = _write(models, "ktrained", {"factory": "user_keras:mlp", "kwargs": {"hidden": 12},
                                          "weights": "trained.weights.h5"})
    res = bench("verify", "-w", str(from_file), "-w", str(trained), "-p", "cpu",
                *_targets("keras[torch]", "tensorflow>tflite@litert"), timeout=900)
    assert res.returncode == 0 and "8 pass" in res.stdout, res.stdout + res.stderr[-3000:]
    from suite import sources

    a = sources.load_reference(load_workload(from_file), {"batch": 3})[0]
    b = sources.load_reference(load_workload(trained), {"batch": 3})[0]
    assert a.shape == b.shape == (3, 4) and not np.allclose(a, b)
    wrong = _write(models, "kwrong", {"factory": "user_keras:mlp", "kwargs": {"hidden": 12},
                                      "weights": "other.weights.h5"})
    res = bench("verify", "-w", str(wrong), "-p", "cpu", "-t", "keras[jax]", timeout=300)
    assert res.returncode == 2 and "source.weights: " in res.stderr and str(wrong) in res.stderr, res.stderr[-1500:]


def test_a_dtype_fixed_in_the_model_makes_a_float32_reference(models):
    path = _write(models, "kpinned", {"factory": "user_keras:pinned"})
    from suite import sources

    wl = load_workload(path)
    sources.prepare([wl])
    dtype, note = sources.reference_dtype(wl, {"batch": 1})
    assert dtype == "float32" and "outputs are float32 with float64 weights and inputs" in note


@pytest.mark.parametrize("source, inputs, expect", [
    ({"factory": "user_keras:not_a_model"}, None,
     "source.factory: user_keras:not_a_model returned a Dense, expected a keras.Model"),
    ({"factory": "user_keras:mlp", "kwargs": {"width": 3}}, None,
     "source.kwargs: user_keras:mlp(**{'width': 3}) failed: mlp() got an unexpected keyword"),
    ({"factory": "user_keras:downloads"}, None, "source.kwargs: the factory tried to reach the network"),
    ({"factory": "user_keras:mlp"}, [{"name": "x", "shape": ["batch", 5]}],
     "inputs: the model rejects the declared inputs: "),
    ({"file": "garbage.keras"}, None, "source.file: "),  # written below: not a Keras archive
])
def test_bad_keras_models_are_refused_with_one_line(models, source, inputs, expect):
    if "file" in source:
        (models / source["file"]).write_bytes(b"\x00\xff not a zip archive")
    path = _write(models, "kbad", source, inputs)
    res = bench("verify", "-w", str(path), "-p", "cpu", "-t", "keras[jax]", timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("bench: error: ") and str(path) in lines[-1] and expect in lines[-1], res.stderr[-2000:]

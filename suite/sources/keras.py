"""A Keras 3 source model: a factory returning a ``keras.Model``, or a ``.keras`` file, on every Keras backend.

One model, three backends, the same weights. Keras' seeded initialisers draw from the backend's own random
generator, so the same factory and seed give different weights on jax, tensorflow and torch. The weights are
therefore made once: :func:`prepare` (run by :mod:`suite.sources.main` before the references) builds the model
on the reference backend (:func:`reference_backend`) after seeding it, and writes ``model.get_weights()`` to
the cache (:func:`suite.sources.weights_path`); every route then builds the model from its factory and loads
those arrays (``set_weights``: count and shapes checked). A ``.keras`` file, or a ``source.weights`` file
(``.weights.h5``, ``model.load_weights``), holds its own weights and needs no cache.

Every route calls :func:`native_model`: a functional wrapper with one ``keras.Input`` per declared input (in the
model's own layout; no transposes) that calls the model with them positionally and returns the declared
outputs as a list (by key from a dict, by position from a list, by default the first). The keras targets
compile it per backend exactly like a graph workload's model (:mod:`suite.targets.keras.model`); the
tensorflow exporters (SavedModel, TFLite, tf2onnx, OpenVINO) take it on the TensorFlow backend as a
``tf.Module`` whose ``forward`` is a ``tf.function`` (:func:`forward_module`).

The reference: the same model with a float64 dtype policy (a factory is called with ``floatx`` and the dtype
policy set to float64; a ``.keras`` model is cloned with every layer's dtype float64), the float32 weights
cast to float64, on the CPU of the reference backend.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np

from suite.sources.guard import SourceError, call_factory, factory_kwargs, no_network, resolve_factory
from suite.sources.guard import select_outputs as pick
from suite.targets.common.convert import first_line

# The first installed one builds the weights and the reference. TensorFlow first: measured with Keras 3.15, only
# its float64 is float64 throughout; the torch backend's ops.matmul and the jax backend's Dense give float64
# tensors with float32-sized errors (3.9e-7 and 1.2e-7 on a 3x8 @ 8x12 product, 1e-16 on TensorFlow).
REFERENCE_BACKENDS = ("tensorflow", "jax", "torch")


def reference_backend() -> str:
    """The backend of the reference subprocess: the first of :data:`REFERENCE_BACKENDS` that is installed."""
    for name in REFERENCE_BACKENDS:
        if importlib.util.find_spec(name) is not None:
            return name
    raise SourceError("source", "no Keras backend is installed (torch, jax or tensorflow)")


def import_keras(backend: str | None = None):
    """``keras`` on ``backend`` (default: the reference backend); KERAS_BACKEND is set when keras is not
    imported yet, and a keras already imported on another backend is refused."""
    backend = backend or reference_backend()
    if "keras" not in sys.modules:
        from suite.paths import cache_root

        os.environ["KERAS_BACKEND"] = backend
        os.environ.setdefault("KERAS_HOME", str(cache_root() / "keras"))  # keras.json there, not in ~/.keras
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(f"keras runs backend {keras.backend.backend()!r} in this process, {backend!r} wanted")
    return keras


def _seed(keras, seed: int) -> None:
    """``keras.utils.set_random_seed`` without its TensorFlow seeding (it imports tensorflow whenever it is
    installed, which must not happen in a torch or jax process): Python, NumPy, the backend, and Keras' global
    seed generator."""
    import random

    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator

    global_state.set_global_attribute("global_random_seed", seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)


def _from_factory(keras, wl):
    factory = resolve_factory(wl)
    kwargs = factory_kwargs(wl)
    _seed(keras, wl.seed)
    model = call_factory(wl, kwargs, lambda: factory(**kwargs))
    if not isinstance(model, keras.Model):
        raise SourceError("source.factory", f"{wl.source.factory} returned a {type(model).__name__}, "
                                            "expected a keras.Model")
    return model


def _from_file(keras, wl, dtype: str):
    try:
        with no_network():
            model = keras.saving.load_model(wl.source.file, compile=False)
    except Exception as e:  # noqa: BLE001 - not a Keras archive, a custom layer not registered, ...
        raise SourceError("source.file", f"{wl.source.file}: {first_line(e)}") from e
    if dtype == "float32":
        return model

    def float64(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    try:
        clone = keras.models.clone_model(model, clone_function=float64)
    except Exception as e:  # noqa: BLE001 - a subclassed model keras cannot clone: main falls back to float32
        raise RuntimeError(f"keras.models.clone_model with float64 layers: {first_line(e)}") from e
    clone.set_weights([np.asarray(w, dtype) if np.issubdtype(np.asarray(w).dtype, np.floating) else w
                       for w in model.get_weights()])
    return clone


def _inputs(keras, wl, shapes, dtype: str) -> list:
    return [keras.Input(shape=tuple(shapes[s.name][1:]), name=s.name,
                        dtype=dtype if s.dtype == "float32" else "int32") for s in wl.inputs]


def select_outputs(keras, out, names: tuple[str, ...], declared: bool) -> list:
    """The model's (symbolic) output -> the workload's outputs as a list (:func:`suite.sources.guard.select_outputs`)."""
    return list(pick(out, names, declared, lambda t: isinstance(t, keras.KerasTensor) or keras.ops.is_tensor(t),
                     "tensor"))


def _wrap(keras, model, wl, shapes, dtype: str):
    """The functional wrapper of the module docstring (built, so every variable of the model exists) for the
    input ``shapes`` (name -> shape; the batch dimension is left free)."""
    ins = _inputs(keras, wl, shapes, dtype)
    try:
        out = model(ins[0] if len(ins) == 1 else ins)
    except Exception as e:  # noqa: BLE001 - the model rejects the declared inputs' shapes or dtypes
        raise SourceError("inputs", f"the model rejects the declared inputs: {first_line(e)}") from e
    return keras.Model(ins, select_outputs(keras, out, tuple(wl.outputs), wl.source.declared_outputs), name=wl.name)


def seeded_weights(wl) -> list[np.ndarray]:
    """The float32 weights of a factory model (cached by :func:`prepare`; made now when the cache is gone)."""
    from suite import sources

    path = sources.weights_path(wl)
    if not path.exists():
        sources.prepare([wl])
    with np.load(path) as z:
        return [z[f"w{i}"] for i in range(len(z.files))]


def _set_weights(keras, model, wl, dtype: str) -> None:
    if wl.source.weights:
        try:
            model.load_weights(wl.source.weights)
        except Exception as e:  # noqa: BLE001 - another model's file, missing layers, wrong shapes
            raise SourceError("source.weights", f"{wl.source.weights}: {first_line(e)}") from e
    elif wl.source.factory:
        model.set_weights([np.asarray(w, dtype) if np.issubdtype(w.dtype, np.floating) else w
                           for w in seeded_weights(wl)])


def native_model(wl, keras, shapes, dtype: str = "float32"):
    """The source model on the running backend, wrapped (module docstring) for the input ``shapes``, with the
    workload's weights."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    try:  # every layer made now, the wrapper's too (a float32 wrapper would cast the float64 run to float32)
        keras.config.set_floatx(dtype)
        keras.config.set_dtype_policy(dtype)
        model = _from_file(keras, wl, dtype) if wl.source.file else _from_factory(keras, wl)
        wrapper = _wrap(keras, model, wl, shapes, dtype)
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    _set_weights(keras, model, wl, dtype)
    return wrapper


def prepare(wl) -> None:
    """Writes the seeded float32 weights of a factory model (no weights file) for every backend to load."""
    from suite import sources

    if not wl.source.factory or wl.source.weights:
        return
    path = sources.weights_path(wl)
    if path.exists():
        return
    keras = import_keras()
    model = _from_factory(keras, wl)
    _wrap(keras, model, wl, wl.shapes(wl.param_grid()[0]), "float32")  # builds a subclassed model's variables
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())})
    os.replace(tmp, path)


def parameter_count(wl) -> int | None:
    """A ``.keras`` file's parameter count from its weights' uncompressed size (4 bytes each), nothing built;
    None for a factory (Keras has no way to build a model without allocating it)."""
    import zipfile

    if not wl.source.file:
        return None
    try:
        with zipfile.ZipFile(wl.source.file) as z:
            return sum(i.file_size for i in z.infolist() if i.filename.endswith(".h5")) // 4
    except (OSError, zipfile.BadZipFile):
        return None  # load_model says what is wrong with the file


def run_reference(wl, inputs: dict, dtype: str = "float64") -> list:
    """The model in ``dtype`` on the reference backend's CPU (module docstring)."""
    keras = import_keras()
    model = native_model(wl, keras, {k: v.shape for k, v in inputs.items()}, dtype)
    xs = [keras.ops.convert_to_tensor(inputs[s.name], dtype=dtype if s.dtype == "float32" else "int32")
          for s in wl.inputs]
    out = model(xs, training=False)
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in (out if isinstance(out, (list, tuple)) else [out])]


def forward_module(tf, ctx):
    """The tensorflow exporters' view of a keras source (``suite.targets.tensorflow.model.forward_module``):
    (tf.Module holding the model, whose ``forward`` is a tf.function over the declared inputs; input specs;
    NHWC flags of the inputs and of the outputs, all False)."""
    keras = import_keras("tensorflow")
    wl = ctx.workload
    model = native_model(wl, keras, ctx.shapes)
    in_specs = [tf.TensorSpec(tuple(ctx.shapes[s.name]), tf.as_dtype(s.dtype), name=s.name) for s in wl.inputs]
    module = tf.Module(name=wl.name)
    module.model = model
    # the backend's tf.Variables themselves, tracked by the module: without them the TFLite converter does not
    # freeze Keras' variables (a READ_VARIABLE op that fails at run time); Keras' ExportArchive does the same
    module.variables_ = [v.value for v in model.weights]

    def call(*xs):
        out = model([tf.cast(x, tf.int32) if x.dtype.is_integer else x for x in xs], training=False)
        return tuple(out) if isinstance(out, (list, tuple)) else (out,)

    module.forward = tf.function(call, input_signature=in_specs)
    return module, in_specs, [False] * len(wl.inputs), [False] * len(wl.outputs)

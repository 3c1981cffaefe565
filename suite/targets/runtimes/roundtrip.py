"""Round-trip targets: an artifact saved by a framework, loaded back by the same framework, then run.

* ``torch>export@torch``: ``torch.export.save`` (.pt2) -> ``torch.export.load(...).module()``.
* ``tensorflow>savedmodel@tensorflow``: ``tf.saved_model.save`` -> ``tf.saved_model.load(...).forward``.
* ``jax>export@jax``: ``jax.export`` serialised bytes -> ``jax.export.deserialize(...).call`` under jit.

The export itself runs in the export phase (:mod:`suite.targets.common.artifacts`, exporters in
each framework's ``export.py``); ``build`` only loads, so what is verified and
timed is the deserialised artifact, not the in-memory model it came from.
"""
from __future__ import annotations

import time

from suite.targets.common import io_layout
from suite.targets.common.artifacts import artifact_path
from suite.targets.base import Built, BuildContext


def unsupported(workload, info) -> str | None:
    return None


def build(ctx: BuildContext) -> Built:
    path, man = artifact_path(ctx)
    kind = ctx.info.options.load
    t0 = time.perf_counter()
    if kind == "torch.export":
        import torch

        module = torch.export.load(str(path)).module()

        def prepare(host):
            return tuple(torch.from_numpy(a) for a in io_layout.host_inputs(man, host))

        def run(xs):
            with torch.inference_mode():
                return module(*xs)

        to_numpy = lambda outs: io_layout.canonical_outputs(man, [o.numpy() for o in outs])  # noqa: E731
        sync, versions = (lambda outs: None), {"torch": torch.__version__}
    elif kind == "saved_model":
        from suite.targets.tensorflow.runtime import import_tf

        tf = import_tf()
        loaded = tf.saved_model.load(str(path))
        fn = loaded.forward

        def prepare(host):
            return [tf.constant(a) for a in io_layout.host_inputs(man, host)]

        def run(xs, _keep=loaded):  # the loaded object owns the variables: keep it alive
            return tuple(fn(*xs))

        to_numpy = lambda outs: io_layout.canonical_outputs(man, [o.numpy() for o in outs])  # noqa: E731
        sync, versions = (lambda outs: None), {"tensorflow": tf.__version__}
    elif kind == "jax.export":
        import jax

        exported = jax.export.deserialize(bytearray(path.read_bytes()))
        fn = jax.jit(exported.call)

        def prepare(host):
            return jax.device_put(io_layout.host_inputs(man, host))

        def run(xs):
            return fn(*xs)

        prepared = prepare({s["name"]: _zeros(s, exported, i) for i, s in enumerate(man["inputs"])})
        jax.block_until_ready(run(prepared))  # compile here, not in first_call
        to_numpy = lambda outs: io_layout.canonical_outputs(man, [jax.device_get(o) for o in outs])  # noqa: E731
        sync, versions = jax.block_until_ready, {"jax": jax.__version__}
    else:
        raise ValueError(f"options.load={kind!r}: expected torch.export, saved_model or jax.export")
    load_s = time.perf_counter() - t0
    return Built(prepare=prepare, run=run, to_numpy=to_numpy, synchronize=sync, layout=man.get("layout", ""),
                 compile_s=load_s, artifact_path=str(path), artifact_bytes=man.get("artifact_bytes"),
                 versions=dict(man.get("versions", {}), **versions))


def _zeros(spec, exported, i):
    """A zero input in *canonical* layout (host_inputs transposes it like a real one)."""
    import numpy as np

    shape = tuple(exported.in_avals[i].shape)
    if spec["nhwc"]:
        shape = (shape[0], shape[3], shape[1], shape[2])
    return np.zeros(shape, dtype=spec["dtype"])

"""A Flax NNX source model: built from its factory with Flax's seeded initialisation, run as a pure JAX function.

:func:`build_model` is the one builder: the float64 reference (:mod:`suite.sources.main`), ``jax:jit`` and every
jax exporter (through ``suite.targets.jax.model.make_source_apply``) call it, so every route starts from the same
weights: the factory is given ``rngs=nnx.Rngs(workload.seed)`` when it takes an ``rngs`` parameter (or the weights
file, a ``.msgpack`` of the model's state, is restored strictly). The model is put in eval mode (``model.eval()``:
dropout off, batch norm on its running statistics).

A route sees the model as a pure function over its state (:func:`pure_apply`): ``nnx.split`` once, and
``apply(state, *inputs)`` merges the graph with the state and calls the module with the workload's inputs in
declared order, by keyword when every input name is a parameter of its ``__call__`` and positionally otherwise,
and returns the declared outputs as a tuple (by key from a dict, by position from a tuple or list; by default the
first array). The inputs are in the model's own layout (a source workload has no graph nodes: no NHWC
transposes); integer inputs are int32 on the routes (JAX runs without x64) and int64 in the reference.

The reference (:func:`run_reference`): ``jax_enable_x64`` set before any array is created, the model built as
above, every floating leaf of its state cast to float64, float inputs in float64, run eagerly on the CPU.
"""
from __future__ import annotations

import inspect

import numpy as np

from suite.sources.guard import SourceError, call_factory, factory_kwargs, no_network, resolve_factory
from suite.sources.guard import select_outputs as pick
from suite.targets.common.convert import first_line


def takes_rngs(factory) -> bool:
    """Whether the factory (a function, or an ``nnx.Module`` class: its ``__init__``) has an ``rngs`` parameter."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return "rngs" in inspect.signature(target).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        return False


def _call_factory(wl, factory, kwargs: dict):
    """``factory(**kwargs)``, with ``rngs=nnx.Rngs(seed)`` added when it takes rngs (and kwargs do not give it)."""
    from flax import nnx

    call = dict(kwargs)
    if "rngs" not in call and takes_rngs(factory):
        call["rngs"] = nnx.Rngs(wl.seed)
    return factory(**call)


def _cpu():
    """``jax.default_device(cpu)``: the model is built and its reference run on the CPU on every machine (an
    initializer run on an accelerator could round differently: every route must start from the same weights)."""
    import jax

    return jax.default_device(jax.devices("cpu")[0])


def build_model(wl):
    """The source ``nnx.Module`` on the CPU: seeded (or with the weights file's state), in eval mode."""
    from flax import nnx

    factory = resolve_factory(wl)
    kwargs = factory_kwargs(wl)
    with _cpu():
        model = call_factory(wl, kwargs, lambda: _call_factory(wl, factory, kwargs))
    if not isinstance(model, nnx.Module):
        raise SourceError("source.factory", f"{wl.source.factory} returned a {type(model).__name__}, "
                                            "expected a flax.nnx.Module")
    if wl.source.weights:
        with _cpu():
            load_weights(model, wl.source.weights)
    model.eval()
    return model


def parameter_count(wl) -> int | None:
    """Elements of the model's state (parameters and batch statistics; RNG state left out), counted on abstract
    arrays (``nnx.eval_shape``: nothing is allocated), or None when the factory does not build there."""
    from flax import nnx

    factory = resolve_factory(wl)
    kwargs = factory_kwargs(wl)
    try:
        with no_network():
            model = nnx.eval_shape(lambda: _call_factory(wl, factory, kwargs))
        return sum(int(np.prod(v.shape)) for v in _leaves(nnx.state(model, nnx.Not(nnx.RngState))).values())
    except Exception:  # noqa: BLE001 - code that needs real arrays, or no module; the real build reports errors
        return None


def _leaves(tree, prefix: tuple = ()) -> dict:
    """A nested dict (a pure dict of an ``nnx.State``, or a restored .msgpack) -> {path tuple: leaf}."""
    from flax import nnx

    if isinstance(tree, nnx.State):
        tree = nnx.to_pure_dict(tree)
    if not isinstance(tree, dict):
        return {prefix: tree}
    out = {}
    for k, v in tree.items():
        out.update(_leaves(v, (*prefix, k)))
    return out


def _dotted(path: tuple) -> str:
    return ".".join(str(k) for k in path)


def load_weights(model, path: str) -> None:
    """The model's state (RNG state aside) replaced by the pure dict in ``path`` (``flax.serialization.
    msgpack_restore``), strictly: every key present, none unexpected, every shape equal; values cast to the
    model's dtypes. SourceError(source.weights) otherwise."""
    from flax import nnx, serialization

    try:
        with open(path, "rb") as f:
            restored = serialization.msgpack_restore(f.read())
    except Exception as e:  # noqa: BLE001 - unreadable, or not msgpack
        raise SourceError("source.weights", f"{path}: not a Flax msgpack file: {first_line(e)}") from e
    if not isinstance(restored, dict):
        raise SourceError("source.weights", f"{path}: holds a {type(restored).__name__}, expected the dict of "
                                            "nnx.to_pure_dict(nnx.state(model))")
    state = nnx.state(model, nnx.Not(nnx.RngState))
    want = {_dotted(p): (p, v) for p, v in _leaves(state).items()}
    rng = {_dotted(p) for p in _leaves(nnx.state(model, nnx.RngState))}  # not required, allowed
    got = {_dotted(p): v for p, v in _leaves(restored).items()}
    missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want) - rng)
    if missing or unexpected:
        parts = [f"{len(keys)} {what} key(s): {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}"
                 for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise SourceError("source.weights", f"{path}: not this model's state: {'; '.join(parts)}")
    pure: dict = {}
    for key, (p, leaf) in want.items():
        value = np.asarray(got[key])
        if value.shape != tuple(leaf.shape):
            raise SourceError("source.weights", f"{path}: {key} has shape {value.shape} in the file, "
                                                f"{tuple(leaf.shape)} in the model")
        node = pure
        for k in p[:-1]:
            node = node.setdefault(k, {})
        node[p[-1]] = value.astype(leaf.dtype)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)


def call_names(model, wl) -> bool:
    """Whether the model is called with the inputs by keyword (every input name is a parameter of __call__)."""
    try:
        params = inspect.signature(model.__call__).parameters
    except (TypeError, ValueError):
        return False
    return all(s.name in params for s in wl.inputs)


def select_outputs(out, names: tuple[str, ...], declared: bool) -> tuple:
    """The model's output -> the workload's outputs as a tuple of arrays (:func:`suite.sources.guard.select_outputs`;
    a tracer is an array too)."""
    import jax

    return pick(out, names, declared, lambda t: isinstance(t, jax.Array), "array")


def _caller(model, wl):
    """f(module, *inputs) -> tuple of the declared outputs."""
    names, outputs, declared = tuple(s.name for s in wl.inputs), tuple(wl.outputs), wl.source.declared_outputs
    by_name = call_names(model, wl)

    def call(module, *xs):
        out = module(**dict(zip(names, xs))) if by_name else module(*xs)
        return select_outputs(out, outputs, declared)

    return call


def pure_apply(wl):
    """The source model as a pure JAX function over its state.

    Returns:
        (apply, state): ``apply(state, *inputs) -> tuple`` of the declared outputs (inputs in declared order),
        and the model's state on the CPU (parameters, batch statistics: the caller places it; the RNG state is
        closed over, unused in eval mode).
    """
    from flax import nnx

    model = build_model(wl)
    graphdef, rngs, state = nnx.split(model, nnx.RngState, ...)
    call = _caller(model, wl)

    def apply(state, *xs):
        return call(nnx.merge(graphdef, rngs, state), *xs)

    return apply, state


def run_reference(wl, inputs: dict, dtype: str = "float64") -> list:
    """The reference: the source model with its floating state in float64, float inputs in float64, ints in
    int64, on the CPU (``dtype`` float32: the model as built, without x64, for a model that cannot run in
    float64)."""
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")  # before any array: ints are int64, nothing truncated
    import jax.numpy as jnp
    from flax import nnx

    with _cpu():
        model = build_model(wl)
        if dtype == "float64":
            state = nnx.state(model)
            nnx.update(model, jax.tree.map(
                lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, state))
        ints = np.int64 if dtype == "float64" else np.int32
        args = [jnp.asarray(np.ascontiguousarray(inputs[s.name], dtype=ints if s.dtype.startswith("int") else dtype))
                for s in wl.inputs]
        out = _caller(model, wl)(model, *args)
    return [np.asarray(o) for o in out]

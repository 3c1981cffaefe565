"""A torch source model: built from its factory with torch's seeded initialisation, wrapped for the suite.

:func:`build_model` is the one builder: the float64 reference (:mod:`suite.sources.main`), ``torch:eager``,
``torch:compile`` and every torch exporter (through ``suite.targets.torch.model.inference_model``) all call
it, so every route starts from the same weights: ``torch.manual_seed(workload.seed)`` on the CPU right
before the factory runs (or the weights file, loaded strictly).

The wrapper (:func:`wrap`) makes the model look like a graph workload's module: it takes the workload's
inputs positionally, in declared order, calls the model with them by keyword when every input name is a
parameter of its ``forward`` (``input_ids``, ``attention_mask`` of a transformers model) and positionally
otherwise, and returns the declared outputs as a tuple (by key from a dict or ``ModelOutput``, by position
from a tuple; by default the first tensor).
"""
from __future__ import annotations

import inspect

from suite.sources.guard import SourceError, call_factory, factory_kwargs, no_network, resolve_factory
from suite.sources.guard import select_outputs as pick
from suite.targets.common.convert import first_line


def build_model(wl):
    """The source ``nn.Module`` on the CPU, float32, eval mode, no parameter requiring grad."""
    import torch

    factory = resolve_factory(wl)
    kwargs = factory_kwargs(wl)
    torch.manual_seed(wl.seed)
    model = call_factory(wl, kwargs, lambda: factory(**kwargs))
    if not isinstance(model, torch.nn.Module):
        raise SourceError("source.factory", f"{wl.source.factory} returned a {type(model).__name__}, "
                                            "expected a torch.nn.Module")
    if wl.source.weights:
        _load_weights(model, wl.source.weights)
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def parameter_count(wl) -> int | None:
    """Parameters and buffers of the model, counted on torch's meta device (nothing is allocated), or None
    when the factory does not build there (then the model is simply built)."""
    import torch

    factory = resolve_factory(wl)
    try:
        with torch.device("meta"), no_network():
            model = factory(**factory_kwargs(wl))
        return sum(t.numel() for t in list(model.parameters()) + list(model.buffers()))
    except Exception:  # noqa: BLE001 - code that needs real tensors; the real build reports its own errors
        return None


def _load_weights(model, path: str) -> None:
    import torch

    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        model.load_state_dict(state, strict=True)
    except Exception as e:  # noqa: BLE001 - unreadable file, missing or unexpected keys, shape mismatch
        raise SourceError("source.weights", f"{path}: {first_line(e)}") from e


def call_names(model, wl) -> bool:
    """Whether the model is called with the inputs by keyword (every input name is a parameter of forward)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return all(s.name in params for s in wl.inputs)


def select_outputs(out, names: tuple[str, ...], declared: bool) -> tuple:
    """The model's output -> the workload's outputs as a tuple of tensors (:func:`suite.sources.guard.select_outputs`)."""
    import torch

    return pick(out, names, declared, lambda t: isinstance(t, torch.Tensor), "tensor")


def wrap(model, wl, declared: bool):
    """The source model as a module called with the workload's inputs (positionally, in declared order)
    and returning its outputs as a tuple."""
    import torch

    names = tuple(s.name for s in wl.inputs)
    outputs = tuple(wl.outputs)
    by_name = call_names(model, wl)

    class Source(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            out = self.inner(**dict(zip(names, args))) if by_name else self.inner(*args)
            return select_outputs(out, outputs, declared)

    return Source(model).eval()


def inference_model(ctx):
    """``suite.targets.torch.model.inference_model`` of a source workload: the wrapped source module."""
    return wrap(build_model(ctx.workload), ctx.workload, ctx.workload.source.declared_outputs)


def run_reference(wl, inputs: dict, dtype: str = "float64") -> list:
    """The reference: a float64 copy of the source module on the CPU, float inputs in float64 (``dtype``
    float32: the module as built, for a model that cannot run in float64)."""
    import numpy as np
    import torch

    model = build_model(wl)
    model = wrap(model.double() if dtype == "float64" else model, wl, wl.source.declared_outputs)
    args = tuple(torch.from_numpy(np.ascontiguousarray(inputs[s.name], dtype=np.int64 if s.dtype.startswith("int")
                                                       else dtype)) for s in wl.inputs)
    with torch.no_grad():
        out = model(*args)
    return [o.detach().numpy() for o in out]

"""What every source build shares: its one-line error, and no network while a factory runs."""
from __future__ import annotations

import contextlib
import importlib
import json
import socket

from suite.targets.common.convert import first_line


class SourceError(Exception):
    """A source model that cannot be built or called. ``field`` is the workload field at fault
    (``source.factory``, ``source.kwargs``, ``inputs``, ``outputs``, ...); ``str()`` is the message."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


DOWNLOAD_HINT = ("the factory tried to reach the network (nothing is downloaded at run time): build the model "
                 "without pretrained weights (e.g. kwargs {weights: null}, or a config instead of a hub name) "
                 "and give trained weights as source.weights")


class NetworkBlocked(OSError):
    """Raised by any socket connection while a source factory runs."""


@contextlib.contextmanager
def no_network():
    """Within: any socket connection raises NetworkBlocked (a factory that downloads fails at once, with a
    message that says what to change), and a failure caused by it becomes SourceError(source.kwargs)."""
    real = socket.socket.connect, socket.socket.connect_ex, socket.create_connection
    tried = []

    def refuse(*args, **kwargs):
        tried.append(args[1] if len(args) > 1 else args[0] if args else "")
        raise NetworkBlocked(f"network access blocked: {DOWNLOAD_HINT}")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    try:
        yield
    except SourceError:
        raise
    except Exception as e:  # noqa: BLE001 - a download error wrapped by the library (urllib, requests, hub)
        if tried or isinstance(e, NetworkBlocked) or "offline" in str(e).lower():
            where = f" ({tried[0]})" if tried else ""
            raise SourceError("source.kwargs", f"{DOWNLOAD_HINT}{where}: {first_line(e)}") from e
        raise
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.create_connection = real


def call_factory(wl, kwargs: dict, make):
    """``make()`` (the factory called with ``kwargs``, however the framework calls it) under :func:`no_network`,
    its failures as one SourceError: wrong arguments at ``source.kwargs``, the factory's own error at
    ``source.factory``, in its words."""
    try:
        with no_network():  # a download fails at once, as SourceError(source.kwargs) saying what to change
            return make()
    except SourceError:
        raise
    except TypeError as e:
        raise SourceError("source.kwargs", f"{wl.source.factory}(**{kwargs}) failed: {e}") from e
    except Exception as e:  # noqa: BLE001 - the factory's own error, in its words
        raise SourceError("source.factory", f"{wl.source.factory}(**{kwargs}) failed: {first_line(e)}") from e


def select_outputs(out, names: tuple[str, ...], declared: bool, is_array, noun: str) -> tuple:
    """A model's output -> the workload's outputs as a tuple: by key from a dict (a transformers ``ModelOutput``
    too: its None entries left out), by position from a tuple or list, by default the first.

    Args:
        is_array: whether a value is one of the framework's arrays (``noun``: "tensor", "array").
    """
    if is_array(out):
        items, keys = [out], None
    elif isinstance(out, dict):
        keys = [k for k, v in out.items() if v is not None]
        items = [out[k] for k in keys]
    elif isinstance(out, (tuple, list)):
        items, keys = list(out), None
    else:
        raise SourceError("outputs", f"the model returned a {type(out).__name__}; expected a {noun}, a tuple or a "
                                     f"dict of {noun}s")
    if not declared:
        picked = [items[0]] if items else []
    elif keys is not None:
        absent = [n for n in names if n not in keys]
        if absent:
            raise SourceError("outputs", f"the model's output has no {absent[0]!r}; it has {', '.join(map(str, keys))}")
        picked = [out[n] for n in names]
    else:
        if len(names) > len(items):
            raise SourceError("outputs", f"{len(names)} outputs declared, the model returns {len(items)} "
                                         f"(a {type(out).__name__}: outputs are taken by position)")
        picked = items[:len(names)]
    for n, t in zip(names, picked):
        if not is_array(t):
            raise SourceError("outputs", f"output {n!r} is a {type(t).__name__}, not a {noun}")
    if not picked:
        raise SourceError("outputs", f"the model returned no {noun}")
    return tuple(picked)


def _plain(v):
    """A frozen kwargs value (MappingProxyType, tuples) as the plain JSON-like value the factory expects."""
    return json.loads(json.dumps(v, default=lambda o: dict(o) if hasattr(o, "items") else list(o)))


def resolve_factory(wl):
    """The factory callable of ``source.factory`` (``module:attr.attr``); SourceError naming the field."""
    import sys
    from pathlib import Path

    spec = wl.source.factory
    mod_name, attr = spec.split(":")
    here = str(Path(wl.path).resolve().parent)  # a user's module beside the workload file is importable
    if here not in sys.path:
        sys.path.append(here)
    try:
        obj = importlib.import_module(mod_name)
    except Exception as e:  # noqa: BLE001 - ModuleNotFoundError, or the module's own import error
        hint = f" (pip install the package that provides {mod_name.split('.')[0]})" \
            if isinstance(e, ModuleNotFoundError) else ""
        raise SourceError("source.factory", f"cannot import {mod_name}: {type(e).__name__}: {e}{hint}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SourceError("source.factory", f"{mod_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SourceError("source.factory", f"{spec} is a {type(obj).__name__}, not a callable")
    return obj


def factory_kwargs(wl) -> dict:
    """The factory's keyword arguments as plain JSON-like values."""
    return _plain(wl.source.kwargs)

"""What every source build shares: its one-line error, and no network while a factory runs."""
from __future__ import annotations

import contextlib
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

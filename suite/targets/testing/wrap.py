"""The target contract of a test-only target that plants one bug in a production target.

A bug is a zero-argument callable returning a context manager that patches production code (an entry of
a framework's ``WEIGHTS`` or ``OPS`` table, an optimiser constructor, ...) while the production build runs:
the model is built with the bug, then the patch is undone. A module of bugs ends with::

    unsupported, build, build_train = planted("torch", BUGS)   # BUGS: target id -> bug

Production code never branches on a bug.
"""
from __future__ import annotations

import importlib
from typing import Callable, ContextManager, Mapping


def planted(framework: str, bugs: Mapping[str, Callable[[], ContextManager]]):
    """(unsupported, build, build_train) of the test targets in ``bugs``, wrapping ``suite.targets.<framework>``."""

    def production():
        return importlib.import_module(f"suite.targets.{framework}")

    def plant(info):
        try:
            return bugs[info.id]()
        except KeyError:
            raise ValueError(f"{info.id}: no injected {framework} bug (expected one of {', '.join(bugs)})") from None

    def unsupported(workload, info) -> str | None:
        if info.id not in bugs:
            return f"{info.id}: no injected {framework} bug (expected one of {', '.join(bugs)})"
        return production().unsupported(workload, info)

    def build(ctx):
        with plant(ctx.info):
            return production().build(ctx)

    def build_train(ctx):
        with plant(ctx.info):
            return production().build_train(ctx)

    return unsupported, build, build_train

"""Checks that a framework's op table and weight table cover the op catalogue (suite/ops.py) exactly.

Every framework folder has ``ops.py`` with ``OPS: dict[op name, function]`` and ``UNSUPPORTED: dict[op
name, reason]``, and ``weights.py`` with ``WEIGHTS: dict[op name, mapping function]`` for every op that
has parameters. A forgotten op fails a unit test (tests/test_op_tables.py), never a run; an op in no
table is an error at build time, never a fall-through to another op's mapping.
"""
from __future__ import annotations

from typing import Mapping

from suite.ops import OPS, OpDef

_NO_PARAMS = OpDef.__dataclass_fields__["params"].default


def has_params(op: str) -> bool:
    """Whether the catalogue gives the op parameters (weights to map)."""
    return OPS[op].params is not _NO_PARAMS


def coverage_problems(framework: str, ops: Mapping, unsupported: Mapping[str, str],
                      weights: Mapping | None = None) -> list[str]:
    """What is wrong with a framework's tables, one line each (empty: they cover the catalogue).

    Args:
        framework: the folder name, for the messages.
        ops: the op table (op -> function).
        unsupported: ops the framework declares it cannot express (op -> reason).
        weights: the weight-mapping table, or None for a framework without one.
    """
    problems = []
    catalogue = set(OPS)
    for op in sorted(catalogue - set(ops) - set(unsupported)):
        problems.append(f"{framework}: op {op!r} is in neither ops.OPS nor ops.UNSUPPORTED")
    for op in sorted((set(ops) | set(unsupported)) - catalogue):
        problems.append(f"{framework}: op {op!r} is not in the catalogue (suite/ops.py)")
    for op in sorted(set(ops) & set(unsupported)):
        problems.append(f"{framework}: op {op!r} is both mapped and declared unsupported")
    for op, why in unsupported.items():
        if not isinstance(why, str) or not why.strip():
            problems.append(f"{framework}: op {op!r} is declared unsupported without a reason")
    for op, fn in ops.items():
        if not callable(fn):
            problems.append(f"{framework}: ops.OPS[{op!r}] is not callable")
    if weights is not None:
        for op in sorted(op for op in ops if has_params(op) and op not in weights):
            problems.append(f"{framework}: op {op!r} has parameters but no entry in weights.WEIGHTS")
        for op in sorted(set(weights) - {op for op in catalogue if has_params(op)}):
            problems.append(f"{framework}: weights.WEIGHTS[{op!r}]: not an op with parameters")
    return problems


def lookup(table: Mapping, op: str, framework: str, what: str = "op table"):
    """``table[op]``, or a clear error naming the framework and the table (never another op's entry)."""
    try:
        return table[op]
    except KeyError:
        raise NotImplementedError(f"op {op}: no entry in the {framework} {what}") from None

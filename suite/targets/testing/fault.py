"""Test-only targets (registered only for tests: suite.targets.testing): a NumPy model that behaves well or fails on purpose.

`test:numpy` runs the float64 reference ops on float32 inputs; the other `test:*` ids misbehave in one
known way each (`fault` option) so the tests can prove that the scheduler, the verifier and the results
store turn every failure into a row: crash (SIGABRT), segfault, hang, oom, error, nan, garbage, drift, and
`delay_ms` adds a known latency (for regression-detection tests).

``test:drift`` is wrong by a little in every ``dense`` node (its output scaled by 1 + DRIFT, 3e-5, inside
the default rtol of 1e-4): no node is out of tolerance alone, the error of four dense nodes in a row is
(bench diagnose's reduction of an accumulated divergence).
"""
from __future__ import annotations

import os
import time

import numpy as np

from suite.targets.base import Built, BuildContext

DRIFT = 3e-5


def _drifting(workload, weights, inputs) -> list[np.ndarray]:
    """The graph node by node in float32, each dense node's output scaled by 1 + DRIFT."""
    from suite.reference import run_op

    values = dict(inputs)
    for node in workload.nodes:
        y = run_op(node.op, [values[s] for s in node.inputs], weights.get(node.name, {}), node.attrs)
        values[node.name] = (np.asarray(y) * (1 + DRIFT if node.op == "dense" else 1)).astype(np.float32)
    return [values[o] for o in workload.outputs]


def unsupported(workload, info) -> str | None:
    return None


def build(ctx: BuildContext) -> Built:
    from suite.reference import reference

    fault = ctx.info.options.fault
    delay = float(os.environ.get("BENCH_TEST_DELAY_MS", ctx.info.options.delay_ms)) / 1e3
    if fault == "hang":
        while True:
            time.sleep(1)
    if fault == "error":
        raise RuntimeError("injected failure while building")
    weights32 = {n: {k: v.astype(np.float32) for k, v in p.items()} for n, p in ctx.weights.items()}

    def run(inputs):
        if fault == "crash":
            os.abort()
        if fault == "segfault":
            import ctypes

            ctypes.string_at(0)
        if fault == "oom":
            hog = []
            while True:
                hog.append(np.ones(2**27))  # 1 GiB per step, touched so it is really resident
        if fault == "drift":
            outs = _drifting(ctx.workload, weights32, inputs)
        else:
            outs = [o.astype(np.float32) for o in reference(ctx.workload, weights32, inputs)]
        if delay:
            end = time.perf_counter() + delay
            while time.perf_counter() < end:
                pass
        if fault == "nan":
            outs[0][..., 0] = np.nan
        if fault == "garbage":
            outs = [o * 1.5 + 0.1 for o in outs]
        return outs

    return Built(prepare=dict, run=run, to_numpy=list, layout="canonical (NumPy)",
                 versions={"numpy": np.__version__}, compile_s=0.0)

"""``python -m suite.sources.main --workload W --points JSON``: check a source model and cache its references.

Run by :func:`suite.sources.prepare` in a subprocess of its own (the source framework never enters the
``bench`` process). For each sweep point: the seeded inputs, the source model in float64 on the CPU, the
outputs written to the reference cache (:func:`suite.sources.reference_path`). A model that cannot be
built or called prints one line ``@@bench-source-error <file>: <field>: <message>`` and exits 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback


def run_float64(wl, inputs: dict) -> list:
    """The source framework's float64 run (suite.sources.<framework>.run_float64)."""
    import importlib

    return importlib.import_module(f"suite.sources.{wl.source.framework}").run_float64(wl, inputs)


def main(argv=None) -> int:
    import numpy as np

    from suite.sources import ERROR_PREFIX, reference_path
    from suite.sources.guard import SourceError
    from suite.spec import SpecError, load_workload
    from suite.weights import make_inputs

    ap = argparse.ArgumentParser(prog="python -m suite.sources.main")
    ap.add_argument("--workload", required=True)
    ap.add_argument("--points", required=True, help="JSON list of sweep points")
    args = ap.parse_args(argv)
    try:
        wl = load_workload(args.workload)
    except SpecError as e:
        print(ERROR_PREFIX + str(e), flush=True)
        return 2
    for params in json.loads(args.points):
        at = " ".join(f"{k}={v}" for k, v in params.items())
        try:
            inputs = make_inputs(wl, params)
            try:
                outs = run_float64(wl, inputs)
            except SourceError:
                raise
            except Exception as e:  # noqa: BLE001 - the model rejected the inputs (shape, dtype, names)
                traceback.print_exc()
                lines = str(e).strip().splitlines()
                raise SourceError("inputs", f"the model rejects the declared inputs at {at}: {type(e).__name__}: "
                                            f"{lines[0] if lines else ''}"[:400]) from e
        except SourceError as e:
            print(f"{ERROR_PREFIX}{wl.path}: {e.field}: {e}", flush=True)
            return 2
        bad = [i for i, o in enumerate(outs) if not np.all(np.isfinite(o))]
        if bad:
            print(f"{ERROR_PREFIX}{wl.path}: outputs: the float64 source model gives non-finite values in "
                  f"{wl.outputs[bad[0]]} at {at}; no reference to check routes against", flush=True)
            return 2
        path = reference_path(wl, params)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **{f"out{i}": o for i, o in enumerate(outs)})
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

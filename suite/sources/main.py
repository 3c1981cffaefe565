"""``python -m suite.sources.main --workload W --points JSON``: check a source model and cache its references.

Run by :func:`suite.sources.prepare` in a subprocess of its own (the source framework never enters the
``bench`` process). For each sweep point: the seeded inputs, the source model in float64 on the CPU (in
float32 where it cannot run in float64: the reference then says so), the outputs written to the reference
cache (:func:`suite.sources.reference_path`). A model that cannot be built or called prints one line
``@@bench-source-error <file>: <field>: <message>`` and exits 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback


def framework_module(wl):
    """``suite.sources.<framework>``: ``run_reference(wl, inputs, dtype)`` (the model's outputs as numpy arrays),
    ``parameter_count(wl)``, and optionally ``prepare(wl)`` (run once before the references, e.g. keras
    writes the seeded weights every backend loads)."""
    import importlib

    return importlib.import_module(f"suite.sources.{wl.source.framework}")


def run_reference(wl, inputs: dict, dtype: str) -> list:
    """The source framework's run in ``dtype`` on the CPU (suite.sources.<framework>.run_reference)."""
    return framework_module(wl).run_reference(wl, inputs, dtype)


REFERENCE_BYTES_PER_PARAM = 12  # the float32 model, then its float64 copy (model.double() keeps both a moment)


def check_memory(wl) -> None:
    """Refuses, before the model is built, one whose weights cannot fit: the float64 reference holds the float32
    model and its float64 copy (12 bytes a parameter), against the machine's available memory."""
    from suite.memory import available_memory, format_bytes
    from suite.sources.guard import SourceError

    count = framework_module(wl).parameter_count(wl)
    avail, where = available_memory()
    need = (count or 0) * REFERENCE_BYTES_PER_PARAM
    if count and avail and need > avail:
        raise SourceError("source", f"the model has {count:,} parameters: its float64 reference needs at least "
                                    f"{format_bytes(need)} (float32 weights and their float64 copy) but the "
                                    f"{where} is {format_bytes(avail)}")


def reference_outputs(wl, inputs: dict, at: str) -> tuple[list, str, str]:
    """(outputs, dtype, note): the model in float64; where it cannot run in float64, in float32 (the note
    says why); a model that runs in neither rejects the inputs (SourceError at ``inputs``)."""
    import numpy as np

    from suite.sources.guard import SourceError
    from suite.targets.common.convert import first_line

    try:
        outs = run_reference(wl, inputs, "float64")
        narrow = [str(o.dtype) for o in outs if np.issubdtype(o.dtype, np.floating) and o.dtype != np.float64]
        if narrow:  # a layer that fixes its own dtype: the reference is only as precise as its outputs
            return ([np.asarray(o, np.float64) for o in outs], "float32",
                    f"the model's outputs are {narrow[0]} with float64 weights and inputs (a dtype fixed in the model)")
        return [np.asarray(o, np.float64) for o in outs], "float64", ""
    except SourceError:
        raise
    except Exception as e64:  # noqa: BLE001 - no float64 kernel, a dtype the model hard-codes, or bad inputs
        traceback.print_exc()
        try:
            outs = run_reference(wl, inputs, "float32")
        except SourceError:
            raise
        except Exception as e:  # noqa: BLE001 - the model rejected the inputs (shape, dtype, names)
            traceback.print_exc()
            raise SourceError("inputs", f"the model rejects the declared inputs at {at}: {first_line(e)}") from e
        return [np.asarray(o, np.float64) for o in outs], "float32", \
            f"the model does not run in float64 ({first_line(e64)})"


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
    try:
        check_memory(wl)
        if hasattr(framework_module(wl), "prepare"):
            framework_module(wl).prepare(wl)
    except SourceError as e:
        print(f"{ERROR_PREFIX}{wl.path}: {e.field}: {e}", flush=True)
        return 2
    for params in json.loads(args.points):
        at = " ".join(f"{k}={v}" for k, v in params.items())
        try:
            inputs = make_inputs(wl, params)
            outs, dtype, note = reference_outputs(wl, inputs, at)
        except SourceError as e:
            print(f"{ERROR_PREFIX}{wl.path}: {e.field}: {e}", flush=True)
            return 2
        bad = [i for i, o in enumerate(outs) if not np.all(np.isfinite(o))]
        if bad:
            print(f"{ERROR_PREFIX}{wl.path}: outputs: the {dtype} source model gives non-finite values in "
                  f"{wl.outputs[bad[0]]} at {at}; no reference to check routes against", flush=True)
            return 2
        path = reference_path(wl, params)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **{f"out{i}": o for i, o in enumerate(outs)}, reference_dtype=np.array(dtype),
                 reference_note=np.array(note))
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Thread wait-policy study (run by hand; prints figures, asserts nothing): how much slower does 2-thread
CPU inference get when one core is taken by a neighbour, per framework and per thread wait-policy setting?

torch, onnxruntime (``ort``), tensorflow (``tf``) and jax each run with 2 intra-op threads (1 inter-op)
three small workloads: ``mlp_b1`` (MLP 784-256-256-10, batch 1), ``mlp_b32`` (the same, batch 32) and
``cnn_b1`` (three 3x3 convs on 1x3x64x64). Settings (orchestrate.CONFIGS):

* torch: default, OMP_WAIT_POLICY=PASSIVE, GOMP_SPINCOUNT=10000, GOMP_SPINCOUNT=1000 (env, set before import);
* ort: default, session.intra_op.allow_spinning=0, session.intra_op.spin_duration_us=100 and =1000
  (session config entries);
* tf: default, disable_thread_spinning (ConfigProto.experimental, set before the eager context starts);
* jax: default.

Each setting is measured ``quiet`` and ``busy``: busy starts a neighbour just before the measurement, by
default (``--neighbour spin``) a Python busy loop pinned to core 1 with ``taskset -c 1``; ``--neighbour
torch`` instead runs another torch process (2 OpenMP threads, libgomp's default spinning, unpinned) running
the CNN forever, which is how the problem was first seen. The neighbour is killed (in a ``finally``) right
after the measurement.

How: every measurement is a fresh worker process (worker.py), so env settings and thread pools start clean.
The worker builds and compiles all three workloads, calls each 3 times, and says READY. Then the foreign-load
gate: the parent waits (at most 5 s, in 1 s windows) until the host's CPU load from anything but the worker
is under 0.3 cores, and records what it saw. Then, per workload: 0.5 s warm-up, then calls timed one at a
time for ~2 s; the worker reports the median (also p90, mean) latency, its own CPU use and the rest of the
host's CPU use during those 2 s (the spin neighbour counted out as 1 core). Quiet and busy alternate order
from rep to rep (quiet first on even reps, busy first on odd ones); 3 reps by default. The tables use, per
cell, the median over the 'clean' runs (foreign load < ``--clean`` cores), or all runs marked ``*`` when
none was clean (always the case for busy runs with the torch neighbour, whose load counts as foreign).
Columns: quiet and busy ms, busy/quiet, quiet vs the framework's default setting, clean/all runs quiet,busy,
own CPU cores quiet/busy.

Time: the full sweep (11 settings x 2 conditions x 3 reps = 66 worker processes of ~10-20 s each) takes
about 15 minutes, plus a one-off ONNX export (a few seconds to a minute) when the ort models are missing;
``--frameworks``, ``--settings`` and ``--reps`` cut it down. Linux only (/proc, taskset), at least 2 cores;
keep the host otherwise idle, and start it from a shell without OMP_* / GOMP_* / MKL_* variables (workers
inherit the environment).

Files go to ``--out`` (default ``$TMPDIR/bench-thread-policy``, created if missing): ``models/*.onnx``,
``results.jsonl`` + ``orchestrate.log`` (spin neighbour), ``oversub_results.jsonl`` + ``oversub.log`` (torch
neighbour). Results are appended, and the tables use every run in the folder: use a fresh ``--out`` for a
fresh study, ``--analyze-only`` to print the tables of an existing one.

    .venv/bin/python tests/benchmarks/thread_policy/study.py [--out DIR] [--frameworks torch,ort,tf,jax]
        [--reps 3] [--settings 'default;OMP_WAIT_POLICY=PASSIVE'] [--neighbour spin|torch] [--analyze-only]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import analyze  # noqa: E402
import orchestrate  # noqa: E402
import spread  # noqa: E402
from models_def import WORKLOADS  # noqa: E402

DEFAULT_OUT = Path(tempfile.gettempdir()) / "bench-thread-policy"


def ensure_onnx(models_dir: Path, work_dir: Path) -> None:
    """Exports the ONNX models (export_onnx.py, a subprocess) when any is missing."""
    if all((models_dir / f"{n}.onnx").exists() for n in WORKLOADS):
        return
    print(f"exporting ONNX models to {models_dir}", flush=True)
    subprocess.run([sys.executable, str(HERE / "export_onnx.py"), str(models_dir)], cwd=str(work_dir), check=True)


def _preflight(neighbour: str) -> str | None:
    if not Path("/proc/stat").exists():
        return "needs Linux (/proc/stat)"
    if (os.cpu_count() or 1) < 2:
        return "needs at least 2 CPU cores (the neighbour goes on core 1)"
    if neighbour == "spin" and shutil.which("taskset") is None:
        return "needs taskset (util-linux) to pin the neighbour to core 1"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="work folder: ONNX models, results, logs (default %(default)s)")
    ap.add_argument("--frameworks", default=",".join(orchestrate.FRAMEWORKS), help="comma-separated (default %(default)s)")
    ap.add_argument("--reps", type=int, default=3, help="quiet+busy pairs per setting (default %(default)s)")
    ap.add_argument("--settings", default=None,
                    help="';'-separated setting names to run, e.g. 'default;GOMP_SPINCOUNT=1000' (default: all)")
    ap.add_argument("--neighbour", choices=["spin", "spin-unpinned", "torch"], default="spin",
                    help="busy neighbour: a busy loop on core 1, the same loop unpinned, or a spinning 2-thread torch process (unpinned)")
    ap.add_argument("--burner-warm", type=float, default=orchestrate.BURNER_WARM,
                    help="seconds between starting the neighbour and the measurement (default %(default)s)")
    ap.add_argument("--clean", type=float, default=analyze.CLEAN,
                    help="a run is clean when its foreign load is under this many cores (default %(default)s)")
    ap.add_argument("--analyze-only", action="store_true", help="only print the tables of the runs in --out")
    ap.add_argument("--spread", action="store_true", help="also print every clean run's median per cell")
    args = ap.parse_args(argv)
    out = Path(args.out).expanduser().resolve()

    if not args.analyze_only:
        fws = [f.strip() for f in args.frameworks.split(",") if f.strip()]
        unknown = sorted(set(fws) - set(orchestrate.FRAMEWORKS))
        if unknown:
            ap.error(f"unknown framework(s) {unknown}; choose from {orchestrate.FRAMEWORKS}")
        settings = [s.strip() for s in args.settings.split(";") if s.strip()] if args.settings else None
        if settings:
            unknown = sorted(set(settings) - {c[1] for c in orchestrate.CONFIGS})
            if unknown:
                ap.error(f"unknown setting(s) {unknown}; choose from {sorted({c[1] for c in orchestrate.CONFIGS})}")
        configs = orchestrate.select(fws, settings)
        if not configs:
            ap.error("no (framework, setting) left to run")
        if args.reps < 1:
            ap.error("--reps must be at least 1")
        problem = _preflight(args.neighbour)
        if problem:
            sys.exit(f"thread_policy study: {problem}")
        out.mkdir(parents=True, exist_ok=True)
        models_dir = out / "models"
        if any(fw == "ort" for fw, _, _ in configs):
            ensure_onnx(models_dir, out)
        n = len(configs) * 2 * args.reps
        print(f"{n} measurements ({len(configs)} settings x quiet/busy x {args.reps} reps), neighbour "
              f"{args.neighbour}, into {out}", flush=True)
        t0 = time.monotonic()
        path = orchestrate.sweep(out, configs, args.reps, models_dir=models_dir, neighbour=args.neighbour,
                                 burner_warm=args.burner_warm)
        print(f"done in {(time.monotonic() - t0) / 60:.1f} min; results appended to {path}", flush=True)

    files = analyze.result_files(out, args.neighbour) if out.is_dir() else []
    if not files:
        print(f"no {analyze.PATTERNS[args.neighbour]} in {out}", file=sys.stderr)
        return 1
    print(f"\ntables from {', '.join(f.name for f in files)} in {out} (clean: foreign load < {args.clean} cores)")
    analyze.print_tables(files, args.clean)
    if args.spread:
        print("\n## per-run medians (ms), clean runs only")
        spread.print_spread(files, args.clean)
    return 0


if __name__ == "__main__":
    sys.exit(main())

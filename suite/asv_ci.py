"""CI check of the asv benchmarks: ``python -m suite.asv_ci`` (run by ``.ci/run``).

Runs, in the current interpreter (``-E existing:same``: nothing is built or installed):

    asv machine --yes
    asv check -E existing:same
    asv run --quick --show-stderr -E existing:same      (a small subset, smoke timing)

and fails when asv reports an error. ``asv run`` exits 2 when a benchmark fails, but a failed
``setup_cache`` or an import error can still end in 0, so its output is checked too: any ``failed``
benchmark, a traceback, or no benchmark that produced a value is an error.

The subset is chosen with the BENCH_ASV_* variables of ``suite/asv_bench/benchmarks.py``; defaults:
mlp_classifier on torch:eager and jax:jit, profile cpu-1t, quick timing (about 15 s).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUBSET = {"BENCH_ASV_WORKLOADS": "mlp_classifier", "BENCH_ASV_TARGETS": "torch:eager,jax:jit",
          "BENCH_ASV_PROFILES": "cpu-1t", "BENCH_ASV_QUICK": "1"}
_FAILED = re.compile(r"\bfailed\b|Traceback \(most recent call last\)|setup_cache failed", re.I)
_OK = re.compile(r"···\s+\S+\.track_\w+\s+ok\s*$", re.M)


def asv(*args: str, env: dict, echo: bool = True) -> tuple[int, str]:
    """Runs ``python -m asv ARGS`` in the repository; returns (exit code, output), echoed if asked."""
    cmd = [sys.executable, "-m", "asv", *args]
    print("$ asv " + " ".join(args), flush=True)
    p = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if echo or p.returncode:
        print(p.stdout, flush=True)
    return p.returncode, p.stdout


def problems(run_output: str) -> list[str]:
    """What is wrong in an ``asv run`` output: failed lines, tracebacks, or no benchmark value at all."""
    bad = [line.strip() for line in run_output.splitlines() if _FAILED.search(line)]
    if not _OK.search(run_output):
        bad.append("no benchmark produced a value (all skipped?)")
    return bad


def main() -> int:
    env = dict(os.environ)
    for k, v in SUBSET.items():
        env.setdefault(k, v)
    rc, _ = asv("machine", "--yes", env=env, echo=False)
    if rc:
        return _fail("asv machine failed")
    rc, out = asv("check", "-E", "existing:same", env=dict(os.environ))  # every benchmark, not the subset
    if rc or "Traceback" in out:
        return _fail("asv check reported errors")
    rc, out = asv("run", "--quick", "--show-stderr", "-E", "existing:same", env=env)
    bad = problems(out)
    if rc or bad:
        return _fail(f"asv run exited {rc}" + "".join(f"\n  {b}" for b in bad))
    print("asv: check and quick run passed", flush=True)
    return 0


def _fail(msg: str) -> int:
    print(f"asv_ci: error: {msg}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())

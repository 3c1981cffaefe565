"""Benchmarks of the suite itself (run by hand; prints figures, asserts nothing):

1. Harness fidelity: the engine's median vs a bare timing loop and, for torch, vs
   ``torch.utils.benchmark.Timer.blocked_autorange`` — same model, same threads, same process.
2. Harness overhead: the engine's per-call cost above a bare ``perf_counter_ns`` loop on a no-op.

    .venv/bin/python tests/benchmarks/harness_fidelity.py            # every framework, one subprocess each
    .venv/bin/python tests/benchmarks/harness_fidelity.py --overhead # only the no-op overhead

Each framework runs in its own subprocess (they never share one), under one profile's threads
(default `cpu-1t`: a single pinned thread, the least noisy setting on a shared host).
The three timings are interleaved over several rounds and the median of each is compared, so slow
drift of the host affects all three alike.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CASES = [("torch:eager", "mlp_classifier", 32), ("torch:eager", "resnet_cnn", 1),
         ("jax:jit", "mlp_classifier", 32), ("jax:jit", "resnet_cnn", 1),
         ("tensorflow:function", "mlp_classifier", 32), ("tensorflow:function", "resnet_cnn", 1)]


def bare_median(call, seconds: float) -> float:
    """Per-call median of a plain perf_counter_ns loop: the simplest honest measurement."""
    values = []
    end = time.perf_counter() + seconds
    pc = time.perf_counter_ns
    while time.perf_counter() < end or len(values) < 20:
        t0 = pc()
        call()
        values.append((pc() - t0) * 1e-9)
    return statistics.median(values)


def measure_target(target_id: str, workload: str, batch: int, rounds: int, profile_name: str) -> dict:
    from suite import engine
    from suite.profiles import apply_in_process, load_profiles
    from suite.spec import load_workload
    from suite.targets.base import BuildContext
    from suite.targets.registry import get_target, load_module
    from suite.weights import init_weights, make_inputs

    info = get_target(target_id)
    profile = load_profiles(REPO / "hardware_profiles")[profile_name]
    apply_in_process(profile, info.family)
    wl = load_workload(REPO / "workloads" / f"{workload}.yaml")
    params = {**wl.param_grid()[0], "batch": batch}
    ctx = BuildContext(wl, init_weights(wl, params), params, wl.shapes(params), info)
    built = load_module(info).build(ctx)
    x = built.prepare(make_inputs(wl, params))
    run, sync = (lambda: built.run(x)), built.synchronize

    def call():
        sync(run())

    results = {"engine": [], "bare": [], "torch_timer": []}
    for _ in range(rounds):
        t = engine.measure(run, sync, engine.TimingConfig(max_time=3.0))
        results["engine"].append(t.median)
        results["bare"].append(bare_median(call, 2.0))
        if info.framework == "torch":
            import torch
            from torch.utils.benchmark import Timer

            # Timer defaults to num_threads=1: give it the profile's threads, or it times another setup.
            timer = Timer("call()", globals={"call": call}, num_threads=torch.get_num_threads())
            results["torch_timer"].append(timer.blocked_autorange(min_run_time=2.0).median)
    out = {k: statistics.median(v) for k, v in results.items() if v}
    out.update(target=target_id, workload=workload, batch=batch)
    return out


def overhead(n: int = 200_000, repeats: int = 15) -> dict:
    """Per-call ns of the engine's inner loop vs a bare perf_counter_ns loop, on a no-op call."""
    from suite import engine

    def noop():
        return None

    def nosync(_):
        return None

    def bare(loops):
        pc = time.perf_counter_ns
        t0 = pc()
        for _ in range(loops):
            nosync(noop())
        return pc() - t0

    bare_ns = statistics.median(bare(n) / n for _ in range(repeats))
    eng_ns = statistics.median(engine._time_loops(noop, nosync, n)[0] / n for _ in range(repeats))
    single = statistics.median(
        engine.measure(noop, nosync, engine.TimingConfig(max_time=1.0)).median * 1e9 for _ in range(3))
    return {"bare_ns_per_call": bare_ns, "engine_loop_ns_per_call": eng_ns,
            "engine_measure_median_ns": single, "overhead_ns": eng_ns - bare_ns}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs=3, metavar=("TARGET", "WORKLOAD", "BATCH"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--overhead", action="store_true")
    ap.add_argument("--profile", default="cpu-1t", help="hardware profile whose threads/affinity apply")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_target(args.one[0], args.one[1], int(args.one[2]), args.rounds, args.profile)))
        return 0
    o = overhead()
    print(f"overhead: bare loop {o['bare_ns_per_call']:.1f} ns/call, engine loop {o['engine_loop_ns_per_call']:.1f} "
          f"ns/call -> {o['overhead_ns']:.1f} ns per call above bare (target <= 1000 ns); "
          f"engine.measure median of a no-op: {o['engine_measure_median_ns']:.1f} ns")
    if args.overhead:
        return 0
    print(f"\nprofile {args.profile}; medians of {args.rounds} interleaved rounds")
    print(f"{'target':<22}{'workload':<16}{'batch':>5}  {'engine':>10} {'bare':>10} {'torch.Timer':>11}  "
          f"{'eng/bare':>8} {'eng/Timer':>9}")
    for target, workload, batch in CASES:
        proc = subprocess.run([sys.executable, __file__, "--one", target, workload, str(batch),
                               "--rounds", str(args.rounds), "--profile", args.profile], capture_output=True, text=True, cwd=REPO)
        if proc.returncode:
            print(f"{target:<22}{workload:<16}{batch:>5}  failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        tt, r_eng = r.get("torch_timer"), r["engine"]
        print(f"{target:<22}{workload:<16}{batch:>5}  {r['engine'] * 1e3:>8.4f}ms {r['bare'] * 1e3:>8.4f}ms "
              f"{(f'{tt * 1e3:.4f}ms') if tt else '-':>11}  {r['engine'] / r['bare']:>8.3f} "
              f"{(f'{r_eng / tt:.3f}') if tt else '-':>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

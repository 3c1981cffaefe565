"""The worker: one subprocess per (framework family, hardware profile).

Run as ``python -m suite.worker --family F --profile-json J``. It reads one JSON task per line on
stdin and answers one JSON record per line on its private result channel (the original stdout; the
process's fd 1 is pointed at stderr so that whatever a framework prints cannot corrupt the protocol).

Per task: weights = init(workload, seed); inputs = make_inputs(...); ref = reference(...) (cached on
disk); model = target.build(...); first call; verify; then, in ``run`` mode and only if the numerics
pass, the timing engine measures it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from suite.paths import cache_root

PROTOCOL_PREFIX = "@@bench-record "


class CellState:
    """Caches what several cells of one worker share: parsed workloads, weights, inputs, references."""

    def __init__(self):
        self.workloads = {}
        self.data = {}

    def workload(self, path: str):
        from suite.spec import load_workload

        if path not in self.workloads:
            self.workloads[path] = load_workload(path)
        return self.workloads[path]

    def data_for(self, wl, params: dict):
        key = (wl.hash, json.dumps(params, sort_keys=True))
        if key not in self.data:
            from suite.weights import init_weights, make_inputs

            weights = init_weights(wl, params)
            inputs = make_inputs(wl, params)
            self.data = {key: (weights, inputs, _cached_reference(wl, weights, inputs, key[1]))}
        return self.data[key]


def _cached_reference(wl, weights, inputs, params_key: str) -> list[np.ndarray]:
    from suite.reference import reference

    digest = hashlib.sha256(f"{wl.hash}|{params_key}|{wl.seed}".encode()).hexdigest()[:20]
    path = cache_root() / "reference" / f"{wl.name}-{digest}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return [z[f"out{i}"] for i in range(len(wl.outputs))]
        except Exception:  # a torn or foreign file: recompute below
            pass
    refs = reference(wl, weights, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"out{i}": r for i, r in enumerate(refs)})
    os.replace(tmp, path)
    return refs


def run_task(task: dict, state: CellState, profile) -> dict:
    """Runs one cell; returns the measured fields of its record (never raises for model errors)."""
    if task.get("train"):
        return run_train_task(task, state, profile)
    from suite import engine
    from suite.profiles import resolved_threads
    from suite.targets.base import BuildContext, UnsupportedError
    from suite.targets.registry import get_target, load_module
    from suite.verify import verify_outputs

    t_start = time.perf_counter()
    info = get_target(task["target"])
    wl = state.workload(task["workload_path"])
    params = task["params"]
    rec: dict = {}
    try:
        weights, inputs, refs = state.data_for(wl, params)
        module = load_module(info)
        ctx = BuildContext(workload=wl, weights=weights, params=params, shapes=wl.shapes(params), info=info,
                           device=profile.device, threads=resolved_threads(profile),
                           cache_dir=str(cache_root() / "artifacts"), artifact=task.get("artifact", ""))
        t0 = time.perf_counter()
        built = module.build(ctx)
        build_s = time.perf_counter() - t0
        rec.update(layout=built.layout, versions=json.dumps(built.versions, sort_keys=True),
                   framework_version=built.versions.get(info.framework),
                   # keras[jax]: framework keras, runtime jax; None (eager, jit, ...) falls back to the framework's
                   runtime_version=built.versions.get(info.runtime),
                   compile_s=built.compile_s if built.compile_s is not None else build_s,
                   artifact_bytes=built.artifact_bytes)
        prepared = built.prepare(inputs)
        first_s, outputs = engine.first_call(lambda: built.run(prepared), built.synchronize)
        rec["first_call_s"] = first_s
        dtype = task.get("dtype") or "float32"
        if dtype != "float32":
            rec["dtype"] = dtype  # what the verifier judged by: quantised targets use their own rules
        numerics = verify_outputs(wl, built.to_numpy(outputs), refs, dtype)
        del outputs
        rec.update({k: v for k, v in numerics.as_dict().items() if k not in ("status", "reason")})
        rec["status"], rec["status_reason"] = numerics.status, numerics.reason
        if task["mode"] == "run" and numerics.status == "pass":
            config = engine.TimingConfig.quick() if task.get("quick") else engine.TimingConfig()
            timing = engine.measure(lambda: built.run(prepared), built.synchronize, config)
            rec.update(timing.as_record(), throughput=timing.throughput(params["batch"]))
        if built.device_memory is not None:
            rec["device_peak_bytes"] = built.device_memory()
    except UnsupportedError as e:
        rec.update(status="unsupported", status_reason=str(e))
    except MemoryError:
        raise
    except Exception as e:  # the target raised: keep the message, the run goes on
        rec.update(status="error", status_reason=_error_line(e))
        print(traceback.format_exc(), file=sys.stderr, flush=True)
    rec["peak_rss_bytes"] = engine.peak_rss_bytes()
    rec["wall_s"] = time.perf_counter() - t_start
    return rec


def _cached_train_reference(wl, weights, inputs, labels, params_key: str):
    """suite.training.reference_train, cached on disk like the inference reference."""
    from suite.training import TrainReference, flatten, reference_train

    digest = hashlib.sha256(f"train-v4|{wl.hash}|{params_key}|{wl.seed}".encode()).hexdigest()[:20]
    path = cache_root() / "reference" / f"{wl.name}-train-{digest}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                def tree(prefix):
                    out = {}
                    for k in z.files:
                        if k.startswith(prefix):
                            node, p = k[len(prefix):].split("/", 1)
                            out.setdefault(node, {})[p] = z[k]
                    return out
                return TrainReference([float(x) for x in z["losses"]], tree("g:"), tree("p:"), tree("f:"),
                                      tree("i:"), tree("k:"))
        except Exception:  # a torn or foreign file: recompute below
            pass
    ref = reference_train(wl, weights, inputs, labels)
    arrays = {"losses": np.asarray(ref.losses)}
    for prefix, t in (("g:", ref.grads), ("p:", ref.params), ("f:", ref.grad_floor), ("i:", ref.initial),
                      ("k:", ref.kink)):
        arrays.update({prefix + k: v for k, v in flatten(t).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return ref


def _rss_fields() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, in bytes (Linux; empty elsewhere)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def _reset_rss_peak() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run_train_task(task: dict, state: CellState, profile) -> dict:
    """Train mode: build the step, verify loss / gradients / updated parameters, then time the step.

    Verification order, from the identical starting weights: the target's gradients at the initial
    parameters, then ``train.steps`` steps (each returning its loss; before each later step the target's
    gradients at its current parameters), then the parameters. Memory of a
    step (``step_peak_bytes``): on CUDA the framework's device peak over one step; on CPU the process's
    peak resident memory over one step (VmHWM reset just before it), and ``step_extra_bytes`` the part of
    it above the resident memory before the step: activations, gradients and temporaries that the
    allocator had to find memory for.
    """
    from suite import engine
    from suite.profiles import resolved_threads
    from suite.targets.base import BuildContext, UnsupportedError
    from suite.targets.registry import get_target, load_module
    from suite.training import make_labels, unsupported_point
    from suite.verify import TrainResult, verify_train

    t_start = time.perf_counter()
    info = get_target(task["target"])
    wl = state.workload(task["workload_path"])
    params = task["params"]
    rec: dict = {}
    try:
        why = unsupported_point(wl, params)
        module = load_module(info)
        if why is None and not hasattr(module, "build_train"):
            why = f"{info.id} has no training step (export formats and runtimes are inference artifacts)"
        if why:
            raise UnsupportedError(why)
        weights, inputs, _ = state.data_for(wl, params)
        labels = make_labels(wl, params)
        ref = _cached_train_reference(wl, weights, inputs, labels, json.dumps(params, sort_keys=True))
        ctx = BuildContext(workload=wl, weights=weights, params=params, shapes=wl.shapes(params), info=info,
                           device=profile.device, threads=resolved_threads(profile),
                           cache_dir=str(cache_root() / "artifacts"), artifact=task.get("artifact", ""))
        t0 = time.perf_counter()
        built = module.build_train(ctx)
        build_s = time.perf_counter() - t0
        rec.update(layout=built.layout, versions=json.dumps(built.versions, sort_keys=True),
                   framework_version=built.versions.get(info.framework),
                   runtime_version=built.versions.get(info.runtime),
                   compile_s=built.compile_s if built.compile_s is not None else build_s)
        prepared = built.prepare(inputs, labels)
        grads = built.gradients(prepared)
        losses, step_grads = [], [grads]
        for i in range(wl.train.steps):
            if i > 0:  # the target's own gradients before this step: the optimiser is replayed on them
                step_grads.append(built.gradients(prepared))
            if i == 0:  # the first step: time it (first_call_s) and measure its memory
                if built.reset_peak_memory is not None:
                    built.reset_peak_memory()
                rss = _rss_fields()
                reset = _reset_rss_peak()
                first_s, out = engine.first_call(lambda: built.step(prepared), built.synchronize)
                rec["first_call_s"] = first_s
                after = _rss_fields()
                dev = built.device_memory() if built.device_memory is not None else None
                if dev is not None:
                    rec["step_peak_bytes"] = dev
                elif reset and "VmHWM" in after and "VmRSS" in rss:
                    rec["step_peak_bytes"] = after["VmHWM"]
                    rec["step_extra_bytes"] = max(after["VmHWM"] - rss["VmRSS"], 0)
            else:
                out = built.step(prepared)
                built.synchronize(out)
            losses.append(built.loss_value(out))
        result = TrainResult(losses, grads, built.parameters(), step_grads)
        numerics, extra = verify_train(wl, result, ref)
        rec.update({k: v for k, v in numerics.as_dict().items() if k not in ("status", "reason")})
        rec.update(extra)
        rec["status"], rec["status_reason"] = numerics.status, numerics.reason
        if task["mode"] == "run" and numerics.status == "pass":
            config = engine.TimingConfig.quick() if task.get("quick") else engine.TimingConfig()
            timing = engine.measure(lambda: built.step(prepared), built.synchronize, config)
            rec.update(timing.as_record(), throughput=timing.throughput(params["batch"]))
        if built.device_memory is not None and built.device_memory() is not None:
            rec["device_peak_bytes"] = built.device_memory()
    except UnsupportedError as e:
        rec.update(status="unsupported", status_reason=str(e))
    except MemoryError:
        raise
    except Exception as e:  # the target raised: keep the message, the run goes on
        rec.update(status="error", status_reason=_error_line(e))
        print(traceback.format_exc(), file=sys.stderr, flush=True)
    rec["peak_rss_bytes"] = engine.peak_rss_bytes()
    rec["wall_s"] = time.perf_counter() - t_start
    return rec


def _error_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(e).__name__}: {first}"[:500]


def _die_with_parent() -> None:
    """A worker never outlives `bench`: it runs in its own session (so the scheduler can kill its whole
    group), which also means a killed parent's signal does not reach it."""
    parent = os.getppid()
    try:  # Linux: the kernel delivers SIGKILL when the parent dies, even if we are stuck in C code
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except Exception:
        pass
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m suite.worker")
    ap.add_argument("--family", required=True)
    ap.add_argument("--profile-json", required=True)
    ap.add_argument("--memory-limit", type=int, default=0, help="address-space limit in bytes (0: none)")
    args = ap.parse_args(argv)
    _die_with_parent()

    # Private result channel: keep the real stdout for records, send fd 1 to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if args.memory_limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (args.memory_limit, args.memory_limit))

    from suite.profiles import Profile, apply_in_process

    profile = Profile(**json.loads(args.profile_json))
    applied = {}
    try:
        applied = apply_in_process(profile, args.family)
    except Exception as e:  # a framework that cannot even start: every task reports it
        startup_error = _error_line(e)
    else:
        startup_error = None
    state = CellState()
    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)
        if startup_error:
            rec = {"status": "error", "status_reason": f"worker start-up failed: {startup_error}"}
        else:
            try:
                if task.get("kind") == "export":  # export phase: produce an artifact, nothing is timed
                    from suite.targets.common.artifacts import run_export

                    rec = run_export(task, state, profile)
                else:
                    rec = run_task(task, state, profile)
                rec["thread_settings"] = json.dumps(applied, sort_keys=True, default=str)
            except MemoryError:
                rec = {"status": "crashed", "status_reason": "out of memory (MemoryError in the worker)",
                       "peak_rss_bytes": None}
                channel.write(PROTOCOL_PREFIX + json.dumps({"id": task["id"], "record": rec, "exiting": True}) + "\n")
                return 3  # the heap may be unusable: let the parent start a fresh worker
        channel.write(PROTOCOL_PREFIX + json.dumps({"id": task["id"], "record": rec}, default=_json_default) + "\n")
    return 0


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


if __name__ == "__main__":
    sys.exit(main())

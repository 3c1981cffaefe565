"""The worker: one subprocess per (framework family, hardware profile).

Run as ``python -m suite.worker --family F --profile-json J``. It reads one JSON task per line on
stdin and answers one JSON record per line on its private result channel (the original stdout; the
process's fd 1 is pointed at stderr so that whatever a framework prints cannot corrupt the protocol).

Per task (:func:`run_task`, one path for inference and train): weights = init(workload, seed); inputs =
make_inputs(...); ref = reference(...) (cached on disk); model = target.build(...) [stage build, or load
for an export target]; first call and verify [stage verify]; then, in ``run`` mode and only if the
numerics pass, the timing engine measures it [stage time]. The record is a :class:`suite.record.Result`;
each stage is announced on the channel as it starts, so a crash or hang still has a stage.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from suite import hoststate
from suite.paths import cache_root
from suite.record import Export, Host, Numerics, Outcome, Resources, Result, Software, Timing, Train

PROTOCOL_PREFIX = "@@bench-record "  # a task's result: {"id", "record"[, "exiting"]}
STAGE_PREFIX = "@@bench-stage "  # the task entered a stage: {"id", "stage"} (so a crash says where)


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


def _save_outputs(path: str, outputs) -> None:
    """A target's outputs as ``out0``, ``out1``, ... of an .npz (written whole, then renamed)."""
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **{f"out{i}": np.asarray(o) for i, o in enumerate(outputs)})
    os.replace(tmp, path)


def _save_train(path: str, losses, step_grads, params) -> None:
    """A target's training step for bench diagnose --mode train: ``loss`` (one per step), ``g<step>:<node>/<param>``
    (its gradients before each step) and ``p:<node>/<param>`` (its parameters after the last step)."""
    arrays = {"loss": np.asarray(losses, dtype=np.float64)}
    for i, grads in enumerate(step_grads):
        arrays.update({f"g{i}:{n}/{k}": np.asarray(v) for n, ps in grads.items() for k, v in ps.items()})
    arrays.update({f"p:{n}/{k}": np.asarray(v) for n, ps in params.items() for k, v in ps.items()})
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _cached_reference(wl, weights, inputs, params_key: str) -> list[np.ndarray]:
    from suite.reference import reference

    if wl.source is not None:  # the source model itself in float64, cached by suite.sources.prepare
        from suite import sources

        return sources.reference(wl, json.loads(params_key))

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


@dataclass
class _Cell:
    """One task's context, built once, and the parts of its result measured so far.

    The parts are the typed groups of :mod:`suite.record`, replaced step by step, so a misspelt field
    fails where it is written; what was measured before a step failed stays in the record.
    """

    task: dict
    info: Any
    workload: Any
    params: dict
    ctx: Any = None  # BuildContext
    inputs: Any = None
    refs: Any = None  # inference: the output references; train: the TrainReference
    labels: Any = None  # train only
    software: Software = Software()
    numerics: Numerics = Numerics()
    timing: Timing = Timing()
    host: Host = Host()
    export: Export = Export()
    train: Train = Train()
    device_peak_bytes: int | None = None


class _Inference:
    """Inference: build the model, first call, compare the outputs; the timed call is ``run``."""

    def check(self, cell: _Cell, module) -> None:
        pass

    def load_data(self, cell: _Cell, refs) -> None:
        cell.refs = refs

    def build(self, module, cell: _Cell):
        return module.build(cell.ctx)

    def prepare(self, built, cell: _Cell):
        return built.prepare(cell.inputs)

    def verify(self, built, prepared, cell: _Cell):
        """Returns (Numerics of suite.verify, the callable to time)."""
        from suite import engine
        from suite.verify import verify_outputs

        first_s, outputs = engine.first_call(lambda: built.run(prepared), built.synchronize)
        cell.timing = replace(cell.timing, first_call_s=first_s)
        # the rule the verifier judges by: quantised targets use their own (suite.verify.TOLERANCES)
        dtype = cell.task.get("dtype") or "float32"
        got = built.to_numpy(outputs)
        if cell.task.get("dump"):  # the outputs themselves, for bench diagnose (suite.diagnose)
            _save_outputs(cell.task["dump"], got)
        widen, ref_dtype = 1.0, "float64"
        if cell.workload.source is not None:  # a source model that cannot run in float64 has a float32 reference
            from suite import sources

            ref_dtype, _ = sources.reference_dtype(cell.workload, cell.params)
            widen = sources.FLOAT32_REFERENCE_WIDEN if ref_dtype == "float32" else 1.0
        numerics = verify_outputs(cell.workload, got, cell.refs, dtype, widen)
        cell.numerics = replace(cell.numerics, reference_dtype=ref_dtype)
        del outputs, got
        return numerics, lambda: built.run(prepared)


class _Train:
    """Train mode: build the step, verify loss / gradients / updated parameters; the timed call is ``step``.

    Verification order, from the identical starting weights: the target's gradients at the initial
    parameters, then ``train.steps`` steps (each returning its loss; before each later step the target's
    gradients at its current parameters), then the parameters. Memory of a step (``step_peak_bytes``): on
    CUDA the framework's device peak over one step; on CPU the process's peak resident memory over one
    step (VmHWM reset just before it), and ``step_extra_bytes`` the part of it above the resident memory
    before the step: activations, gradients and temporaries that the allocator had to find memory for.
    """

    def check(self, cell: _Cell, module) -> None:
        from suite.targets.base import UnsupportedError
        from suite.training import unsupported_point

        why = unsupported_point(cell.workload, cell.params)
        if why is None and not hasattr(module, "build_train"):
            why = f"{cell.info.id} has no training step (export formats and runtimes are inference artifacts)"
        if why:
            raise UnsupportedError(why)

    def load_data(self, cell: _Cell, refs) -> None:
        from suite.training import make_labels

        cell.labels = make_labels(cell.workload, cell.params)
        cell.refs = _cached_train_reference(cell.workload, cell.ctx.weights, cell.inputs, cell.labels,
                                            json.dumps(cell.params, sort_keys=True))

    def build(self, module, cell: _Cell):
        return module.build_train(cell.ctx)

    def prepare(self, built, cell: _Cell):
        return built.prepare(cell.inputs, cell.labels)

    def verify(self, built, prepared, cell: _Cell):
        """Returns (Numerics of suite.verify, the callable to time)."""
        from suite import engine
        from suite.verify import TrainResult, verify_train

        grads = built.gradients(prepared)
        losses, step_grads = [], [grads]
        for i in range(cell.workload.train.steps):
            if i > 0:  # the target's own gradients before this step: the optimiser is replayed on them
                step_grads.append(built.gradients(prepared))
            if i == 0:  # the first step: time it (first_call_s) and measure its memory
                if built.reset_peak_memory is not None:
                    built.reset_peak_memory()
                rss = _rss_fields()
                reset = _reset_rss_peak()
                first_s, out = engine.first_call(lambda: built.step(prepared), built.synchronize)
                cell.timing = replace(cell.timing, first_call_s=first_s)
                after = _rss_fields()
                dev = built.device_memory() if built.device_memory is not None else None
                if dev is not None:
                    cell.train = replace(cell.train, step_peak_bytes=dev)
                elif reset and "VmHWM" in after and "VmRSS" in rss:
                    cell.train = replace(cell.train, step_peak_bytes=after["VmHWM"],
                                         step_extra_bytes=max(after["VmHWM"] - rss["VmRSS"], 0))
            else:
                out = built.step(prepared)
                built.synchronize(out)
            losses.append(built.loss_value(out))
        params = built.parameters()
        if cell.task.get("dump"):  # for bench diagnose --mode train (suite.diagnose_train)
            _save_train(cell.task["dump"], losses, step_grads, params)
        numerics, extra = verify_train(cell.workload, TrainResult(losses, grads, params, step_grads), cell.refs)
        cell.train = replace(cell.train, **extra)
        return numerics, lambda: built.step(prepared)


_MODES = {False: _Inference(), True: _Train()}


def run_task(task: dict, state: CellState, profile, on_stage: Callable[[str], None] | None = None) -> dict:
    """Runs one cell, inference or train, and returns the measured fields of its record.

    One path for both modes: the cell's context (workload, weights, inputs, reference, BuildContext) is
    built once, then build -> verify -> time. Each stage is announced through ``on_stage`` before it
    starts, so a worker that dies mid-cell still tells the scheduler where. A model error never raises:
    ``UnsupportedError`` becomes `unsupported`, any other exception `error`, each with the stage it
    stopped at (:data:`suite.record.STAGES`); a MemoryError propagates (see :func:`main`).

    Args:
        task: the scheduler's task (workload_path, params, target, mode, timing (TimingConfig fields), train, dtype,
            artifact).
        state: what the cells of this worker share.
        profile: the worker's hardware profile.
        on_stage: called with each stage name as the cell enters it.
    Returns:
        :meth:`suite.record.Result.row` of the cell (null fields left out).
    """
    from suite import engine
    from suite.profiles import resolved_threads
    from suite.targets.base import BuildContext, UnsupportedError
    from suite.targets.registry import get_target, load_module

    t_start = time.perf_counter()
    info = get_target(task["target"])
    wl = state.workload(task["workload_path"])
    steps = _MODES[bool(task.get("train"))]
    cell = _Cell(task=task, info=info, workload=wl, params=task["params"])
    stage = None

    def enter(name: str) -> None:
        nonlocal stage
        stage = name
        if on_stage is not None:
            on_stage(name)

    try:
        enter("load" if info.export is not None else "build")  # an export target's build loads its artifact
        module = load_module(info)
        steps.check(cell, module)
        weights, cell.inputs, refs = state.data_for(wl, cell.params)
        cell.ctx = BuildContext(workload=wl, weights=weights, params=cell.params, shapes=wl.shapes(cell.params),
                                info=info, device=profile.device, threads=resolved_threads(profile),
                                cache_dir=str(cache_root() / "artifacts"), artifact=task.get("artifact", ""))
        steps.load_data(cell, refs)
        t0 = time.perf_counter()
        built = steps.build(module, cell)
        build_s = time.perf_counter() - t0
        cell.software = Software(
            layout=built.layout, versions=json.dumps(built.versions, sort_keys=True),
            framework_version=built.versions.get(info.framework),
            # keras[jax]: framework keras, runtime jax; None (eager, jit, ...) falls back to the framework's
            runtime_version=built.versions.get(info.runtime))
        cell.timing = replace(cell.timing, compile_s=built.compile_s if built.compile_s is not None else build_s)
        cell.export = replace(cell.export, artifact_bytes=getattr(built, "artifact_bytes", None))
        prepared = steps.prepare(built, cell)
        enter("verify")
        numerics, timed_call = steps.verify(built, prepared, cell)
        cell.numerics = Numerics(**{k: v for k, v in numerics.as_dict().items() if k not in ("status", "reason")},
                                 reference_dtype=cell.numerics.reference_dtype)
        if task["mode"] == "run" and numerics.status == "pass":
            enter("time")
            config = engine.TimingConfig(**task["timing"]) if task.get("timing") else engine.TimingConfig()
            cores = hoststate.cores_of_this_process()
            before = hoststate.snapshot(cores, [os.getppid()])  # the scheduler waits on us: it is the suite too
            timing = engine.measure(timed_call, built.synchronize, config)
            after = hoststate.snapshot(cores, [os.getppid()])
            host = hoststate.interval(before, after, cores)
            cell.timing = replace(cell.timing, **timing.as_record(), throughput=timing.throughput(cell.params["batch"]))
            window = after.t - before.t if before and after else None
            why = hoststate.noisy_reason(host, timing.samples_s, cores, window)
            if os.environ.get("BENCH_BUSY_HOST"):  # not the framework's default: never a clean figure
                why = "; ".join(filter(None, [f"timed with {os.environ['BENCH_BUSY_HOST']} (the host was busy "
                                                   f"when this worker started)", why]))
            cell.host = Host(**host, noisy=why is not None, noisy_reason=why, attempts=1)
        if built.device_memory is not None:
            cell.device_peak_bytes = built.device_memory()
        outcome = Outcome(status=numerics.status, status_reason=numerics.reason,
                          stage=None if numerics.status == "pass" else stage)
    except UnsupportedError as e:
        outcome = Outcome(status="unsupported", status_reason=str(e), stage=stage)
    except MemoryError:
        raise
    except Exception as e:  # the target raised: keep the message, the run goes on
        outcome = Outcome(status="error", status_reason=_error_line(e), stage=stage)
        print(traceback.format_exc(), file=sys.stderr, flush=True)
    resources = Resources(peak_rss_bytes=engine.peak_rss_bytes(), device_peak_bytes=cell.device_peak_bytes,
                          wall_s=time.perf_counter() - t_start)
    return Result(outcome=outcome, software=cell.software, numerics=cell.numerics, timing=cell.timing,
                  host=cell.host, export=cell.export, resources=resources, train=cell.train).row()


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


def _block_imports() -> None:
    """The modules of $BENCH_BLOCK_IMPORTS cannot be imported in this worker (suite.plan.blocked_imports)."""
    from suite.plan import blocked_imports

    blocked = blocked_imports()
    if not blocked:
        return

    class Blocker:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked on this host by $BENCH_BLOCK_IMPORTS)",
                                          name=name)
            return None

    sys.meta_path.insert(0, Blocker())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m suite.worker")
    ap.add_argument("--family", required=True)
    ap.add_argument("--profile-json", required=True)
    ap.add_argument("--memory-limit", type=int, default=0, help="address-space limit in bytes (0: none)")
    args = ap.parse_args(argv)
    _die_with_parent()
    _block_imports()
    from suite.sources import OFFLINE_ENV

    os.environ.update(OFFLINE_ENV)  # before any framework import: model hubs never download (suite.sources)

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
    settings = json.dumps(applied, sort_keys=True, default=str)
    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)
        stage: list[str | None] = [None]  # the stage of this task reached so far

        def on_stage(name: str, task_id=task["id"]) -> None:
            stage[0] = name
            channel.write(STAGE_PREFIX + json.dumps({"id": task_id, "stage": name}) + "\n")

        if startup_error:  # no stage was reached: the framework did not start
            res = Result(outcome=Outcome(status="error", status_reason=f"worker start-up failed: {startup_error}"))
        else:
            try:
                res = Result.from_row(_run_one(task, state, profile, on_stage))
                res = replace(res, software=replace(res.software, thread_settings=settings))
            except MemoryError:
                why = "out of memory (MemoryError in the worker)"
                res = Result(outcome=Outcome(status="crashed", status_reason=why, stage=stage[0]))
                channel.write(PROTOCOL_PREFIX + json.dumps({"id": task["id"], "record": res.row(), "exiting": True})
                              + "\n")
                return 3  # the heap may be unusable: let the parent start a fresh worker
        channel.write(PROTOCOL_PREFIX + json.dumps({"id": task["id"], "record": res.row()}, default=_json_default)
                      + "\n")
        _freeze_survivors()
    return 0


def _freeze_survivors() -> None:
    """Collects the finished task's garbage, then freezes what is left (the framework's modules, the
    worker's caches) out of the collector's reach.

    A framework holds hundreds of thousands of tracked objects (torch with dynamo imported: ~290,000), so
    the full ``gc.collect()`` that :func:`suite.engine.measure` runs before sampling cost ~0.3 s per cell,
    more than a quick cell's samples. Frozen objects are never scanned again; they are still freed by
    reference counting. What is alive between tasks lives for the whole worker (modules, caches), and a
    task's model is garbage by then, so nothing per cell stays frozen.
    """
    import gc

    gc.collect()
    gc.freeze()


def _run_one(task: dict, state: CellState, profile, on_stage: Callable[[str], None]) -> dict:
    """One task: a cell (:func:`run_task`; a timed one under the host's timing lock) or, in the export
    phase, an export (nothing is timed)."""
    if task.get("kind") != "export":
        if task.get("mode") != "run":
            return run_task(task, state, profile, on_stage)
        with hoststate.timing_lock() as waited:  # one timed cell at a time on this host, any bench process
            rec = run_task(task, state, profile, on_stage)
        if waited >= 0.01:
            rec["lock_wait_s"] = waited
        return rec
    from suite.targets.common.artifacts import run_export

    on_stage("export")
    rec = run_export(task, state, profile)
    if rec.get("status") != "exported":  # a failed or refused export: the cell stopped there
        rec = dict(rec, stage="export")
    return rec


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


if __name__ == "__main__":
    sys.exit(main())

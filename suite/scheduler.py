"""The scheduler: cells grouped by (framework family, profile), one worker subprocess per group.

torch, tensorflow and jax never share a process. Each cell has a deadline; a worker that crashes
(segfault, abort, out of memory) or hangs turns its current cell into `crashed` / `timeout` with the
tail of its stderr and the stage the worker last announced for it (null if none), is replaced by a fresh
worker, and the remaining cells go on.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterable

from suite.plan import Cell
from suite.record import Outcome, Result
from suite.worker import PROTOCOL_PREFIX, STAGE_PREFIX

STDERR_TAIL_CHARS = 2000


def _stderr_tail(path: Path, chars: int = STDERR_TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - chars))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "worker still running"
    if code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = " (likely out of memory: the kernel's OOM killer sends SIGKILL)" if sig == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {code}"


class Worker:
    """One worker subprocess for a (family, profile) pair."""

    def __init__(self, family: str, profile, memory_limit: int = 0, extra_env: dict[str, str] | None = None):
        from suite.profiles import worker_env

        self.family = family
        self.extra_env = dict(extra_env or {})  # e.g. a busy host's wait policy (suite.profiles.busy_host_env)
        self.stderr_path = Path(tempfile.mkstemp(prefix=f"bench-{family}-", suffix=".stderr")[1])
        env = dict(os.environ)
        env.update(worker_env(profile, family))
        env.update(self.extra_env)
        pkg_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH")]))
        profile_json = json.dumps(dataclasses.asdict(profile))
        cmd = [sys.executable, "-m", "suite.worker", "--family", family, "--profile-json", profile_json,
               "--memory-limit", str(memory_limit)]
        self._stderr = open(self.stderr_path, "wb")
        self.task_id = None
        self._pending = b""  # bytes read from the worker's result channel, not yet a whole line
        self.stage: str | None = None  # the last stage the worker announced for the task in flight
        # A new session so that a kill reaches the worker's own children (e.g. inductor compile workers).
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=env, start_new_session=True)

    def send(self, task: dict) -> None:
        self.task_id, self.stage = task.get("id"), None
        self.proc.stdin.write((json.dumps(task) + "\n").encode())
        self.proc.stdin.flush()

    def receive(self, deadline: float) -> tuple[str, dict | None]:
        """Waits for the next record. Returns ("ok", record), ("timeout", None) or ("crashed", None)."""
        # Lines are split from raw reads here: a buffered readline could pull a record into Python's buffer
        # behind a stage line, and select() on the fd would then wait for data that already arrived.
        fd = self.proc.stdout.fileno()
        eof = False
        while True:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(PROTOCOL_PREFIX):
                    return "ok", json.loads(text[len(PROTOCOL_PREFIX):])
                if text.startswith(STAGE_PREFIX):
                    msg = json.loads(text[len(STAGE_PREFIX):])
                    if msg.get("id") == self.task_id:
                        self.stage = msg.get("stage")
            if eof:
                self.proc.wait(timeout=10)
                return "crashed", None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout", None
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(fd, 1 << 16)
                eof = not chunk
                self._pending += chunk

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
        except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
            pass
        self.kill()
        self._stderr.close()
        self.stderr_path.unlink(missing_ok=True)


def execute(cells: Iterable[Cell], on_result: Callable[[Cell, dict], None], *, timeout_s: float = 900.0,
            timing=None, memory_limit: int = 0, on_start: Callable[[Cell], None] | None = None,
            artifacts_dir: str | None = None, on_exported: Callable[[Cell, dict, int, int], None] | None = None,
            export_workers: int | None = None, remeasure: int = 0, quiet_wait_s: float = 60.0,
            on_remeasure: Callable[[Cell, dict], None] | None = None, remeasure_which: str = "all") -> None:
    """Runs every cell; calls on_result(cell, measured_fields) once per cell, in completion order.

    Cells with a status decided by the plan are reported without a worker. Export targets first get
    their artifact (:func:`export_phase`); a failed export is the cell's result. The rest run grouped
    by (family, profile), each group in a worker that is restarted after a crash or a timeout, one cell
    at a time (nothing else of the suite runs while a cell is timed).

    Args:
        timing: how timed cells are measured: a :class:`suite.engine.TimingConfig`, or an object whose
            ``config_for(cell)`` gives each cell's config as it is sent (:class:`suite.budget.Budget`);
            None: the engine's defaults.
        artifacts_dir: a folder of exported artifacts (``bench export --out``) used instead of the cache.
        on_exported: called after each export task as (cell, record, done, total).
        export_workers: export tasks run in parallel in this many workers (default: one per core).
        remeasure: a timed cell that comes back ``noisy`` (suite.hoststate) is timed again this many
            times at most, at the end of its group, each time once the host is quiet; the whole run
            waits for quiet at most ``quiet_wait_s`` seconds in all (a host that stays busy does not
            make every re-measurement wait); see :class:`_Remeasure`. ``on_remeasure(cell, attempt)``
            is called for each attempt sent back. ``remeasure_which``: ``all`` noisy cells, or only
            those made noisy by a ``neighbour`` (busy host, steal: suite.hoststate.from_a_neighbour).
    """
    pending = []
    for cell in cells:
        if cell.status:  # decided by the plan: no stage was reached
            on_result(cell, Result(outcome=Outcome(status=cell.status, status_reason=cell.reason)).row())
        else:
            pending.append(cell)
    ready = export_phase(pending, on_result, artifacts_dir=artifacts_dir, timeout_s=timeout_s,
                         memory_limit=memory_limit, on_exported=on_exported, workers=export_workers)
    wait = _QuietWait(quiet_wait_s)  # shared by every group: the whole run waits at most quiet_wait_s
    groups: dict[tuple[str, str], list[tuple[Cell, dict]]] = {}
    for cell, art in ready:
        groups.setdefault((cell.target.family, cell.profile.name), []).append((cell, art))
    from suite.profiles import profile_cores

    for (family, _), group in groups.items():
        jobs = []
        for cell, art in group:
            task = {"workload_path": cell.workload.path, "params": cell.params_dict, "target": cell.target.id,
                    "mode": "run" if cell.timed else "verify",
                    "train": cell.mode == "train",
                    "dtype": cell.target.dtype}
            if art:
                task["artifact"] = art["artifact"]
            if cell.dump:
                task["dump"] = cell.dump
            jobs.append((cell, task))

        def done(cell, rec, arts=dict((id(c), a) for c, a in group)):
            art = arts[id(cell)]
            for k in ("export_s", "artifact_bytes"):  # recorded per cell, from the artifact's manifest
                if art.get(k) is not None and rec.get(k) is None:
                    rec[k] = art[k]
            if art.get("artifact") and cell.mode == "inference":
                _stamp(art["artifact"], rec, cell.profile, cell.target.id)
            on_result(cell, rec)

        queue = _Remeasure(jobs, done, remeasure, wait, profile_cores(group[0][0].profile), on_remeasure,
                           remeasure_which)
        _run_group(family, group[0][0].profile, queue, queue.record, timeout_s, memory_limit, on_start,
                   timing_for=_timing_for(timing))


def _stamp(folder: str, rec: dict, profile, target: str) -> None:
    """The cell's verification figures into its artifact's provenance (suite.provenance); a failure is one
    warning line: the cell's record is what counts."""
    try:
        from suite.provenance import stamp_verification

        stamp_verification(folder, rec, profile, target)
    except ImportError:  # a runtime-only box without the format's writer (onnx): the manifest keeps export's
        pass
    except Exception as e:  # noqa: BLE001
        print(f"bench: warning: verification not written into {folder}: {type(e).__name__}: {e}", file=sys.stderr)


def _busy_host_env(family: str, profile) -> dict[str, str]:
    """The family's busy-host settings when other processes keep the profile's cores busy now, else {}."""
    from suite.hoststate import NOISY_BUSY, others_busy
    from suite.profiles import busy_host_env, profile_cores

    env = busy_host_env(profile, family)
    if not env:
        return {}
    busy = others_busy(profile_cores(profile), 0.5)
    return env if busy is not None and busy > NOISY_BUSY else {}


class _QuietWait:
    """Waiting for a quiet host before a re-measurement, out of one allowance for the whole run."""

    def __init__(self, seconds: float):
        self.left = seconds

    def __call__(self, cores: list[int]) -> None:
        if self.left <= 0:
            return
        from suite.hoststate import wait_for_quiet

        t0 = time.monotonic()
        wait_for_quiet(cores, self.left)
        self.left -= time.monotonic() - t0


class _Remeasure:
    """A group's jobs, with noisy timed cells sent again at the end of the group.

    A cell whose timing comes back ``noisy`` (busy host, steal, drift or two levels: suite.hoststate;
    with ``which="neighbour"`` only the first two) goes back to the end of the queue, up to ``times``
    more attempts; before an attempt is sent again
    the scheduler waits until other processes leave the profile's cores quiet (``wait``: the run's
    :class:`_QuietWait`). The cell then gets one record: its first clean attempt, else the fastest of
    those noisy only by the shape of their samples (drift, two levels: the cell itself was measured,
    on a machine changing speed), else its fastest (a neighbour's noise; with a busy host's wait policy
    it can be faster than the default's figure, so it comes last), still ``noisy``; ``attempts`` and
    ``attempts_json`` list every attempt in order.
    """

    def __init__(self, jobs, on_record, times: int, wait: Callable[[list[int]], None], cores: list[int],
                 on_remeasure: Callable[[Cell, dict], None] | None = None, which: str = "all"):
        if which not in ("all", "neighbour"):
            raise ValueError(f"remeasure which={which!r}: expected all or neighbour")
        self.which = which
        self.queue = deque((cell, task, False) for cell, task in jobs)
        self.on_record, self.times, self.wait, self.cores = on_record, times, wait, cores
        self.on_remeasure = on_remeasure
        self.tasks = {id(cell): task for cell, task in jobs}
        self.history: dict[int, list[dict]] = {}

    def __iter__(self):
        return iter(self._next, None)

    def _next(self):
        if not self.queue:
            return None
        cell, task, again = self.queue.popleft()
        if again:
            self.wait(self.cores)
        return cell, task

    def record(self, cell: Cell, rec: dict) -> None:
        from suite.hoststate import from_a_neighbour

        past = self.history.get(id(cell), [])
        wanted = rec.get("noisy") and (self.which == "all" or from_a_neighbour(rec.get("noisy_reason")))
        if wanted and rec.get("status") == "pass" and len(past) < self.times:
            self.history[id(cell)] = past + [rec]
            self.queue.append((cell, dict(self.tasks[id(cell)], again=True), True))
            if self.on_remeasure is not None:
                self.on_remeasure(cell, rec)
            return
        self.history.pop(id(cell), None)
        self.on_record(cell, _kept(past + [rec]) if past else rec)


def _kept(attempts: list[dict]) -> dict:
    """The record a re-measured cell keeps (see :class:`_Remeasure`), with every attempt listed."""
    timed = [r for r in attempts if r.get("status") == "pass"]
    clean = [r for r in timed if not r.get("noisy")]
    if clean:
        keep = clean[0]
    else:  # a neighbour's noise measured the neighbour; drift or two levels at least measured this cell
        from suite.hoststate import from_a_neighbour

        own = [r for r in timed if not from_a_neighbour(r.get("noisy_reason"))]
        keep = min(own or timed, key=lambda r: r.get("latency_median_s") or float("inf"))
    listed = [{"status": r.get("status"), "median_s": r.get("latency_median_s"), "host_busy": r.get("host_busy"),
               "host_busy_all": r.get("host_busy_all"), "host_steal": r.get("host_steal"),
               "noisy_reason": r.get("noisy_reason")} for r in attempts]
    return dict(keep, attempts=len(attempts), attempts_json=json.dumps(listed))


def _timing_for(timing) -> Callable[[Cell], dict]:
    """cell -> the TimingConfig fields its task carries (see :func:`execute`'s ``timing``)."""
    from suite.engine import TimingConfig

    if hasattr(timing, "config_for"):
        return lambda cell: dataclasses.asdict(timing.config_for(cell))
    fields = dataclasses.asdict(timing or TimingConfig())
    return lambda cell: fields


def export_phase(cells: list[Cell], on_result: Callable[[Cell, dict], None], *, artifacts_dir: str | None = None,
                 timeout_s: float = 900.0, memory_limit: int = 0, check_versions: bool | None = None,
                 on_exported: Callable[[Cell, dict, int, int], None] | None = None,
                 workers: int | None = None) -> list[tuple[Cell, dict]]:
    """Makes sure every export target's cell has its artifact; returns [(cell, artifact info)] that can run.

    A cell whose artifact is in the cache (same converter versions) or in ``artifacts_dir`` is ready at
    once. Missing artifacts are exported by workers of the target's ``export_family`` (fault-isolated
    like any task); a failed export reports the cell (error / unsupported / crashed / timeout, with the
    converter's message) and it never reaches the runtime. Nothing is timed in this phase, so its tasks
    run in parallel: ``workers`` (default one per core) worker subprocesses at a time, each taking the
    next task of the family with the most left, so one big family (TensorFlow's six formats) is shared
    out rather than run alone after the others.
    """
    from suite.plan import missing_module
    from suite.profiles import available_cores
    from suite.targets.common.artifacts import cell_dir, export_device, is_export_target, lookup
    from suite.paths import cache_root

    root = Path(artifacts_dir) if artifacts_dir else cache_root() / "artifacts"
    ready: list[tuple[Cell, dict]] = []
    needed: dict[Path, list[Cell]] = {}
    for cell in cells:
        if not is_export_target(cell.target):
            ready.append((cell, {}))
            continue
        folder = cell_dir(root, cell.workload, cell.params_dict, cell.target, cell.profile.device)
        man = lookup(folder, cell.target, artifacts_dir is None if check_versions is None else check_versions)
        if man and man.get("refused"):  # the converter refused this cell before, same versions
            on_result(cell, dict(man["refused"], stage="export"))
            continue
        if man:
            ready.append((cell, {"artifact": str(folder), "export_s": man.get("export_s"),
                                 "artifact_bytes": man.get("artifact_bytes")}))
            continue
        missing = missing_module(cell.target.export.requires)
        if missing:
            why = f"no exported artifact under {root} and it cannot be exported here: {missing}"
            on_result(cell, Result(outcome=Outcome(status="skipped", status_reason=why)).row())  # not attempted
            continue
        needed.setdefault(folder, []).append(cell)
    groups: dict[str, list[tuple[Cell, dict]]] = {}
    for folder, same in needed.items():
        first = same[0]
        task = {"kind": "export", "workload_path": first.workload.path, "params": first.params_dict,
                "target": first.target.id, "artifact": str(folder),
                "device": export_device(first.target, first.profile.device)}
        groups.setdefault(first.target.export.family, []).append((first, task))

    lock = threading.Lock()
    total, done = sum(len(j) for j in groups.values()), 0

    def exported(cell, rec):
        nonlocal done
        folder = cell_dir(root, cell.workload, cell.params_dict, cell.target, cell.profile.device)
        with lock:  # called from the export threads
            done += 1
            for c in needed[folder]:
                if rec.get("status") == "exported":
                    ready.append((c, {"artifact": str(folder), "export_s": rec.get("export_s"),
                                      "artifact_bytes": rec.get("artifact_bytes")}))
                else:  # failed, refused, crashed or timed out while exporting
                    on_result(c, dict(rec, stage="export"))
            if on_exported is not None:
                on_exported(cell, rec, done, total)

    queues = {family: list(jobs) for family, jobs in groups.items()}

    def take(family):
        with lock:
            return queues[family].pop(0) if queues[family] else None

    def drain():
        while True:
            with lock:
                family = max((f for f in queues if queues[f]), key=lambda f: len(queues[f]), default=None)
            if family is None:
                return
            # Converting runs on the CPU whatever the cell's device (an artifact for a GPU is cross-compiled
            # there too, Export.per_device): the worker gets the profile's threads, not its accelerator.
            profile = dataclasses.replace(groups[family][0][0].profile, device="cpu")
            _run_group(family, profile, iter(lambda: take(family), None), exported, timeout_s, memory_limit, None)

    n = max(1, min(workers or len(available_cores()), total))
    threads = [threading.Thread(target=drain, name=f"bench-export-{i}", daemon=True) for i in range(n - 1)]
    for t in threads:
        t.start()
    drain()
    for t in threads:
        t.join()
    return ready


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _run_group(family: str, profile, jobs: Iterable[tuple[Cell, dict]], on_record: Callable[[Cell, dict], None],
               timeout_s: float, memory_limit: int, on_start: Callable[[Cell], None] | None,
               timing_for: Callable[[Cell], dict] | None = None) -> None:
    """Runs tasks in one worker of ``family``, replacing the worker after a crash or a timeout.

    ``timing_for(cell)`` gives a timed task its TimingConfig fields as it is sent (a budget plans each
    cell from the time left then)."""
    worker = None
    try:
        for i, (cell, task) in enumerate(jobs):
            if on_start:
                on_start(cell)
            if worker is not None and worker.extra_env and task.get("again"):
                worker.close()  # a re-measurement runs with the framework's default settings
                worker = None
            if worker is None:
                worker = Worker(family, profile, memory_limit,
                                _busy_host_env(family, profile) if task.get("mode") == "run" else None)
            task = dict(task, id=i)
            if timing_for is not None and task.get("mode") == "run":
                task["timing"] = timing_for(cell)
            started = _now()
            try:
                worker.send(task)
                outcome, msg = worker.receive(time.monotonic() + timeout_s)
            except BrokenPipeError:
                outcome, msg = "crashed", None
            stamps = {"cell_started": started, "cell_finished": _now()}
            if outcome == "ok":
                on_record(cell, dict(msg["record"], **stamps))
                if msg.get("exiting"):  # the worker chose to exit (e.g. after a MemoryError)
                    worker.close()
                    worker = None
                continue
            if outcome == "timeout":
                worker.kill()
                reason = f"no result within {timeout_s:g} s; worker killed"
            else:
                worker.kill()
                reason = _describe_exit(worker.proc.returncode)
            if task.get("kind") == "export":
                reason = f"export ({family} worker): {reason}"
            tail = _stderr_tail(worker.stderr_path)
            # the stage the worker announced before it died; null when it never said (do not guess)
            text = f"{reason}\n{tail}" if tail else reason
            on_record(cell, dict(Result(outcome=Outcome(status=outcome, status_reason=text, stage=worker.stage)).row(),
                                 **stamps))
            worker.close()
            worker = None
    finally:
        if worker is not None:
            worker.close()

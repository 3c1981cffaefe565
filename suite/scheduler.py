"""The scheduler: cells grouped by (framework family, profile), one worker subprocess per group.

torch, tensorflow and jax never share a process. Each cell has a deadline; a worker that crashes
(segfault, abort, out of memory) or hangs turns its current cell into `crashed` / `timeout` with the
tail of its stderr, is replaced by a fresh worker, and the remaining cells go on.
"""
from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

from suite.plan import Cell
from suite.worker import PROTOCOL_PREFIX

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

    def __init__(self, family: str, profile, memory_limit: int = 0):
        from suite.profiles import worker_env

        self.family = family
        self.stderr_path = Path(tempfile.mkstemp(prefix=f"bench-{family}-", suffix=".stderr")[1])
        env = dict(os.environ)
        env.update(worker_env(profile, family))
        pkg_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH")]))
        profile_json = json.dumps(dataclasses.asdict(profile))
        cmd = [sys.executable, "-m", "suite.worker", "--family", family, "--profile-json", profile_json,
               "--memory-limit", str(memory_limit)]
        self._stderr = open(self.stderr_path, "wb")
        # A new session so that a kill reaches the worker's own children (e.g. inductor compile workers).
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=env, start_new_session=True)

    def send(self, task: dict) -> None:
        self.proc.stdin.write((json.dumps(task) + "\n").encode())
        self.proc.stdin.flush()

    def receive(self, deadline: float) -> tuple[str, dict | None]:
        """Waits for the next record. Returns ("ok", record), ("timeout", None) or ("crashed", None)."""
        fd = self.proc.stdout.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout", None
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(timeout=10)
                return "crashed", None
            text = line.decode(errors="replace")
            if text.startswith(PROTOCOL_PREFIX):
                return "ok", json.loads(text[len(PROTOCOL_PREFIX):])

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
            quick: bool = False, memory_limit: int = 0, on_start: Callable[[Cell], None] | None = None) -> None:
    """Runs every cell; calls on_result(cell, measured_fields) once per cell, in completion order.

    Cells with a status decided by the plan are reported without a worker. The rest run grouped by
    (family, profile), each group in a worker that is restarted after a crash or a timeout.
    """
    groups: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        if cell.status:
            on_result(cell, {"status": cell.status, "status_reason": cell.reason})
        else:
            groups.setdefault((cell.target.family, cell.profile.name), []).append(cell)
    for (family, _), group in groups.items():
        worker = None
        try:
            for i, cell in enumerate(group):
                if on_start:
                    on_start(cell)
                if worker is None:
                    worker = Worker(family, cell.profile, memory_limit)
                task = {"id": i, "workload_path": cell.workload.path, "params": cell.params_dict,
                        "target": cell.target.id, "mode": "run" if cell.timed else "verify", "quick": quick}
                try:
                    worker.send(task)
                    outcome, msg = worker.receive(time.monotonic() + timeout_s)
                except BrokenPipeError:
                    outcome, msg = "crashed", None
                if outcome == "ok":
                    on_result(cell, msg["record"])
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
                tail = _stderr_tail(worker.stderr_path)
                on_result(cell, {"status": outcome, "status_reason": f"{reason}\n{tail}" if tail else reason})
                worker.close()
                worker = None
        finally:
            if worker is not None:
                worker.close()

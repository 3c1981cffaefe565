"""Run-time metadata, collected per run as result columns (after pyperf's ``_collect_metadata``).

Nothing here imports an ML framework: versions come from ``importlib.metadata`` (the installed
distribution's metadata), which is what a user would ``pip install`` to reproduce a run. The git
commit is read from the ``.git`` files directly, so no ``git`` executable is needed (or run).
"""
from __future__ import annotations

import os
import platform
import socket
import time
from importlib import metadata
from pathlib import Path
from typing import Iterable

import suite

REPO_DIR = Path(__file__).resolve().parent.parent


def host() -> str:
    """The machine's host name."""
    return socket.gethostname()


def cpu_model() -> str | None:
    """The CPU model: ``model name`` from /proc/cpuinfo on Linux, else ``platform.processor()``.

    Returns:
        e.g. ``"AMD EPYC 7B13"``, or None when nothing is known.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                # x86 says "model name"; some ARM kernels only give "Hardware" or "Model".
                if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def affinity() -> list[int]:
    """Core ids the current process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def git_commit(repo_dir: str | Path | None = None) -> str | None:
    """The commit checked out in a repository, read from its ``.git`` files.

    Args:
        repo_dir: the checkout; the suite's own by default.
    Returns:
        the 40-hex commit, or None if the directory is not a git checkout.
    """
    git = Path(repo_dir or REPO_DIR) / ".git"
    try:
        if git.is_file():  # worktrees and submodules: ".git" holds "gitdir: <path>"
            text = git.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            git = (git.parent / text.split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None  # detached HEAD
        ref = head.split(":", 1)[1].strip()
        # A worktree's refs live in the common dir named by "commondir".
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text().strip()).resolve()
        for base in (git, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip() or None
        for base in (git, common):
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[1] == ref:
                        return parts[0]
    except OSError:
        return None
    return None  # a fresh repository with no commit yet


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed versions of distributions, without importing them.

    Args:
        names: distribution names, e.g. ``["torch", "numpy"]``.
    Returns:
        name -> version, None for a distribution that is not installed.
    """
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_metadata(repo_dir: str | Path | None = None) -> dict:
    """Everything about the host and checkout that every result row of a run carries.

    Args:
        repo_dir: the checkout whose commit is recorded; the suite's own by default.
    Returns:
        a dict whose keys are result columns (see :mod:`suite.results`): suite_version,
        git_commit, host, cpu_model, cpu_count, affinity, python_version, platform.
    """
    return {
        "suite_version": suite.__version__,
        "git_commit": git_commit(repo_dir),
        "host": host(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": affinity(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }



BUSY_SHARE = 0.2  # other processes using more than this share of the CPUs at the start: the host is busy


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat; None where it is not readable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user .. steal (guest time is already counted in user)
    return total - idle, total


def host_load(sample_s: float = 0.5) -> dict:
    """How busy the host is while this process waits: the share of all CPUs' time that other processes
    used over ``sample_s`` (from /proc/stat; this process sleeps meanwhile) and the 1-minute load average.

    Returns:
        ``{"host_busy_start": share or None, "host_load_start": load or None}`` (result columns).
    """
    before = _cpu_times()
    time.sleep(sample_s)
    after = _cpu_times()
    share = None
    if before and after and after[1] > before[1]:
        share = round((after[0] - before[0]) / (after[1] - before[1]), 4)
    try:
        load = round(os.getloadavg()[0], 3)
    except (OSError, AttributeError):
        load = None
    return {"host_busy_start": share, "host_load_start": load}


def busy_warning(load: dict) -> str | None:
    """One warning line when :func:`host_load` says the host is busy, else None."""
    share = load.get("host_busy_start")
    if share is None or share <= BUSY_SHARE:
        return None
    return (f"the host is busy: other processes used {share:.0%} of its {os.cpu_count()} CPUs just before the "
            f"run (load average {load.get('host_load_start')}); timings, the all-core `cpu` profile's most, "
            f"will be slower and noisier than on a quiet host - run alone for figures you can compare")

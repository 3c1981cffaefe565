"""The plan: workload × sweep point × target × profile → cells.

A cell that cannot run is still a cell, decided here without starting a worker: `skipped` (profile not
available on this host, framework not installed) or `unsupported` (the target cannot express an op, does
not run on the profile's device, or the cell cannot fit in memory: :mod:`suite.memory`'s lower-bound
estimate exceeds the smaller of ``--worker-memory-gb`` and the machine's available memory), each with its
reason.
"""
from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from typing import Any

from suite.sources import target_reason
from suite.targets.registry import TargetInfo, load_module


UNAVAILABLE = "profile {} not available: "  # the reason of a cell skipped because its profile is not here


def profile_unavailable(status: str | None, reason: str | None, profile: str) -> bool:
    """The cell (or record) was skipped because its profile is not available here."""
    return status == "skipped" and (reason or "").startswith(UNAVAILABLE.format(profile))


NOT_INSTALLED = " is not installed: "  # in the reason of a cell skipped because a module it needs is missing


def not_installed(status: str | None, reason: str | None) -> bool:
    """The cell (or record) was skipped because a framework, converter or model library is not installed
    here (:func:`missing_module`; a source workload's library)."""
    return status == "skipped" and NOT_INSTALLED in (reason or "")


@dataclass(frozen=True)
class Cell:
    workload: Any  # suite.spec.Workload
    params: tuple[tuple[str, int], ...]
    target: TargetInfo
    profile: Any  # suite.profiles.Profile
    mode: str = "inference"
    status: str | None = None  # decided in advance: skipped / unsupported
    reason: str = ""
    timed: bool = False  # verify only, or verify then time
    dump: str | None = None  # an .npz path: the worker saves the target's outputs there (bench diagnose)

    @property
    def params_dict(self) -> dict[str, int]:
        return dict(self.params)

    @property
    def params_json(self) -> str:
        return json.dumps(self.params_dict, sort_keys=True)

    @property
    def key(self) -> tuple:
        """Identity of a cell within a run; matches suite.results.cell_key of its record."""
        return (self.workload.name, self.params_json, self.target.id, self.profile.name, self.mode)

    @property
    def point(self) -> str:
        """``workload [batch=1 seq=16]``."""
        return f"{self.workload.name} [{' '.join(f'{k}={v}' for k, v in self.params)}]"

    @property
    def label(self) -> str:
        return f"{self.point} {self.target.id} @{self.profile.name}"


def missing_requirement(info: TargetInfo) -> str | None:
    """'install X' when a module the target needs is not importable (found without importing it)."""
    return missing_module(info.requires)


BLOCK_ENV = "BENCH_BLOCK_IMPORTS"  # comma-separated top-level modules this host must behave as lacking


def blocked_imports() -> set[str]:
    """Top-level modules named by $BENCH_BLOCK_IMPORTS: treated as not installed here (the planner, `bench node`)
    and made unimportable in workers (suite.worker). It gives one machine the view of a host that lacks a
    framework, e.g. a runtime-only node of a cluster (suite.cluster)."""
    return {m.strip() for m in os.environ.get(BLOCK_ENV, "").split(",") if m.strip()}


def _importable(module: str) -> bool:
    return module.split(".")[0] not in blocked_imports() and importlib.util.find_spec(module) is not None


def missing_module(requires) -> str | None:
    """'install X' for the first (module, extra) not importable; ``"a|b"`` means either module will do."""
    for module, extra in requires:
        if not any(_importable(m) for m in module.split("|")):
            return f"{module.replace('|', ' (or ')}{')' if '|' in module else ''} is not installed: " \
                   f"pip install 'bench-suite[{extra}]'"
    return None


def trains(info: TargetInfo) -> bool:
    """Whether the target has a training step (``build_train``); found without importing its framework."""
    return hasattr(load_module(info), "build_train")


def make_plan(workloads, targets: list[TargetInfo], profiles: dict, availability: dict[str, tuple[bool, str]],
              mode: str = "inference", timed: bool = False, memory_limit: int = 0,
              points: str = "all", missing=None) -> list[Cell]:
    """Every cell of the matrix, in a stable order (workload, params, profile, target).

    Args:
        workloads: validated workloads.
        targets: target infos to run.
        profiles: profile name -> Profile.
        availability: profile name -> (available, reason) from suite.profiles.detect.
        points: ``all`` sweep points, or only the ``first`` of each workload (its first value of every
            sweep parameter, in file order: what `bench run` runs by default).
        memory_limit: a worker's memory limit in bytes (``--worker-memory-gb``; 0: none). A cell whose
            memory estimate exceeds it, or the machine's available memory, is ``unsupported``.
        missing: target info -> why it cannot run, or None (default: :func:`missing_requirement` here; a
            cluster run asks its nodes: suite.cluster.Cluster.missing).
    Returns:
        Cells; those that cannot run carry status and reason already.
    """
    from suite import memory
    from suite.profiles import matches

    limit, limit_source = memory.memory_limit(memory_limit)
    estimates: dict[tuple, memory.Estimate] = {}  # once per (workload, params, dtype), not per target

    missing = {t.id: (missing or missing_requirement)(t) for t in targets}
    from suite import sources

    source_missing = {wl.name: sources.missing(wl) for wl in workloads}
    unsupported: dict[tuple[str, str], str | None] = {}
    if mode == "train":
        from suite.training import unsupported_point

        no_step = {t.id: None if trains(t) else
                   f"{t.id} has no training step (export formats and runtimes are inference artifacts)"
                   for t in targets}
    cells = []
    for wl in workloads:
        grid = wl.param_grid()
        for params in grid[:1] if points == "first" else grid:
            ptuple = tuple(params.items())
            point_reason = unsupported_point(wl, params) if mode == "train" else None
            for pname, profile in profiles.items():
                available, why = availability[pname]
                for info in targets:
                    if not matches(profile, info.id):
                        continue
                    status, reason = None, ""
                    if not available:
                        status, reason = "skipped", UNAVAILABLE.format(pname) + why
                    elif profile.device not in info.devices:
                        status, reason = "unsupported", f"{info.id} does not run on {profile.device}"
                    elif point_reason or (mode == "train" and no_step[info.id]):
                        status, reason = "unsupported", point_reason or no_step[info.id]
                    elif missing[info.id]:
                        status, reason = "skipped", missing[info.id]
                    elif source_missing[wl.name] and not target_reason(wl, info):
                        status, reason = "skipped", source_missing[wl.name]
                    else:
                        k = (wl.name, info.id)
                        if k not in unsupported:
                            unsupported[k] = target_reason(wl, info) or load_module(info).unsupported(wl, info)
                        if unsupported[k]:
                            status, reason = "unsupported", unsupported[k]
                    if status is None and limit:
                        size = memory.DTYPE_BYTES.get(profile.precision, 4)
                        ek = (id(wl), ptuple, size)
                        if ek not in estimates:
                            estimates[ek] = memory.estimate(wl, params, mode, size)
                        if estimates[ek].host_bytes(profile.device) > limit:
                            status, reason = "unsupported", (f"{estimates[ek].describe(profile.device)} but the "
                                                             f"limit is {memory.format_bytes(limit)} ({limit_source})")
                    cells.append(Cell(wl, ptuple, info, profile, mode, status, reason, timed))
    return cells

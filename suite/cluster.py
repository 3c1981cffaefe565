"""One plan on a Ray cluster: `bench node` advertises what a host offers, `bench run --ray ADDRESS` places
each cell on a node that offers its profile.

Ray is imported here only, and only when a cluster is asked for (the ``[cluster]`` extra); without
``--ray`` nothing of this module runs. Ray places and moves work; it does not replace the suite's
isolation: on every node a Ray task drives the same worker subprocess as a local run (one per framework
family and profile; a crash, hang or out-of-memory is that cell's row), and the timing engine is the same.

What a node advertises (:func:`node_resources`, as Ray custom resources):

- ``bench-device:<device>``: one unit per device (one for the CPUs of a host, one per GPU). A cell holds
  one unit while it is verified and timed, so a device runs one cell at a time; nodes run in parallel.
- ``bench-profile:<name>``: the hardware profile is available there (:func:`suite.profiles.detect`, as
  ``bench env`` reports it).
- ``bench-run:<family>``: a worker of that family can run there (its framework or runtime is importable);
  ``bench-export:<target>``: the target's artifact can be made there (its framework and converter are
  importable; the target id with other characters than letters, digits, - and _ as _).

A run (:func:`execute`) has the phases of a local one: export tasks first (any node that can export, in
parallel, nothing timed), each artifact coming back to the driver's cache (same cache key as a local run)
and travelling through Ray's object store to the node that runs it, which needs none of the exporting
framework; then the cells, grouped by (family, profile) and split across the nodes that offer the profile.
Every record comes back to the driver as soon as its cell finishes, with the node's host, ``node_id`` and
the node's clock for ``cell_started`` / ``cell_finished``. A node that dies mid-cell gives that cell a
``crashed`` row naming the node; the cell is tried again (``retries``) on a node that offers its profile,
and the cells of the group that had not run yet go on elsewhere.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import queue
import shutil
import tarfile
import threading
from pathlib import Path
from typing import Callable

from suite.targets.common.artifacts import slug

DEVICE = "bench-device:{}"
PROFILE = "bench-profile:{}"
RUN = "bench-run:{}"
EXPORT = "bench-export:{}"
INSTALL = "pip install 'bench-suite[cluster]'"
SHIP_LIMIT = 256 * 2**20  # a workload folder shipped to the nodes (source models) may hold this much at most


class ClusterError(Exception):
    """The cluster cannot be used as asked (Ray missing, no cluster at the address): one line for the user."""


def import_ray():
    from suite.plan import blocked_imports

    try:
        if "ray" in blocked_imports():
            raise ImportError("ray")
        import ray
    except ImportError:
        raise ClusterError(f"ray is not installed: {INSTALL}") from None
    return ray


# --- what a node offers -------------------------------------------------------------------------------


def device_count(device: str) -> int:
    """Devices of a kind on this host: 1 for the CPUs (one timing domain), the GPUs nvidia-smi lists."""
    if device == "cuda":
        import subprocess

        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return 1
        return max(1, sum(line.startswith("GPU ") for line in out.splitlines()))
    return 1


def node_resources(profiles: dict, only: list[str] | None = None) -> tuple[dict[str, float], list[str]]:
    """The Ray resources this host advertises, and one line per profile saying whether it is offered.

    Args:
        profiles: every known profile (name -> Profile).
        only: offer only these profiles (``bench node -p``); all available ones when None.
    Returns:
        (resources, lines). Raises KeyError on an unknown profile name in ``only``.
    """
    from suite.plan import missing_module, missing_requirement
    from suite.profiles import detect
    from suite.targets.registry import all_targets

    for name in only or []:
        if name not in profiles:
            raise KeyError(name)
    res: dict[str, float] = {}
    lines = []
    for name, p in profiles.items():
        if only and name not in only:
            continue
        ok, why = detect(p)
        lines.append(f"{name:<16} {'offered' if ok else 'not offered'}: {why}")
        if ok:
            res[PROFILE.format(name)] = 1.0
            res[DEVICE.format(p.device)] = float(device_count(p.device))
    for info in all_targets().values():
        if not missing_requirement(info):
            res[RUN.format(info.family)] = 1.0
        if info.export is not None and not missing_module(export_requires(info)):
            res[EXPORT.format(slug(info.id))] = 1.0
    return res, lines


def export_requires(info) -> tuple:
    """What exporting the target needs: its converter, and the framework of an export made in the target's
    own family (torch>export@torch names no converter: it is torch)."""
    return tuple(info.export.requires) + (tuple(info.requires) if info.family == info.export.family else ())



@dataclasses.dataclass(frozen=True)
class Node:
    node_id: str
    host: str
    resources: dict

    @property
    def name(self) -> str:
        return f"{self.host} ({self.node_id[:8]})"


class Cluster:
    """A connection to a running Ray cluster, and what its alive nodes offer."""

    def __init__(self, address: str):
        ray = import_ray()
        self.ray = ray
        self.address = address
        _reachable(address)
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False,
                     include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ClusterError(f"no Ray cluster at {address!r}: {first}") from None

    def nodes(self) -> list[Node]:
        return [Node(n["NodeID"], n.get("NodeManagerHostname") or n.get("NodeManagerAddress") or "?",
                     dict(n.get("Resources") or {}))
                for n in self.ray.nodes() if n.get("Alive")]

    def offering(self, resource: str) -> list[Node]:
        return [n for n in self.nodes() if n.resources.get(resource, 0) > 0]

    def availability(self, profiles: dict) -> dict[str, tuple[bool, str]]:
        """Profile name -> (offered, why), as :func:`suite.profiles.detect` answers for one host."""
        out = {}
        for name in profiles:
            nodes = self.offering(PROFILE.format(name))
            out[name] = (True, f"offered by {', '.join(n.name for n in nodes)}") if nodes else \
                (False, f"no node of the cluster offers profile {name}")
        return out

    def missing(self, info) -> str | None:
        """Why no node can run the target (its family's worker, its export), or None (see plan.make_plan)."""
        if not self.offering(RUN.format(info.family)):
            return f"no node of the cluster can run {info.id} (no node offers {RUN.format(info.family)})"
        if info.export is not None and not self.offering(EXPORT.format(slug(info.id))):
            return f"no node of the cluster can export {info.id} (no node offers {EXPORT.format(slug(info.id))})"
        return None


# --- files that travel to the nodes -------------------------------------------------------------------


def _why(e: BaseException) -> str:
    """One line for a Ray failure: the task's own exception where there is one (RayTaskError wraps it)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        e = cause
    first = (str(e).strip().splitlines() or [""])[0][:300]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _reachable(address: str, timeout_s: float = 10.0) -> None:
    """A HOST:PORT address answers a TCP connection (Ray itself would retry for minutes); ``auto`` and
    ``ray://`` addresses are left to Ray."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ClusterError(f"no Ray cluster at {address!r}: {e.strerror or e}") from None


def _tar(entries: list[tuple[Path, str]]) -> bytes:
    """(path on this host, name in the archive) -> a .tar in memory; folders whole."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for path, name in entries:
            tf.add(str(path), arcname=name, filter=lambda t: None if "__pycache__" in t.name else t)
    return buf.getvalue()


def _untar(blob: bytes, dest: Path) -> None:
    """Unpacks into ``dest`` through a sibling temporary folder renamed into place (readers never see half)."""
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tf:
        tf.extractall(tmp, filter="data")
    try:
        os.replace(tmp, dest)
    except OSError:  # another task of this node unpacked it first
        shutil.rmtree(tmp, ignore_errors=True)


def workload_bundle(wl, points: list[dict]) -> bytes:
    """What a node needs to load a workload exactly as the driver did: its YAML file (a source workload:
    its whole folder: model file, weights, factory module) and, for a source, the cached float64
    references of ``points`` (computed on the driver by suite.sources.prepare) and its cached weights."""
    from suite.paths import cache_root

    path = Path(wl.path)
    entries: list[tuple[Path, str]] = []
    if wl.source is None:
        entries.append((path, f"workload/{path.name}"))
    else:
        size = sum(f.stat().st_size for f in path.parent.rglob("*") if f.is_file())
        if size > SHIP_LIMIT:
            raise ClusterError(f"{path.parent} holds {size / 2**20:.0f} MiB: too much to ship with workload "
                               f"{wl.name}; keep a source workload in a folder of its own")
        entries.append((path.parent, "workload"))
        from suite import sources

        root = cache_root()
        for p in [sources.reference_path(wl, pt) for pt in points] + [sources.weights_path(wl)]:
            if p.exists():
                entries.append((p, f"cache/{p.relative_to(root)}"))
    return _tar(entries)


def _unpack_workload(blob: bytes, wl_hash: str, file_name: str) -> str:
    """The node-local path of a shipped workload's YAML (its cache files put in this node's cache)."""
    from suite.paths import cache_root

    root = cache_root()
    dest = root / "cluster" / "workloads" / wl_hash
    _untar(blob, dest)
    cached = dest / "cache"
    if cached.exists():
        for f in cached.rglob("*"):
            if f.is_file():
                target = root / f.relative_to(cached)
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, target)
    return str(dest / "workload" / file_name)


def _unpack_artifact(blob: bytes, rel: str) -> str:
    """The node-local folder of a shipped artifact; keyed by its content, so a node never runs a stale one."""
    import hashlib

    from suite.paths import cache_root

    dest = cache_root() / "cluster" / "artifacts" / f"{Path(rel).name}-{hashlib.sha256(blob).hexdigest()[:16]}"
    _untar(blob, dest)
    return str(dest)


# --- what runs on a node ------------------------------------------------------------------------------


def _node_meta() -> dict:
    """The identity columns of this node's records (suite.envinfo.run_metadata and host_load)."""
    import ray

    from suite.envinfo import host_load, run_metadata

    return dict(run_metadata(), **host_load(0.2), node_id=ray.get_runtime_context().get_node_id())


def _export_task(task: dict, family: str, profile_json: str, wl_blob, wl_hash: str, wl_file: str, rel: str,
                 timeout_s: float, memory_limit: int):
    """One export on this node: (record, meta, the artifact folder as a .tar or None)."""
    import ray

    from suite.profiles import Profile
    from suite.scheduler import _run_group

    meta = _node_meta()
    # a top-level ObjectRef argument arrives resolved (bytes)
    wl_blob = wl_blob if isinstance(wl_blob, bytes) else ray.get(wl_blob)
    task = dict(task, workload_path=_unpack_workload(wl_blob, wl_hash, wl_file))
    from suite.paths import cache_root

    folder = cache_root() / "cluster" / "exports" / f"{rel}.{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    task["artifact"] = str(folder)
    got: list[dict] = []
    _run_group(family, Profile(**json.loads(profile_json)), [(None, task)], lambda _c, rec: got.append(rec),
               timeout_s, memory_limit, None)
    rec = got[0]
    blob = None
    if rec.get("status") == "exported" or (folder / "manifest.json").exists():
        blob = _tar([(folder, ".")])
    shutil.rmtree(folder, ignore_errors=True)
    return rec, meta, blob


def _cells_task(family: str, profile_json: str, items: list[dict], timeout_s: float, memory_limit: int,
                remeasure: int, quiet_wait_s: float, remeasure_which: str):
    """Runs a group of cells in one worker of ``family`` on this node, yielding events as they happen:
    ("node", meta), ("start", i), ("remeasure", i, record), ("record", i, record)."""
    import ray

    from suite.profiles import Profile, profile_cores
    from suite.scheduler import _QuietWait, _Remeasure, _run_group

    yield ("node", _node_meta())
    profile = Profile(**json.loads(profile_json))
    events: queue.Queue = queue.Queue()
    keys = [_Key(i) for i in range(len(items))]
    jobs = []
    for key, item in zip(keys, items):
        task = dict(item["task"])
        task["workload_path"] = _unpack_workload(ray.get(item["workload"]), item["workload_hash"],
                                                 item["workload_file"])
        if item.get("artifact") is not None:
            task["artifact"] = _unpack_artifact(ray.get(item["artifact"]), item["artifact_rel"])
        jobs.append((key, task))
    runs = _Remeasure(jobs, lambda key, rec: events.put(("record", key.i, rec)), remeasure,
                      _QuietWait(quiet_wait_s), profile_cores(profile),
                      lambda key, rec: events.put(("remeasure", key.i, rec)), remeasure_which)

    def drive():
        try:
            _run_group(family, profile, runs, runs.record, timeout_s, memory_limit,
                       lambda key: events.put(("start", key.i)))
        except BaseException as e:  # noqa: BLE001 - said to the driver, which decides
            events.put(("failed", f"{type(e).__name__}: {e}"))
        events.put(None)

    threading.Thread(target=drive, daemon=True).start()
    while (ev := events.get()) is not None:
        if ev[0] == "failed":
            raise RuntimeError(ev[1])
        yield ev


@dataclasses.dataclass(eq=False)
class _Key:
    i: int


# --- the driver ---------------------------------------------------------------------------------------


def execute(cluster: Cluster, cells, on_result: Callable, *, timeout_s: float, timing=None, memory_limit: int = 0,
            on_start: Callable | None = None, artifacts_dir: str | None = None, on_exported: Callable | None = None,
            retries: int = 1, remeasure: int = 0, quiet_wait_s: float = 60.0,
            on_remeasure: Callable | None = None, remeasure_which: str = "all",
            on_placed: Callable | None = None) -> None:
    """:func:`suite.scheduler.execute` on a cluster; the same callbacks, called from one thread at a time.

    Records carry ``_node`` (the node's identity columns) for the runner. ``on_placed(cell, node)`` is
    called when a node starts a cell. ``retries``: times a cell whose node was lost is tried again.
    """
    from suite.record import Outcome, Result
    from suite.scheduler import _timing_for

    ray = cluster.ray
    lock = threading.RLock()

    def report(cell, rec):
        with lock:
            on_result(cell, rec)

    pending = []
    for cell in cells:
        if cell.status:
            report(cell, Result(outcome=Outcome(status=cell.status, status_reason=cell.reason)).row())
        else:
            pending.append(cell)
    shipper = _Shipper(ray, pending)
    ready = _exports(cluster, shipper, pending, report, artifacts_dir=artifacts_dir, timeout_s=timeout_s,
                     memory_limit=memory_limit, on_exported=on_exported, retries=retries)
    timing_for = _timing_for(timing)
    groups: dict[tuple[str, str], list] = {}
    for cell, art in ready:
        groups.setdefault((cell.target.family, cell.profile.name), []).append((cell, art))
    remote = ray.remote(_cells_task)
    threads = []
    reported: set[int] = set()

    def report_part(cell, rec):
        reported.add(id(cell))
        report(cell, rec)

    for (family, pname), group in groups.items():
        profile = group[0][0].profile
        n = max(1, len(cluster.offering(PROFILE.format(pname))))
        size = -(-len(group) // n)
        for part in (group[i:i + size] for i in range(0, len(group), size)):
            items = []
            for cell, art in part:
                task = {"workload_path": cell.workload.path, "params": cell.params_dict, "target": cell.target.id,
                        "mode": "run" if cell.timed else "verify", "train": cell.mode == "train",
                        "dtype": cell.target.dtype}
                if cell.timed:
                    task["timing"] = timing_for(cell)
                if cell.dump:
                    task["dump"] = cell.dump
                item = {"task": task, "workload": shipper.workload(cell.workload),
                        "workload_hash": cell.workload.hash, "workload_file": Path(cell.workload.path).name}
                if art:
                    item.update(artifact=shipper.artifact(art["artifact"]), artifact_rel=art["rel"])
                items.append((cell, art, item))
            t = threading.Thread(target=_drive_part, daemon=True, name=f"bench-ray-{family}-{pname}",
                                 args=(cluster, remote, family, profile, items, lock, report_part, on_start, on_placed,
                                       on_remeasure, retries, timeout_s, memory_limit, remeasure, quiet_wait_s,
                                       remeasure_which))
            t.start()
            threads.append(t)
    for t in threads:
        t.join()
    for cell, _art in ready:  # a driver thread that broke never loses its cells: each gets a row saying so
        if id(cell) not in reported:
            report(cell, Result(outcome=Outcome(status="error", status_reason="the cluster driver lost the cell "
                                                "(see bench's stderr)")).row())


def _drive_part(cluster, remote, family, profile, items, lock, report, on_start, on_placed, on_remeasure, retries,
                timeout_s, memory_limit, remeasure, quiet_wait_s, remeasure_which) -> None:
    """Submits one part of a group and consumes its events until every cell has a record.

    A failure (the node lost, or the task failing) gives the cell in flight a ``crashed`` row naming the
    node, and the cells not run yet go on in a new task, away from that node while another offers what
    they need; the cell itself goes with them while it has ``retries`` left. A task that no alive node
    can take any more (every node offering the profile lost) ends its cells as ``crashed``, saying so.
    """
    from suite.record import Outcome, Result

    ray = cluster.ray
    left = list(items)
    tries = {id(cell): retries for cell, _a, _i in items}
    idle_failures = 0  # failures of a task before it started any cell: bounded like a cell's retries
    avoid: list[str] = []
    resources = {DEVICE.format(profile.device): 1, PROFILE.format(profile.name): 0.001, RUN.format(family): 0.001}

    def fail_all(why: str, node=None) -> None:
        for cell, _art, _item in left:
            rec = Result(outcome=Outcome(status="crashed", status_reason=why)).row()
            rec["_node"] = node
            report(cell, rec)

    while left:
        if avoid and not _placeable(cluster, resources, avoid):
            avoid = []  # the only nodes that can take it are those that failed: better there than nowhere
        opts = {"resources": resources, "num_cpus": 0, "max_retries": 0}
        if avoid:
            opts["label_selector"] = {"ray.io/node-id": "!in(" + ",".join(avoid) + ")"}
        gen = _submit(remote, opts, family, profile, [i for _c, _a, i in left], timeout_s, memory_limit, remeasure,
                      quiet_wait_s, remeasure_which)
        node, inflight, done = None, None, set()
        try:
            while True:
                ready, _ = ray.wait([gen], timeout=5.0)
                if not ready:
                    if node is None and not _placeable(cluster, resources, []):
                        ray.cancel(gen, force=True)
                        fail_all(f"no alive node of the cluster offers profile {profile.name} with a "
                                 f"{family} worker any more")
                        return
                    continue
                try:
                    ref = next(gen)
                except StopIteration:
                    break
                ev = ray.get(ref)
                if ev[0] == "node":
                    node = ev[1]
                    continue
                cell, art, _item = left[ev[1]]
                if ev[0] == "start":
                    inflight = ev[1]
                    with lock:
                        if on_start:
                            on_start(cell)
                        if on_placed:
                            on_placed(cell, node)
                elif ev[0] == "remeasure":
                    with lock:
                        if on_remeasure:
                            on_remeasure(cell, ev[2])
                else:
                    rec = _with_artifact(dict(ev[2]), art)
                    rec["_node"] = node
                    report(cell, rec)
                    done.add(ev[1])
                    inflight = None
            missing = [i for i in range(len(left)) if i not in done]
            if not missing:
                return
            left = [left[i] for i in missing]  # a task that ended early (should not happen): the rest again
            continue
        except Exception as e:  # noqa: BLE001 - a lost node (Ray's errors) or a task that failed: never lost cells
            where = f"node {node['host']} ({node['node_id'][:8]})" if node else "its node"
            lost = isinstance(e, ray.exceptions.RayError) and not isinstance(e, ray.exceptions.RayTaskError)
            what = "was lost while it ran the cell" if lost else "failed while it ran the cell"
            if node:
                avoid.append(node["node_id"])
            if inflight is None and not done:
                idle_failures += 1
                if idle_failures > retries:
                    fail_all(f"{where} {what.replace(' while it ran the cell', ' before the cell ran')} "
                             f"({_why(e)})", node)
                    return
            keep = []
            for i, (cell, art, item) in enumerate(left):
                if i in done:
                    continue
                if i == inflight:
                    again = tries[id(cell)] > 0
                    tries[id(cell)] -= 1
                    why = (f"{where} {what} ({_why(e)})"
                           f"{'; tried again on another node' if again else ''}")
                    rec = Result(outcome=Outcome(status="crashed", status_reason=why)).row()
                    rec["_node"] = node
                    report(cell, rec)
                    if not again:
                        continue
                keep.append((cell, art, item))
            left = keep


def _placeable(cluster, resources: dict, avoid: list[str]) -> bool:
    """Some alive node, not in ``avoid``, offers every resource a task asks for."""
    return any(all(n.resources.get(k, 0) >= v for k, v in resources.items())
               for n in cluster.nodes() if n.node_id not in avoid)


def _submit(remote, opts, family, profile, items, *args):
    try:
        return remote.options(**opts).remote(family, json.dumps(dataclasses.asdict(profile)), items, *args)
    except (TypeError, ValueError):  # a Ray without label selectors: the lost node is gone anyway
        opts = {k: v for k, v in opts.items() if k != "label_selector"}
        return remote.options(**opts).remote(family, json.dumps(dataclasses.asdict(profile)), items, *args)


def _with_artifact(rec: dict, art: dict) -> dict:
    for k in ("export_s", "artifact_bytes"):
        if art and art.get(k) is not None and rec.get(k) is None:
            rec[k] = art[k]
    return rec


class _Shipper:
    """Puts each workload bundle and artifact into the object store once (the driver owns them, so a lost
    node loses none)."""

    def __init__(self, ray, cells):
        self.ray = ray
        self.points: dict[str, list[dict]] = {}
        for c in cells:
            self.points.setdefault(c.workload.path, []).append(c.params_dict)
        self.refs: dict[str, object] = {}
        self.lock = threading.Lock()

    def workload(self, wl):
        with self.lock:
            if wl.path not in self.refs:
                self.refs[wl.path] = self.ray.put(workload_bundle(wl, self.points.get(wl.path, [])))
            return self.refs[wl.path]

    def artifact(self, folder: str):
        with self.lock:
            key = f"artifact:{folder}"
            if key not in self.refs:
                self.refs[key] = self.ray.put(_tar([(Path(folder), ".")]))
            return self.refs[key]


def _exports(cluster: Cluster, shipper: _Shipper, cells, report, *, artifacts_dir, timeout_s, memory_limit,
             on_exported, retries) -> list[tuple]:
    """The export phase on the cluster: like :func:`suite.scheduler.export_phase`, but each missing
    artifact is made on a node that can export it and comes back into the driver's cache."""
    from suite.paths import cache_root
    from suite.record import Outcome, Result
    from suite.targets.common.artifacts import cell_dir, export_device, is_export_target, lookup

    ray = cluster.ray
    root = Path(artifacts_dir) if artifacts_dir else cache_root() / "artifacts"
    ready, needed = [], {}
    for cell in cells:
        if not is_export_target(cell.target):
            ready.append((cell, {}))
            continue
        folder = cell_dir(root, cell.workload, cell.params_dict, cell.target, cell.profile.device)
        man = lookup(folder, cell.target, artifacts_dir is None)
        if man and man.get("refused"):
            report(cell, dict(man["refused"], stage="export"))
        elif man:
            ready.append((cell, _art(folder, root, man)))
        else:
            needed.setdefault(folder, []).append(cell)
    remote = ray.remote(_export_task)
    futures = {}
    for folder, same in needed.items():
        first = same[0]
        task = {"kind": "export", "params": first.params_dict, "target": first.target.id,
                "device": export_device(first.target, first.profile.device)}
        profile = dataclasses.replace(first.profile, device="cpu")
        ref = remote.options(num_cpus=1, max_retries=retries, num_returns=1,
                             resources={EXPORT.format(slug(first.target.id)): 0.001}).remote(
            task, first.target.export.family, json.dumps(dataclasses.asdict(profile)),
            shipper.workload(first.workload), first.workload.hash, Path(first.workload.path).name,
            str(folder.relative_to(root)), timeout_s, memory_limit)
        futures[ref] = folder
    total, done = len(futures), 0
    waiting = list(futures)
    while waiting:
        got, waiting = ray.wait(waiting, num_returns=1)
        folder = futures[got[0]]
        same = needed[folder]
        try:
            rec, meta, blob = ray.get(got[0])
        except ray.exceptions.RayError as e:
            what = "failed" if isinstance(e, ray.exceptions.RayTaskError) else "was lost"
            rec, meta, blob = (Result(outcome=Outcome(status="crashed", status_reason=f"export: the task or its node "
                                                      f"{what} ({_why(e)})")).row(), None, None)
        if blob is not None:
            shutil.rmtree(folder, ignore_errors=True)
            _untar(blob, folder)
        done += 1
        for c in same:
            if rec.get("status") == "exported":
                ready.append((c, _art(folder, root, rec)))
            else:
                report(c, dict(rec, stage="export", _node=meta))
        if on_exported is not None:
            on_exported(same[0], dict(rec, exported_on=f"{meta['host']} ({meta['node_id'][:8]})") if meta else rec,
                        done, total)
    return ready


def _art(folder: Path, root: Path, man: dict) -> dict:
    return {"artifact": str(folder), "rel": str(folder.relative_to(root)), "export_s": man.get("export_s"),
            "artifact_bytes": man.get("artifact_bytes")}


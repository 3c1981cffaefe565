"""`bench verify` and `bench run`: plan → scheduler → records → results store, with progress.

Records are written as they arrive: each worker batch has its own Parquet file, rewritten atomically
after every cell, so an interrupted run loses at most the cell in flight and `--resume` finishes it.
"""
from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass, field, replace

from suite.plan import UNAVAILABLE, Cell, not_installed, profile_unavailable
from suite.record import Identity, Record, Result


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


@dataclass
class Progress:
    """Progress of a run: a one-line bar on a terminal, one line per finished cell otherwise; both show
    the time elapsed and an estimate of the time left.

    Cells of a profile that is not available here are announced once, as one line per profile, and not
    printed one by one (they are still records); so are the cells of a target whose framework, converter
    or model library is not installed here (one line per target and reason: decided in advance for a
    missing framework, when its export is due for a missing converter). Exports (the phase before any cell runs) are shown as
    they finish and count as work: the estimate extrapolates the mean time per unit of work so far
    (exports and cells run) over what is left; cells decided in advance (skipped, unsupported) and cells
    whose export failed cost nothing.
    """

    cells: list
    stream: object = sys.stderr
    done: int = 0
    ran: int = 0
    exports: int = 0  # export tasks known so far
    exports_done: int = 0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.total = len(self.cells)
        self.to_run = sum(c.status is None for c in self.cells)
        self.quiet: set = set()
        by_profile: dict[str, list] = {}
        for c in self.cells:
            if profile_unavailable(c.status, c.reason, c.profile.name):
                by_profile.setdefault(c.profile.name, []).append(c)
        for name, skipped in by_profile.items():
            why = skipped[0].reason[len(UNAVAILABLE.format(name)):]
            print(f"{name}: not available here ({why}) - {len(skipped)} cells skipped", file=self.stream, flush=True)
            self.quiet.update(c.key for c in skipped)
        missing: dict[tuple[str, str], list] = {}
        for c in self.cells:
            if c.key not in self.quiet and not_installed(c.status, c.reason):
                missing.setdefault((c.target.id, c.reason), []).append(c)
        for (target, why), skipped in missing.items():
            print(f"{target}: {why} - {len(skipped)} cell{'s' if len(skipped) > 1 else ''} skipped",
                  file=self.stream, flush=True)
            self.quiet.update(c.key for c in skipped)
        self.said: set[tuple[str, str]] = set()  # (target, reason) of a converter found missing, said once

    def start(self, cell: Cell) -> None:
        if self._tty:
            self._line(f"running {cell.label}")

    def placed(self, cell: Cell, node: dict | None) -> None:
        """A node of a cluster started the cell (`bench run --ray`): one line saying where."""
        where = f"{node.get('host')} ({str(node.get('node_id'))[:8]})" if node else "a node"
        self._say(f"{'started':<12} {cell.label} on {where}", f"[{self.clock()}]")

    def exported(self, cell: Cell, rec: dict, done: int, total: int) -> None:
        """An export task finished (``done`` of ``total``)."""
        self.exports, self.exports_done = total, done
        what = f"{cell.target.id} {cell.point}"
        status = rec.get("status")
        figure = f" {rec['export_s']:.1f} s" if status == "exported" and rec.get("export_s") else ""
        where = f" on {rec['exported_on']}" if rec.get("exported_on") else ""  # a cluster's node (suite.cluster)
        msg = f"export {done}/{total} {status:<11} {what}{figure}{where}"
        if self._tty:
            self._line(msg)
        else:
            print(f"[{self.clock()}] {msg}", file=self.stream, flush=True)

    def remeasure(self, cell: Cell, rec: dict) -> None:
        """A timed cell came back noisy: it will be timed again at the end of its group."""
        self.to_run += 1
        self.ran += 1
        msg = f"{'noisy':<12} {cell.label}{_median(rec)} - timed again later ({rec.get('noisy_reason')})"
        self._say(msg, f"[{self.clock()}]")

    def finish(self, cell: Cell, rec: dict) -> None:
        self.done += 1
        if cell.status is None:
            if rec.get("stage") == "export":  # its export failed: it will not run
                self.to_run -= 1
            else:
                self.ran += 1
        if cell.key in self.quiet:
            return
        if cell.status is None and not_installed(rec.get("status"), rec.get("status_reason")):
            said = (cell.target.id, rec["status_reason"])
            if said in self.said:
                return
            self.said.add(said)
            self._say(f"{'skipped':<12} {cell.target.id}: {rec['status_reason']} (each of its cells; not listed "
                      f"one by one)", f"[{self.done:>{len(str(self.total))}}/{self.total} {self.clock()}]")
            return
        self._say(f"{rec['status']:<12} {cell.label}{_median(rec)}",
                  f"[{self.done:>{len(str(self.total))}}/{self.total} {self.clock()}]")

    def _say(self, msg: str, prefix: str) -> None:
        """The bar's message on a terminal, else a line with ``prefix``."""
        if self._tty:
            self._line(msg)
        else:
            print(f"{prefix} {msg}", file=self.stream, flush=True)

    def clock(self) -> str:
        """``elapsed, ~left`` (the estimate once a cell has run)."""
        elapsed = time.monotonic() - self.started
        worked = self.ran + self.exports_done
        if not worked:
            return _clock(elapsed)
        left = elapsed / worked * max(self.to_run - self.ran + self.exports - self.exports_done, 0)
        return f"{_clock(elapsed)}, ~{_clock(left)} left"

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()

    @property
    def _tty(self) -> bool:
        return hasattr(self.stream, "isatty") and self.stream.isatty()

    def _line(self, msg: str) -> None:
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {self.clock()} "
        self.stream.write("\r\033[K" + (bar + msg)[:160])
        self.stream.flush()


def _median(rec: dict) -> str:
    med = rec.get("latency_median_s")
    return f" {med * 1e3:.3f} ms" if med else ""


def base_record(cell: Cell, run_id: str, meta: dict) -> Identity:
    """The identity of a cell's record, known before it runs.

    Args:
        cell: the planned cell.
        run_id: the run it belongs to.
        meta: :func:`suite.envinfo.run_metadata` (its keys are Identity fields).
    Returns:
        the :class:`suite.record.Identity` of the cell.
    """
    from suite.profiles import resolved_threads

    wl, info = cell.workload, cell.target
    params = cell.params_dict
    # quantised targets are judged by their own rule (suite.verify.TOLERANCES), whatever the profile's precision
    dtype = info.dtype if info.dtype and info.dtype != "float32" else cell.profile.precision
    return Identity(
        run_id=run_id, timestamp=dt.datetime.now(dt.timezone.utc), **meta,
        workload=wl.name, workload_hash=wl.hash, source=wl.kind, params=cell.params_json, batch_size=params["batch"],
        target=info.id, framework=info.framework, format=info.format, runtime=info.runtime, variant=info.variant,
        profile=cell.profile.name, device=cell.profile.device, threads=resolved_threads(cell.profile),
        dtype=dtype, mode=cell.mode, flops=wl.flops(params))


class RunWriter:
    """Streams records into one Parquet file per worker batch, rewritten atomically after each cell."""

    def __init__(self, results_dir: str | None, run_id: str):
        self.results_dir, self.run_id = results_dir, run_id
        self.parts: dict[str, list[dict]] = {}
        self.stamp = dt.datetime.now(dt.timezone.utc).strftime("%H%M%S%f")

    def add(self, cell: Cell, rec: dict) -> None:
        part = "planned" if cell.status else f"{cell.target.family}-{cell.profile.name}"
        self.parts.setdefault(part, []).append(rec)
        if self.results_dir is not None and not (cell.status and len(self.parts[part]) % 50):
            self.flush(part)

    def flush(self, part: str | None = None) -> None:
        from suite.results import write_records

        if self.results_dir is None:
            return
        for name in [part] if part else list(self.parts):
            write_records(self.parts[name], self.results_dir, self.run_id, f"{name}-{self.stamp}")


def execute_plan(cells: list[Cell], run_id: str, *, results_dir: str | None, timeout_s: float, quick: bool = False,
                 timing=None, memory_limit: int = 0, progress_stream=sys.stderr, artifacts_dir: str | None = None,
                 meta: dict | None = None, export_workers: int | None = None, remeasure: int = 0,
                 quiet_wait_s: float = 60.0, remeasure_which: str = "all",
                 diagnose_dir: str | None = None, cluster=None, retries: int = 1) -> list[dict]:
    """Runs the cells and returns the full records, one dict of every column per cell (also written to
    results_dir when given).

    Args:
        quick: shorthand for ``timing=TimingConfig.quick()``.
        timing: a :class:`suite.engine.TimingConfig` or a :class:`suite.budget.Budget` (see
            :func:`suite.scheduler.execute`); default: the engine's defaults, or quick.
        meta: :func:`suite.envinfo.run_metadata` when the caller collected it already.
        remeasure, quiet_wait_s, remeasure_which: noisy cells are timed again (see
            :func:`suite.scheduler.execute`).
        diagnose_dir: ``--diagnose``: each failing inference cell is localized (suite.diagnose) as soon as
            it fails, before the next cell runs (nothing is timed meanwhile); its report goes under this
            folder and its diagnosis columns into its record.
        cluster: a :class:`suite.cluster.Cluster` (``--ray``): the cells run on its nodes; each record
            carries the host and node that ran it. ``retries``: times a cell whose node was lost is tried
            again on another node.
    """
    from suite.engine import TimingConfig
    from suite.envinfo import run_metadata as collect_metadata
    from suite.scheduler import execute

    if timing is None:
        timing = TimingConfig.quick() if quick else TimingConfig()
    meta = meta if meta is not None else collect_metadata()
    writer = RunWriter(results_dir, run_id)
    progress = Progress(cells, progress_stream)
    records: list[dict] = []
    learn = getattr(timing, "finished", None)  # a Budget learns each cell's fixed cost
    from suite.peak import peaks_for
    from suite.roofline import with_roofline

    # the cached peaks of the profiles on this host (nothing measured here: `bench run` / `bench peak` do);
    # none on a cluster: this host's roofs are not those of the nodes
    peaks = {} if cluster is not None else \
        peaks_for({c.profile.name: c.profile for c in cells if c.status is None}.values())

    def on_result(cell: Cell, measured: dict) -> None:
        node = measured.pop("_node", None)
        if diagnose_dir is not None and cell.status is None and node is None:
            measured = dict(measured, **_diagnosis(cell, measured))
        result = Result.from_row(measured)
        sw = result.software
        if sw.framework_version and not sw.runtime_version and cell.target.format == "native":
            result = replace(result, software=replace(sw, runtime_version=sw.framework_version))
        identity = base_record(cell, run_id, dict(meta, **node) if node else meta)
        result = with_roofline(cell, identity, result, peaks.get(cell.profile.name))
        rec = Record(identity=identity, result=result).row()
        records.append(rec)
        writer.add(cell, rec)
        progress.finish(cell, rec)
        if learn is not None:
            learn(cell, rec)

    def _diagnosis(cell: Cell, measured: dict) -> dict:
        from suite.diagnose_run import diagnose_cell

        try:
            return diagnose_cell(cell, measured, diagnose_dir, timeout_s=timeout_s, memory_limit=memory_limit,
                                 artifacts_dir=artifacts_dir, log=lambda s: print(s, file=progress_stream, flush=True))
        except Exception as e:  # noqa: BLE001 - a diagnosis that breaks never loses the cell's record
            return {"diagnosis_summary": f"the diagnosis failed: {type(e).__name__}: {e}"}

    try:
        if cluster is not None:
            from suite.cluster import execute as on_cluster

            on_cluster(cluster, cells, on_result, timeout_s=timeout_s, timing=timing, memory_limit=memory_limit,
                       on_start=progress.start, artifacts_dir=artifacts_dir, on_exported=progress.exported,
                       retries=retries, remeasure=remeasure, quiet_wait_s=quiet_wait_s,
                       on_remeasure=progress.remeasure, remeasure_which=remeasure_which, on_placed=progress.placed)
            return records
        execute(cells, on_result, timeout_s=timeout_s, timing=timing, memory_limit=memory_limit,
                on_start=progress.start, artifacts_dir=artifacts_dir, on_exported=progress.exported,
                export_workers=export_workers, remeasure=remeasure, quiet_wait_s=quiet_wait_s,
                on_remeasure=progress.remeasure, remeasure_which=remeasure_which)
    finally:
        progress.close()
        writer.flush()
    return records

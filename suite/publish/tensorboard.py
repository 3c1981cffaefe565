"""Every run of the results store -> TensorBoard event files (`bench publish tensorboard`).

- **scalars**: each cell's median seconds per call, tag ``<cell key>/latency_median_s`` (the same key as
  MLflow, :mod:`suite.publish.common`), one step per run: step ``i`` is the i-th run in start order
  (its first row's time), wall time the cell's row time. A cell missing from a run has no point there.
  TensorBoard keeps scalars as float32 (7 significant digits: far below timing noise).
- **text**: tag ``run_summary``, one Markdown summary per run at that run's step: where it ran, the
  status counts and a table of every cell (status, stage, median, numerics errors).

The whole history is one event file ``events.out.tfevents.<time>.<host>.bench-suite`` in LOGDIR, written
under a temporary name and renamed into place; the file of an earlier publish is then removed, so
publishing again replaces the history instead of doubling it. Other event files in LOGDIR are left alone.

Written with the ``tensorboard`` package alone (its protos, summary builders and record writer): neither
TensorFlow nor torch is imported. (``tensorboard``'s own ``EventFileWriter`` would import TensorFlow
when it is installed, 15 s here, so the records are written to a plain file.)
"""
from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from suite.publish.common import PublishError, markdown_summary, metric_key, num, run_rows, run_times

SUFFIX = ".bench-suite"
TEXT_TAG = "run_summary"
INSTALL = "pip install -e '.[tensorboard]'"


@dataclass(frozen=True)
class Written:
    """What :func:`publish` wrote."""

    path: Path
    runs: tuple[str, ...]  # in step order
    tags: int              # scalar series
    points: int            # scalar points

    def line(self) -> str:
        return (f"tensorboard: {len(self.runs)} run(s) as steps 0-{len(self.runs) - 1}, {self.tags} scalar series, "
                f"{self.points} points -> {self.path} (view: tensorboard --logdir {self.path.parent})")


def _ts(ts) -> float:
    return ts.timestamp()


def publish(results_dir: str | Path, logdir: str | Path) -> Written:
    """Writes the history of every stored run into ``logdir`` (see the module docstring).

    Args:
        results_dir: the results folder.
        logdir: the TensorBoard log folder (created if missing).
    Returns:
        :class:`Written`.
    Raises:
        PublishError: TensorBoard missing, no results, a log folder that cannot be written.
    """
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.scalar.summary_v2 import scalar_pb
        from tensorboard.plugins.text.summary_v2 import text_pb
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError as e:
        raise PublishError(f"TensorBoard is not installed ({e.name or e}): {INSTALL}") from None
    times = run_times(results_dir)
    if not times:
        raise PublishError(f"no results in {results_dir} (run `bench run` first, or give --results DIR)")
    logdir = Path(logdir)
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=logdir, prefix=".bench-suite.", suffix=".tmp")  # no "tfevents": unseen
    except OSError as e:
        raise PublishError(f"--logdir {logdir}: {e.strerror or e}") from None
    series: set[str] = set()
    points = 0
    try:
        with os.fdopen(fd, "wb") as f:
            writer = RecordWriter(f)
            writer.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
            for step, (run_id, (start, _end)) in enumerate(times.items()):
                rows = run_rows(results_dir, run_id)
                for r in rows:
                    v = num(r.get("latency_median_s"))
                    if v is None:
                        continue
                    tag = metric_key(r, "latency_median_s")
                    desc = None if tag in series else "median seconds per call of this cell, one step per run"
                    series.add(tag)
                    points += 1
                    writer.write(event_pb2.Event(wall_time=_ts(r["timestamp"]), step=step,
                                                 summary=scalar_pb(tag, v, description=desc)).SerializeToString())
                summary = text_pb(TEXT_TAG, markdown_summary(run_id, rows),
                                  description="one Markdown summary per run (step = run)")
                writer.write(event_pb2.Event(wall_time=_ts(start), step=step, summary=summary).SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        old = sorted(logdir.glob(f"events.out.tfevents.*{SUFFIX}"))
        path = logdir / f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}{SUFFIX}"
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; an event file is as readable as any
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    for p in old:
        if p != path:
            p.unlink(missing_ok=True)
    return Written(path, tuple(times), len(series), points)

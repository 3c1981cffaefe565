"""The arguments of `bench publish mlflow|tensorboard` and `bench run --mlflow`, and what they do.

Imports no tracker: `bench --help` builds these parsers. Errors are
:class:`suite.publish.common.PublishError`, which suite.cli prints as one line with exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_EXPERIMENT = "bench-suite"  # suite.publish.mlflow.DEFAULT_EXPERIMENT (not imported: keep --help light)


def add_run_args(r: argparse.ArgumentParser) -> None:
    """`bench run --mlflow [TRACKING_URI] [--mlflow-experiment NAME]`."""
    r.add_argument("--mlflow", nargs="?", const="", default=None, metavar="TRACKING_URI",
                   help="log the run to MLflow when it ends (default store: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///<checkout>/mlflow.db); see `bench publish mlflow -h`")
    r.add_argument("--mlflow-experiment", default=DEFAULT_EXPERIMENT, metavar="NAME",
                   help=f"MLflow experiment of --mlflow (default {DEFAULT_EXPERIMENT})")


def add_publish_parser(sub) -> None:
    """`bench publish mlflow ...` and `bench publish tensorboard ...`."""
    p = sub.add_parser("publish", help="log a run to MLflow, or every run's history to TensorBoard")
    trackers = p.add_subparsers(dest="tracker", metavar="TRACKER")
    trackers.required = True
    m = trackers.add_parser("mlflow", help="log one run as one MLflow run: params, per-cell metrics, tags, artifacts",
                            description="Log one run of the results store as one MLflow run. Metric keys: "
                            "<workload>/<sweep>/<target>/<profile>[/train]/<metric>, sanitized (README). "
                            "A run already published (tag bench.run_id) is reported, not logged twice.")
    m.add_argument("--results", default=None, metavar="DIR", help="results folder (default: results/)")
    m.add_argument("--run-id", default=None, metavar="ID", help="the run to publish (default: the latest)")
    m.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<checkout>/mlflow.db)")
    m.add_argument("--experiment", default=DEFAULT_EXPERIMENT, metavar="NAME",
                   help=f"MLflow experiment, created when missing (default {DEFAULT_EXPERIMENT})")
    m.add_argument("--force", action="store_true",
                   help="log the run again although it is published; the earlier MLflow run is then deleted")
    m.add_argument("--dashboard", default=None, metavar="DIR",
                   help="attach this built dashboard folder (default: dashboard/site/ when --results is not given "
                        "and it is built)")
    m.add_argument("--no-dashboard", action="store_true", help="attach no dashboard")
    t = trackers.add_parser("tensorboard", help="write every run's medians (one step per run) and a summary per run",
                            description="Write the history of every cell's median (scalars, one step per run in "
                            "run order) and a Markdown summary of each run (text) as TensorBoard event files.")
    t.add_argument("--logdir", required=True, metavar="DIR", help="TensorBoard log folder (created if missing)")
    t.add_argument("--results", default=None, metavar="DIR", help="results folder (default: results/)")


def cmd_publish(args, results_dir: str, default_site: Path) -> int:
    """Runs `bench publish ...` (suite.cli turns a PublishError into exit code 2)."""
    from suite.publish.common import PublishError

    if args.tracker == "tensorboard":
        from suite.publish.tensorboard import publish

        print(publish(results_dir, args.logdir).line())
        return 0
    from suite.publish.mlflow import publish

    if args.dashboard and args.no_dashboard:
        raise PublishError("give --dashboard DIR or --no-dashboard, not both")
    site = None
    if args.dashboard:
        site = Path(args.dashboard)
        if not site.is_dir():
            raise PublishError(f"--dashboard {site}: not a folder")
    elif not args.no_dashboard and args.results is None and (default_site / "index.html").is_file():
        site = default_site
    print(publish(results_dir, args.run_id, args.tracking_uri, args.experiment, force=args.force,
                  dashboard=site).line())
    return 0


class RunPublisher:
    """`bench run --mlflow`: connects before the run (a bad URI or a missing MLflow stops the run before any
    cell is timed), publishes when it ends."""

    def __init__(self, args):
        self.tracker = None
        self.started = time.time()
        if args.mlflow is not None:
            from suite.publish.mlflow import connect

            self.tracker = connect(args.mlflow or None, args.mlflow_experiment)
            print(f"mlflow: the run will be logged to experiment {self.tracker.experiment!r} ({self.tracker.uri})",
                  file=sys.stderr)

    def publish(self, results_dir: str, run_id: str, site: Path | None) -> None:
        """Logs the finished run; attaches ``site`` when it was (re)built during this run."""
        if self.tracker is None:
            return
        from suite.publish.mlflow import publish

        fresh = site if site is not None and (site / "index.html").is_file() \
            and (site / "index.html").stat().st_mtime >= self.started else None
        print(publish(results_dir, run_id, tracker=self.tracker, force=True, dashboard=fresh).line())

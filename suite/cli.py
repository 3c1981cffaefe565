"""The `bench` command. Imports nothing heavy at start: `bench --help` stays instant and framework-free.

Exit codes: 0 every cell ok (pass, skipped, unsupported); 1 a cell failed, crashed or timed out;
2 bad arguments or bad files (one line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    """Bad arguments: printed as one line, exit code 2."""


def _default_dir(name: str) -> str:
    """`name` in the current directory if there, else in the checkout this package lives in."""
    here = Path(name)
    return str(here if here.is_dir() else REPO_ROOT / name)


DEFAULT_PROFILES_HELP = "the profiles marked `default: true` (cpu, and cuda / tpu where available)"


def _add_matrix_args(p: argparse.ArgumentParser, default_profiles: str | None) -> None:
    p.add_argument("-w", "--workload", action="append", metavar="WORKLOAD",
                   help="workload name or YAML path (repeatable; default: all in workloads/)")
    p.add_argument("-t", "--target", action="append", metavar="TARGET",
                   help="target id (repeatable; default: all); see `bench list`")
    p.add_argument("-p", "--profile", action="append", metavar="PROFILE",
                   help=f"hardware profile (repeatable; default: {default_profiles or DEFAULT_PROFILES_HELP})")
    p.add_argument("--all-profiles", action="store_true",
                   help="every hardware profile (those not available here: one line, skipped rows)")
    p.add_argument("--timeout", type=float, default=900.0, metavar="S",
                   help="per-cell limit in seconds before the worker is killed (default 900)")
    p.add_argument("--worker-memory-gb", type=float, default=0.0, metavar="GB",
                   help="address-space limit of each worker (default: none)")
    p.add_argument("--mode", choices=("inference", "train", "all"), default="inference",
                   help="inference (forward pass), train (forward, loss, backward, optimiser update; "
                        "workloads with a train: section) or all (default: inference)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bench", description="Benchmark and hardware portability suite: one workload, "
                                 "every framework, format and runtime — verified against NumPy, then timed.")
    ap.add_argument("--workloads-dir", default=None, help="folder of workload YAML files (default: workloads/)")
    ap.add_argument("--profiles-dir", default=None, help="folder of hardware profiles (default: hardware_profiles/)")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser("list", help="list workloads, targets and hardware profiles")
    sub.add_parser("env", help="print the environment and which profiles are available here, and why not")

    pk = sub.add_parser("peak", help="measure (or show the cached) peak FLOP/s and memory bandwidth of a CPU "
                        "profile on this host: the roofline's roofs")
    pk.add_argument("-p", "--profile", default="cpu", metavar="PROFILE", help="hardware profile (default: cpu)")
    pk.add_argument("--rerun", action="store_true", help="measure again even when a peak is cached")
    pk.add_argument("-l", "--library", action="append", metavar="LIB", choices=("numpy", "torch", "jax", "tensorflow"),
                    help="GEMM library to time (repeatable; default: every one installed; NumPy is always timed "
                         "for the copy)")
    pk.add_argument("--size", type=int, default=None, metavar="N",
                    help="GEMM matrix size N (N x N float32; default 1536, or the cached one)")
    pk.add_argument("--copy-mb", type=float, default=None, metavar="MB",
                    help="MiB of each array of the bandwidth copy (default: 4x the last-level cache, >= 128)")
    pk.add_argument("--seconds", type=float, default=None, metavar="S",
                    help="GEMM sampling time per library (default 1; the copy gets half)")

    v = sub.add_parser("verify", help="check every target against the NumPy float64 reference (no timing)")
    _add_matrix_args(v, None)
    v.add_argument("--sweep", choices=("first", "all"), default="all",
                   help="every sweep point of each workload (default), or only its first")
    v.add_argument("--artifacts", default=None, metavar="DIR",
                   help="use exported artifacts from DIR (from `bench export --out DIR`) instead of the cache")
    v.add_argument("--diagnose", action="store_true",
                   help="localize each failing inference cell (bench diagnose; reports and repro bundles under "
                        "results/diagnoses/)")

    r = sub.add_parser("run", help="verify, then time, the workload × sweep × target × profile matrix")
    _add_matrix_args(r, None)
    r.add_argument("--sweep", choices=("first", "all"), default="first",
                   help="the first sweep point of each workload (its first value of each sweep parameter, "
                        "default) or every point")
    r.add_argument("--quick", action="store_true", help="smoke-run timing: few samples, at most 0.1 s per cell")
    r.add_argument("--precise", action="store_true",
                   help="the engine's full stop rule (judged after 0.5 s, capped at 10 s per cell) instead of "
                        "the default's shorter windows (0.25 s, 1.5 s)")
    r.add_argument("--budget", default=None, metavar="DURATION",
                   help="plan each cell's measuring time so the run ends within DURATION (e.g. 30m, 1h, 90s)")
    r.add_argument("--full", action="store_true", help="the whole matrix, carefully: --sweep all --all-profiles "
                   "--precise")
    r.add_argument("--export-workers", type=int, default=None, metavar="N",
                   help="exports run N at a time before any cell is timed (default: one per core; 1: each "
                        "export_s measured alone)")
    r.add_argument("--remeasure", type=int, default=None, metavar="N",
                   help="time a noisy cell (busy host, steal, drifting or two-level samples) again, up to N "
                        "times, at the end of its group once the host is quiet (default: once with --precise; "
                        "once for a busy host or steal only in the default run; never with --quick)")
    r.add_argument("--quiet-wait", type=float, default=60.0, metavar="S",
                   help="before timing a noisy cell again, wait for the host to be quiet, at most S seconds "
                        "in the whole run (default 60)")
    r.add_argument("--results", default=None, metavar="DIR", help="results folder (default: results/)")
    r.add_argument("--run-id", default=None, help="run id (default: a new timestamped id)")
    r.add_argument("--resume", action="store_true", help="skip cells already stored under --run-id")
    r.add_argument("--no-dashboard", action="store_true", help="do not rebuild the dashboard at the end")
    _publish_cli().add_run_args(r)
    r.add_argument("--no-peak", action="store_true", help="do not measure a CPU profile's NumPy peak when none is "
                   "cached (about 2 s per profile, once per host; without it roofline_fraction stays null)")
    r.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the cells on a Ray cluster (HOST:PORT, auto, or $RAY_ADDRESS when no value is given); "
                        "each cell goes to a node that offers its profile (`bench node`); needs the [cluster] extra")
    r.add_argument("--retries", type=int, default=1, metavar="N",
                   help="with --ray: times a cell whose node was lost is tried again on another node (default 1)")

    n = sub.add_parser("node", help="advertise this host's hardware profiles and frameworks to a Ray cluster "
                       "(starts a Ray node with them as resources; see `bench run --ray`)")
    where = n.add_mutually_exclusive_group()
    where.add_argument("--address", default=None, metavar="HOST:PORT", help="join the cluster whose head is there")
    where.add_argument("--head", action="store_true", help="start the cluster's head node here")
    n.add_argument("-p", "--profile", action="append", metavar="PROFILE",
                   help="offer only these profiles (repeatable; default: every profile available here)")
    n.add_argument("--print", action="store_true", dest="print_only",
                   help="print the resources as JSON (for `ray start --resources`) and start nothing")
    n.add_argument("ray_args", nargs=argparse.REMAINDER, metavar="-- RAY_START_ARGS",
                   help="more arguments for `ray start` (e.g. -- --num-cpus 4 --block)")

    d = sub.add_parser("dashboard", help="build the static comparison site (plotly) from the results")
    d.add_argument("--results", default=None, metavar="DIR", help="results folder (default: results/)")
    d.add_argument("--out", default=None, metavar="DIR", help="site folder (default: dashboard/site/)")
    d.add_argument("--baseline", default=None, metavar="TARGET", help="default baseline of the speed view")
    r.add_argument("--artifacts", default=None, metavar="DIR",
                   help="use exported artifacts from DIR (from `bench export --out DIR`) instead of the cache")
    r.add_argument("--diagnose", action="store_true",
                   help="localize each failing inference cell (bench diagnose) as it fails; the diagnosis is "
                        "stored with the cell, reports and repro bundles under <results>/diagnoses/<run id>/")

    d = sub.add_parser("diagnose", help="where a failing cell leaves the reference: every node in the graph and "
                       "alone, and the first node wrong on its own (the culprit)")
    d.add_argument("-w", "--workload", required=True, metavar="WORKLOAD", help="workload name or YAML path")
    d.add_argument("-t", "--target", required=True, metavar="TARGET", help="target id; see `bench list`")
    d.add_argument("-p", "--profile", default="cpu", metavar="PROFILE", help="hardware profile (default: cpu)")
    d.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="sweep point (repeatable, e.g. --param batch=32; default: the first value of each)")
    d.add_argument("--mode", choices=("inference", "train"), default="inference",
                   help="inference (outputs, node by node) or train (gradients from the loss back, and the "
                        "updated parameters); default inference")
    d.add_argument("--out", default=None, metavar="DIR",
                   help="folder of the report and the rewritten workloads (default: "
                        "results/diagnoses/<workload>-<target>-<profile>)")
    d.add_argument("--timeout", type=float, default=900.0, metavar="S",
                   help="per-cell limit in seconds before the worker is killed (default 900)")
    d.add_argument("--worker-memory-gb", type=float, default=0.0, metavar="GB",
                   help="address-space limit of each worker (default: none)")
    d.add_argument("--artifacts", default=None, metavar="DIR",
                   help="use exported artifacts from DIR (from `bench export --out DIR`) instead of the cache")

    e = sub.add_parser("export", help="export/convert the artifacts of export targets into a folder (no run)")
    _add_matrix_args(e, "cpu")
    e.add_argument("--out", required=True, metavar="DIR", help="folder to write artifacts and manifests into")
    e.add_argument("--no-verify", action="store_true",
                   help="do not verify the artifacts with their runtime (by default the figures against the "
                        "reference are written into each artifact's provenance)")

    c = sub.add_parser("compare", help="regression verdicts between two runs (exit 1 on a regression)")
    c.add_argument("base", metavar="BASE", help="run id (in --results) or a results folder (its latest run)")
    c.add_argument("new", metavar="NEW", help="run id (in --results) or a results folder (its latest run)")
    c.add_argument("--results", default=None, metavar="DIR", help="where run ids are looked up (default: results/)")
    c.add_argument("--factor", type=float, default=1.10,
                   help="ratio of medians a change must exceed (default 1.10; 1.0 = significance only)")
    c.add_argument("--alpha", type=float, default=0.01, help="Mann-Whitney U significance level (default 0.01)")
    c.add_argument("--noise-k", type=float, default=4.0, metavar="K",
                   help="a change must also exceed K times the pair's run-to-run spread, measured per profile over "
                        "the cells clean in both runs (default 4; 0: the factor alone)")
    c.add_argument("--format", choices=("table", "markdown", "json"), default="table", help="output format")

    k = sub.add_parser("card", help="write a model card (Markdown and JSON) of one workload × target from the results")
    k.add_argument("-w", "--workload", required=True, metavar="WORKLOAD", help="workload name or YAML path")
    k.add_argument("-t", "--target", required=True, metavar="TARGET", help="target id")
    k.add_argument("-p", "--profile", action="append", metavar="PROFILE", help="only these profiles (repeatable)")
    k.add_argument("--results", default=None, metavar="DIR", help="results folder (default: results/)")
    k.add_argument("--run-id", default=None, help="run id (default: the latest run with the cell)")
    k.add_argument("--out", default=".", metavar="DIR", help="folder for the card files (default: .)")

    pv = sub.add_parser("provenance", help="print the provenance an exported artifact carries (JSON)")
    pv.add_argument("path", metavar="PATH", help=".onnx / .tflite / .pt2 file, SavedModel folder or artifact folder")

    _publish_cli().add_publish_parser(sub)
    return ap


def _publish_cli():
    """suite.publish.cli: the `bench publish` and `bench run --mlflow` arguments (imports no tracker)."""
    from suite.publish import cli

    return cli


def _selection(args, default_profiles: list[str] | None):
    from suite.profiles import detect, load_profiles
    from suite.spec import load_workloads
    from suite.targets.registry import TARGETS, get_target

    workloads = load_workloads(args.workloads_dir or _default_dir("workloads"), args.workload)
    if not workloads:
        raise UsageError("no workloads found")
    try:
        targets = [get_target(t) for t in args.target] if args.target else list(TARGETS.values())
    except KeyError as e:
        raise UsageError(e.args[0]) from None
    profiles = load_profiles(args.profiles_dir or _default_dir("hardware_profiles"))
    if args.profile and args.all_profiles:
        raise UsageError("give -p or --all-profiles, not both")
    names = args.profile or (list(profiles) if args.all_profiles else default_profiles) \
        or [n for n, p in profiles.items() if p.default] or list(profiles)
    unknown = [n for n in names if n not in profiles]
    if unknown:
        raise UsageError(f"unknown profile {unknown[0]!r}; known: {', '.join(profiles)}")
    chosen = {n: profiles[n] for n in names}
    return workloads, targets, chosen, {n: detect(p) for n, p in chosen.items()}


def _plan(args, workloads, targets, profiles, avail, timed: bool, cluster=None):
    """Cells of every chosen mode; train mode by default only lists targets that have a training step."""
    from suite.plan import make_plan, trains

    modes = ("inference", "train") if args.mode == "all" else (args.mode,)
    cells = []
    for mode in modes:
        ts = targets if mode == "inference" or args.target else [t for t in targets if trains(t)]
        cells += make_plan(workloads, ts, profiles, avail, mode=mode, timed=timed,
                           memory_limit=int(args.worker_memory_gb * 2**30), points=getattr(args, "sweep", "all"),
                           missing=cluster.missing if cluster is not None else None)
    _prepare_sources(cells, args.timeout)
    return cells


def _prepare_sources(cells, timeout: float) -> None:
    """Builds each source: model once in its own framework's subprocess (a bad one is a SpecError, exit 2)
    and caches the float64 reference of every sweep point a cell will run (:func:`suite.sources.prepare`)."""
    from suite import sources

    points: dict[str, tuple] = {}
    for c in cells:
        if c.status is None and c.workload.source is not None:
            points.setdefault(c.workload.name, (c.workload, []))[1].append(c.params_dict)
    for wl, pts in points.values():
        took = sources.prepare([wl], pts, timeout=max(timeout, 600))
        if wl.name in took:
            print(f"{wl.name}: source model ({sources.describe(wl)}) checked, float64 reference of "
                  f"{len({json.dumps(p, sort_keys=True) for p in pts})} point(s) in {took[wl.name]:.1f} s",
                  file=sys.stderr, flush=True)


def cmd_verify(args) -> int:
    from suite.report import status_counts, verify_table
    from suite.results import new_run_id
    from suite.runner import execute_plan
    from suite.verify import GOOD_STATUSES

    workloads, targets, profiles, avail = _selection(args, None)
    cells = _plan(args, workloads, targets, profiles, avail, timed=False)
    records = execute_plan(cells, new_run_id(), results_dir=None, quick=True, timeout_s=args.timeout,
                           memory_limit=int(args.worker_memory_gb * 2**30), artifacts_dir=args.artifacts,
                           diagnose_dir=str(Path(_default_dir("results")) / "diagnoses") if args.diagnose else None)
    print(verify_table(records))
    print(f"\n{len(records)} cells: {status_counts(records)}")
    _print_diagnoses(records)
    return 0 if all(r["status"] in GOOD_STATUSES for r in records) else 1


def _sweep_point(wl, given: list[str]) -> dict[str, int]:
    """The sweep point of ``--param NAME=VALUE`` flags (default: the first value of each parameter)."""
    point = dict(wl.param_grid()[0])
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or name not in wl.sweep:
            raise UsageError(f"--param {item!r}: expected NAME=VALUE with NAME one of {', '.join(wl.sweep)}")
        try:
            point[name] = int(value)
        except ValueError:
            raise UsageError(f"--param {item!r}: expected an integer value") from None
        if point[name] not in wl.sweep[name]:
            raise UsageError(f"--param {item!r}: {wl.name} sweeps {name} over "
                             f"{', '.join(map(str, wl.sweep[name]))}")
    return point


def cmd_diagnose(args) -> int:
    from suite.diagnose import table
    from suite.diagnose_run import diagnose
    from suite.plan import missing_requirement, trains
    from suite.targets.common.artifacts import slug

    args.workload, args.target, args.profile = [args.workload], [args.target], [args.profile]
    args.all_profiles = False
    (wl,), (info,), profiles, avail = _selection(args, None)
    (profile,) = profiles.values()
    if wl.source is not None:
        raise UsageError(f"bench diagnose localizes within a graph workload; {wl.name} is a source: model "
                         f"({wl.source.framework}), whose layers the suite does not know")
    ok, why = avail[profile.name]
    if not ok:
        raise UsageError(f"profile {profile.name} is not available here: {why}")
    if args.mode == "train":
        from suite.training import unsupported_point

        why = unsupported_point(wl, _sweep_point(wl, args.param))
        if why is None and not trains(info):
            why = f"{info.id} has no training step (export formats and runtimes are inference artifacts)"
        if why:
            raise UsageError(f"bench diagnose --mode train: {why}")
    missing = missing_requirement(info)
    if missing:
        raise UsageError(f"{info.id} cannot run here: {missing}")
    params = _sweep_point(wl, args.param)
    out = args.out or str(Path(_default_dir("results")) / "diagnoses" / f"{wl.name}-{slug(info.id)}-{profile.name}"
                                                                        f"{'-train' if args.mode == 'train' else ''}")
    diag = diagnose(wl, info, profile, params, out, timeout_s=args.timeout, mode=args.mode,
                    memory_limit=int(args.worker_memory_gb * 2**30), artifacts_dir=args.artifacts,
                    log=lambda s: print(s, file=sys.stderr, flush=True))
    point = " ".join(f"{k}={v}" for k, v in params.items())
    print(f"{wl.name} [{point}] {info.id} @{profile.name}: {diag.status}" + (f" ({diag.reason})" if diag.reason else ""))
    if diag.nodes:
        print("\n".join(table(diag)))
    print(diag.summary)
    print(f"report: {Path(out) / 'report.md'} ({diag.seconds:g} s)")
    return 0 if diag.status == "pass" else 1


def _print_diagnoses(records: list[dict]) -> None:
    """One paragraph per diagnosed cell (``--diagnose``)."""
    done = [r for r in records if r.get("diagnosis_summary")]
    if done:
        print(f"\ndiagnoses ({len(done)}):")
    for r in done:
        point = " ".join(f"{k}={v}" for k, v in json.loads(r["params"]).items())
        bundle = f"\n    repro bundle: {r['diagnosis_bundle']}" if r.get("diagnosis_bundle") else ""
        print(f"  {r['workload']} [{point}] {r['target']} @{r['profile']}: {r['diagnosis_summary']}{bundle}")


def _apply_full(args) -> None:
    """``--full``: every sweep point, every profile (unless -p names some) and the precise stop rule."""
    if args.full:
        args.sweep, args.precise = "all", True
        args.all_profiles = args.all_profiles or not args.profile


def cmd_run(args) -> int:
    from suite.budget import DEFAULT_DEADLINE_S, Budget, parse_duration
    from suite.engine import TimingConfig
    from suite.envinfo import busy_warning, host_load, run_metadata
    from suite.report import noisy_summary, run_table, status_counts
    from suite.results import cell_key, new_run_id, stored_keys
    from suite.runner import execute_plan
    from suite.verify import GOOD_STATUSES

    if args.resume and not args.run_id:
        raise UsageError("--resume needs --run-id of the run to finish")
    _apply_full(args)
    chosen = [f for f, on in (("--quick", args.quick), ("--precise", args.precise), ("--budget", args.budget)) if on]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} both say how long to measure: give one")
    if args.export_workers is not None and args.export_workers < 1:
        raise UsageError("--export-workers must be at least 1")
    if args.remeasure is not None and args.remeasure < 0:
        raise UsageError("--remeasure must be 0 or more")
    if args.quiet_wait < 0:
        raise UsageError("--quiet-wait must be 0 or more seconds")
    # Drift and two levels are common on a small VM (38% of a default run's cells here) and a second try
    # costs a whole cell: the coffee-break default re-times only what a neighbour spoiled.
    remeasure, which = (args.remeasure, "all") if args.remeasure is not None else \
        (0, "all") if args.quick else (1, "all") if args.precise else (1, "neighbour")
    budget_s = None
    if args.budget:
        try:
            budget_s = parse_duration(args.budget)
        except ValueError as e:
            raise UsageError(str(e)) from None
    if args.retries < 0:
        raise UsageError("--retries must be 0 or more")
    if args.ray is not None and args.diagnose:
        raise UsageError("--diagnose runs on this host: give it without --ray (or run `bench diagnose` on a node)")
    results_dir = args.results or _default_dir("results")
    run_id = args.run_id or new_run_id()
    workloads, targets, profiles, avail = _selection(args, None)
    cluster = _connect(args.ray) if args.ray is not None else None
    if cluster is not None:
        avail = cluster.availability(profiles)
        print(f"cluster {cluster.address or 'auto'}: {len(cluster.nodes())} node(s); "
              + "; ".join(f"{n}: {why}" for n, (_ok, why) in avail.items()), file=sys.stderr)
    cells = _plan(args, workloads, targets, profiles, avail, timed=True, cluster=cluster)
    if args.resume:
        done = stored_keys(results_dir, run_id)
        before = len(cells)
        cells = [c for c in cells if c.key not in done]
        print(f"resuming {run_id}: {before - len(cells)} cells already stored, {len(cells)} to go", file=sys.stderr)
    try:
        publisher = _publish_cli().RunPublisher(args)  # --mlflow: a bad URI stops here, before any cell runs
    except _publish_error() as e:
        raise UsageError(str(e)) from None
    meta = dict(run_metadata(), **host_load())
    busy = busy_warning(meta)
    if busy:
        print(f"bench: warning: {busy}", file=sys.stderr)
    if not args.no_peak and cluster is None:  # the roofline's roofs, before a --budget's clock starts (suite.peak)
        from suite.peak import ensure_for_run

        ensure_for_run(cells, host_busy=meta.get("host_busy_start"))
    if budget_s is not None:
        timing = Budget(budget_s, cells)
    elif args.quick or args.precise:
        timing = TimingConfig.preset("quick" if args.quick else "precise")
    else:  # the standard preset, shortened for the cells left only if the run would end after the deadline
        timing = Budget(DEFAULT_DEADLINE_S, cells, ceiling=TimingConfig.standard())
    how = f"budget {args.budget}" if budget_s else "quick" if args.quick else "precise" if args.precise else \
        f"standard timing within {DEFAULT_DEADLINE_S // 60} min (--precise, --budget: see bench run -h)"
    print(f"run {run_id}: {len(cells)} cells ({', '.join(profiles)}; {args.sweep} sweep point"
          f"{'s' if args.sweep == 'all' else ''}; {how}) -> {results_dir}", file=sys.stderr)
    records = execute_plan(cells, run_id, results_dir=results_dir, timing=timing, timeout_s=args.timeout,
                           memory_limit=int(args.worker_memory_gb * 2**30), artifacts_dir=args.artifacts, meta=meta,
                           export_workers=args.export_workers, remeasure=remeasure, quiet_wait_s=args.quiet_wait,
                           remeasure_which=which, cluster=cluster, retries=args.retries,
                           diagnose_dir=str(Path(results_dir) / "diagnoses" / run_id) if args.diagnose else None)
    retried = _retried(records)
    if retried:  # a cell whose node was lost has its crashed row and the row of its new try: the last counts
        records = list({cell_key(r): r for r in records}.values())
    print(run_table(records))
    print(f"\n{len(records)} cells: {status_counts(records)}; results in {results_dir} (run id {run_id})")
    for line in retried:
        print(line)
    _print_diagnoses(records)
    noisy = noisy_summary(records, remeasure)
    if noisy:
        print(noisy)
    if isinstance(timing, Budget):
        print(timing.summary())
    if busy:
        print(f"note: {busy}")
    if not args.no_dashboard:
        _build_dashboard_quietly(results_dir)
    try:
        publisher.publish(results_dir, run_id, None if args.no_dashboard else _dashboard_out(None))
    except _publish_error() as e:
        raise UsageError(f"{e} (the run is stored: retry with `bench publish mlflow --run-id {run_id}`)") from None
    return 0 if all(r["status"] in GOOD_STATUSES for r in records) else 1


def _retried(records: list[dict]) -> list[str]:
    """One line per cell of a cluster run tried again after its node was lost: where it crashed, how it ended."""
    from suite.results import cell_key

    rows: dict[tuple, list[dict]] = {}
    for r in records:
        rows.setdefault(cell_key(r), []).append(r)
    lines = []
    for rs in rows.values():
        if len(rs) > 1:
            tries = ", then ".join(f"{r['status']} on {r.get('host')} ({str(r.get('node_id'))[:8]})" for r in rs)
            lines.append(f"retried: {rs[-1]['workload']} {rs[-1]['target']} @{rs[-1]['profile']}: {tries}")
    return lines


def _connect(address: str):
    """A :class:`suite.cluster.Cluster` at ``--ray ADDRESS`` (empty: $RAY_ADDRESS, else auto)."""
    from suite.cluster import Cluster, ClusterError

    try:
        return Cluster(address or os.environ.get("RAY_ADDRESS") or "auto")
    except ClusterError as e:
        raise UsageError(str(e)) from None


def cmd_node(args) -> int:
    import shlex
    import subprocess

    from suite.cluster import node_resources
    from suite.profiles import load_profiles

    profiles = load_profiles(args.profiles_dir or _default_dir("hardware_profiles"))
    try:
        res, lines = node_resources(profiles, args.profile)
    except KeyError as e:
        raise UsageError(f"unknown profile {e.args[0]!r}; known: {', '.join(profiles)}") from None
    if args.print_only:
        print(json.dumps(res, sort_keys=True))
        return 0
    for line in lines:
        print(f"bench node: {line}", file=sys.stderr)
    if not any(k.startswith("bench-profile:") for k in res):
        raise UsageError("this host offers none of the profiles asked for: nothing to advertise")
    if not args.head and not args.address:
        raise UsageError("give --address HOST:PORT of the cluster's head, or --head to start one here")
    extra = [a for a in args.ray_args if a != "--"]
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", *(["--head"] if args.head else
                                                                  ["--address", args.address]),
           "--resources", json.dumps(res, sort_keys=True), *extra]
    if importlib.util.find_spec("ray") is None:
        raise UsageError("ray is not installed: pip install 'bench-suite[cluster]'")
    print(f"bench node: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    return subprocess.run(cmd).returncode


def _dashboard_out(out: str | None) -> Path:
    return Path(out) if out else Path(_default_dir("dashboard")) / "site"


def _build_dashboard_quietly(results_dir: str) -> None:
    """End of `bench run`: rebuild the site; a failure is one warning line, never the run's exit code."""
    try:
        from suite.dashboard import build_dashboard

        info = build_dashboard(results_dir, _dashboard_out(None))
        print(f"dashboard: {info.index}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - the run's results are stored; the site is a convenience
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"bench: warning: dashboard not built: {type(e).__name__}: {first}", file=sys.stderr)


def cmd_dashboard(args) -> int:
    try:
        from suite.dashboard import build_dashboard
        from suite.dashboard.data import DashboardError
    except ImportError as e:
        raise UsageError(f"the dashboard needs plotly: pip install -e '.[dashboard]' ({e})") from None
    try:
        info = build_dashboard(args.results or _default_dir("results"), _dashboard_out(args.out),
                               baseline=args.baseline)
    except DashboardError as e:
        raise UsageError(str(e)) from None
    except ImportError as e:
        raise UsageError(f"the dashboard needs plotly: pip install -e '.[dashboard]' ({e})") from None
    print(f"dashboard: {info.index} ({info.rows} rows, {info.runs} run(s), {info.figures} figures, "
          f"{info.site_bytes / 1e6:.1f} MB, {info.seconds:.1f} s)")
    return 0


def cmd_export(args) -> int:
    """Exports every selected export target's artifacts into --out: the workstation half of
    "export here, run there" (`bench run --artifacts DIR` on the runtime-only machine)."""
    from suite.plan import make_plan
    from suite.scheduler import export_phase
    from suite.targets.common.artifacts import cell_dir, is_export_target

    if not args.target:
        from suite.targets.registry import TARGETS

        args.target = [t for t, i in TARGETS.items() if is_export_target(i)]
    workloads, targets, profiles, avail = _selection(args, ["cpu"])
    if not all(is_export_target(t) for t in targets):
        raise UsageError("not export targets (nothing to export): "
                         + ", ".join(t.id for t in targets if not is_export_target(t)))
    cells, seen = [], set()
    for c in make_plan(workloads, targets, profiles, avail):
        folder = cell_dir(args.out, c.workload, c.params_dict, c.target, c.profile.device)
        if folder not in seen:  # one artifact per cell, whatever the profile (per device for IREE)
            seen.add(folder)
            cells.append(c)
    failed = []

    def report(cell, rec):
        if rec["status"] not in ("skipped", "unsupported"):
            failed.append(cell)
        print(f"{rec['status']:<12} {cell.workload.name} {cell.params_json} {cell.target.id}: "
              f"{rec.get('status_reason', '')}".rstrip(": "), flush=True)

    planned = [c for c in cells if not c.status]
    for c in cells:
        if c.status:
            report(c, {"status": c.status, "status_reason": c.reason})
    ready = export_phase(planned, report, artifacts_dir=args.out, timeout_s=args.timeout,
                         memory_limit=int(args.worker_memory_gb * 2**30), check_versions=True)
    verified = {}
    if not args.no_verify and ready:
        verified = _verify_exported(ready, args.out, timeout_s=args.timeout,
                                    memory_limit=int(args.worker_memory_gb * 2**30))
    for cell, art in ready:
        size = art.get("artifact_bytes") or 0
        v = verified.get(art["artifact"])
        print(f"{'exported':<12} {cell.workload.name} {cell.params_json} {cell.target.id}: "
              f"{size / 1e6:.2f} MB, export {art.get('export_s') or 0:.2f} s -> {art['artifact']}"
              + (f"; verify {v}" if v else ""))
    print(f"\n{len(ready)} artifacts in {args.out}; run them with: bench run --artifacts {args.out}")
    return 1 if failed else 0


def _verify_exported(ready: list, out: str, *, timeout_s: float, memory_limit: int = 0) -> dict[str, str]:
    """``bench export``: verifies each exported artifact with its runtime, in the runtime's own worker (as
    ``bench verify --artifacts OUT`` would); the scheduler stamps the figures into the artifacts.

    Args:
        ready: [(cell, artifact info)] from the export phase.
        out: the artifacts folder.
    Returns:
        artifact folder -> one line: status and max_abs_err (or the reason).
    """
    from suite.scheduler import execute

    folders = {id(c): a["artifact"] for c, a in ready}
    lines: dict[str, str] = {}

    def on_result(cell, rec):
        err = rec.get("max_abs_err")
        figure = f" (max_abs_err {err:.3g})" if err is not None else \
            f" ({rec.get('status_reason')})" if rec.get("status_reason") else ""
        lines[folders[id(cell)]] = f"{rec['status']}{figure}"

    execute([c for c, _ in ready], on_result, timeout_s=timeout_s, memory_limit=memory_limit, artifacts_dir=out)
    return lines


def cmd_list(args) -> int:
    from suite.plan import missing_requirement
    from suite.profiles import detect, load_profiles
    from suite.spec import load_workloads
    from suite.targets.registry import TARGETS

    print("Workloads:")
    for wl in load_workloads(args.workloads_dir or _default_dir("workloads")):
        sweep = " ".join(f"{k}={list(v)}" for k, v in wl.sweep.items())
        print(f"  {wl.name:<22} {sweep:<28} {wl.description}")
    models = Path(args.workloads_dir or _default_dir("workloads")) / "models"
    if models.is_dir():
        from suite import sources
        from suite.spec import load_workload

        print(f"\nSource models ({models}; run with -w PATH):")
        for f in sorted(models.glob("*.yaml")):
            wl = load_workload(f)
            print(f"  {str(f):<40} {sources.describe(wl):<44} {wl.description}")
    print("\nTargets:")
    for t in TARGETS.values():
        missing = missing_requirement(t)
        print(f"  {t.id:<26} {'' if not missing else '[' + missing + '] '}{t.description}")
    print("\nHardware profiles:")
    for name, p in load_profiles(args.profiles_dir or _default_dir("hardware_profiles")).items():
        ok, why = detect(p)
        print(f"  {name:<16} {'available' if ok else 'not available: ' + why}  — {p.description}")
    return 0


def cmd_env(args) -> int:
    from suite.envinfo import package_versions, run_metadata as collect_metadata
    from suite.profiles import detect, load_profiles, resolved_threads

    meta = collect_metadata()
    for k, v in meta.items():
        print(f"{k:<16} {v}")
    print("\npackages:")
    for name, ver in package_versions(["numpy", "torch", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "keras",
                                       "onnxruntime", "ai-edge-litert", "openvino", "iree-base-runtime", "jax2onnx",
                                       "pyarrow", "pandas"]).items():
        print(f"  {name:<16} {ver or 'not installed'}")
    print("\nprofiles:")
    for name, p in load_profiles(args.profiles_dir or _default_dir("hardware_profiles")).items():
        ok, why = detect(p)
        state = "available" if ok else f"not available: {why}"
        print(f"  {name:<16} device={p.device:<5} threads={resolved_threads(p):<3} {state}")
    return 0


def cmd_peak(args) -> int:
    from suite.peak import PeakError, ensure, installed_libraries, table
    from suite.profiles import load_profiles

    profiles = load_profiles(args.profiles_dir or _default_dir("hardware_profiles"))
    if args.profile not in profiles:
        raise UsageError(f"unknown profile {args.profile!r}; known: {', '.join(profiles)}")
    for name, v in (("--size", args.size), ("--copy-mb", args.copy_mb), ("--seconds", args.seconds)):
        if v is not None and v <= 0:
            raise UsageError(f"{name} must be positive")
    missing = [lib for lib in args.library or () if lib not in installed_libraries()]
    if missing:
        raise UsageError(f"--library {missing[0]}: not installed here (installed: {', '.join(installed_libraries())})")
    try:
        peak, measured = ensure(profiles[args.profile], args.library, rerun=args.rerun, size=args.size,
                                copy_bytes=int(args.copy_mb * 2**20) if args.copy_mb else None,
                                **({"seconds": args.seconds} if args.seconds else {}))
    except PeakError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    print(table(peak))
    print("(measured now)" if measured else "(cached; --rerun measures again)")
    return 0 if peak.flops_per_s and peak.bytes_per_s else 1


def cmd_card(args) -> int:
    from suite.card import build_card, write_card
    from suite.spec import load_workloads
    from suite.targets.registry import get_target

    wl = load_workloads(args.workloads_dir or _default_dir("workloads"), [args.workload])[0]
    try:
        info = get_target(args.target)
        card = build_card(args.results or _default_dir("results"), wl, info, args.profile, args.run_id)
    except (KeyError, LookupError) as e:
        raise UsageError(e.args[0]) from None
    md, js = write_card(card, args.out)
    print(f"card: {md} and {js} (run {card['run_id']})")
    return 0


def cmd_provenance(args) -> int:
    import json

    from suite.provenance import read_provenance

    try:
        print(json.dumps(read_provenance(args.path), indent=1, sort_keys=True))
    except (OSError, LookupError, ValueError) as e:
        raise UsageError(str(e)) from None
    return 0


def cmd_compare(args) -> int:
    from suite.compare import (FORMATTERS, compare_runs, has_regression, host_state_note, load_side, run_spread,
                               spread_note)

    if args.factor < 1.0 or not 0.0 < args.alpha < 1.0 or args.noise_k < 0:
        raise UsageError("--factor must be >= 1.0, --alpha in (0, 1) and --noise-k >= 0")
    results_dir = args.results or _default_dir("results")
    try:
        (base, base_df), (new, new_df) = load_side(args.base, results_dir), load_side(args.new, results_dir)
    except LookupError as e:
        raise UsageError(e.args[0]) from None
    spread = run_spread(base_df, new_df)
    rows = compare_runs(base_df, new_df, args.factor, args.alpha, args.noise_k, spread)
    print(FORMATTERS[args.format](rows, base, new, args.factor, args.alpha, host_state_note(base_df, new_df),
                                  spread_note(spread, args.factor, args.noise_k)))
    return 1 if has_regression(rows) else 0


def _publish_error():
    from suite.publish.common import PublishError

    return PublishError


def cmd_publish(args) -> int:
    try:
        return _publish_cli().cmd_publish(args, args.results or _default_dir("results"), _dashboard_out(None))
    except _publish_error() as e:
        raise UsageError(str(e)) from None


COMMANDS = {"verify": cmd_verify, "run": cmd_run, "list": cmd_list, "env": cmd_env, "export": cmd_export,
            "compare": cmd_compare, "peak": cmd_peak, "card": cmd_card, "provenance": cmd_provenance,
            "dashboard": cmd_dashboard, "publish": cmd_publish, "diagnose": cmd_diagnose, "node": cmd_node}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from suite.spec import SpecError

    try:
        return COMMANDS[args.command](args)
    except (SpecError, UsageError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; finished cells are stored (use --resume with the run id)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

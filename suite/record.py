"""The record of one cell: typed, frozen groups of result columns.

Every result column is a field of exactly one group below, with its Arrow type, whether it may be null
and a one-line meaning; :mod:`suite.results` generates the Parquet schema (``SCHEMA``, ``COLUMNS``,
``REQUIRED``) from them, so a column exists in one place only. Producers build records through these
classes: a misspelt field is a ``TypeError`` where it is written (in the worker that becomes the cell's
``error`` row and fails a unit test), never a traceback when Parquet is written at the end of a run.

    Identity   the cell and the run, known before it runs (suite.runner)
    Result     what running it produced (suite.worker / suite.scheduler), itself made of
      Outcome    status, status_reason and the stage where a non-passing cell stopped
      Software   what the build reported: versions, layout, thread settings
      Numerics   outputs against the NumPy float64 reference (suite.verify)
      Timing     first call, compile and the timing engine's statistics (suite.engine)
      Host       the host's state while the cell was timed; noisy and its re-measurements (suite.hoststate)
      Export     the exported artifact (export targets)
      Resources  memory and wall time of the cell
      Train      train mode: loss, gradients, updated parameters, step memory
      Roofline   achieved FLOP/s, arithmetic intensity, the profile's peak, fraction of the roof (suite.roofline)
      Diagnosis  where a failing cell leaves the reference: culprit node, its errors, the repro bundle (suite.diagnose)

On the wire (worker -> scheduler -> runner) a result is a flat dict of its non-null fields
(:meth:`Result.row`); :meth:`Result.from_row` turns it back and rejects unknown keys.

No framework and no pyarrow import here: the worker imports this module. Arrow types are named by
the strings of ``suite.results.ARROW_TYPES``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, NamedTuple

# Where a non-passing cell stopped (column ``stage``); null for ``pass`` and for rows no stage was
# reached for (decided by the plan, worker start-up failure, a worker that died before saying where).
STAGES = {
    "export": "producing the artifact of an export target (bench export / the export phase of bench run)",
    "build": "building the cell: weights, inputs, reference, the target's model or training step",
    "load": "the same for an export target: loading its artifact into the runtime",
    "verify": "the first call (or first training steps) and the comparison with the reference",
    "time": "the timing engine measuring the verified model",
}


def _col(arrow: str, doc: str, *, nullable: bool = True, default: Any = None):
    """A result column: a dataclass field carrying its Arrow type name, nullability and meaning."""
    return field(default=default, metadata={"arrow": arrow, "nullable": nullable, "doc": doc})


def _required(arrow: str, doc: str):
    """A non-nullable column that the producer must give (no default)."""
    return field(metadata={"arrow": arrow, "nullable": False, "doc": doc})


@dataclass(frozen=True, kw_only=True)
class Identity:
    """The cell and the run: every column here is known before the cell runs."""

    run_id: str = _required("string", "the run this row belongs to (suite.results.new_run_id)")
    timestamp: Any = _col("timestamp[us, UTC]", "when the row was made (UTC); filled with now when null",
                          nullable=False)
    schema_version: int | None = _col("int32", "suite.results.SCHEMA_VERSION of the writer; filled when null",
                                      nullable=False)
    suite_version: str | None = _col("string", "version of this suite")
    git_commit: str | None = _col("string", "commit of the suite's checkout")
    host: str | None = _col("string", "host name (of the node that ran the cell, on a cluster)")
    node_id: str | None = _col("string", "the Ray node that ran the cell (bench run --ray); null on a local run")
    cpu_model: str | None = _col("string", "CPU model name")
    cpu_count: int | None = _col("int32", "logical CPUs of the host")
    affinity: list[int] | None = _col("list<int32>", "cores the run may use")
    python_version: str | None = _col("string", "Python version")
    platform: str | None = _col("string", "OS / platform string")
    host_busy_start: float | None = _col("float64", "share of all CPUs' time other processes used just before the "
                                                    "run (suite.envinfo.host_load)")
    host_load_start: float | None = _col("float64", "1-minute load average just before the run")
    workload: str = _required("string", "workload name (workloads/*.yaml)")
    workload_hash: str | None = _col("string", "hash of the workload's content")
    source: str | None = _col("string", "graph (a workload graph built natively by every framework), or the "
                                        "framework of a source: model (torch, onnx): suite.sources")
    params: Any = _required("string", 'JSON object of sweep values, keys sorted: \'{"batch": 32}\'')
    batch_size: int | None = _col("int64", "the batch sweep value")
    target: str = _required("string", "target id, e.g. torch:eager, torch>onnx@onnxruntime")
    framework: str | None = _col("string", "framework that defines the model (keras for keras[jax])")
    format: str | None = _col("string", "native, onnx, tflite, ...")
    runtime: str | None = _col("string", "what executes the model: torch, jax (keras[jax]), onnxruntime, litert, ...")
    variant: str | None = _col("string", "how it executes it: eager, compile, function, xla, jit, xnnpack, ... "
                                         "(schema 2)")
    profile: str = _required("string", "hardware profile name (hardware_profiles/*.yaml)")
    device: str | None = _col("string", "device of the profile: cpu, cuda, ...")
    threads: int | None = _col("int32", "threads the profile allows")
    dtype: str | None = _col("string", "precision: the profile's, or the target's own rule (int8, ...)")
    mode: str | None = _col("string", "inference or train; filled with inference when null", nullable=False)
    flops: int | None = _col("int64", "FLOPs of one call at these params (from the workload)")


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The verdict of the cell."""

    status: str = _required("string", "pass, fail, nan, shape_mismatch, error, unsupported, skipped, crashed, "
                                      "timeout (suite.verify.STATUSES)")
    status_reason: str | None = _col("string", "why, in one line (plus a worker's stderr tail for crashes)")
    stage: str | None = _col("string", "where a non-passing cell stopped: export, build, load, verify, time "
                                       "(suite.record.STAGES); null for pass and when no stage was reached")

    def __post_init__(self):
        if self.stage is not None and self.stage not in STAGES:
            raise ValueError(f"stage {self.stage!r}: expected one of {', '.join(STAGES)}")


@dataclass(frozen=True, kw_only=True)
class Software:
    """What the built model reported about the software running it."""

    framework_version: str | None = _col("string", "version of the framework")
    runtime_version: str | None = _col("string", "version of the runtime (the framework's for native targets)")
    layout: str | None = _col("string", "tensor layout the target runs in, e.g. NHWC")
    versions: str | None = _col("string", "JSON object: distribution -> version")
    thread_settings: str | None = _col("string", "JSON object: what suite.profiles.apply_in_process applied")


@dataclass(frozen=True, kw_only=True)
class Numerics:
    """Outputs against the reference (train mode: the loss, see :class:`Train`)."""

    max_abs_err: float | None = _col("float64", "worst |output - reference|")
    max_rel_err: float | None = _col("float64", "worst |output - reference| / (|reference| + eps)")
    cosine: float | None = _col("float64", "lowest cosine similarity of an output with its reference")
    mismatch_fraction: float | None = _col("float64", "fraction of elements outside rtol/atol")
    top1_agreement: float | None = _col("float64", "fraction of equal arg-max classes (classifiers)")
    rtol: float | None = _col("float64", "relative tolerance judged by")
    atol: float | None = _col("float64", "absolute tolerance judged by")
    reference_dtype: str | None = _col("string", "dtype of the reference the cell was judged against: float64, or "
                                                 "float32 for a source: model that cannot run in float64 (rtol and "
                                                 "atol then 10x: suite.sources)")


@dataclass(frozen=True, kw_only=True)
class Timing:
    """First call, compile and the timing engine's statistics (suite.engine.TimingResult.as_record)."""

    first_call_s: float | None = _col("float64", "seconds of the first call (or first training step)")
    compile_s: float | None = _col("float64", "seconds to build / compile (the target's figure, else build time)")
    latency_median_s: float | None = _col("float64", "median seconds per call")
    latency_mean_s: float | None = _col("float64", "mean seconds per call")
    latency_p90_s: float | None = _col("float64", "90th percentile seconds per call")
    latency_p99_s: float | None = _col("float64", "99th percentile seconds per call")
    latency_iqr_s: float | None = _col("float64", "interquartile range of seconds per call")
    latency_ci_low_s: float | None = _col("float64", "low end of the median's confidence interval")
    latency_ci_high_s: float | None = _col("float64", "high end of the median's confidence interval")
    n_samples: int | None = _col("int32", "timed samples")
    loops: int | None = _col("int64", "calls per sample")
    unstable: bool | None = _col("bool", "the spread stayed above the engine's limit")
    stop_reason: str | None = _col("string", "why the engine stopped sampling")
    measure_s: float | None = _col("float64", "seconds the timing engine took: warmup, calibration and samples")
    samples_s: list[float] | None = _col("list<float64>", "raw per-call seconds, one per sample (suite.engine)")
    throughput: float | None = _col("float64", "items (batch) per second at the median")


@dataclass(frozen=True, kw_only=True)
class Host:
    """What the host was doing while the cell was timed, and whether that makes it noisy (suite.hoststate)."""

    host_busy: float | None = _col("float64", "share of the cell's cores' time other processes used while it was timed")
    host_busy_all: float | None = _col("float64", "share of every CPU of the host other processes used while it "
                                       "was timed (profiles on some cores only)")
    host_steal: float | None = _col("float64", "share of the cell's cores' time stolen by the hypervisor while timed")
    host_runqueue: int | None = _col("int32", "runnable tasks on the host (procs_running), most seen while timed")
    cpu_mhz: float | None = _col("float64", "mean current frequency of the cell's cores after timing, where reported")
    noisy: bool | None = _col("bool", "measured on a host that was not in one steady state (busy, steal, drift, "
                                      "two levels): not comparable")
    noisy_reason: str | None = _col("string", "why the cell is noisy (suite.hoststate.noisy_reason)")
    lock_wait_s: float | None = _col("float64", "seconds the cell waited for another bench process of this host "
                                                "to finish timing (one cell is timed at a time per host)")
    attempts: int | None = _col("int32", "times the cell was timed (--remeasure repeats noisy ones)")
    attempts_json: str | None = _col("string", "every timing attempt: median, host_busy, host_steal, noisy_reason "
                                               "(JSON list, in order)")
    cell_started: Any = _col("timestamp[us, UTC]", "when the cell was sent to its worker (the clock of the host "
                                                   "that ran it)")
    cell_finished: Any = _col("timestamp[us, UTC]", "when the cell's record came back from its worker (that host's "
                                                    "clock): [cell_started, cell_finished] is the time it held "
                                                    "its device")


@dataclass(frozen=True, kw_only=True)
class Export:
    """The artifact of an export target (from its manifest)."""

    export_s: float | None = _col("float64", "seconds the export took")
    artifact_bytes: int | None = _col("int64", "size of the artifact")


@dataclass(frozen=True, kw_only=True)
class Resources:
    """Memory and time the cell used."""

    peak_rss_bytes: int | None = _col("int64", "peak resident memory of the worker process so far")
    device_peak_bytes: int | None = _col("int64", "peak device memory reported by the framework")
    wall_s: float | None = _col("float64", "wall seconds the worker spent on the cell")


@dataclass(frozen=True, kw_only=True)
class Train:
    """Train mode (mode == "train"): the step's loss and how far each part is from the reference."""

    loss: float | None = _col("float64", "the target's loss at the first step")
    loss_abs_err: float | None = _col("float64", "worst |loss - reference| over the verified steps")
    grad_max_abs_err: float | None = _col("float64", "worst |gradient - reference| (first step, canonical layout)")
    grad_cosine: float | None = _col("float64", "lowest cosine similarity of a gradient tensor with its reference")
    param_max_abs_err: float | None = _col("float64", "worst |updated parameter - reference| after the last step")
    step_peak_bytes: int | None = _col("int64", "peak memory while one training step runs (see suite.worker)")
    step_extra_bytes: int | None = _col("int64", "that peak minus the memory in use just before the step")


@dataclass(frozen=True, kw_only=True)
class Roofline:
    """Where a timed inference cell sits under its profile's roofline (suite.roofline; filled by suite.runner)."""

    achieved_flops_per_s: float | None = _col("float64", "flops / latency_median_s (inference cells; FLOP/s)")
    arithmetic_intensity: float | None = _col("float64", "flops / bytes one call moves at least: parameters + inputs "
                                                         "+ every node's output at the cell's dtype, each once "
                                                         "(suite.roofline.traffic_bytes; FLOP/byte)")
    peak_flops_per_s: float | None = _col("float64", "the profile's peak float32 GEMM FLOP/s on this host, cached by "
                                                     "`bench peak` (suite.peak); null when none was measured")
    peak_bytes_per_s: float | None = _col("float64", "the profile's peak copy bandwidth on this host, bytes read + "
                                                     "written per second (suite.peak)")
    peak_flops_library: str | None = _col("string", "the library whose GEMM gave peak_flops_per_s")
    roofline_fraction: float | None = _col("float64", "achieved_flops_per_s / min(peak_flops_per_s, "
                                                      "arithmetic_intensity * peak_bytes_per_s)")


@dataclass(frozen=True, kw_only=True)
class Diagnosis:
    """Where a failing inference cell leaves the reference (``--diagnose``: suite.diagnose); null otherwise."""

    diagnosis_culprit: str | None = _col("string", "the first node out of tolerance on its own (bench diagnose); "
                                                   "null when none is (see diagnosis_summary)")
    diagnosis_op: str | None = _col("string", "the culprit's op")
    diagnosis_own_err: float | None = _col("float64", "the culprit's max abs error alone, on the reference's values "
                                                      "of its inputs")
    diagnosis_inherited_err: float | None = _col("float64", "the culprit's max abs error in the graph (what it got "
                                                            "from upstream included)")
    diagnosis_summary: str | None = _col("string", "the diagnosis in one sentence (also when nothing is localized)")
    diagnosis_bundle: str | None = _col("string", "the repro bundle's folder (a .zip beside it)")


# The parts of a Result, in column order.
_RESULT_GROUPS = {"outcome": Outcome, "software": Software, "numerics": Numerics, "timing": Timing, "host": Host,
                  "export": Export, "resources": Resources, "train": Train, "roofline": Roofline,
                  "diagnosis": Diagnosis}


@dataclass(frozen=True, kw_only=True)
class Result:
    """What running a cell produced: everything of a record but its :class:`Identity`."""

    outcome: Outcome
    software: Software = Software()
    numerics: Numerics = Numerics()
    timing: Timing = Timing()
    host: Host = Host()
    export: Export = Export()
    resources: Resources = Resources()
    train: Train = Train()
    roofline: Roofline = Roofline()
    diagnosis: Diagnosis = Diagnosis()

    def row(self) -> dict[str, Any]:
        """The flat wire form: column -> value, null fields left out."""
        return {k: v for k, v in _flat(self) if v is not None}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Result":
        """The inverse of :meth:`row`. Raises ValueError on a key that is not a Result column."""
        unknown = sorted(set(row) - set(_GROUP_OF))
        if unknown:
            raise ValueError(f"unknown result column(s): {', '.join(unknown)}")
        parts: dict[str, dict] = {g: {} for g in _RESULT_GROUPS}
        for k, v in row.items():
            parts[_GROUP_OF[k]][k] = v
        if "status" not in parts["outcome"]:
            raise ValueError("missing required column(s): status")
        return cls(**{g: _RESULT_GROUPS[g](**kw) for g, kw in parts.items()})


@dataclass(frozen=True, kw_only=True)
class Record:
    """One row of the results store: the cell's identity and its result."""

    identity: Identity
    result: Result

    def row(self) -> dict[str, Any]:
        """Every column -> value (None where null), in schema order: what suite.results writes."""
        return dict(_flat(self.identity)) | dict(_flat(self.result))


class Column(NamedTuple):
    name: str
    arrow: str  # a key of suite.results.ARROW_TYPES
    nullable: bool
    doc: str
    group: str  # the dataclass that holds it


def _leaf_fields(cls) -> Iterator[tuple[dataclasses.Field, str]]:
    for f in dataclasses.fields(cls):
        if "arrow" in f.metadata:
            yield f, cls.__name__
        else:  # a group of a Result / Record
            yield from _leaf_fields(f.type if isinstance(f.type, type) else _GROUP_TYPES[f.type])


def _flat(obj) -> Iterator[tuple[str, Any]]:
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if "arrow" in f.metadata:
            yield f.name, v
        else:
            yield from _flat(v)


_GROUP_TYPES = {c.__name__: c for c in (Identity, Result, *_RESULT_GROUPS.values())}


def columns() -> list[Column]:
    """Every result column in schema order: Identity, then the groups of Result."""
    return [Column(f.name, f.metadata["arrow"], f.metadata["nullable"], f.metadata["doc"], group)
            for f, group in _leaf_fields(Record)]


_GROUP_OF = {f.name: g for g, cls in _RESULT_GROUPS.items() for f in dataclasses.fields(cls)}

"""Hardware profiles: where and how a cell runs. Plain data; no framework imports at module level.

A profile file (``hardware_profiles/<name>.yaml``)::

    name: cpu-1t                  # required; [a-z0-9_-]+, unique
    description: One thread ...   # optional string
    device: cpu                   # cpu | cuda | tpu
    threads: 1                    # intra-op threads; 0 = every core the process may use
    affinity: [0]                 # optional list of core ids to pin the worker to; null = no pinning
    precision: float32            # compute dtype (a key of suite.verify.TOLERANCES)
    targets: ["*"]                # fnmatch globs over target ids this profile runs
    default: false                # in `bench run`'s default matrix (cpu, cuda and tpu are; when not
                                  # available here they are one line and skipped rows)

Thread control differs per framework, so it is applied in two steps by the worker subprocess:
:func:`worker_env` (environment, before the framework is imported) and :func:`apply_in_process`
(CPU affinity and the framework's own thread API, before the model is built).

JAX / XLA on CPU (checked with jax 0.10.2): the classic recipe
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"`` (jax issues #743,
#1539) is still accepted but no longer limits a jitted matmul — it ran on both cores of a 2-core
host with or without it. What does work is the CPU affinity mask: XLA sizes its intra-op pool from
the cores the process may use when the CPU client is created. So :func:`apply_in_process` pins a
jax worker to the first ``threads`` allowed cores when the profile limits threads without giving an
affinity, and it must run before ``import jax``. The XLA_FLAGS recipe is still set for threads == 1
(harmless, and effective on older XLA runtimes).
"""
from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.spec import SpecError, check_folder, read_yaml, validate
from suite.spec_models import DEVICES, PRECISIONS, PROFILE_NAME_RE as NAME_RE, ProfileModel  # noqa: F401

FIELDS = tuple(ProfileModel.model_fields)  # the fields a profile file may have (validated by ProfileModel)
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Profile:
    """A validated hardware profile.

    Attributes:
        name: unique profile name.
        description: one or two lines for ``bench list``.
        device: ``cpu``, ``cuda`` or ``tpu``.
        threads: intra-op thread count; 0 means every core the worker may use.
        affinity: core ids to pin the worker to, or None.
        precision: compute dtype.
        targets: fnmatch globs of target ids this profile applies to.
        path: the file it came from.
        default: in the default matrix of `bench run` / `bench verify` (no ``-p`` given).
    """

    name: str
    description: str = ""
    device: str = "cpu"
    threads: int = 0
    affinity: tuple[int, ...] | None = None
    precision: str = "float32"
    targets: tuple[str, ...] = ("*",)
    path: str = ""
    default: bool = False


def parse_profile(data: Any, path: str = "<profile>") -> Profile:
    """Validates a profile given as plain data (the parsed YAML).

    Args:
        data: the parsed YAML document.
        path: file name used in error messages.
    Returns:
        the Profile.
    Raises:
        SpecError: one line ``<file>: <field>: expected ...``.
    """
    m = validate(ProfileModel, data, path)
    return Profile(m.name, m.description.strip(), m.device, m.threads, m.affinity, m.precision, m.targets, path,
                   m.default)


def load_profile(path: str | Path) -> Profile:
    """Reads and validates one profile file.

    Args:
        path: a YAML file.
    Returns:
        the Profile.
    Raises:
        SpecError: one line naming the file and the field.
    """
    return parse_profile(read_yaml(path), str(path))


def load_profiles(directory: str | Path = "hardware_profiles") -> dict[str, Profile]:
    """Loads every ``*.yaml`` in a directory, sorted by file name.

    Args:
        directory: the profiles folder.
    Returns:
        profile name -> Profile, in file order.
    Raises:
        SpecError: on a bad file, a name defined twice, or a directory that is not a folder.
    """
    check_folder(directory, "hardware profile", "--profiles-dir")
    out: dict[str, Profile] = {}
    for f in sorted(Path(directory).glob("*.yaml")):
        p = load_profile(f)
        if p.name in out:
            raise SpecError(f"{p.path}: name: profile {p.name!r} is also defined in {out[p.name].path}")
        out[p.name] = p
    return out


def available_cores() -> set[int]:
    """Core ids this process may run on (sched_getaffinity where the OS has it)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def detect(profile: Profile) -> tuple[bool, str]:
    """Whether the profile can run on this machine, without importing any framework.

    Args:
        profile: the profile.
    Returns:
        (available, reason): reason says what was found, or why it is unavailable.
    """
    if profile.affinity is not None:
        missing = sorted(set(profile.affinity) - available_cores())
        if missing:
            return False, (f"affinity cores {missing} not available "
                           f"(this process may use cores {sorted(available_cores())})")
    if profile.device == "cpu":
        return True, f"{len(available_cores())} CPU cores available"
    if profile.device == "cuda":
        return _detect_cuda()
    return _detect_tpu()


def _detect_cuda() -> tuple[bool, str]:
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            res = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
        except (subprocess.TimeoutExpired, OSError) as e:
            res = None
            why = f"nvidia-smi -L failed: {type(e).__name__}"
        if res is not None:
            gpus = [ln for ln in res.stdout.splitlines() if ln.startswith("GPU ")]
            if res.returncode == 0 and gpus:
                return True, gpus[0].strip()
            why = f"nvidia-smi -L listed no GPU (exit {res.returncode})"
    else:
        why = "nvidia-smi not found"
    if os.path.exists("/dev/nvidia0"):
        return True, f"/dev/nvidia0 present ({why})"
    return False, f"no CUDA device: {why} and no /dev/nvidia0"


def _detect_tpu() -> tuple[bool, str]:
    accel = sorted(str(p) for p in Path("/dev").glob("accel*"))
    if accel:
        return True, f"TPU device {accel[0]}"
    if os.path.isdir("/dev/vfio") and any(p.name != "vfio" for p in Path("/dev/vfio").iterdir()):
        return True, "/dev/vfio devices present"
    if os.environ.get("TPU_NAME"):
        return True, f"TPU_NAME={os.environ['TPU_NAME']}"
    return False, "no TPU: no /dev/accel*, no /dev/vfio devices and TPU_NAME not set"


def matches(profile: Profile, target_id: str) -> bool:
    """Whether the profile's ``targets`` globs select a target id.

    Args:
        profile: the profile.
        target_id: e.g. ``torch>onnx@onnxruntime``.
    Returns:
        True if any pattern matches (fnmatchcase: case-sensitive on every OS).
    """
    return any(fnmatch.fnmatchcase(target_id, pat) for pat in profile.targets)


def resolved_threads(profile: Profile) -> int:
    """The concrete intra-op thread count: ``threads``, else the cores in affinity, else all cores; never
    more than the cores the profile may run on (its affinity that this process may use, else all it may
    use): more threads than cores only fight each other, and on a shared host they turn a busy
    neighbour into a slowdown by orders of magnitude (threads spin-waiting for a descheduled peer).

    Args:
        profile: the profile.
    Returns:
        a positive int.
    """
    n = max(1, len(profile_cores(profile)))
    return min(profile.threads, n) if profile.threads else n


def profile_cores(profile: Profile) -> list[int]:
    """The cores the profile may run on here: its affinity that this process may use (its affinity as
    written when none of it is), else every core this process may use."""
    cores = available_cores()
    if profile.affinity is not None:
        cores = (set(profile.affinity) & cores) or set(profile.affinity)
    return sorted(cores)


def worker_env(profile: Profile, family: str) -> dict[str, str]:
    """Environment variables to set in a worker before its framework is imported.

    Args:
        profile: the profile.
        family: the worker family (``torch``, ``keras-jax``, ``onnxruntime``, ...).
    Returns:
        name -> value; the caller merges it into the subprocess environment. The family's own
        variables come from its runtime hooks (``suite.targets.registry.runtime_hooks``).
    """
    from suite.targets.registry import runtime_hooks

    threads = resolved_threads(profile)
    # Every BLAS/OpenMP pool a framework may bring sizes itself from these at load time.
    env = {k: str(threads) for k in THREAD_ENV}
    if profile.device != "cuda":
        # Hide GPUs from non-CUDA profiles so nothing silently runs (or initialises) on one.
        env["CUDA_VISIBLE_DEVICES"] = ""
    # For cuda profiles CUDA_VISIBLE_DEVICES is left as the user set it; "cuda" = first visible GPU.
    env.update(runtime_hooks(family).worker_env(profile, family, threads))
    return env


def busy_host_env(profile: Profile, family: str) -> dict[str, str]:
    """The variables a timing worker of ``family`` sets when it starts while other processes keep the
    profile's cores busy (the family's ``busy_host_env`` hook; {} for families that degrade gracefully).
    The worker then marks what it times noisy (``BENCH_BUSY_HOST``): not the framework's default setting."""
    from suite.targets.registry import runtime_hooks

    hook = getattr(runtime_hooks(family), "busy_host_env", None)
    env = hook(profile, family, resolved_threads(profile)) if hook else {}
    if env:
        env = dict(env, BENCH_BUSY_HOST=" ".join(f"{k}={v}" for k, v in sorted(env.items())))
    return env


def apply_in_process(profile: Profile, family: str) -> dict[str, Any]:
    """Applies affinity and the framework's thread API inside the worker, before the model is built.

    Call it after :func:`worker_env` is in the environment and before the framework is imported (XLA
    sizes its CPU pool from the affinity mask when its client is created: see suite/targets/jax/runtime.py).

    Args:
        profile: the profile.
        family: the worker family.
    Returns:
        what was applied, for the results (e.g. ``{"affinity": [0], "torch_threads": 1}``); a
        ``warning`` key says when something could not be applied.
    """
    from suite.targets.registry import runtime_hooks

    hooks = runtime_hooks(family)
    applied: dict[str, Any] = {"threads": resolved_threads(profile)}
    warnings = []
    cores = profile.affinity
    if cores is None:
        cores = hooks.pin_cores(profile, family, sorted(available_cores()))
        if cores is not None:
            applied["affinity_derived"] = True
    if cores is not None:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(cores))
            applied["affinity"] = sorted(os.sched_getaffinity(0))
        else:
            warnings.append("affinity not supported on this OS")
    done, more = hooks.apply_threads(family, applied["threads"])
    applied.update(done)
    warnings += more
    if warnings:
        applied["warning"] = "; ".join(warnings)
    return applied

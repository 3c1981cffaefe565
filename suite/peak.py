"""The attainable peak of a hardware profile on this host (`bench peak`), cached, for the roofline.

Two figures, each measured under the profile's threads and affinity (:mod:`suite.peak_worker`, one
subprocess per library, started like a cell's worker: :func:`suite.profiles.worker_env` in its
environment, :func:`suite.profiles.apply_in_process` before the library is imported):

* ``flops_per_s``: the best float32 GEMM rate over the libraries installed here (NumPy's BLAS always;
  torch, jax and tensorflow where importable, each in its own process), with the library that reached it;
* ``bytes_per_s``: the best rate of a NumPy copy of arrays well above the last-level cache (bytes read +
  written per second, one slice per profile thread).

Cached as JSON under ``$BENCH_CACHE_DIR/peak/`` (:func:`suite.paths.cache_root`), keyed by host, profile
name, device, resolved threads, the cores the profile runs on and the versions of every candidate library:
a change of any of them is a cache miss. ``bench run`` measures NumPy's figure once per CPU profile when
none is cached (:func:`ensure`, about 2 s), so the roofline columns are there after a normal run;
``bench peak`` adds the other libraries, ``--rerun`` measures again. Only CPU profiles are measured.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from suite.paths import cache_root

# library -> (worker family whose runtime hooks apply the profile's threads, distributions versioned in the key)
LIBRARIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "numpy": ("numpy", ("numpy",)),
    "torch": ("torch", ("torch",)),
    "jax": ("jax", ("jax", "jaxlib")),
    "tensorflow": ("tensorflow", ("tensorflow", "tensorflow-cpu")),
}
DEFAULT_SIZE = 1536  # GEMM n: 7.2 GFLOP a call, ~0.25 s on one 2020s core, a few ms on a many-core server
DEFAULT_SECONDS = 1.0  # GEMM sampling per library (the copy gets half)
MIN_COPY_BYTES = 128 * 2**20
KEY_VERSION = 1
LIBRARY_TIMEOUT_S = 300.0


class PeakError(Exception):
    """The peak cannot be measured here (device not available, not a CPU profile): one line for people."""


@dataclass(frozen=True)
class Peak:
    """A profile's measured peak on this host (one cache file).

    Attributes:
        profile: the profile name.
        host: the host it was measured on.
        flops_per_s: best float32 GEMM FLOP/s over ``libraries`` (None when every library failed).
        flops_library: the library that reached it.
        bytes_per_s: best copy bandwidth, bytes read + written per second (NumPy).
        size: GEMM n.
        copy_bytes: bytes of each array of the copy.
        libraries: library -> {"version", "flops_per_s", "best_s", "applied"} or {"error": line}.
        measured_at: ISO time (UTC) of the last measurement.
        key: what the cache is keyed by (:func:`cache_key`).
        host_busy: share of the CPUs other processes used just before it was measured
            (:func:`suite.envinfo.host_load`); above ``suite.envinfo.BUSY_SHARE`` the figures are low.
    """

    profile: str
    host: str
    flops_per_s: float | None
    flops_library: str | None
    bytes_per_s: float | None
    size: int
    copy_bytes: int
    libraries: dict = field(default_factory=dict)
    measured_at: str = ""
    key: dict = field(default_factory=dict)
    host_busy: float | None = None

    @property
    def busy(self) -> bool:
        """Measured while other processes kept the host busy: the figures are low."""
        from suite.envinfo import BUSY_SHARE

        return self.host_busy is not None and self.host_busy > BUSY_SHARE

    @property
    def ridge(self) -> float | None:
        """Arithmetic intensity (FLOP/byte) where the bandwidth roof meets the compute roof."""
        if self.flops_per_s and self.bytes_per_s:
            return self.flops_per_s / self.bytes_per_s
        return None


def installed_libraries() -> list[str]:
    """The candidate libraries importable here (found without importing them), NumPy first."""
    return [lib for lib in LIBRARIES if importlib.util.find_spec(lib) is not None]


def cache_key(profile) -> dict:
    """What a cached peak must match: host, profile name / device, resolved threads, cores, library versions."""
    from suite.envinfo import host, package_versions
    from suite.profiles import profile_cores, resolved_threads

    dists = [d for _, ds in LIBRARIES.values() for d in ds]
    return {"v": KEY_VERSION, "host": host(), "profile": profile.name, "device": profile.device,
            "threads": resolved_threads(profile), "affinity": list(profile.affinity) if profile.affinity else None,
            "cores": profile_cores(profile), "versions": package_versions(dists)}


def cache_path(profile, key: dict | None = None) -> Path:
    """``<cache>/peak/<profile>-<digest of the key>.json``."""
    return cache_root() / "peak" / _file_name(profile.name, key if key is not None else cache_key(profile))


def _file_name(profile_name: str, key: dict) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{profile_name}-{digest}.json"


def cached(profile) -> Peak | None:
    """The cached peak of the profile on this host with these settings and versions, or None."""
    key = cache_key(profile)
    path = cache_path(profile, key)
    try:
        data = json.loads(path.read_text())
        peak = Peak(**{f.name: data[f.name] for f in dataclasses.fields(Peak) if f.name in data})
    except (OSError, ValueError, TypeError):
        return None
    return peak if peak.key == key else None


def default_copy_bytes() -> int:
    """Each copy array: 4x the largest CPU cache sysfs reports, at least 128 MiB."""
    largest = 0
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = f.read_text().strip().upper()
            mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
            largest = max(largest, int(text.rstrip("KMG")) * mult)
        except (OSError, ValueError):
            continue
    return max(MIN_COPY_BYTES, 4 * largest)


def check_profile(profile) -> None:
    """Raises PeakError (one line) for a profile this host cannot measure."""
    from suite.profiles import detect

    ok, why = detect(profile)
    if not ok:
        raise PeakError(f"profile {profile.name} ({profile.device}) is not available here: {why}")
    if profile.device != "cpu":
        raise PeakError(f"profile {profile.name}: bench peak measures CPU profiles only ({profile.device} found: "
                        f"{why})")


def _measure_library(profile, library: str, size: int, copy_bytes: int, seconds: float) -> dict:
    """One library in its own subprocess; {"error": line} when it fails."""
    from suite.profiles import worker_env

    family = LIBRARIES[library][0]
    env = dict(os.environ)
    env.update(worker_env(profile, family))
    pkg_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "suite.peak_worker", "--library", library, "--family", family,
           "--profile-json", json.dumps(dataclasses.asdict(profile)), "--size", str(size),
           "--copy-bytes", str(copy_bytes if library == "numpy" else 0), "--seconds", str(seconds)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=LIBRARY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {LIBRARY_TIMEOUT_S:.0f} s"}
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]
        return {"error": f"exit {res.returncode}: {tail[:300]}"}
    out = json.loads(lines[-1])
    entry = {"version": out["version"], "flops_per_s": out["gemm"]["flops_per_s"], "best_s": out["gemm"]["best_s"],
             "applied": out.get("applied", {})}
    if "copy" in out:
        entry["copy"] = out["copy"]
    return entry


def _summarise(profile, key: dict, libraries: dict, size: int, copy_bytes: int, busy: float | None) -> Peak:
    ok = {k: v for k, v in libraries.items() if _finite(v.get("flops_per_s"))}
    best = max(ok, key=lambda k: ok[k]["flops_per_s"]) if ok else None
    copy = libraries.get("numpy", {}).get("copy") or {}
    return Peak(profile=profile.name, host=key["host"], flops_per_s=ok[best]["flops_per_s"] if best else None,
                flops_library=best, bytes_per_s=copy.get("bytes_per_s") if _finite(copy.get("bytes_per_s")) else None,
                size=size, copy_bytes=copy_bytes, libraries=libraries,
                measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), key=key,
                host_busy=busy)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _write(peak: Peak) -> Path:
    path = cache_root() / "peak" / _file_name(peak.profile, peak.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(dataclasses.asdict(peak), f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def measure(profile, libraries: Iterable[str] | None = None, *, size: int = DEFAULT_SIZE,
            copy_bytes: int | None = None, seconds: float = DEFAULT_SECONDS, keep: Peak | None = None) -> Peak:
    """Measures the profile's peak and caches it.

    Args:
        profile: a CPU profile available here (:func:`check_profile`).
        libraries: which libraries to time (default: every one installed); NumPy is added unless ``keep``
            has its copy figure (the bandwidth comes from NumPy's process).
        size: GEMM n.
        copy_bytes: bytes of each copy array (default :func:`default_copy_bytes`).
        seconds: GEMM sampling time per library.
        keep: a cached peak whose other libraries' figures are kept (same size): ``ensure`` adds libraries.
    Returns:
        the Peak, also written to the cache. The timing runs under the host's timing lock
        (:func:`suite.hoststate.timing_lock`): never beside a timed cell of another bench process.
    """
    from suite.envinfo import host_load
    from suite.hoststate import timing_lock

    check_profile(profile)
    busy = host_load(0.2)["host_busy_start"]
    copy_bytes = default_copy_bytes() if copy_bytes is None else copy_bytes
    key = cache_key(profile)
    found = dict(keep.libraries) if keep is not None and keep.size == size and keep.key == key else {}
    if "numpy" in found and keep is not None and keep.copy_bytes != copy_bytes:
        found.pop("numpy")
    libs = list(libraries if libraries is not None else installed_libraries())
    if "copy" not in found.get("numpy", {}):  # the bandwidth comes from NumPy's process
        libs = ["numpy", *libs]
    libs = list(dict.fromkeys(libs))
    with timing_lock():
        for lib in libs:
            found[lib] = _measure_library(profile, lib, size, copy_bytes, seconds)
    if found and keep is not None and keep.host_busy is not None and set(found) - set(libs):
        busy = max(busy or 0.0, keep.host_busy)  # kept figures carry the state they were measured in
    peak = _summarise(profile, key, found, size, copy_bytes, busy)
    _write(peak)
    return peak


def ensure(profile, libraries: Iterable[str] | None = None, *, rerun: bool = False, size: int | None = None,
           copy_bytes: int | None = None, seconds: float = DEFAULT_SECONDS,
           replace_busy: bool = False) -> tuple[Peak, bool]:
    """The cached peak when it covers ``libraries`` (and ``size`` when given), else a measurement.

    ``replace_busy``: a cached peak measured on a busy host (:attr:`Peak.busy`) is measured again.

    Returns:
        (peak, measured): measured is False when the cache answered.
    """
    check_profile(profile)
    wanted = list(dict.fromkeys(["numpy", *(libraries if libraries is not None else installed_libraries())]))
    have = None if rerun else cached(profile)
    if have is not None and replace_busy and have.busy:
        have = None
    if have is not None and (size is None or size == have.size) and \
            (copy_bytes is None or copy_bytes == have.copy_bytes):
        missing = [lib for lib in wanted if lib not in have.libraries]
        if not missing:
            return have, False
        return measure(profile, missing, size=have.size, copy_bytes=have.copy_bytes, seconds=seconds,
                       keep=have), True
    return measure(profile, wanted, size=size or DEFAULT_SIZE, copy_bytes=copy_bytes, seconds=seconds), True


def table(peak: Peak) -> str:
    """The short table `bench peak` prints: one line per library, then the figures kept."""
    lines = [f"{'library':<12} {'version':<14} {'GEMM float32':>16}  note"]
    order = {lib: i for i, lib in enumerate(LIBRARIES)}
    for lib, v in sorted(peak.libraries.items(), key=lambda kv: order.get(kv[0], len(order))):
        if "error" in v:
            lines.append(f"{lib:<12} {'-':<14} {'-':>16}  failed: {v['error']}")
            continue
        note = "best" if lib == peak.flops_library else ""
        lines.append(f"{lib:<12} {str(v.get('version')):<14} {fmt_rate(v['flops_per_s'], 'FLOP/s'):>16}  {note}")
    bw = fmt_rate(peak.bytes_per_s, "B/s") if peak.bytes_per_s else "-"
    ridge = f"{peak.ridge:.1f} FLOP/byte" if peak.ridge else "-"
    threads = peak.key.get("threads")
    lines += ["", f"profile {peak.profile} on {peak.host}: {threads} thread(s), cores {peak.key.get('cores')}",
              f"peak compute  {fmt_rate(peak.flops_per_s, 'FLOP/s') if peak.flops_per_s else '-'}"
              f" ({peak.flops_library or 'no library'}, {peak.size}x{peak.size} float32 GEMM, best sample)",
              f"peak memory   {bw} (NumPy copy of {peak.copy_bytes / 2**20:.0f} MiB, read + written)",
              f"ridge point   {ridge}", f"measured at   {peak.measured_at}"]
    if peak.busy:
        lines.append(f"note: measured while other processes used {peak.host_busy:.0%} of the CPUs: the figures are "
                     "low; `--rerun` on a quiet host (bench run re-measures NumPy's then)")
    return "\n".join(lines)


def fmt_rate(x: float | None, unit: str) -> str:
    """``123.4 GFLOP/s``, ``9.87 GB/s`` (decimal prefixes)."""
    if x is None:
        return "-"
    for p, s in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= p:
            return f"{x / p:.4g} {s}{unit}"
    return f"{x:.4g} {unit}"


def peaks_for(profiles: Iterable[Any]) -> dict[str, Peak]:
    """Cached peaks of the CPU profiles among ``profiles`` (name -> Peak); nothing is measured."""
    out = {}
    for p in profiles:
        if p.device == "cpu":
            peak = cached(p)
            if peak is not None:
                out[p.name] = peak
    return out


RUN_SECONDS = 0.5  # GEMM sampling when `bench run` measures a missing peak (NumPy only): ~1.5 s in all


def ensure_for_run(cells, stream=None, host_busy: float | None = None) -> dict[str, Peak]:
    """Before `bench run` times its cells: NumPy's peak of every available CPU profile with timed inference
    cells, measured when none is cached, or when the cached one was measured on a busy host and this one is
    quiet now (``host_busy``: :func:`suite.envinfo.host_load`'s share); one line each on ``stream``; a
    failure is one warning line.

    Returns:
        profile name -> Peak (those known after this call).
    """
    from suite.envinfo import BUSY_SHARE

    stream = stream if stream is not None else sys.stderr
    profiles = {c.profile.name: c.profile for c in cells
                if c.status is None and c.mode == "inference" and c.profile.device == "cpu"}
    out = {}
    for name, profile in profiles.items():
        try:
            quiet = host_busy is not None and host_busy <= BUSY_SHARE
            peak, measured = ensure(profile, ["numpy"], seconds=RUN_SECONDS, replace_busy=quiet)
        except Exception as e:  # noqa: BLE001 - the roofline is a convenience; the run goes on without it
            print(f"bench: warning: peak of {name} not measured ({type(e).__name__}: {e}); roofline_fraction "
                  f"stays null (bench peak -p {name})", file=stream, flush=True)
            continue
        out[name] = peak
        if measured:
            print(f"peak {name}: {fmt_rate(peak.flops_per_s, 'FLOP/s')} ({peak.flops_library} GEMM), "
                  f"{fmt_rate(peak.bytes_per_s, 'B/s')} copy - measured once for this host, cached "
                  f"(`bench peak -p {name}` adds torch / jax / tensorflow)"
                  + (" - the host was busy: low figures, measured again on a quiet host" if peak.busy else ""),
                  file=stream, flush=True)
    return out

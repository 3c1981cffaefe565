"""Exported artifacts: where they live, their manifest, and the export task a source-framework worker runs.

Export targets (``framework>format@runtime``) declare how their artifact is produced in the registry:
``TargetInfo.export`` (:class:`suite.targets.registry.Export`: the worker family that runs the
exporter, the ``"module:function"`` exporter, the modules it needs, the distributions that key the cache).

Layout on disk (the cache is ``$BENCH_CACHE_DIR/artifacts``, or the folder given to
``bench export --out`` / ``bench run --artifacts``)::

    <root>/<target slug>/<workload>-<params>-<cell hash>/
        manifest.json      target, workload hash, params, export_s, artifact_bytes, versions, I/O layout,
                           provenance (also inside the artifact: suite.provenance)
        model.onnx | model.tflite | model.pt2 | saved_model/ | model.jax_exported

The cell hash covers the workload hash, the sweep point, the target id and its options. The
converter versions and a fingerprint of the suite's own export code are stored in the manifest; in the
cache, a manifest whose ``version_key`` differs from what is installed now is stale and the artifact is
exported again. A folder given with
``--artifacts`` is taken as is (an edge box has no converter to compare with).

This module imports no framework: the runtime side only reads manifests.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import time
from pathlib import Path

from suite.targets.common.manifest import MANIFEST, read_manifest  # noqa: F401 (re-exported)


def is_export_target(info) -> bool:
    return info.export is not None


def slug(target_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in target_id)


def export_device(info, device: str) -> str:
    """The device an artifact of ``info`` is compiled for when it runs on ``device``: that device for a
    per-device export (``Export.per_device``), else "cpu" (one artifact for every profile)."""
    return device if info.export is not None and info.export.per_device else "cpu"


def cell_dir(root: str | Path, workload, params: dict, info, device: str = "cpu") -> Path:
    """The artifact folder of one cell under ``root`` (the exporting target's, for a target that runs
    another's artifact: ``Export.same_artifact_as``). ``device`` is the profile's: it is part of the key
    (and the folder name) only for a per-device export compiled for a device other than the CPU."""
    if info.export is not None and info.export.same_artifact_as:
        from suite.targets.registry import get_target

        info = get_target(info.export.same_artifact_as)
    opts = {**info.options.as_key(), "dtype": info.dtype}
    parts = [workload.hash, workload.seed, dict(sorted(params.items())), info.id, opts]
    device = export_device(info, device)
    if device != "cpu":
        parts.append({"device": device})
    key = json.dumps(parts, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    point = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
    suffix = "" if device == "cpu" else f"-{device}"
    return Path(root) / slug(info.id) / f"{workload.name}-{point}{suffix}-{digest}"


@functools.lru_cache(maxsize=1)
def exporter_code_hash() -> str:
    """A fingerprint of the suite's own model-building and export code (suite/targets/**/*.py, suite/ops.py).

    Part of the version key, so a fix in an exporter or a native builder re-exports instead of reusing
    an artifact the old code produced. Conservative: any change there invalidates every artifact.
    """
    targets = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for f in sorted(targets.rglob("*.py")) + sorted((targets.parent / "sources").rglob("*.py")) + [targets.parent / "ops.py"]:
        h.update(str(f.relative_to(targets.parent)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def version_key(info) -> dict:
    """Installed versions of the target's converters (importlib.metadata only: nothing is imported),
    plus the fingerprint of the suite's export code."""
    out = {"bench-suite-export-code": exporter_code_hash()}
    for dist in info.export.converter_dists:
        names = dist.split("|")  # "tensorflow-cpu|tensorflow": whichever is installed
        ver = None
        for n in names:
            try:
                ver = importlib.metadata.version(n)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        out[names[0]] = ver
    return out


def lookup(folder: Path, info, check_versions: bool) -> dict | None:
    """The manifest of a usable artifact in ``folder``, or None (missing, torn, or stale converters).

    A manifest with ``refused`` records a converter's refusal (unsupported) for these versions.
    """
    man = read_manifest(folder)
    if not man or not (man.get("refused") or (folder / man.get("artifact", "\0")).exists()):
        return None
    if check_versions and man.get("version_key") != version_key(info):
        return None
    return man


def nbytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def artifact_path(ctx) -> tuple[Path, dict]:
    """(artifact file or folder, manifest) of the cell being built; raises a clear error when absent."""
    folder = Path(ctx.artifact) if getattr(ctx, "artifact", "") else None
    man = read_manifest(folder) if folder else None
    if not man:
        raise FileNotFoundError(f"{ctx.info.id}: no exported artifact for this cell "
                                f"({folder or 'none given'}); the export phase should have produced one")
    return folder / man["artifact"], man


def run_export(task: dict, state, profile) -> dict:
    """Runs one export task in the source framework's worker. Returns the export record.

    The artifact is written to a temporary sibling folder and renamed into place, so a crash leaves
    no half-written artifact that a later run would take for a good one.
    """
    from suite.profiles import resolved_threads
    from suite.targets.base import BuildContext, UnsupportedError
    from suite.targets.registry import get_target
    from suite.weights import init_weights

    info = get_target(task["target"])
    wl = state.workload(task["workload_path"])
    params = task["params"]
    dest = Path(task["artifact"])
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    mod_name, fn_name = info.export.exporter.split(":")
    try:
        weights = init_weights(wl, params)
        # compiled for the task's device (a per-device export), always converted here on the CPU
        ctx = BuildContext(workload=wl, weights=weights, params=params, shapes=wl.shapes(params), info=info,
                           device=task.get("device", "cpu"), threads=resolved_threads(profile),
                           cache_dir=str(dest.parent))
        exporter = getattr(importlib.import_module(mod_name), fn_name)
        t0 = time.perf_counter()
        fields = exporter(ctx, tmp)
        export_s = time.perf_counter() - t0
    except UnsupportedError as e:
        # A converter's refusal is deterministic for these versions: remember it (same key as an
        # artifact), so the next run does not convert again just to be refused again.
        rec = {"status": "unsupported", "status_reason": f"export: {e}"}
        (tmp / MANIFEST).write_text(json.dumps(dict(refused=rec, target=info.id, workload=wl.name,
                                                    version_key=version_key(info)), sort_keys=True))
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
        return rec
    except MemoryError:
        raise
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        import traceback

        traceback.print_exc()
        text = str(e).strip().splitlines()
        return {"status": "error", "status_reason": f"export ({fn_name}) failed: {type(e).__name__}: "
                                                    f"{text[0] if text else ''}"[:500]}
    prov, embedded = _embed_provenance(tmp / fields["artifact"], wl, params, info, weights, fields)
    man = dict(fields, target=info.id, workload=wl.name, workload_hash=wl.hash, params=params,
               export_s=export_s, artifact_bytes=nbytes(tmp / fields["artifact"]), version_key=version_key(info),
               exported_at=time.strftime("%Y-%m-%dT%H:%M:%S"), provenance=prov, provenance_in_artifact=embedded)
    (tmp / MANIFEST).write_text(json.dumps(man, indent=1, sort_keys=True, default=str))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return {"status": "exported", "export_s": export_s, "artifact_bytes": man["artifact_bytes"]}


def _embed_provenance(path: Path, wl, params: dict, info, weights, fields: dict) -> tuple[dict, bool | str]:
    """Writes the export-time provenance (:mod:`suite.provenance`) into the fresh artifact, before its size is
    taken. Returns (provenance, True | False (no slot in the format) | why it could not be written); a failure
    here never fails the export: the manifest still carries the provenance."""
    from suite.provenance import embed, export_provenance

    prov = export_provenance(wl, params, info, weights, fields.get("versions", {}), version_key(info))
    try:
        return prov, embed(path, prov)
    except Exception as e:  # noqa: BLE001 - metadata is a convenience, the artifact is good
        return prov, f"{type(e).__name__}: {e}"[:300]

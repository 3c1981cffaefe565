"""Provenance of an exported artifact, carried in the format's own metadata, and read back.

What an artifact carries (a JSON object, :func:`export_provenance`): the workload (name, hash, sweep point),
its weights (seed and a hash of the canonical float64 arrays), the suite's version and commit, the target id,
the converter versions (the manifest's ``version_key``), when it was exported, and ``verification``: per
hardware profile (:func:`verification_key`), the figures of the runtime's outputs against the NumPy float64
reference.

Where each format keeps it (key / name :data:`KEY`):

* ONNX (``model.onnx``): ``metadata_props`` entry ``bench_suite.provenance`` (plus flat ``bench_suite.*``
  entries for viewers such as Netron).
* TFLite (``model.tflite``): a metadata buffer named ``bench_suite.provenance``
  (:mod:`suite.targets.common.tflite_metadata`; the converter's own bytes are kept unchanged behind it).
* SavedModel (``saved_model/``): ``assets.extra/bench_suite.provenance.json`` (TensorFlow's folder for files
  that go with a model but are not loaded by its graph).
* ``.pt2`` (torch.export): the extra file ``bench_suite.provenance.json``, i.e. what
  ``torch.export.load(path, extra_files={"bench_suite.provenance.json": ""})`` reads.
* OpenVINO IR (``model.xml``): ``<rt_info><bench_suite><provenance value="..."/></bench_suite></rt_info>``, what
  ``openvino.Core().read_model(path).get_rt_info(["bench_suite", "provenance"])`` reads (the weights file
  ``model.bin`` is not touched).
* Formats with no metadata slot (``jax.export`` bytes): the manifest only.

The manifest (``manifest.json`` next to the artifact) holds the same object under ``provenance``.

When it is written: the export-time part by the export task, before the manifest (so ``artifact_bytes`` and
the cache key stay those of the final file); ``verification`` after a cell verified the artifact
(:func:`stamp_verification`, called by the scheduler in the ``bench`` process): only when that profile's
figures are new or changed, so a cached artifact is rewritten once, not on every run. The version key and the
cell hash do not involve the metadata, so the cache keeps finding the artifact; the graph and weights are
not touched, so the numerics are those verified.

Imports only what the format needs: ``onnx`` for ONNX; nothing for TFLite, SavedModel and ``.pt2``
(read as bytes, JSON and a zip archive) and OpenVINO IR (XML). Never torch, tensorflow or jax.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import socket
import time
import zipfile
from pathlib import Path

KEY = "bench_suite.provenance"
PT2_NAME = KEY + ".json"
SCHEMA = 1
VERIFY_FIELDS = ("status", "max_abs_err", "max_rel_err", "cosine", "mismatch_fraction", "top1_agreement",
                 "rtol", "atol")


def weights_hash(weights: dict) -> str:
    """sha256 (first 16 hex) of the canonical float64 weights: node, parameter, shape and bytes, sorted."""
    import numpy as np

    h = hashlib.sha256()
    for node in sorted(weights):
        for p in sorted(weights[node]):
            a = np.ascontiguousarray(weights[node][p], dtype=np.float64)
            h.update(f"{node}/{p}{a.shape}".encode() + b"\0" + a.tobytes())
    return h.hexdigest()[:16]


def _weights_entry(wl, weights) -> dict:
    """Where the artifact's weights came from: the suite's initialiser (graph workloads, with their hash), or
    the source model's own (its framework's seeded initialisation, or its weights file / ONNX file)."""
    if wl.source is None:
        return {"seed": wl.seed, "hash": weights_hash(weights), "init": "suite.weights.init_weights"}
    s = wl.source
    init = (f"{s.framework} seed {wl.seed}, then {s.factory}" if s.factory and not s.weights
            else f"{s.factory} with {s.weights}" if s.weights else f"the ONNX file {s.file}")
    # the workload hash covers the weights file's (or ONNX file's) content and the factory library's version
    return {"seed": wl.seed, "hash": wl.hash, "init": init, "source": s.framework}


def export_provenance(wl, params: dict, info, weights, converter_versions: dict, version_key: dict) -> dict:
    """What is known when the artifact is written (``verification`` is filled after a verify)."""
    import suite
    from suite.envinfo import git_commit

    return {"schema": SCHEMA, "producer": "bench-suite", "suite_version": suite.__version__,
            "git_commit": git_commit(), "target": info.id, "framework": info.framework, "format": info.format,
            "runtime": info.runtime, "workload": wl.name, "workload_hash": wl.hash,
            "params": dict(sorted(params.items())),
            "weights": _weights_entry(wl, weights),
            "converter_versions": dict(converter_versions), "version_key": dict(version_key),
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "verification": {}}


# --- per format: read and write the JSON text -------------------------------------------------------------

def _kind(path: Path) -> str:
    if path.is_dir():
        return "saved_model" if (path / "saved_model.pb").exists() else "dir"
    return {".onnx": "onnx", ".tflite": "tflite", ".pt2": "pt2", ".xml": "openvino_ir"}.get(path.suffix, "other")


def _read_onnx(path: Path) -> str | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((p.value for p in model.metadata_props if p.key == KEY), None)


def _write_onnx(path: Path, text: str, prov: dict) -> None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    flat = {KEY: text, **{f"bench_suite.{k}": str(prov[k]) for k in ("workload", "workload_hash", "target",
                                                                     "suite_version") if prov.get(k) is not None}}
    keep = [(p.key, p.value) for p in model.metadata_props if p.key not in flat]
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, dict(keep, **flat))
    _atomic(path, model.SerializeToString())


def _read_tflite(path: Path) -> str | None:
    from suite.targets.common.tflite_metadata import read_metadata

    data = read_metadata(path.read_bytes()).get(KEY)
    return data.decode() if data is not None else None


def _write_tflite(path: Path, text: str, prov: dict) -> None:
    from suite.targets.common.tflite_metadata import write_metadata

    _atomic(path, write_metadata(path.read_bytes(), KEY, text.encode()))


def _pt2_entry(zf: zipfile.ZipFile) -> str:
    """``<archive>/extra/<name>``: where torch.export.save puts its ``extra_files``."""
    root = zf.namelist()[0].split("/", 1)[0]
    return f"{root}/extra/{PT2_NAME}"


def _read_pt2(path: Path) -> str | None:
    with zipfile.ZipFile(path) as zf:
        name = _pt2_entry(zf)
        return zf.read(name).decode() if name in zf.namelist() else None


def _write_pt2(path: Path, text: str, prov: dict) -> None:
    """Appends the entry; an existing one is dropped first. Entries before it keep their offsets (torch aligns
    its records): when it is the last, the archive is cut there, else it is copied without it."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with zipfile.ZipFile(path) as zf:
        name = _pt2_entry(zf)
        infos = zf.infolist()
    if name in {i.filename for i in infos} and max(infos, key=lambda i: i.header_offset).filename != name:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w") as dst:
            for i in infos:
                if i.filename != name:
                    dst.writestr(i, src.read(i.filename))
    else:
        tmp.write_bytes(path.read_bytes())
    with zipfile.ZipFile(tmp, "a") as zf:
        old = zf.NameToInfo.get(name)
        if old is not None:  # the last entry: write the new one (and the central directory) over it
            zf.filelist.remove(old)
            del zf.NameToInfo[name]
            zf.start_dir = old.header_offset
        zf.writestr(name, text)
    os.replace(tmp, path)


def _read_saved_model(path: Path) -> str | None:
    f = path / "assets.extra" / f"{KEY}.json"
    return f.read_text() if f.exists() else None


def _write_saved_model(path: Path, text: str, prov: dict) -> None:
    (path / "assets.extra").mkdir(exist_ok=True)
    _atomic(path / "assets.extra" / f"{KEY}.json", text.encode())


def _read_ir(path: Path) -> str | None:
    import xml.etree.ElementTree as ET

    node = ET.parse(path).getroot().find("rt_info/bench_suite/provenance")
    return node.get("value") if node is not None else None


def _write_ir(path: Path, text: str, prov: dict) -> None:
    """Into the IR's ``rt_info`` (OpenVINO's own runtime-info section, nested elements with ``value``)."""
    import xml.etree.ElementTree as ET

    tree = ET.parse(path)
    root = tree.getroot()
    rt = root.find("rt_info")
    if rt is None:
        rt = ET.SubElement(root, "rt_info")
    ours = rt.find("bench_suite")
    if ours is not None:
        rt.remove(ours)
    ET.SubElement(ET.SubElement(rt, "bench_suite"), "provenance", value=text)
    buf = io.BytesIO()
    tree.write(buf, encoding="utf-8", xml_declaration=True)
    _atomic(path, buf.getvalue())


READERS = {"onnx": _read_onnx, "tflite": _read_tflite, "pt2": _read_pt2, "saved_model": _read_saved_model,
           "openvino_ir": _read_ir}
WRITERS = {"onnx": _write_onnx, "tflite": _write_tflite, "pt2": _write_pt2, "saved_model": _write_saved_model,
           "openvino_ir": _write_ir}


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a reader that opened (or mapped) the old file keeps it


# --- public -------------------------------------------------------------------------------------------------

def embed(path: str | Path, prov: dict) -> bool:
    """Writes ``prov`` into the artifact at ``path``. Returns False for a format with no metadata slot."""
    path = Path(path)
    writer = WRITERS.get(_kind(path))
    if writer is None:
        return False
    writer(path, json.dumps(prov, sort_keys=True, default=str), prov)
    return True


def read_provenance(path: str | Path) -> dict:
    """The provenance an artifact carries.

    Args:
        path: a ``.onnx`` / ``.tflite`` / ``.pt2`` file, a SavedModel folder, or an artifact's cell folder
            (the one with ``manifest.json``: its artifact is read, else the manifest's copy).
    Returns:
        the provenance object, with ``source`` saying where it was read from.
    Raises:
        FileNotFoundError: no such artifact; LookupError: the artifact carries none.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such artifact")
    manifest = None
    if path.is_dir() and (path / "manifest.json").exists():
        manifest = json.loads((path / "manifest.json").read_text())
        if manifest.get("artifact") and (path / manifest["artifact"]).exists():
            path = path / manifest["artifact"]
    kind = _kind(path)
    text = READERS[kind](path) if kind in READERS else None
    if text is not None:
        return dict(json.loads(text), source=f"{kind} metadata ({path.name})")
    if manifest and manifest.get("provenance"):
        return dict(manifest["provenance"], source="manifest.json")
    raise LookupError(f"{path}: carries no bench_suite provenance")


def _reference_of(rec: dict) -> str:
    """What the cell was checked against: the suite's NumPy float64 reference, or a source: model itself."""
    kind = rec.get("source")
    if not kind or kind == "graph":
        return "NumPy float64 (suite.reference)"
    return f"the {kind} source model itself in {rec.get('reference_dtype') or 'float64'} (suite.sources)"


def verification_entry(rec: dict, profile, target: str) -> dict:
    """The verification figures of one cell's record (a worker's measured fields) of ``target`` on ``profile``."""
    from suite.profiles import resolved_threads

    out = {k: rec.get(k) for k in VERIFY_FIELDS if rec.get(k) is not None}
    try:
        runtime = dict(json.loads(rec.get("versions") or "{}"))
    except ValueError:
        runtime = {}
    out.update(target=target, profile=profile.name, device=profile.device, threads=resolved_threads(profile),
               host=socket.gethostname(), runtime_versions=runtime, reference=_reference_of(rec),
               verified_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return out


def _same_verification(old: dict | None, new: dict) -> bool:
    """Same outcome on the same host, threads and runtime versions, figures within 1% (a runtime whose
    threaded reductions differ in the last bits does not rewrite its artifact on every run)."""
    if not old or any(old.get(k) != new.get(k) for k in ("status", "host", "threads", "runtime_versions")):
        return False
    for k in ("max_abs_err", "max_rel_err", "cosine"):
        a, b = old.get(k), new.get(k)
        if (a is None) != (b is None) or (a is not None and not math.isclose(a, b, rel_tol=1e-2, abs_tol=1e-12)):
            return False
    return True


def verification_key(prov: dict, target: str, profile_name: str) -> str:
    """The profile's name; ``<target> <profile>`` for a target that runs another's artifact (the same .tflite
    run by ``@litert-noxnnpack``: same bytes, other kernels, other figures)."""
    return profile_name if target == prov.get("target") else f"{target} {profile_name}"


def stamp_verification(folder: str | Path, rec: dict, profile, target: str) -> bool:
    """Adds the verification figures of a cell of ``target`` to the artifact in ``folder`` and its manifest.

    Only a cell that reached the comparison (pass, fail, nan, shape_mismatch) is stamped, and only when the
    profile's figures are new or differ from what the artifact carries (timestamps aside). Returns whether
    the artifact was rewritten.
    """
    from suite.targets.common.manifest import MANIFEST, read_manifest

    if rec.get("status") not in ("pass", "fail", "nan", "shape_mismatch"):
        return False
    folder = Path(folder)
    man = read_manifest(folder)
    if not man or not man.get("provenance") or not man.get("artifact"):
        return False  # an artifact exported before provenance existed: re-exported with it on a new version key
    entry = verification_entry(rec, profile, target)
    prov = man["provenance"]
    key = verification_key(prov, target, profile.name)
    if _same_verification(prov.get("verification", {}).get(key), entry):
        return False
    prov = dict(prov, verification=dict(prov.get("verification", {}), **{key: entry}))
    if man.get("provenance_in_artifact") is True:  # else the format has no slot, or export could not write it
        embed(folder / man["artifact"], prov)      # (a .tflite with buffers after the flatbuffer): manifest only
    # artifact_bytes stays the size as exported: the figures add well under 1 KB per profile, and a figure that
    # moved with every stamp would make the same artifact look different between runs
    man = dict(man, provenance=prov)
    _atomic(folder / MANIFEST, json.dumps(man, indent=1, sort_keys=True, default=str).encode())
    return True

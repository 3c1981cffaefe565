"""Provenance in exported artifacts (suite.provenance) and `bench card` (suite.card).

One `bench export` of mlp_classifier through torch>onnx@onnxruntime and tensorflow>tflite@litert (module
fixture, its own $BENCH_CACHE_DIR); the artifacts' metadata is read back here, in the pytest process, which
never imports torch, tensorflow or jax. LiteRT runs in a subprocess.
"""
from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

from conftest import REPO, bench, skip_if_missing
from suite.spec import load_workload

MLP = REPO / "workloads" / "mlp_classifier.yaml"
TARGETS = {"onnx": "torch>onnx@onnxruntime", "tflite": "tensorflow>tflite@litert",
           "openvino_ir": "torch>openvino@openvino"}
CONVERTERS = {"onnx": ("torch", "onnx", "onnxscript"), "tflite": ("tensorflow|tensorflow-cpu",),
              "openvino_ir": ("torch", "openvino")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    for t in TARGETS.values():
        skip_if_missing(t)
    out = tmp_path_factory.mktemp("artifacts")
    env = dict(__import__("os").environ, BENCH_CACHE_DIR=str(tmp_path_factory.mktemp("cache")))
    args = ["export", "-w", str(MLP), "--out", str(out)] + [a for t in TARGETS.values() for a in ("-t", t)]
    res = bench(*args, env=env, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("verify pass") == 2 * len(TARGETS), res.stdout  # 2 sweep points each
    return out, env


def _folder(out, fmt: str, batch: int = 1):
    from suite.targets.common.artifacts import slug

    return sorted((out / slug(TARGETS[fmt])).glob(f"mlp_classifier-batch{batch}-*"))[0]


def _installed(names: str) -> str:
    for n in names.split("|"):
        try:
            return importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise AssertionError(names)


@pytest.mark.parametrize("fmt", list(TARGETS))
def test_artifact_carries_its_provenance(exported, fmt):
    import suite
    from suite.provenance import read_provenance, weights_hash
    from suite.weights import init_weights

    out, _ = exported
    folder = _folder(out, fmt)
    man = json.loads((folder / "manifest.json").read_text())
    artifact = folder / man["artifact"]
    prov = read_provenance(artifact)
    assert prov["source"] == f"{fmt} metadata ({artifact.name})", "read from the format's own metadata"
    wl = load_workload(MLP)
    assert (prov["workload"], prov["workload_hash"], prov["target"]) == (wl.name, wl.hash, TARGETS[fmt])
    assert prov["params"] == {"batch": 1}
    assert prov["suite_version"] == suite.__version__
    assert prov["weights"] == {"seed": wl.seed, "hash": weights_hash(init_weights(wl, {"batch": 1})),
                               "init": "suite.weights.init_weights"}
    assert prov["version_key"] == man["version_key"], "the converter versions the cache is keyed by"
    for names in CONVERTERS[fmt]:
        key = next(n for n in names.split("|") if n in prov["version_key"])
        assert prov["version_key"][key] == _installed(names)
    v = prov["verification"]["cpu"]  # `bench export` verifies with the runtime and writes the figures in
    assert v["status"] == "pass" and 0 <= v["max_abs_err"] < 1e-4 and v["cosine"] > 0.9999
    assert v["rtol"] and v["atol"] and v["threads"] >= 1 and v["runtime_versions"]
    assert man["provenance"] == {k: x for k, x in prov.items() if k != "source"}, "manifest mirrors the artifact"
    # the size as exported (with export-time provenance); the verification stamp is not counted
    assert 0 < artifact.stat().st_size - man["artifact_bytes"] < 2048
    # reading imports no framework: checked in a fresh process (earlier tests may have imported them here)
    probe = ("import sys\nfrom suite.provenance import read_provenance\n"
             f"read_provenance({str(artifact)!r})\n"
             "print(sorted(m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr


def test_openvino_reads_the_provenance_from_its_own_rt_info(exported):
    """OpenVINO itself sees what the suite wrote (rt_info), and the stamped IR still loads."""
    ov = pytest.importorskip("openvino")
    out, _ = exported
    folder = _folder(out, "openvino_ir")
    model = ov.Core().read_model(str(folder / "model.xml"))
    prov = json.loads(model.get_rt_info(["bench_suite", "provenance"]).astype(str))
    assert prov["target"] == TARGETS["openvino_ir"] and prov["verification"]["cpu"]["status"] == "pass"


def test_tflite_with_metadata_loads_and_gives_the_same_outputs(exported):
    """The embedded model runs in LiteRT with bit-identical outputs to the converter's own bytes."""
    from suite.targets.common.tflite_metadata import original, read_metadata, write_metadata

    out, _ = exported
    path = _folder(out, "tflite") / "model.tflite"
    data = path.read_bytes()
    meta = read_metadata(data)
    assert "bench_suite.provenance" in meta and "min_runtime_version" in meta, "the converter's entries are kept"
    again = write_metadata(data, "bench_suite.provenance", b"{}")
    assert len(again) <= len(data) and original(again) == original(data), "rewriting replaces, never stacks"
    assert read_metadata(again)["bench_suite.provenance"] == b"{}"
    probe = f"""
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from suite.targets.common.tflite_metadata import original
data = open({str(path)!r}, "rb").read()
outs = []
for model in (data, original(data)):
    it = Interpreter(model_content=model, num_threads=1)
    run = it.get_signature_runner("serving_default")
    x = {{k: np.random.default_rng(0).normal(size=d["shape"]).astype(d["dtype"])
          for k, d in run.get_input_details().items()}}
    outs.append(run(**x))
assert outs[0].keys() == outs[1].keys()
assert all(np.array_equal(outs[0][k], outs[1][k]) for k in outs[0]), "metadata changed the numerics"
print("same", sorted(outs[0]))
"""
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0 and "same" in res.stdout, res.stdout + res.stderr


def test_verification_is_stamped_once_and_the_cache_key_stays(exported):
    """A verify on another profile adds its figures; an identical verify rewrites nothing; lookup still finds
    the artifact (version key untouched)."""
    from suite.provenance import read_provenance
    from suite.targets.common.artifacts import lookup
    from suite.targets.registry import get_target

    out, env = exported
    folder = _folder(out, "onnx")
    args = ["verify", "-w", str(MLP), "-t", TARGETS["onnx"], "-p", "cpu-1t", "--sweep", "first",
            "--artifacts", str(out)]
    res = bench(*args, env=env, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    prov = read_provenance(folder / "model.onnx")
    assert set(prov["verification"]) == {"cpu", "cpu-1t"} and prov["verification"]["cpu-1t"]["threads"] == 1
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    res = bench(*args, env=env, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (folder / "model.onnx").stat().st_mtime_ns == stamp, "same figures: the artifact is not rewritten"
    info = get_target(TARGETS["onnx"])
    man = lookup(folder, info, check_versions=True)
    assert man is not None and man["provenance"]["verification"]["cpu-1t"] == prov["verification"]["cpu-1t"]


def test_a_target_running_anothers_artifact_gets_its_own_entry(exported):
    """@litert-noxnnpack runs the @litert .tflite: its figures go under its own key, the others stay."""
    from suite.provenance import read_provenance
    from suite.targets.registry import get_target

    target = "tensorflow>tflite@litert-noxnnpack"
    if get_target(target).export.same_artifact_as != TARGETS["tflite"]:
        pytest.skip(f"{target} has an artifact of its own")
    out, env = exported
    res = bench("verify", "-w", str(MLP), "-t", target, "-p", "cpu-1t", "--sweep", "first", "--artifacts", str(out),
                env=env, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    ver = read_provenance(_folder(out, "tflite") / "model.tflite")["verification"]
    assert ver[f"{target} cpu-1t"]["target"] == target and ver[f"{target} cpu-1t"]["status"] == "pass"
    assert ver["cpu"]["target"] == TARGETS["tflite"]


def test_pt2_entry_is_replaced_not_duplicated(tmp_path):
    """The .pt2 writer (a zip: torch.export.save's layout, made here without torch): the archive's records
    keep their offsets, and writing again replaces the entry."""
    import zipfile

    from suite.provenance import PT2_NAME, embed, read_provenance

    path = tmp_path / "model.pt2"
    with zipfile.ZipFile(path, "w") as zf:
        for name in ("model/data/weights/weight_0", "model/models/model.json", "model/archive_format"):
            zf.writestr(name, name * 10)
    offsets = {i.filename: i.header_offset for i in zipfile.ZipFile(path).infolist()}
    for n in (1, 2):
        assert embed(path, {"target": "t", "n": n})
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names.count(f"model/extra/{PT2_NAME}") == 1
        assert {i.filename: i.header_offset for i in zf.infolist() if i.filename in offsets} == offsets
    assert read_provenance(path)["n"] == 2


def test_bench_provenance_prints_it(exported):
    out, _ = exported
    res = bench("provenance", str(_folder(out, "tflite")))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["target"] == TARGETS["tflite"]


# --- bench card -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("results")
    res = bench("run", "--quick", "-w", "mlp_classifier", "-t", "test:numpy", "-p", "cpu-1t", "--no-dashboard",
                "--results", str(d), "--run-id", "card-run")
    assert res.returncode == 0, res.stderr
    return d


def test_card_writes_markdown_and_json(quick_run, tmp_path):
    from suite.results import read_results
    from suite.weights import init_weights

    res = bench("card", "-w", "mlp_classifier", "-t", "test:numpy", "--results", str(quick_run),
                "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "mlp_classifier__test_numpy.json").read_text())
    md = (tmp_path / "mlp_classifier__test_numpy.md").read_text()
    row = read_results(quick_run).iloc[0]
    wl = load_workload(MLP)
    assert card["run_id"] == "card-run" and card["what"]["target"] == "test:numpy"
    assert card["provenance"]["workload_hash"] == wl.hash and card["provenance"]["weights_seed"] == wl.seed
    assert card["provenance"]["suite_version"] == row["suite_version"]
    [v] = card["verification"]
    assert v["profile"] == "cpu-1t" and v["status"] == "pass" and v["max_abs_err"] == row["max_abs_err"]
    [s] = card["speed"]
    assert s["latency_median_s"] == row["latency_median_s"] and s["latency_ci_low_s"] <= s["latency_median_s"]
    weights = init_weights(wl, {"batch": 1})
    assert card["needs"]["parameters"] == sum(a.size for node in weights.values() for a in node.values())
    assert card["needs"]["per_cell"][0]["flops"] == row["flops"]
    assert card["machine"]["host"] == row["host"]
    for text in ("## How it was verified", "## How fast", "## What it needs", "## On which machine", wl.hash,
                 f"{row['latency_median_s'] * 1e3:.4g} ms"):
        assert text in md, text


@pytest.mark.parametrize("args,expected", [
    (["-w", "nope", "-t", "test:numpy"], "unknown workload 'nope'"),
    (["-w", "mlp_classifier", "-t", "bogus"], "unknown target 'bogus'"),
    (["-w", "mlp_classifier", "-t", "torch:eager"], "no results for mlp_classifier × torch:eager"),
    (["-w", "mlp_classifier", "-t", "test:numpy", "--run-id", "other"], "no results"),
], ids=["workload", "target", "no-rows", "run-id"])
def test_card_bad_arguments_exit_2(quick_run, tmp_path, args, expected):
    res = bench("card", *args, "--results", str(quick_run), "--out", str(tmp_path))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and expected in lines[0], res.stderr


def test_card_of_an_export_target_names_its_artifact(exported, tmp_path):
    """A quick run of an export target (the cache of the export fixture): the card lists the cached artifact's
    weights hash and the verification the run stamped into it."""
    from suite.provenance import weights_hash
    from suite.weights import init_weights

    _, env = exported
    results = tmp_path / "results"
    res = bench("run", "--quick", "-w", "mlp_classifier", "-t", TARGETS["tflite"], "-p", "cpu-1t", "--no-dashboard",
                "--results", str(results), env=env, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    res = bench("card", "-w", "mlp_classifier", "-t", TARGETS["tflite"], "--results", str(results),
                "--out", str(tmp_path), env=env)
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "mlp_classifier__tensorflow_tflite_litert.json").read_text())
    [art] = card["provenance"]["artifacts"]
    assert art["weights_hash"] == weights_hash(init_weights(load_workload(MLP), {"batch": 1}))
    assert art["verification"]["cpu-1t"]["max_abs_err"] == card["verification"][0]["max_abs_err"]
    assert card["needs"]["per_cell"][0]["artifact_bytes"] > 0 and card["speed"][0]["latency_median_s"] > 0
    assert art["weights_hash"] in (tmp_path / "mlp_classifier__tensorflow_tflite_litert.md").read_text()

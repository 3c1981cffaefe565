"""IREE routes (jax>stablehlo@iree, torch>iree@iree): what the suite sets (threads from the profile, the .vmfb as
the artifact, the CPU it was compiled for) and how a compiler refusal reads. Verification of every op case and
shipped workload is in test_targets.py, export-here-run-there without a framework in test_export.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cells, skip_if_missing
from suite.spec import load_workload

pytest.importorskip("iree.runtime")

TARGET = "jax>stablehlo@iree"
MLP = REPO / "workloads" / "mlp_classifier.yaml"


def test_task_flags_follow_the_thread_count():
    from suite.targets.runtimes.iree import task_flags

    assert task_flags(1) == ["--task_topology_group_count=1"]
    assert task_flags(3) == ["--task_topology_group_count=3"]
    assert task_flags(0) == []  # 0: IREE's default topology


def test_the_topology_is_set_once_before_the_first_device():
    """IREE reads its task topology once per process (at the first local-task device): the first call's flags
    stay in force, and what is reported is what is in force, not what a later call asked for."""
    probe = ("from suite.targets.runtimes.iree import set_task_topology\n"
             "print(set_task_topology(1), set_task_topology(2))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['--task_topology_group_count=1'] ['--task_topology_group_count=1']"


def test_threads_follow_the_profile_and_the_artifact_is_the_vmfb(cache):
    """cpu-1t: one IREE worker, recorded in the layout and the thread settings; the cached artifact is the
    .vmfb (an IREE flatbuffer), compiled for this host's CPU, which the manifest records."""
    skip_if_missing(TARGET)
    from suite.profiles import load_profiles
    from suite.targets.runtimes.iree import host_cpu

    profile = load_profiles(REPO / "hardware_profiles")["cpu-1t"]
    recs = run_cells([load_workload(MLP)], [TARGET], profile)
    assert len(recs) == 2
    for rec in recs.values():
        assert rec["status"] == "pass", rec.get("status_reason")
        assert "IREE local-task threads=1 (task_topology_group_count=1)" in rec["layout"], rec["layout"]
        assert "target-cpu=host" in rec["layout"]
        assert json.loads(rec["thread_settings"])["iree_task_topology"] == "--task_topology_group_count=1"
    (man_path,) = sorted((cache / "artifacts" / "jax_stablehlo_iree").glob("mlp_classifier-batch1-*/manifest.json"))
    man = json.loads(man_path.read_text())
    vmfb = man_path.parent / man["artifact"]
    head = vmfb.read_bytes()[:128]  # IREE's VM flatbuffer (module.fb, identifier "IREE") in a zip wrapper
    assert man["artifact"] == "model.vmfb" and head.startswith(b"PK\x03\x04") and b"IREE" in head
    assert man["artifact_bytes"] == vmfb.stat().st_size
    assert man["iree"]["target_cpu"] == "host" and man["iree"]["compiled_on"] == host_cpu()
    assert "--iree-llvmcpu-target-cpu=host" in man["iree"]["flags"]


def test_a_compiler_refusal_is_one_line_with_the_diagnostic():
    pytest.importorskip("iree.compiler")
    from suite.targets.base import UnsupportedError
    from suite.targets.common.convert import iree_compile, iree_compile_flags

    mlir = ("module {\n func.func @main(%a: tensor<2xf32>) -> tensor<2xf32> {\n"
            "  %0 = stablehlo.custom_call @foo(%a) : (tensor<2xf32>) -> tensor<2xf32>\n"
            "  return %0 : tensor<2xf32>\n }\n}\n")
    with pytest.raises(UnsupportedError) as e:
        iree_compile(mlir, "stablehlo", iree_compile_flags("llvm-cpu", "host"))
    msg = str(e.value)
    assert "\n" not in msg and "<stdin>" not in msg and "Invoked with" not in msg, msg
    assert msg.startswith("iree-compile 3.") and msg.endswith(
        "failed to legalize operation 'stablehlo.custom_call' that was explicitly marked illegal"), msg


def test_a_torch_operator_refusal_names_the_aten_op():
    """iree-turbine leaves an aten op IREE cannot lower as a generic torch.operator: the reason names the aten op
    (the compiler's text for nn.LSTM, as IREE 3.13 prints it)."""
    from suite.targets.common.convert import iree_message

    diag = ("Error invoking IREE compiler tool iree-compile\nDiagnostics:\n/x/model.py:6:0: error: failed to legalize "
            "operation 'torch.operator' that was explicitly marked illegal: %11:3 = \"torch.operator\"(%arg0, %9) "
            "<{name = \"torch.aten.lstm.input\"}> : (!torch.vtensor<[1,5,8],f32>) -> (!torch.vtensor<[1,5,16],f32>)\n"
            "\n\nInvoked with:\n iree-compile - --iree-input-type=torch\n")
    assert iree_message(RuntimeError(diag)) == ("failed to legalize operation 'torch.operator' that was explicitly "
                                                "marked illegal (torch.aten.lstm.input)")


def test_an_artifact_compiled_for_another_cpu_is_refused(tmp_path):
    """target_cpu=host code may use instructions another CPU lacks: refused with one line, never run."""
    from suite.targets.runtimes.iree import check_cpu, host_cpu

    vmfb = tmp_path / "model.vmfb"
    check_cpu({"iree": {"target_cpu": "host", "compiled_on": host_cpu()}}, vmfb)  # this machine: runs
    check_cpu({"iree": {"target_cpu": "generic", "compiled_on": {"model": "X", "isa": "0"}}}, vmfb)  # portable
    with pytest.raises(RuntimeError, match=r"^model.vmfb was compiled with --iree-llvmcpu-target-cpu=host on "
                                           r"another CPU \(X, flags 0\); .*export it on this machine") as e:
        check_cpu({"iree": {"target_cpu": "host", "compiled_on": {"model": "X", "isa": "0"}}}, vmfb)
    assert "\n" not in str(e.value)


def test_the_runtime_imports_neither_the_compiler_nor_a_framework(tmp_path):
    """The edge-box split: the .vmfb runs where only iree-base-runtime and NumPy are (iree.compiler blocked)."""
    skip_if_missing(TARGET)
    out = tmp_path / "artifacts"
    exp = subprocess.run([sys.executable, "-m", "suite.cli", "export", "-w", str(MLP), "-t", TARGET,
                          "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert exp.returncode == 0, exp.stdout + exp.stderr
    folder = sorted(out.glob("*/mlp_classifier-batch1-*"))[0]
    probe = f"""
import json, sys
BLOCKED = ("torch", "tensorflow", "jax", "keras", "iree.compiler")
for m in BLOCKED:
    sys.modules[m] = None
from suite.profiles import load_profiles
from suite.worker import CellState, run_task
profile = load_profiles({str(REPO / 'hardware_profiles')!r})["cpu-1t"]
task = {{"workload_path": {str(MLP)!r}, "params": {{"batch": 1}}, "target": {TARGET!r}, "mode": "run",
        "timing": {{"warmup_s": 0.05, "min_warmup_calls": 1, "min_samples": 5, "min_time": 0.1, "max_time": 1.0}},
        "artifact": {str(folder)!r}, "dtype": "float32"}}
rec = run_task(task, CellState(), profile)
bad = [m for m in sys.modules if m.startswith(BLOCKED) and sys.modules[m] is not None]
print("RESULT " + json.dumps({{"status": rec["status"], "reason": rec.get("status_reason"), "bad": bad,
                             "layout": rec.get("layout"), "median": rec.get("latency_median_s")}}))
"""
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    rec = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
    assert rec["bad"] == [] and rec["status"] == "pass", rec
    assert rec["median"] is not None and "threads=1" in rec["layout"]


def test_only_a_per_device_export_is_keyed_by_the_device():
    from suite.targets.common.artifacts import cell_dir
    from suite.targets.registry import get_target

    wl = load_workload(MLP)
    iree, onnx = get_target(TARGET), get_target("torch>onnx@onnxruntime")
    cpu, cuda = cell_dir("/c", wl, {"batch": 1}, iree, "cpu"), cell_dir("/c", wl, {"batch": 1}, iree, "cuda")
    assert cpu != cuda and cuda.name.startswith("mlp_classifier-batch1-cuda-") and "-cuda-" not in cpu.name
    assert cell_dir("/c", wl, {"batch": 1}, iree) == cpu  # the CPU artifact's key is the one it always had
    assert cell_dir("/c", wl, {"batch": 1}, onnx, "cuda") == cell_dir("/c", wl, {"batch": 1}, onnx, "cpu")
    assert "cuda" in iree.devices and "cuda" in get_target("torch>iree@iree").devices


@pytest.mark.parametrize("target_id", [TARGET, "torch>iree@iree"])
def test_the_cuda_profile_gets_its_own_artifact_compiled_for_cuda_without_a_gpu(cache, target_id):
    """The cuda profile's IREE cells are compiled for IREE's cuda HAL device (PTX for sm_80), a second artifact
    beside the CPU one; iree-compile needs no GPU for it, so this runs on any host (running it needs one)."""
    skip_if_missing(target_id)
    from suite.plan import make_plan
    from suite.profiles import load_profiles
    from suite.scheduler import export_phase
    from suite.targets.registry import get_target

    profiles = load_profiles(REPO / "hardware_profiles")
    picked = {"cuda": profiles["cuda"], "cpu-1t": profiles["cpu-1t"]}
    cells = make_plan([load_workload(MLP)], [get_target(target_id)], picked, {p: (True, "") for p in picked})
    cells = [c for c in cells if c.params_dict == {"batch": 1}]
    failed = []
    ready = export_phase(cells, lambda c, rec: failed.append((c.profile.name, rec)), timeout_s=600)
    assert not failed, failed
    folders = {cell.profile.name: Path(art["artifact"]) for cell, art in ready}
    assert set(folders) == {"cuda", "cpu-1t"} and folders["cuda"] != folders["cpu-1t"]
    man = json.loads((folders["cuda"] / "manifest.json").read_text())
    assert man["iree"]["device"] == "cuda" and man["iree"]["cuda_target"] == "sm_80", man["iree"]
    assert "--iree-hal-target-device=cuda" in man["iree"]["flags"] and "compiled_on" not in man["iree"]
    assert "IREE vmfb, cuda sm_80 (PTX)" in man["layout"]
    vmfb = (folders["cuda"] / man["artifact"]).read_bytes()
    assert vmfb.startswith(b"PK\x03\x04") and b"cuda-nvptx-fb" in vmfb  # IREE's CUDA executable format
    cpu_man = json.loads((folders["cpu-1t"] / "manifest.json").read_text())
    assert cpu_man["iree"]["device"] == "cpu" and b"cuda-nvptx-fb" not in (folders["cpu-1t"] / "model.vmfb").read_bytes()


def test_an_artifact_for_another_device_is_refused_before_it_is_loaded(tmp_path):
    from types import SimpleNamespace

    from suite.targets.runtimes.iree import build

    (tmp_path / "manifest.json").write_text(json.dumps({"artifact": "model.vmfb", "iree": {"device": "cuda"}}))
    (tmp_path / "model.vmfb").write_bytes(b"")
    ctx = SimpleNamespace(artifact=str(tmp_path), device="cpu", threads=1, info=SimpleNamespace(id=TARGET))
    with pytest.raises(RuntimeError, match=r"^model.vmfb was compiled for cuda, this profile runs on cpu: export it"):
        build(ctx)

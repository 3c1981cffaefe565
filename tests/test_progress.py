"""Run progress: unavailable profiles announced once (not cell by cell), elapsed time and an estimate left."""
from __future__ import annotations

import io
import re

from conftest import REPO
from suite.plan import make_plan
from suite.profiles import load_profiles
from suite.runner import Progress
from suite.spec import load_workload
from suite.targets.registry import get_target


def _cells():
    profiles = load_profiles(REPO / "hardware_profiles")
    profiles = {k: profiles[k] for k in ("cpu", "cuda")}
    wl = load_workload(REPO / "workloads" / "mlp_classifier.yaml")  # batch 1 and 32
    targets = [get_target("test:numpy"), get_target("test:crash")]
    return make_plan([wl], targets, profiles, {"cpu": (True, ""), "cuda": (False, "no CUDA device")})


def test_unavailable_profile_is_one_line_and_its_cells_are_not_listed():
    cells = _cells()
    out = io.StringIO()
    progress = Progress(cells, out)
    head = out.getvalue().splitlines()
    assert head == ["cuda: not available here (no CUDA device) - 4 cells skipped"]
    for cell in cells:
        progress.finish(cell, {"status": cell.status or "pass"})
    lines = out.getvalue().splitlines()[1:]
    assert len(lines) == 4 and not any("@cuda" in ln for ln in lines), lines
    assert progress.done == 8 and progress.ran == 4


def test_lines_show_elapsed_and_an_estimate_of_the_time_left():
    cells = [c for c in _cells() if c.status is None]
    out = io.StringIO()
    progress = Progress(cells, out)
    progress.started -= 10.0  # as if the first cell took ten seconds
    progress.finish(cells[0], {"status": "pass", "latency_median_s": 0.002})
    line = out.getvalue().splitlines()[0]
    m = re.match(r"\[1/4 0:(\d\d), ~0:(\d\d) left\] pass +mlp_classifier .* 2\.000 ms$", line)
    assert m, line
    assert int(m.group(1)) == 10 and int(m.group(2)) == 30  # three cells left at ten seconds each


def test_target_not_installed_is_one_line_per_target_in_progress_and_summary():
    """A framework missing here (decided by the plan) and a converter missing when the export is due are one
    line per target, not one per cell; the summary table gives such a target no column, and one line says
    how many cells it skipped and how to install it."""
    import dataclasses

    from suite.report import run_table

    profiles = load_profiles(REPO / "hardware_profiles")
    wl = load_workload(REPO / "workloads" / "mlp_classifier.yaml")
    fake = dataclasses.replace(get_target("torch:eager"), id="fakefw:eager",
                               requires=(("no_such_framework_xyz", "fakefw"),))
    conv = get_target("torch>onnx@onnxruntime")  # stands for an export whose converter is missing
    cells = make_plan([wl], [get_target("test:numpy"), fake, conv], {"cpu": profiles["cpu"]}, {"cpu": (True, "")})
    out = io.StringIO()
    progress = Progress(cells, out)
    assert out.getvalue().splitlines() == [
        "fakefw:eager: no_such_framework_xyz is not installed: pip install 'bench-suite[fakefw]' - 2 cells skipped"]
    why = "no exported artifact under /c and it cannot be exported here: onnxscript is not installed: pip install x"
    records = []
    for cell in cells:
        if cell.target.id == conv.id:
            rec = {"status": "skipped", "status_reason": why}
        else:
            rec = {"status": cell.status or "pass", "status_reason": cell.reason or None,
                   "latency_median_s": None if cell.status else 0.001}
        progress.finish(cell, rec)
        records.append(dict(rec, workload=cell.workload.name, params=cell.params_json, target=cell.target.id,
                            profile=cell.profile.name, mode="inference"))
    lines = out.getvalue().splitlines()[1:]
    assert len(lines) == 3, lines  # the two test:numpy cells, then one line for both skipped export cells
    said = [ln for ln in lines if "torch>onnx@onnxruntime" in ln]
    assert len(said) == 1 and "each of its cells" in said[0] and why in said[0], lines
    assert progress.done == 6
    table = run_table(records)
    header = table.splitlines()[0]
    assert "test:numpy" in header and "fakefw:eager" not in header and "torch>onnx" not in header, header
    assert "  skipped       2 cells of fakefw:eager: no_such_framework_xyz is not installed" in table
    assert f"  skipped       2 cells of torch>onnx@onnxruntime: {why}" in table
    assert "mlp_classifier fakefw:eager" not in table  # not one line per cell


def test_summary_table_is_cut_into_blocks_that_fit_the_terminal_one_framework_per_block_where_it_fits(monkeypatch):
    """25 targets in one table were ~700 characters wide: the columns are grouped by framework and cut into
    blocks no wider than the terminal, each repeating the row labels; every target is shown exactly once and
    the fastest-of-the-row mark still refers to the whole row."""
    from suite.report import run_table

    targets = ["torch:eager", "jax:jit", "torch:compile", "tensorflow:function", "torch>onnx@onnxruntime",
               "jax>export@jax", "tensorflow>tflite-int8-full@litert", "keras[jax]", "tensorflow>tflite@litert",
               "keras[torch]", "torch>export@torch", "tensorflow:xla"]
    records = [{"workload": wl, "params": '{"batch": 1}', "target": t, "profile": "cpu", "mode": "inference",
                "status": "pass", "status_reason": None, "latency_median_s": 1e-3 * (1 + i + j)}
               for j, wl in enumerate(("mlp_classifier", "resnet_cnn")) for i, t in enumerate(targets)]
    table = run_table(records, width=110).split("\n(* fastest")[0]
    assert max(len(line) for line in table.splitlines()) <= 110, table
    blocks = [b.splitlines() for b in table.split("\n\n")]
    headers = [b[0].split()[1:] for b in blocks]
    assert sorted(t for h in headers for t in h) == sorted(targets), headers
    assert len(blocks) > 1 and all(b[0].split()[0] == "workload" and len(b) == 4 for b in blocks), table
    assert all(any(ln.startswith("resnet_cnn [batch=1] @cpu") for ln in b) for b in blocks)
    for fam in ("torch", "jax", "keras"):  # each fits in 110 columns: not split
        assert sum(any(t.startswith(fam) for t in h) for h in headers) == 1, (fam, headers)
    assert headers[0][:4] == ["torch:eager", "torch:compile", "torch>onnx@onnxruntime", "torch>export@torch"]
    assert table.count(" *") == 2 and "1.000ms *" in table and "2.000ms *" in table  # one per row, torch:eager
    assert "\n\n" not in run_table(records, width=1000).split("\n(* fastest")[0]  # a wide terminal: one table
    monkeypatch.setenv("COLUMNS", "80")  # set by many tools that capture output (pytest's children get it)
    assert "\n\n" not in run_table(records).split("\n(* fastest")[0]  # not a terminal: one table, a row per line

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("COLUMNS", "110")  # shutil.get_terminal_size reads it first
    monkeypatch.setattr("sys.stdout", Terminal())
    assert run_table(records).split("\n(* fastest")[0] == table  # a terminal: its width

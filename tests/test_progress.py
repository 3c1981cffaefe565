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

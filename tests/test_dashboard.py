"""The dashboard without a browser: data preparation, escaping, every section and figure, downloads, CLI."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from dashboard_data import EVIL, EVIL_REASON, write_store

pytest.importorskip("plotly", reason="the dashboard needs plotly: pip install -e '.[dashboard]'")

from suite.dashboard import build_dashboard  # noqa: E402
from suite.dashboard.data import DashboardError, downsample, load  # noqa: E402
from suite.dashboard.history import ratio_verdict  # noqa: E402
from suite.dashboard.page import SECTIONS, script_json  # noqa: E402

FIGURES = ["status", "matrix", "speedup", "bars", "distributions", "scaling-latency", "scaling-throughput",
           "profiles", "costs", "history"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("dash")
    write_store(d / "results", n_runs=3, workloads=["mlp_classifier", "resnet_cnn"], evil=True)
    info = build_dashboard(d / "results", d / "site")
    html = (d / "site" / "index.html").read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="bench-data">(.*?)</script>', html, re.S).group(1)
    return d, info, html, json.loads(block)


def test_plotly_is_bundled_once_and_nothing_is_fetched(site):
    d, _, html, _ = site
    assert (d / "site" / "assets" / "plotly.min.js").stat().st_size > 1_000_000
    assert html.count("plotly.min.js") == 1
    assert not re.search(r'(src|href)="(https?:)?//', html), "the page must not load anything from the network"
    assert "cdn" not in html.lower()


@pytest.mark.parametrize("section_id", [s for s, _ in SECTIONS])
def test_every_section_is_present(site, section_id):
    assert f'<section id="{section_id}">' in site[2]


@pytest.mark.parametrize("fig_id", FIGURES)
def test_every_figure_has_data_and_a_place(site, fig_id):
    _, _, html, spec = site
    figs = {f["id"]: f for f in spec["figures"]}
    assert fig_id in figs and f'id="fig-{fig_id}"' in html
    assert figs[fig_id]["data"], f"{fig_id} has no trace"
    assert any(t.get("z") or t.get("y") or t.get("x") for t in figs[fig_id]["data"])


def test_filters_list_profiles_workloads_and_families(site):
    _, _, html, spec = site
    assert spec["defaults"] == {"profile": "cpu", "baseline": "torch:eager"}
    assert set(spec["families"]) == {"torch", "tensorflow", "jax"}
    assert 'id="f-profile"' in html and 'id="f-baseline"' in html
    assert '<option value="cuda"' not in html  # not available here: listed in the overview instead
    assert "profile cuda not available" in html


def test_results_text_is_escaped_everywhere(site):
    _, _, html, spec = site
    assert EVIL not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # as text in the tables and filters
    assert html.count("</script>") == html.count("<script")  # nothing closes a script block early
    text = json.dumps(spec)
    assert EVIL in text  # the raw name is data (filter values), never markup ...
    labels = [y for f in spec["figures"] if f["id"] == "matrix" for t in f["data"] for y in t["y"]]
    assert any(y.startswith("&lt;script&gt;") for y in labels)  # ... and plotly labels get it escaped


def test_script_json_cannot_break_out():
    out = script_json({"a": "</script><script>alert(1)</script>", "b": "x\u2028y & z"})
    assert "<" not in out and ">" not in out and "&" not in out and "\u2028" not in out
    assert json.loads(out) == {"a": "</script><script>alert(1)</script>", "b": "x\u2028y & z"}


def test_matrix_cells_carry_status_latency_and_reason(site):
    spec = site[3]
    matrix = next(f for f in spec["figures"] if f["id"] == "matrix")
    cpu = next(t for t in matrix["data"] if t["meta"]["on"]["profile"] == "cpu")
    assert cpu["x"][0] == "torch:eager" or "torch:eager" in cpu["x"]
    texts = [t for row in cpu["text"] for t in row]
    assert any(t.endswith("µs") or t.endswith("ms") or t.endswith("!") for t in texts)
    hovers = " ".join(h for row in cpu["hovertext"] for h in row)
    assert "max abs err" in hovers and "reason: &lt;/script&gt;&lt;img" in hovers


def test_downloads_hold_the_data_behind_the_page(site):
    d, info, html, _ = site
    data = d / "site" / "data"
    cells = pd.read_parquet(data / "cells.parquet")
    assert len(cells) == len(pd.read_csv(data / "cells.csv")) == len(load(d / "results").latest)
    assert "samples_s" not in cells.columns
    hist = pd.read_parquet(data / "history.parquet")
    assert set(hist["run_id"]) == {"run0000", "run0001", "run0002"}
    for name in ("cells.csv", "cells.parquet", "history.csv", "history.parquet"):
        assert f'href="data/{name}"' in html


def test_history_marks_the_injected_regression(site):
    d = site[0]
    hist = pd.read_csv(d / "site" / "data" / "history.csv")
    last = hist[hist["run_id"] == "run0002"]
    reg = last[last["verdict"] == "regression"]
    assert len(reg) and set(reg["workload"]) == {"resnet_cnn"}
    assert "regression(s) in the most recent run" in site[2]


def test_one_run_has_no_history_figure(tmp_path):
    write_store(tmp_path / "r", n_runs=1, workloads=["mlp_classifier"], targets=["torch:eager", "jax:jit"])
    build_dashboard(tmp_path / "r", tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "Only one run in the store" in html and 'id="fig-history"' not in html


def test_empty_store_and_foreign_folder_are_errors(tmp_path):
    with pytest.raises(DashboardError, match="no results"):
        build_dashboard(tmp_path / "none", tmp_path / "site")
    write_store(tmp_path / "r", n_runs=1, workloads=["mlp_classifier"], targets=["torch:eager"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DashboardError, match="refusing to replace"):
        build_dashboard(tmp_path / "r", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").exists()


@pytest.mark.parametrize("prev, cur, ci, expected", [
    (1.0, 1.5, None, "regression"), (1.0, 0.5, None, "improvement"), (1.0, 1.05, None, "same"),
    (1.0, 1.5, ((0.5, 2.0), (0.6, 2.1)), "same"), (1.0, 1.5, ((0.9, 1.1), (1.4, 1.6)), "regression"),
    (float("nan"), 1.0, None, "same")])
def test_ratio_verdict(prev, cur, ci, expected):
    pci, cci = ci if ci else (None, None)
    assert ratio_verdict(prev, cur, pci, cci) == expected


def test_downsample_keeps_the_shape():
    x = np.random.default_rng(0).lognormal(size=1000)
    d = downsample(x, 60)
    assert len(d) == 60 and d.min() == x.min() and d.max() == x.max()
    assert abs(np.median(d) - np.median(x)) / np.median(x) < 0.05
    assert len(downsample([1.0, float("nan"), 2.0])) == 2 and len(downsample(None)) == 0


def test_cli_builds_and_reports(tmp_path):
    write_store(tmp_path / "r", n_runs=2, workloads=["mlp_classifier"], targets=["torch:eager", "jax:jit"])
    cmd = [sys.executable, "-m", "suite.cli", "dashboard", "--results", str(tmp_path / "r"), "--out",
           str(tmp_path / "s")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "dashboard:" in out.stdout and (tmp_path / "s" / "index.html").exists()
    bad = subprocess.run(cmd[:5] + [str(tmp_path / "empty"), "--out", str(tmp_path / "s2")],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("bench: error: no results")


def test_import_stays_light():
    code = "import sys, suite, suite.dashboard, suite.cli; print([m for m in ('plotly', 'torch') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

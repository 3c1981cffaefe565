"""The dashboard without a browser: data preparation, escaping, every section and figure, downloads, CLI."""
from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from html import unescape

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from dashboard_data import ALL_TARGETS, EVIL, EVIL_REASON, _record, write_store

pytest.importorskip("plotly", reason="the dashboard needs plotly: pip install -e '.[dashboard]'")

from suite.dashboard import build_dashboard  # noqa: E402
from suite.dashboard.best import Failure, best_routes, eager_baseline, section as best_section  # noqa: E402
from suite.dashboard.data import DashboardError, downsample, environment, load  # noqa: E402
from suite.dashboard.figures import matrix_figure  # noqa: E402
from suite.dashboard.history import ratio_verdict  # noqa: E402
from suite.dashboard.page import SECTIONS, script_json  # noqa: E402
from suite.results import write_records  # noqa: E402

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


def test_runs_without_a_git_commit_build(tmp_path):
    """A checkout without git records no commit: the runs table says "-" instead of failing."""
    write_store(tmp_path / "r", n_runs=2, workloads=["mlp_classifier"], targets=["torch:eager"], commits=False)
    build_dashboard(tmp_path / "r", tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "run0001" in html and "<td>-</td>" in html


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


# ---- best route, matrix labels, environment ----------------------------------------------------------

T_BEST = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def _best_store(tmp_path, targets, edit=None, workloads=("mlp_classifier",), profiles=("cpu",)):
    """One run of dashboard_data's records (``edit(record)`` changes any of them) loaded back.

    Returns:
        ({(workload, batch, target): record}, the loaded :class:`Data`).
    """
    rng = np.random.default_rng(1)
    recs = [_record(rng, "run0000", T_BEST, "a" * 40, wl, b, t, p)
            for wl in workloads for b in (1, 32) for t in targets for p in profiles]
    for r in recs:
        if edit:
            edit(r)
    write_records(recs, tmp_path / "r", "run0000", "all")
    return {(r["workload"], r["batch_size"], r["target"]): r for r in recs}, load(tmp_path / "r")


def _untimed(r, status, **kw):
    """Turns a record into a non-passing one: not timed, no error figures unless ``kw`` gives them."""
    for k in [k for k in r if k.startswith("latency_") or k in ("samples_s", "throughput", "unstable", "max_abs_err",
                                                                 "max_rel_err", "cosine", "mismatch_fraction")]:
        r[k] = None
    r.update(status=status, **kw)


def test_best_route_is_the_fastest_passing_route_not_the_fastest(tmp_path):
    targets = ["torch:eager", "torch:compile", "tensorflow:function", "jax:jit", "torch>onnx@onnxruntime"]

    def edit(r):  # the fastest route computes the wrong thing, and keeps its (faster) timing
        if r["target"] == "torch>onnx@onnxruntime":
            r.update(status="fail", max_abs_err=0.5, status_reason="outputs differ from the reference")

    recs, data = _best_store(tmp_path, targets, edit)
    routes = best_routes(data)
    assert [(b.cell, b.profile) for b in routes] == [("mlp_classifier [batch=1]", "cpu"),
                                                     ("mlp_classifier [batch=32]", "cpu")]
    for b in routes:
        batch = 1 if "batch=1]" in b.cell else 32
        med = {t: recs[("mlp_classifier", batch, t)]["latency_median_s"] for t in targets}
        passing = {t: m for t, m in med.items() if recs[("mlp_classifier", batch, t)]["status"] == "pass"}
        winner, slowest = min(passing, key=passing.get), max(passing, key=passing.get)
        assert med["torch>onnx@onnxruntime"] < passing[winner]  # the premise: the failing route is faster
        assert b.winner == winner and b.median_s == passing[winner] and b.n_pass == 4
        assert (b.ci_low_s, b.ci_high_s) == (recs[("mlp_classifier", batch, winner)]["latency_ci_low_s"],
                                             recs[("mlp_classifier", batch, winner)]["latency_ci_high_s"])
        assert b.slowest == slowest and b.vs_slowest == pytest.approx(passing[slowest] / passing[winner])
        base = eager_baseline(winner, recs[("mlp_classifier", batch, winner)]["framework"])
        assert b.baseline == base and b.baseline_status == "pass"
        assert b.vs_baseline == pytest.approx(passing[base] / passing[winner])
        assert b.failed == (Failure("torch>onnx@onnxruntime", "fail", "max abs err 5.00e-01"),)
    html = best_section(data)
    assert html.count('<b class="winner">') == 2 and "torch&gt;onnx@onnxruntime" in html
    assert "max abs err 5.00e-01" in html and "no route passed" not in html


@pytest.mark.parametrize("eager", ["absent", "nan"])
def test_best_route_baseline_is_na_without_a_passing_eager_run(tmp_path, eager):
    targets = ["torch:compile", "tensorflow:function"] + (["torch:eager"] if eager != "absent" else [])

    def edit(r):
        if r["target"] == "torch:eager":
            _untimed(r, "nan", status_reason="output holds NaN", max_abs_err=float("nan"))

    _, data = _best_store(tmp_path, targets, edit)
    routes = best_routes(data)
    assert routes and all(b.winner == "torch:compile" and b.baseline == "torch:eager" for b in routes)
    assert all(b.vs_baseline is None for b in routes)
    want = "not run" if eager == "absent" else "nan"
    assert {b.baseline_status for b in routes} == {want}
    html = best_section(data)
    assert html.count(f"n/a: torch:eager {want}") == 2
    assert not re.search(r"\d× vs torch:eager", html)  # no speedup invented
    if eager == "nan":
        assert all(b.failed == (Failure("torch:eager", "nan", "output holds NaN"),) for b in routes)


@pytest.mark.parametrize("target, family, expected", [
    ("torch:compile", "torch", "torch:eager"), ("torch>onnx@onnxruntime", "torch", "torch:eager"),
    ("tensorflow>tflite-int8@litert", "tensorflow", "tensorflow:function"), ("tensorflow:xla", "tensorflow",
                                                                           "tensorflow:function"),
    ("jax>export@jax", "jax", "jax:jit"), ("keras[jax]", "keras", "keras[jax]"),
    ("keras[torch]>onnx@onnxruntime", "keras", "keras[torch]"), ("mxnet:symbolic", "mxnet", None)])
def test_eager_baseline_rule(target, family, expected):
    assert eager_baseline(target, family) == expected


def test_best_route_lists_errors_by_their_first_line_and_no_passing_route(tmp_path):
    targets = ["torch:eager", "tensorflow>tflite@litert", "jax:jit"]

    def edit(r):  # lstm's tflite route errors (dashboard_data); every route of mlp batch 32 fails
        if r["workload"] == "mlp_classifier" and r["batch_size"] == 32:
            _untimed(r, "shape_mismatch", status_reason="output 0: shape (32, 10), reference (32, 5)")

    _, data = _best_store(tmp_path, targets, edit, workloads=("lstm_classifier", "mlp_classifier"))
    routes = {b.cell: b for b in best_routes(data)}
    lstm = routes["lstm_classifier [batch=1]"]
    assert lstm.winner in ("torch:eager", "jax:jit") and lstm.n_pass == 2
    assert lstm.failed == (Failure("tensorflow>tflite@litert", "error", "ConverterError: LSTM op not lowered"),)
    none = routes["mlp_classifier [batch=32]"]
    assert none.winner is None and none.vs_slowest is None and none.vs_baseline is None
    assert [f.target for f in none.failed] == targets and {f.status for f in none.failed} == {"shape_mismatch"}
    html = best_section(data)
    assert "ConverterError: LSTM op not lowered" in html and "Traceback" not in html
    assert html.count("no route passed") == 1 and "shape (32, 10), reference (32, 5)" in html
    assert "every route that ran (3)" in html  # one line when the workload, not a route, fails


@pytest.mark.parametrize("other_ci, tie", [((1.00e-3, 1.10e-3), True), ((1.06e-3, 1.10e-3), False)])
def test_best_route_tie_when_the_cis_overlap(tmp_path, other_ci, tie):
    timing = {"torch:eager": (1.00e-3, 0.97e-3, 1.05e-3), "jax:jit": (1.08e-3, *other_ci)}

    def edit(r):
        med, lo, hi = timing[r["target"]]
        r.update(latency_median_s=med, latency_ci_low_s=lo, latency_ci_high_s=hi, unstable=r["target"] == "jax:jit")

    _, data = _best_store(tmp_path, list(timing), edit)
    for b in best_routes(data):
        assert b.winner == "torch:eager" and b.ties == (("jax:jit",) if tie else ())
        assert not b.unstable and b.vs_slowest == pytest.approx(1.08)
        assert b.baseline == "torch:eager" and b.vs_baseline == pytest.approx(1.0)
    html = best_section(data)
    assert ("tie with jax:jit" in html) is tie and "(itself)" in html


def test_best_route_marks_an_unstable_winner(tmp_path):
    _, data = _best_store(tmp_path, ["torch:eager", "jax:jit"], lambda r: r.update(unstable=True))
    assert all(b.unstable for b in best_routes(data))
    assert best_section(data).count('class="badge unstable"') == 2


def test_best_route_section_leads_the_page(site):
    _, _, html, _ = site
    assert re.findall(r'<section id="([^"]+)"', html)[0] == "best"
    assert SECTIONS[0] == ("best", "Best route") and '<nav><a href="#best">Best route</a>' in html
    sec = re.search(r'<section id="best">(.*?)</section>', html, re.S).group(1)
    rows = re.findall(r'<tr data-filter="([^"]*)">(.*?)</tr>', sec, re.S)
    filters = [json.loads(f.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
               for f, _ in rows]
    # 3 workloads x 2 batches x (cpu, cpu-1t, mobile-runtime); cuda is not available here
    assert len(rows) == 3 * 2 * 3
    assert {f["profile"] for f in filters} == {"cpu", "cpu-1t", "mobile-runtime"}
    assert {f["workload"] for f in filters} == {"mlp_classifier", "resnet_cnn", EVIL}
    evil = [r for f, r in zip(filters, rows) if f["workload"] == EVIL]
    assert all("no route passed" in r[1] and "max abs err 5.00e-01" in r[1] for r in evil)
    assert EVIL not in sec and "&lt;script&gt;alert(1)&lt;/script&gt;" in sec


def test_matrix_labels_are_angled_when_many_targets(tmp_path):
    write_store(tmp_path / "many", n_runs=1, workloads=["mlp_classifier"], targets=list(ALL_TARGETS),
                profiles=["cpu"])
    write_store(tmp_path / "few", n_runs=1, workloads=["mlp_classifier"], targets=["torch:eager", "jax:jit"],
                profiles=["cpu"])
    data = load(tmp_path / "many")
    many, few = matrix_figure(data), matrix_figure(load(tmp_path / "few"))
    assert [unescape(x) for x in many["data"][0]["x"]] == data.targets and len(data.targets) == 20
    fam = dict(zip(data.latest["target"], data.latest["family"]))
    fams = [fam[t] for t in data.targets]  # grouped by family: torch, tensorflow, jax, keras
    assert fams == sorted(fams, key=["torch", "tensorflow", "jax", "keras"].index) and fams[-1] == "keras"
    assert many["layout"]["xaxis"]["tickangle"] == -45 and few["layout"]["xaxis"]["tickangle"] == 0
    assert many["layout"]["height"] > few["layout"]["height"] + 100  # room for the angled labels


def test_matrix_colours_each_status_inside_its_band(site):
    from suite.verify import STATUSES

    matrix = next(f for f in site[3]["figures"] if f["id"] == "matrix")
    seen = set()
    for t in matrix["data"]:
        for zr, hr in zip(t["z"], t["hovertext"]):
            for z, h in zip(zr, hr):
                status = re.search(r"status: <b>([a-z_]+)</b>", h).group(1)
                assert int(z) == STATUSES.index(status) and z % 1 == 0.5, (z, status)
                seen.add(status)
    assert {"pass", "fail", "unsupported"} <= seen


def test_environment_shows_the_run_metadata_columns(tmp_path):
    from suite.envinfo import run_metadata

    meta = run_metadata()
    _, data = _best_store(tmp_path / "a", ["torch:eager"], lambda r: r.update(meta))
    env = dict(environment(data))
    assert env["python"] == meta["python_version"] and env["platform"] == meta["platform"]
    assert env["CPU count"] == str(meta["cpu_count"]) and env["CPU"] == str(meta["cpu_model"])
    assert env["host"] == meta["host"]
    # rows written before the runner stored every run_metadata key carry none of these three
    _, old = _best_store(tmp_path / "b", ["torch:eager"],
                         lambda r: r.update(python_version=None, platform=None, cpu_count=None))
    env = dict(environment(old))
    assert env["python"] == env["platform"] == env["CPU count"] == "not recorded" and env["host"] == "synthetic"


# ---- train mode next to inference ------------------------------------------------------------------

TRAIN_FIELDS = dict(loss=2.302585, loss_abs_err=2.2e-7, grad_max_abs_err=5.8e-8, grad_cosine=0.9999999,
                    param_max_abs_err=1.3e-7, step_peak_bytes=340_000_000, step_extra_bytes=69_632)
TRAIN_COLUMNS = ["loss", "loss_abs_err", "grad_max_abs_err", "grad_cosine", "param_max_abs_err", "step_peak_bytes",
                 "step_extra_bytes"]
TRAIN_TARGETS = ["torch:eager", "jax:jit", "tensorflow:function"]
TRAIN_PROFILES = ["cpu", "cpu-1t", "cuda"]
LOSS_FAIL = "loss at step 1: 2.9, reference 2.302585"
T_TRAIN = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)  # after write_store's runs: the latest rows


def _timed(rng, run, wl, batch, target, profile, mode, slow=1.0):
    """A record of ``mode`` shaped like dashboard_data's (a hostile workload name gets a passing one too)."""
    r = _record(rng, run, T_TRAIN, "f" * 40, "mlp_classifier" if wl == EVIL else wl, batch, target, profile)
    r.update(workload=wl, mode=mode)
    if r["status"] == "pass" and slow != 1.0:
        for k in ("latency_median_s", "latency_mean_s", "latency_p90_s", "latency_p99_s", "latency_iqr_s",
                  "latency_ci_low_s", "latency_ci_high_s", "first_call_s"):
            r[k] *= slow
        r["samples_s"] = [x * slow for x in r["samples_s"]]
        r["throughput"] /= slow
    if mode == "train" and r["status"] == "pass":
        r.update(TRAIN_FIELDS)
    return r


def write_train_run(results_dir, run: str = "run0009", evil: bool = True) -> list[dict]:
    """One run of train cells (3 targets x 2 workloads x batch 1, 32 x cpu, cpu-1t, cuda), a few not passing.

    jax:jit resnet_cnn batch=32 trains to the wrong loss (timed, but must not be drawn as a time);
    tensorflow:function mlp_classifier batch=1 is unsupported in train mode; with ``evil`` a workload
    named ``<script>alert(1)</script>`` passes inference and train at batch 1 and fails train at 32
    with a hostile reason.
    """
    rng = np.random.default_rng(1)
    recs = []
    for wl in ("mlp_classifier", "resnet_cnn"):
        for batch in (1, 32):
            for tg in TRAIN_TARGETS:
                for pr in TRAIN_PROFILES:
                    r = _timed(rng, run, wl, batch, tg, pr, "train", slow=3.0)
                    if (wl, batch, tg) == ("resnet_cnn", 32, "jax:jit") and r["status"] == "pass":
                        r.update(status="fail", status_reason=LOSS_FAIL, loss=2.9, loss_abs_err=0.6)
                    if (wl, batch, tg) == ("mlp_classifier", 1, "tensorflow:function") and r["status"] == "pass":
                        r = {k: v for k, v in r.items() if k in _record(rng, run, T_TRAIN, "", wl, 1, tg, "cuda")}
                        r.update(mode="train", status="unsupported",
                                 status_reason="tensorflow:function does not train batch_norm at batch=1")
                    recs.append(r)
    if evil:
        recs.append(_timed(rng, run, EVIL, 1, "torch:eager", "cpu", "inference"))
        recs.append(_timed(rng, run, EVIL, 1, "torch:eager", "cpu", "train", slow=3.0))
        bad = _timed(rng, run, EVIL, 32, "torch:eager", "cpu", "train", slow=3.0)
        bad.update(status="fail", status_reason=EVIL_REASON)
        recs.append(bad)
    write_records(recs, results_dir, run, "train")
    return recs


@pytest.fixture(scope="module")
def train_site(tmp_path_factory):
    d = tmp_path_factory.mktemp("dash-train")
    write_store(d / "results", n_runs=2, workloads=["mlp_classifier", "resnet_cnn"], targets=TRAIN_TARGETS,
                profiles=TRAIN_PROFILES, evil=True)
    write_train_run(d / "results")
    info = build_dashboard(d / "results", d / "site")
    html = (d / "site" / "index.html").read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="bench-data">(.*?)</script>', html, re.S).group(1)
    return d, info, html, json.loads(block)


def _fig(spec, fig_id):
    return next((f for f in spec["figures"] if f["id"] == fig_id), None)


@pytest.mark.parametrize("fig_id", FIGURES + ["train-vs-inference"])
def test_train_site_has_every_figure_with_data(train_site, fig_id):
    _, _, html, spec = train_site
    fig = _fig(spec, fig_id)
    assert fig is not None and f'id="fig-{fig_id}"' in html
    assert any(t.get("z") or t.get("y") for t in fig["data"]), f"{fig_id} has no data"


def test_train_vs_inference_pairs_passing_cells(train_site):
    spec = train_site[3]
    fig = _fig(spec, "train-vs-inference")
    cpu = {t["meta"]["on"]["mode"]: t for t in fig["data"] if t["meta"]["on"]["profile"] == "cpu"}
    assert set(cpu) == {"inference", "train"}
    inf, tr = cpu["inference"], cpu["train"]
    assert inf["x"] == tr["x"] and len(inf["x"]) == len(inf["y"]) == len(tr["y"]) == len(tr["meta"]["pt"])
    # 2 workloads x 2 batches x 3 targets, less jax resnet batch=32 (train failed), tf mlp batch=1
    # (unsupported), plus the hostile workload at batch 1
    assert len(inf["x"]) == 12 - 2 + 1
    assert "resnet_cnn [batch=32] · jax:jit" not in inf["x"]
    assert "mlp_classifier [batch=1] · tensorflow:function" not in inf["x"]
    assert "resnet_cnn [batch=32] · torch:eager" in inf["x"]
    ratios = [float(c[2]) for c in tr["customdata"]]
    # the synthetic train step is 3x the inference call (1.9x on resnet_cnn, whose last inference run regressed)
    assert all(1.6 < r < 3.5 for r in ratios) and max(ratios) > 2.5
    assert all(y_t > y_i > 0 for y_i, y_t in zip(inf["y"], tr["y"]))
    assert tr["text"][0].endswith("×")
    assert "train status" in tr["hovertemplate"] and "step memory" in tr["hovertemplate"]
    assert tr["customdata"][0][3] == "pass" and tr["customdata"][0][4] == "324 MB" and tr["customdata"][0][5] == "68 KB"
    assert fig["layout"]["yaxis"]["type"] == "log"


def test_train_cells_that_did_not_pass_are_listed_with_their_reason(train_site):
    html = train_site[2]
    sec = re.search(r'<section id="training">(.*?)</section>', html, re.S).group(1)
    assert "5 train cell(s) did not pass</b> (3 fail, 2 unsupported)" in sec
    assert LOSS_FAIL in sec and "does not train batch_norm" in sec
    assert "profile cuda not available" not in sec  # unavailable profiles stay in the overview
    # the overall "did not pass" list now names the mode
    assert "<th>mode</th>" in re.search(r'<section id="matrix">(.*?)</section>', html, re.S).group(1)


def test_training_numerics_table(train_site):
    html = train_site[2]
    table = re.search(r'<table id="train-numerics">(.*?)</table>', html, re.S).group(1)
    rows = re.findall(r"<tr data-filter=\"([^\"]*)\">(.*?)</tr>", table, re.S)
    assert len(rows) == 2 * 2 * 3 * 2 + 2  # the cuda rows are not shown (profile unavailable)
    filters = [json.loads(f.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
               for f, _ in rows]
    assert {f["mode"] for f in filters} == {"train"} and {f["profile"] for f in filters} == {"cpu", "cpu-1t"}
    assert any(f["workload"] == EVIL for f in filters)
    for col in ("loss", "|Δloss|", "max |Δgrad|", "grad cosine", "max |Δparam|", "step peak mem"):
        assert f"<th>{col}</th>" in table.replace("&#x27;", "'")
    assert "2.302585" in table and "2.20e-07" in table and "5.80e-08" in table and "0.9999999" in table
    assert "1.30e-07" in table and "unsupported" in table and ">fail<" in table
    assert "first-step losses differ by at most 0.00e+00" in html


def test_mode_filter_and_figure_meta(train_site):
    _, _, html, spec = train_site
    assert spec["modes"] == ["inference", "train"]
    assert '<input type="checkbox" name="f-mode" value="inference" checked>' in html
    assert '<input type="checkbox" name="f-mode" value="train" checked>' in html
    matrix = _fig(spec, "matrix")
    cpu = next(t for t in matrix["data"] if t["meta"]["on"]["profile"] == "cpu")
    modes = {(y.endswith(" train"), m["mode"]) for y, m in zip(cpu["y"], cpu["meta"]["rows"])}
    assert modes == {(False, "inference"), (True, "train")}
    bars = _fig(spec, "bars")
    assert {p["mode"] for t in bars["data"] for p in t["meta"]["pt"]} == {"inference", "train"}
    # a train step is its own scaling chart, not a point on the inference line
    scaling = _fig(spec, "scaling-latency")
    groups = {t["meta"]["on"]["mode"] for t in scaling["data"]}
    assert groups == {"inference", "train"}
    assert any("mlp_classifier train" in a["text"] for a in scaling["layout"]["annotations"])
    overview = re.search(r'<section id="overview">(.*?)</section>', html, re.S).group(1)
    assert "<td>cpu train</td>" in overview


def test_train_rows_keep_hostile_names_escaped(train_site):
    _, _, html, spec = train_site
    assert EVIL not in html and "<img" not in html
    assert html.count("</script>") == html.count("<script")
    fig = _fig(spec, "train-vs-inference")
    xs = [x for t in fig["data"] for x in t["x"]]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; [batch=1] · torch:eager" in xs
    assert not any("<script>" in x for x in xs)
    sec = re.search(r'<section id="training">(.*?)</section>', html, re.S).group(1)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in sec and "&lt;/script&gt;&lt;img src=x" in sec
    labels = [y for t in _fig(spec, "matrix")["data"] for y in t["y"]]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; [batch=1] train" in labels


def test_downloads_carry_the_train_columns(train_site):
    d = train_site[0]
    for cells in (pd.read_parquet(d / "site" / "data" / "cells.parquet"), pd.read_csv(d / "site" / "data" / "cells.csv")):
        assert set(TRAIN_COLUMNS + ["mode"]) <= set(cells.columns)
        train = cells[(cells["mode"] == "train") & (cells["status"] == "pass")]
        assert len(train) and (train["loss"] == TRAIN_FIELDS["loss"]).all()
        assert (train["step_peak_bytes"] == TRAIN_FIELDS["step_peak_bytes"]).all()
        assert cells.loc[cells["mode"] == "inference", "loss"].isna().all()


def test_no_train_rows_says_so(site):
    _, _, html, spec = site
    sec = re.search(r'<section id="training">(.*?)</section>', html, re.S).group(1)
    assert "No training results yet" in sec
    assert 'id="fig-train-vs-inference"' not in html and _fig(spec, "train-vs-inference") is None
    assert spec["modes"] == ["inference"]


def test_only_train_rows_build(tmp_path):
    write_train_run(tmp_path / "r", run="run0000", evil=False)
    info = build_dashboard(tmp_path / "r", tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="bench-data">(.*?)</script>', html, re.S).group(1)
    spec = json.loads(block)
    assert spec["modes"] == ["train"] and info.figures >= 5
    sec = re.search(r'<section id="training">(.*?)</section>', html, re.S).group(1)
    assert "No cell has both a passing inference result and a passing train result" in sec
    assert 'id="train-numerics"' in sec and "No training results yet" not in sec
    for fig_id in ("matrix", "speedup", "bars", "scaling-latency"):
        assert _fig(spec, fig_id)["data"], fig_id


def test_targets_that_are_no_route_of_a_workload_are_not_results(tmp_path):
    """A source: workload beside graph workloads: a graph target on the source model, or an ONNX-file route on a
    graph workload, gets no matrix cell, no column where it is no route of any row, no count, no reason line."""
    import datetime as _dt

    from dashboard_data import _record
    from suite.dashboard.data import status_counts
    from suite.sources import OTHER_KIND

    rng = np.random.default_rng(1)
    start = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)
    other = OTHER_KIND + "keras[jax] is not a route out of torch"
    recs = [_record(rng, "r1", start, "c1", "mlp_classifier", 1, "keras[jax]", "cpu"),
            _record(rng, "r1", start, "c1", "mlp_classifier", 1, "torch:eager", "cpu"),
            {**_record(rng, "r1", start, "c1", "mlp_classifier", 1, "onnx>onnx@onnxruntime", "cpu"),
             "status": "unsupported", "status_reason": OTHER_KIND + "runs an ONNX file"},
            _record(rng, "r1", start, "c1", "my_model", 1, "torch:eager", "cpu"),
            {**_record(rng, "r1", start, "c1", "my_model", 1, "keras[jax]", "cpu"), "status": "unsupported",
             "status_reason": other}]
    write_records(recs, tmp_path / "results", "r1", "all")
    data = load(tmp_path / "results")
    fig = matrix_figure(data)
    (trace,) = fig["data"]
    assert set(trace["x"]) == {"torch:eager", "keras[jax]"}  # no onnx>onnx@onnxruntime column
    row = trace["y"].index("my_model [batch=1]")
    col = trace["x"].index("keras[jax]")
    assert trace["z"][row][col] is None and trace["text"][row][col] == ""  # blank, not a blue "unsupported"
    assert int(status_counts(data).loc["cpu"].get("unsupported", 0)) == 0
    build_dashboard(tmp_path / "results", tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "is not a route out of torch" not in html and "runs an ONNX file" not in html


def test_best_route_of_a_keras_or_onnx_source_is_measured_against_its_plain_run(tmp_path):
    """A Keras model's exports come from its TensorFlow backend: keras[tensorflow] is their baseline (not
    tensorflow:function, which a source model never runs); an ONNX file's is ONNX Runtime."""
    import datetime as _dt

    from dashboard_data import _record

    rng = np.random.default_rng(2)
    start = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)
    recs = []
    for target, slow in (("tensorflow>tflite@litert", 0.2), ("keras[tensorflow]", 1.0), ("keras[jax]", 0.5)):
        recs.append({**_record(rng, "r1", start, "c1", "my_keras", 1, target, "cpu", slow), "source": "keras"})
    write_records(recs, tmp_path / "results", "r1", "all")
    (row,) = best_routes(load(tmp_path / "results"))
    assert row.winner == "tensorflow>tflite@litert" and row.baseline == "keras[tensorflow]"
    # the synthetic relative speeds (dashboard_data.TARGETS) times each slow factor: 1.4 * 1.0 / (0.75 * 0.2)
    assert row.vs_baseline == pytest.approx(1.4 / (0.75 * 0.2), rel=0.1) and row.baseline_status == "pass"

"""The roofline: `bench peak` (suite.peak), the intensity estimate (suite.roofline), the result columns of a
real `bench run`, and the dashboard's roofline section (suite.dashboard.roofline), in a browser too.

Peaks are measured on tiny sizes (a 64x64 GEMM, a 1 MiB copy) in a private $BENCH_CACHE_DIR each."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
import time

import pytest

from conftest import REPO, bench
from suite.peak import LIBRARIES, Peak

TINY = dict(size=64, copy_bytes=2**20, seconds=0.05)
TINY_ARGS = ["--size", "64", "--copy-mb", "1", "--seconds", "0.05"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def profiles():
    from suite.profiles import load_profiles

    return load_profiles(REPO / "hardware_profiles")


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


# ---- suite.peak -------------------------------------------------------------------------------------------


def test_peak_is_measured_cached_and_reread(cache, profiles):
    from suite import peak

    p = profiles["cpu-1t"]
    assert peak.cached(p) is None
    got, measured = peak.ensure(p, ["numpy"], **TINY)
    assert measured and _positive(got.flops_per_s) and _positive(got.bytes_per_s)
    assert got.flops_library == "numpy" and got.size == 64 and got.copy_bytes == 2**20
    assert got.libraries["numpy"]["applied"]["affinity"] == [0]  # measured under the profile's affinity
    assert got.libraries["numpy"]["applied"]["threads"] == 1
    files = list((cache / "peak").glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith("cpu-1t-")
    assert json.loads(files[0].read_text())["key"]["host"] == got.host

    again, measured = peak.ensure(p, ["numpy"], seconds=0.05)
    assert not measured and again == got == peak.cached(p)  # reread, same figures
    assert peak.peaks_for([p, profiles["cpu"]]) == {"cpu-1t": got}  # cpu has none yet


def test_rerun_measures_again_and_replaces_the_cache(cache, profiles):
    from suite import peak

    p = profiles["cpu-1t"]
    first, _ = peak.ensure(p, ["numpy"], **TINY)
    path = peak.cache_path(p)
    stamp = path.stat().st_mtime_ns
    second, measured = peak.ensure(p, ["numpy"], rerun=True, **TINY)
    assert measured and path.stat().st_mtime_ns != stamp
    assert second.libraries["numpy"]["best_s"] != first.libraries["numpy"]["best_s"]  # a new measurement
    assert peak.cached(p) == second and len(list(path.parent.glob("*.json"))) == 1


def test_a_changed_setting_is_a_cache_miss(cache, profiles):
    from dataclasses import replace

    from suite import peak

    p = profiles["cpu-1t"]
    peak.ensure(p, ["numpy"], **TINY)
    assert peak.cached(replace(p, affinity=None, threads=1)) is None  # other cores: another key
    assert peak.cached(p) is not None


def test_ensure_adds_a_library_and_keeps_the_others(cache, profiles, monkeypatch):
    from suite import peak

    p = profiles["cpu-1t"]
    first, _ = peak.ensure(p, ["numpy"], **TINY)
    fake = {"version": "9.9", "flops_per_s": first.flops_per_s * 2, "best_s": 1.0, "applied": {}}
    calls = []

    def measure_library(profile, library, size, copy_bytes, seconds):
        calls.append(library)
        return dict(fake)

    monkeypatch.setattr(peak, "_measure_library", measure_library)
    monkeypatch.setattr(peak, "installed_libraries", lambda: ["numpy", "torch"])
    both, measured = peak.ensure(p, seconds=0.05)
    assert measured and calls == ["torch"]  # NumPy's figures come from the cache
    assert both.libraries["numpy"] == first.libraries["numpy"] and both.bytes_per_s == first.bytes_per_s
    assert both.flops_library == "torch" and both.flops_per_s == 2 * first.flops_per_s  # the best library wins


@pytest.mark.parametrize("library", list(LIBRARIES))
def test_each_installed_library_gives_a_gemm_rate_in_its_own_process(library, profiles):
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")
    from suite import peak

    entry = peak._measure_library(profiles["cpu-1t"], library, 64, 2**20 if library == "numpy" else 0, 0.05)
    assert "error" not in entry, entry
    assert _positive(entry["flops_per_s"]) and entry["version"]
    assert entry["applied"]["threads"] == 1
    assert ("copy" in entry) == (library == "numpy")


def test_bench_peak_prints_caches_and_reruns(tmp_path):
    import os

    env = dict(os.environ, BENCH_CACHE_DIR=str(tmp_path))
    first = bench("peak", "-p", "cpu-1t", "-l", "numpy", *TINY_ARGS, env=env)
    assert first.returncode == 0, first.stderr
    assert "numpy" in first.stdout and "GFLOP/s" in first.stdout and "peak memory" in first.stdout
    assert "(measured now)" in first.stdout
    cached = bench("peak", "-p", "cpu-1t", "-l", "numpy", env=env)
    assert cached.returncode == 0 and "(cached; --rerun measures again)" in cached.stdout
    rerun = bench("peak", "-p", "cpu-1t", "-l", "numpy", "--rerun", *TINY_ARGS, env=env)
    assert rerun.returncode == 0 and "(measured now)" in rerun.stdout


@pytest.mark.parametrize("name", ["cuda", "tpu"])
def test_bench_peak_of_a_profile_not_available_here_is_one_line_exit_2(name, profiles, tmp_path):
    import os

    from suite.profiles import detect

    if detect(profiles[name])[0]:
        pytest.skip(f"{name} is available here")
    res = bench("peak", "-p", name, env=dict(os.environ, BENCH_CACHE_DIR=str(tmp_path)))
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "not available here" in res.stderr
    assert not (tmp_path / "peak").exists()


# ---- suite.roofline ---------------------------------------------------------------------------------------

ONE_DENSE = {"name": "one_dense", "description": "flatten then one dense layer", "seed": 0,
             "inputs": [{"name": "x", "shape": ["batch", 4, 16], "dtype": "float32"}], "sweep": {"batch": [8]},
             "graph": [{"name": "flat", "op": "flatten", "input": "x"},
                       {"name": "fc", "op": "dense", "input": "flat", "units": 32}],
             "outputs": ["fc"]}


@pytest.mark.parametrize("dtype,param_bytes,act_bytes", [("float32", 4, 4), ("float16", 2, 2), ("int8", 1, 4)])
def test_intensity_of_one_dense_layer_by_hand(dtype, param_bytes, act_bytes):
    from suite.roofline import arithmetic_intensity, traffic_bytes
    from suite.spec import parse_workload

    wl = parse_workload(ONE_DENSE)
    b, k, n = 8, 4 * 16, 32
    flops = 2 * b * k * n  # one multiply-add per kernel element per row; the bias add is not counted
    moved = (param_bytes * (k * n + n)  # kernel + bias
             + act_bytes * b * k        # the input x (the flatten is a view: nothing more)
             + act_bytes * b * n)       # the output of fc
    assert wl.flops({"batch": b}) == flops
    assert traffic_bytes(wl, {"batch": b}, dtype) == moved
    assert arithmetic_intensity(wl, {"batch": b}, dtype) == pytest.approx(flops / moved)


def test_integer_inputs_count_at_their_own_size():
    from suite.roofline import traffic_bytes
    from suite.spec import parse_workload

    wl = parse_workload({"name": "emb", "description": "ids", "seed": 0,
                         "inputs": [{"name": "ids", "shape": ["batch", 5], "dtype": "int64",
                                     "distribution": {"kind": "randint", "low": 0, "high": 10}}],
                         "sweep": {"batch": [2]},
                         "graph": [{"name": "e", "op": "embedding", "input": "ids", "vocab_size": 10, "dim": 3}],
                         "outputs": ["e"]})
    assert traffic_bytes(wl, {"batch": 2}) == 8 * 2 * 5 + 4 * 10 * 3 + 4 * 2 * 5 * 3


def test_fraction_is_achieved_over_the_lower_roof():
    from suite.roofline import figures

    peak = Peak(profile="cpu", host="h", flops_per_s=1e12, flops_library="numpy", bytes_per_s=1e11, size=64,
                copy_bytes=1)
    mem = figures(flops=10**9, latency_s=1e-2, intensity=2.0, peak=peak)  # roof 2 * 1e11 = 2e11 < 1e12
    assert mem["achieved_flops_per_s"] == pytest.approx(1e11) and mem["roofline_fraction"] == pytest.approx(0.5)
    assert mem["peak_flops_per_s"] == 1e12 and mem["peak_bytes_per_s"] == 1e11 and mem["peak_flops_library"] == "numpy"
    compute = figures(flops=10**9, latency_s=1e-2, intensity=100.0, peak=peak)  # roof = the compute peak
    assert compute["roofline_fraction"] == pytest.approx(0.1)
    none = figures(flops=10**9, latency_s=1e-2, intensity=2.0, peak=None)
    assert none == {"achieved_flops_per_s": pytest.approx(1e11), "arithmetic_intensity": 2.0}


# ---- the columns of a real run ----------------------------------------------------------------------------

RUN = ["run", "--quick", "-w", "mlp_classifier", "-t", "test:numpy", "-p", "cpu-1t", "--no-dashboard"]


def _row(results):
    from suite.results import read_results

    df = read_results(results)
    assert len(df) == 1 and df.iloc[0]["status"] == "pass", df[["status", "status_reason"]]
    return df.iloc[0]


def _intensity(params: str) -> float:
    from suite.roofline import arithmetic_intensity
    from suite.spec import load_workload

    return arithmetic_intensity(load_workload(REPO / "workloads" / "mlp_classifier.yaml"), json.loads(params),
                                "float32")


def test_bench_run_measures_the_missing_peak_and_fills_the_columns(tmp_path):
    import os

    env = dict(os.environ, BENCH_CACHE_DIR=str(tmp_path / "cache"))
    t0 = time.monotonic()
    res = bench(*RUN, "--results", str(tmp_path / "results"), env=env)
    assert res.returncode == 0, res.stderr
    assert "peak cpu-1t:" in res.stderr and "measured once for this host" in res.stderr
    r = _row(tmp_path / "results")
    assert r["achieved_flops_per_s"] == pytest.approx(r["flops"] / r["latency_median_s"])
    assert r["arithmetic_intensity"] == pytest.approx(_intensity(r["params"]))
    assert _positive(r["peak_flops_per_s"]) and _positive(r["peak_bytes_per_s"]) and r["peak_flops_library"] == "numpy"
    roof = min(r["peak_flops_per_s"], r["arithmetic_intensity"] * r["peak_bytes_per_s"])
    assert r["roofline_fraction"] == pytest.approx(r["achieved_flops_per_s"] / roof)
    # the figures stored are the cached peak's: reproducible from the row alone
    path = next((tmp_path / "cache" / "peak").glob("cpu-1t-*.json"))
    cached = json.loads(path.read_text())
    assert (cached["flops_per_s"], cached["bytes_per_s"]) == (r["peak_flops_per_s"], r["peak_bytes_per_s"])
    # measured once per host and profile (a peak measured on a busy host would be measured again once the
    # host is quiet: test_a_peak_measured_on_a_busy_host_is_replaced_once_the_host_is_quiet)
    path.write_text(json.dumps(dict(cached, host_busy=0.0)))
    again = bench(*RUN, "--results", str(tmp_path / "results"), env=env)
    assert again.returncode == 0 and "peak cpu-1t:" not in again.stderr
    assert time.monotonic() - t0 < 240


def test_bench_run_without_a_peak_leaves_the_fraction_null(tmp_path):
    import os

    env = dict(os.environ, BENCH_CACHE_DIR=str(tmp_path / "cache"))
    res = bench(*RUN, "--no-peak", "--results", str(tmp_path / "results"), env=env)
    assert res.returncode == 0, res.stderr
    r = _row(tmp_path / "results")
    assert _positive(r["achieved_flops_per_s"]) and r["arithmetic_intensity"] == pytest.approx(_intensity(r["params"]))
    for col in ("peak_flops_per_s", "peak_bytes_per_s", "peak_flops_library", "roofline_fraction"):
        assert r[col] is None or r[col] != r[col], col  # null (None, or NaN in a float column)
    assert not (tmp_path / "cache" / "peak").exists()


# ---- the dashboard ----------------------------------------------------------------------------------------


def _store(results, roofline: bool = True) -> None:
    """cpu rows with a stored peak; cpu-1t rows with the achieved rate and intensity but no peak."""
    import datetime as dt

    from suite.results import write_records

    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for prof in ("cpu", "cpu-1t"):
        for target, framework in (("torch:eager", "torch"), ("jax:jit", "jax")):
            for batch, lat in ((1, 1e-4), (32, 1e-3)):
                flops = 470_400 * batch
                row = dict(run_id="r1", timestamp=now, git_commit="0123456789", host="synthetic",
                           workload="mlp_classifier", params={"batch": batch},
                           batch_size=batch, target=target, framework=framework, profile=prof, device="cpu",
                           dtype="float32", status="pass", latency_median_s=lat, latency_ci_low_s=lat * 0.9,
                           latency_ci_high_s=lat * 1.1, flops=flops)
                if roofline:
                    row.update(achieved_flops_per_s=flops / lat, arithmetic_intensity=0.5 + batch / 4)
                    if prof == "cpu":
                        row.update(peak_flops_per_s=8e10, peak_bytes_per_s=1.6e10, peak_flops_library="numpy",
                                   roofline_fraction=0.1)
                rows.append(row)
    write_records(rows, results, "r1", "part")


def test_roofline_figure_draws_roofs_only_where_a_peak_was_stored(tmp_path):
    pytest.importorskip("plotly")
    from suite.dashboard.data import load
    from suite.dashboard.roofline import figure, section

    _store(tmp_path)
    data = load(tmp_path)
    fig = figure(data)
    roofs = [t for t in fig["data"] if t["name"] in ("memory roof", "compute roof")]
    assert {t["meta"]["on"]["profile"] for t in roofs} == {"cpu"} and len(roofs) == 2
    mem, comp = sorted(roofs, key=lambda t: t["name"] != "memory roof")
    assert mem["x"][1] == comp["x"][0] == pytest.approx(8e10 / 1.6e10)  # they meet at the ridge point
    assert mem["y"][1] == comp["y"][0] == comp["y"][1] == 8e10
    assert mem["y"][0] == pytest.approx(mem["x"][0] * 1.6e10)
    cells = [t for t in fig["data"] if t not in roofs]
    assert {(t["meta"]["on"]["profile"], t["meta"]["on"]["family"]) for t in cells} == \
        {(p, f) for p in ("cpu", "cpu-1t") for f in ("torch", "jax")}
    assert sum(len(t["x"]) for t in cells) == 8
    assert any("roofline fraction 10.0%" in s for t in cells for s in t["text"])
    assert any("run `bench peak -p cpu-1t`" in s for t in cells for s in t["text"])
    html = section(data, {"roofline": fig})
    assert 'id="fig-roofline"' in html and "<code>bench peak -p cpu-1t</code>" in html
    assert "80 GFLOP/s" in html and "16 GB/s" in html


def test_roofline_section_on_a_store_without_the_columns_says_so(tmp_path):
    pytest.importorskip("plotly")
    from suite.dashboard.data import load
    from suite.dashboard.roofline import figure, section

    _store(tmp_path, roofline=False)  # rows as written before the roofline columns existed: read as null
    data = load(tmp_path)
    assert figure(data) is None
    html = section(data, {})
    assert "No timed inference cell carries roofline columns" in html and 'id="fig-roofline"' not in html


@pytest.fixture(scope="module")
def roofline_site(tmp_path_factory):
    pytest.importorskip("plotly")
    from suite.dashboard import build_dashboard

    d = tmp_path_factory.mktemp("roofline-site")
    _store(d / "results")
    build_dashboard(d / "results", d / "site")
    return d / "site" / "index.html"


def test_roofline_section_in_a_browser(roofline_site):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    chromium, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("chromium / chromedriver not installed (apt-get install -y chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1366,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        drv.get(roofline_site.as_uri())
        deadline = time.time() + 60
        while time.time() < deadline and drv.execute_script("return document.body.dataset.rendered") != "1":
            time.sleep(0.1)
        names = "return document.getElementById('fig-roofline')._fullData.map(function (t) { return t.name; })"
        assert drv.find_element(By.CSS_SELECTOR, "nav a[href='#roofline']")
        assert sorted(drv.execute_script(names)) == ["compute roof", "jax", "memory roof", "torch"]  # cpu
        assert drv.execute_script("return document.getElementById('fig-roofline')._fullLayout.xaxis.type") == "log"
        visible = ("return Array.from(document.querySelectorAll('#roofline-peaks tbody tr'))"
                   ".filter(function (r) { return !r.hidden; }).map(function (r) { return r.innerText; })")
        rows = drv.execute_script(visible)
        assert len(rows) == 1 and rows[0].startswith("cpu") and "GFLOP/s" in rows[0]
        Select(drv.find_element(By.ID, "f-profile")).select_by_value("cpu-1t")
        time.sleep(0.5)
        assert sorted(drv.execute_script(names)) == ["jax", "torch"]  # no peak stored: no roof drawn
        rows = drv.execute_script(visible)
        assert len(rows) == 1 and "bench peak -p cpu-1t" in rows[0]
        errors = [e["message"] for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
    finally:
        drv.quit()


def test_a_peak_measured_on_a_busy_host_is_replaced_once_the_host_is_quiet(cache, profiles):
    from suite import peak

    p = profiles["cpu-1t"]
    first, _ = peak.ensure(p, ["numpy"], **TINY)
    path = peak.cache_path(p)
    data = json.loads(path.read_text())
    path.write_text(json.dumps(dict(data, host_busy=0.9)))  # as if other processes kept the CPUs busy
    busy = peak.cached(p)
    assert busy.busy and "the figures are low" in peak.table(busy)
    assert peak.ensure(p, ["numpy"], seconds=0.05) == (busy, False)  # kept unless asked to replace it
    again, measured = peak.ensure(p, ["numpy"], replace_busy=True, **TINY)
    assert measured and again.libraries["numpy"]["best_s"] != first.libraries["numpy"]["best_s"]
    assert peak.cached(p) == again

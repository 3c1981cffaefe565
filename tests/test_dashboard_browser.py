"""The dashboard in a real browser: Debian's chromium, headless, driven by selenium + chromedriver.

Loads the built site from disk (file://, no server), checks there are no console errors, that every
figure rendered with data, that the filters redraw without errors, that a workload named
``<script>alert(1)</script>`` is shown as text (and runs nothing), and saves a screenshot.
`.ci/run` installs chromium + chromium-driver with apt; the test skips, saying why, only where
they are not installed.
"""
from __future__ import annotations

import shutil
import time

import pytest

from dashboard_data import ALL_TARGETS, EVIL, write_store

pytest.importorskip("plotly", reason="the dashboard needs plotly: pip install -e '.[dashboard]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed: pip install -e '.[test]'")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium / chromedriver not installed "
                                "(apt-get install -y chromium chromium-driver; .ci/run does it)")

WIDTH = 1366  # a laptop screen: the page must read well at this width
FIGURE_STATE = """
return Array.from(document.querySelectorAll('.fig')).map(function (el) {
  var full = el._fullData || [];
  var points = full.filter(function (t) { return t.visible !== false; }).reduce(function (n, t) {
    var a = t.z || t.y || t.x || [];
    return n + (a.length || 0);
  }, 0);
  return {id: el.id, traces: full.length, points: points,
          drawn: el.querySelectorAll('g.trace, g.hm, g.heatmaplayer image').length,
          empty: el.textContent.indexOf('nothing matches the filters') >= 0};
});
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from suite.dashboard import build_dashboard

    d = tmp_path_factory.mktemp("dash-browser")
    write_store(d / "results", n_runs=3, workloads=["mlp_classifier", "resnet_cnn", "gpt_block"],
                targets=list(ALL_TARGETS), evil=True)  # every target id: the matrix labels must still fit
    build_dashboard(d / "results", d / "site")
    return d / "site" / "index.html"


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-dev-shm-usage", f"--window-size={WIDTH},1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    except Exception as e:  # noqa: BLE001 - a browser that cannot start here is a skip with the reason
        pytest.skip(f"chromium did not start: {type(e).__name__}: {str(e).splitlines()[0]}")
    drv.set_page_load_timeout(120)
    yield drv
    drv.quit()


def _load(browser, index):
    browser.get(index.as_uri())
    deadline = time.time() + 60
    while time.time() < deadline and browser.execute_script("return document.body.dataset.rendered") != "1":
        time.sleep(0.1)
    assert browser.execute_script("return document.body.dataset.rendered") == "1", "figures never finished drawing"


def _errors(browser) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def test_site_renders_every_figure_without_errors(site, browser, tmp_path_factory):
    from selenium.webdriver.common.by import By

    _load(browser, site)
    assert _errors(browser) == []
    figs = browser.execute_script(FIGURE_STATE)
    assert len(figs) >= 10
    for f in figs:
        assert f["traces"] > 0 and f["points"] > 0 and f["drawn"] > 0 and not f["empty"], f
    assert browser.execute_script("return typeof Plotly") == "object"
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(WIDTH, min(height, 16000))
    time.sleep(0.5)
    shots = tmp_path_factory.mktemp("screenshot")
    assert browser.save_screenshot(str(shots / "dashboard.png")) and (shots / "dashboard.png").stat().st_size > 50_000
    for sid in ("best", "matrix"):  # the two views a reader checks first, at full resolution
        assert browser.find_element(By.ID, sid).screenshot(str(shots / f"{sid}.png"))
    print(f"screenshots: {shots}/{{dashboard,best,matrix}}.png")
    browser.set_window_size(WIDTH, 1000)


def test_hostile_workload_name_is_text(site, browser):
    from selenium.common.exceptions import NoAlertPresentException

    _load(browser, site)
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    body = browser.execute_script("return document.body.innerText")
    assert EVIL in body  # shown literally (tables, filters) ...
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0  # ... never as markup
    ticks = browser.execute_script("return Array.from(document.querySelectorAll('#fig-matrix .ytick text'))"
                                   ".map(function (t) { return t.textContent; })")
    assert any(t.startswith(EVIL) for t in ticks), ticks  # plotly draws the label as text too
    assert _errors(browser) == []


def test_filters_redraw_without_errors(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _load(browser, site)
    browser.find_element(By.CSS_SELECTOR, "button[data-all='f-workload'][data-value='0']").click()
    time.sleep(0.5)
    figs = {f["id"]: f for f in browser.execute_script(FIGURE_STATE)}
    assert figs["fig-matrix"]["empty"] and figs["fig-bars"]["empty"]
    assert not figs["fig-status"]["empty"]  # the overview does not filter
    browser.find_element(By.CSS_SELECTOR, "button[data-all='f-workload'][data-value='1']").click()
    browser.find_element(By.CSS_SELECTOR, "input[name='f-family'][value='jax']").click()
    Select(browser.find_element(By.ID, "f-profile")).select_by_value("cpu-1t")
    Select(browser.find_element(By.ID, "f-baseline")).select_by_value("jax:jit")
    time.sleep(0.5)
    state = browser.execute_script("var s = window.benchDashboard.state; return [s.profile, s.baseline, "
                                   "s.families.has('jax'), s.workloads.size]")
    assert state == ["cpu-1t", "jax:jit", False, 4]
    for f in browser.execute_script(FIGURE_STATE):
        assert f["traces"] > 0 and not f["empty"], f
    xs = browser.execute_script("return document.getElementById('fig-matrix')._fullData[0].x")
    assert "jax:jit" not in xs and "torch:eager" in xs
    assert _errors(browser) == []


BEST_ROWS = r"""
return Array.from(document.querySelectorAll('#best-routes tbody tr')).filter(function (r) { return !r.hidden; })
  .map(function (r) {
    var w = r.querySelector('b.winner');
    return {on: JSON.parse(r.dataset.filter), text: r.innerText.replace(/\s+/g, ' '), winner: w ? w.textContent : null};
  });
"""


def test_best_route_leads_the_page_and_follows_the_filters(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _load(browser, site)
    assert browser.execute_script("return document.querySelector('main section').id") == "best"
    assert browser.execute_script("return document.getElementById('best').getBoundingClientRect().bottom <= "
                                  "document.getElementById('overview').getBoundingClientRect().top")
    rows = browser.execute_script(BEST_ROWS)
    assert len(rows) == 4 * 2 and {r["on"]["profile"] for r in rows} == {"cpu"}  # the default profile
    winners = [r for r in rows if r["winner"]]
    assert len(winners) == 3 * 2 and all(r["winner"] in ALL_TARGETS for r in winners)
    assert all("× vs " in r["text"] for r in winners)
    evil = [r for r in rows if r["on"]["workload"] == EVIL]
    assert len(evil) == 2 and all(EVIL in r["text"] and "no route passed" in r["text"] for r in evil)
    assert all(f"fail (max abs err 5.00e-01): every route that ran ({len(ALL_TARGETS)})" in r["text"]
               for r in evil), evil

    Select(browser.find_element(By.ID, "f-profile")).select_by_value("cpu-1t")
    time.sleep(0.3)
    assert {r["on"]["profile"] for r in browser.execute_script(BEST_ROWS)} == {"cpu-1t"}
    browser.find_element(By.CSS_SELECTOR, "button[data-all='f-workload'][data-value='0']").click()
    time.sleep(0.3)
    assert browser.execute_script(BEST_ROWS) == []
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    assert _errors(browser) == []


MATRIX_LABELS = """
var el = document.getElementById('fig-matrix'), xa = el._fullLayout.xaxis, box = el.getBoundingClientRect();
var ts = Array.from(el.querySelectorAll('.xtick text'));
var rects = ts.map(function (t) { return t.getBoundingClientRect(); });
return {n: ts.length, angle: xa.tickangle, step: xa._length / el._fullData[0].x.length,
        width: Math.max.apply(null, ts.map(function (t) { return t.getBBox().width; })),
        height: Math.max.apply(null, ts.map(function (t) { return t.getBBox().height; })),
        top: Math.min.apply(null, rects.map(function (r) { return r.top; })) - box.top,
        right: box.right - Math.max.apply(null, rects.map(function (r) { return r.right; }))};
"""


def test_matrix_target_labels_do_not_overlap_at_laptop_width(site, browser):
    import math

    _load(browser, site)
    assert browser.execute_script("return window.innerWidth") <= WIDTH
    m = browser.execute_script(MATRIX_LABELS)
    assert m["n"] == len(ALL_TARGETS)
    if m["angle"] in (0, None, "auto"):  # flat labels side by side need their width
        assert m["step"] >= m["width"] + 4, m
    else:  # parallel slanted labels are step * sin(angle) apart, and need their line height
        assert m["step"] * abs(math.sin(math.radians(m["angle"]))) >= m["height"], m
    assert m["top"] >= -1 and m["right"] >= -1, m  # nothing cut off at the top or the right edge


@pytest.fixture(scope="module")
def train_site(tmp_path_factory):
    from test_dashboard import TRAIN_PROFILES, TRAIN_TARGETS, write_train_run

    from suite.dashboard import build_dashboard

    d = tmp_path_factory.mktemp("dash-browser-train")
    write_store(d / "results", n_runs=2, workloads=["mlp_classifier", "resnet_cnn"], targets=TRAIN_TARGETS,
                profiles=TRAIN_PROFILES, evil=True)
    write_train_run(d / "results")
    build_dashboard(d / "results", d / "site")
    return d / "site" / "index.html"


VISIBLE_NUMERIC_ROWS = ("return Array.from(document.querySelectorAll('#train-numerics tbody tr'))"
                        ".filter(function (r) { return !r.hidden; }).length")
MATRIX_ROWS = "return document.getElementById('fig-matrix')._fullData.map(function (t) { return t.y; }).flat()"


def test_mode_filter_shows_inference_train_or_both(train_site, browser):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    _load(browser, train_site)
    assert _errors(browser) == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    figs = {f["id"]: f for f in browser.execute_script(FIGURE_STATE)}
    assert figs["fig-train-vs-inference"]["traces"] == 2 and figs["fig-train-vs-inference"]["points"] > 0
    for f in figs.values():
        assert f["traces"] > 0 and f["points"] > 0 and not f["empty"], f
    n_rows = browser.execute_script(VISIBLE_NUMERIC_ROWS)
    assert n_rows > 0
    rows = browser.execute_script(MATRIX_ROWS)
    assert any(r.endswith(" train") for r in rows) and not all(r.endswith(" train") for r in rows)

    train_box = browser.find_element(By.CSS_SELECTOR, "input[name='f-mode'][value='train']")
    inf_box = browser.find_element(By.CSS_SELECTOR, "input[name='f-mode'][value='inference']")
    train_box.click()  # inference only
    time.sleep(0.5)
    assert browser.execute_script(VISIBLE_NUMERIC_ROWS) == 0
    assert not any(r.endswith(" train") for r in browser.execute_script(MATRIX_ROWS))
    names = browser.execute_script("return document.getElementById('fig-train-vs-inference')._fullData"
                                   ".map(function (t) { return t.name; })")
    assert names == ["inference"]

    train_box.click()
    inf_box.click()  # train only
    time.sleep(0.5)
    assert browser.execute_script(VISIBLE_NUMERIC_ROWS) == n_rows
    rows = browser.execute_script(MATRIX_ROWS)
    assert rows and all(r.endswith(" train") for r in rows)
    for f in browser.execute_script(FIGURE_STATE):
        assert f["traces"] > 0 and not f["empty"], f  # every view has train cells to show

    train_box.click()  # neither
    time.sleep(0.5)
    figs = {f["id"]: f for f in browser.execute_script(FIGURE_STATE)}
    assert figs["fig-matrix"]["empty"] and figs["fig-train-vs-inference"]["empty"]
    assert not figs["fig-status"]["empty"]
    assert EVIL in browser.execute_script("return document.body.innerText")
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    assert _errors(browser) == []

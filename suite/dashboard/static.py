"""The page's own script and style sheet, written as files into the site (no result data in them).

The script reads the figures from the page's ``<script type="application/json" id="bench-data">``
block, applies the filters (profile, baseline, mode, workloads, target families) and draws with
``Plotly.react``; table rows with a ``data-filter`` attribute are hidden by the same filters. It needs no server: everything is in the page or next to it.
"""

SCRIPT = r"""
(function () {
  "use strict";
  var spec = JSON.parse(document.getElementById("bench-data").textContent);
  var state = {
    profile: spec.defaults.profile,
    baseline: spec.defaults.baseline,
    workloads: new Set(spec.workloads),
    families: new Set(spec.families),
    modes: new Set(spec.modes || ["inference"])
  };
  var ARRAYS = ["x", "y", "text", "hovertext", "customdata", "error_y.array", "error_y.arrayminus",
                "marker.pattern.shape"];

  function keepOn(on) {
    if (!on) return true;
    if (on.profile !== undefined && on.profile !== state.profile) return false;
    if (on.baseline !== undefined && on.baseline !== state.baseline) return false;
    if (on.workload !== undefined && !state.workloads.has(on.workload)) return false;
    if (on.family !== undefined && !state.families.has(on.family)) return false;
    if (on.mode !== undefined && !state.modes.has(on.mode)) return false;
    return true;
  }
  function keepItem(o) {
    return (o.workload === undefined || state.workloads.has(o.workload)) &&
           (o.family === undefined || state.families.has(o.family)) &&
           (o.mode === undefined || state.modes.has(o.mode));
  }
  function indices(items) {
    var out = [];
    for (var i = 0; i < items.length; i++) if (keepItem(items[i])) out.push(i);
    return out;
  }
  function getPath(obj, path) {
    var parts = path.split("."), o = obj;
    for (var i = 0; i < parts.length; i++) { if (o == null) return undefined; o = o[parts[i]]; }
    return o;
  }
  function setPath(obj, path, value) {
    var parts = path.split("."), o = obj;
    for (var i = 0; i < parts.length - 1; i++) {
      o[parts[i]] = Object.assign({}, o[parts[i]]);
      o = o[parts[i]];
    }
    o[parts[parts.length - 1]] = value;
  }
  function pick(arr, idx) { return idx.map(function (i) { return arr[i]; }); }

  function filterTrace(t) {
    var m = t.meta || {};
    if (!keepOn(m.on)) return null;
    var out = Object.assign({}, t);
    if (m.rows || m.cols) {
      var ri = m.rows ? indices(m.rows) : null, ci = m.cols ? indices(m.cols) : null;
      if ((ri && !ri.length) || (ci && !ci.length)) return null;
      ["z", "text", "hovertext"].forEach(function (f) {
        if (!Array.isArray(t[f])) return;
        var rows = ri ? pick(t[f], ri) : t[f];
        out[f] = ci ? rows.map(function (r) { return pick(r, ci); }) : rows;
      });
      if (ri) out.y = pick(t.y, ri);
      if (ci) out.x = pick(t.x, ci);
    }
    if (m.pt) {
      var idx = indices(m.pt);
      if (!idx.length) return null;
      ARRAYS.forEach(function (p) {
        var a = getPath(t, p);
        if (Array.isArray(a) && a.length === m.pt.length) setPath(out, p, pick(a, idx));
      });
    }
    return out;
  }

  function render(fig, first) {
    var el = document.getElementById("fig-" + fig.id);
    if (!el) return;
    var data = [], legend = new Set();
    fig.data.forEach(function (t) {
      var f = filterTrace(t);
      if (!f) return;
      if (f.legendgroup !== undefined && f.showlegend !== undefined) {
        f.showlegend = !legend.has(f.legendgroup);   // the first visible trace of a group carries the legend
        legend.add(f.legendgroup);
      }
      data.push(f);
    });
    var layout = Object.assign({}, fig.layout);
    if (!data.length) {
      layout.annotations = (layout.annotations || []).concat([{text: "nothing matches the filters",
        xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, font: {size: 16, color: "#888"}}]);
    }
    el.dataset.traces = String(data.length);
    var config = {responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"]};
    return first ? Plotly.newPlot(el, data, layout, config) : Plotly.react(el, data, layout, config);
  }
  function filterRows() {
    document.querySelectorAll("tr[data-filter]").forEach(function (tr) {
      var on;
      try { on = JSON.parse(tr.dataset.filter); } catch (e) { return; }
      tr.hidden = !keepOn(on);
    });
  }
  function renderAll(first) {
    filterRows();
    return Promise.all(spec.figures.map(function (f) { return render(f, first); }));
  }

  function bindSelect(id, key) {
    var el = document.getElementById(id);
    if (!el) return;
    el.value = state[key];
    el.addEventListener("change", function () { state[key] = el.value; renderAll(false); });
  }
  function bindChecks(name, key) {
    var boxes = document.querySelectorAll("input[name='" + name + "']");
    boxes.forEach(function (b) {
      b.addEventListener("change", function () {
        if (b.checked) state[key].add(b.value); else state[key].delete(b.value);
        renderAll(false);
      });
    });
    document.querySelectorAll("button[data-all='" + name + "']").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var on = btn.dataset.value === "1";
        boxes.forEach(function (b) { b.checked = on; if (on) state[key].add(b.value); else state[key].delete(b.value); });
        renderAll(false);
      });
    });
  }
  bindSelect("f-profile", "profile");
  bindSelect("f-baseline", "baseline");
  bindChecks("f-workload", "workloads");
  bindChecks("f-family", "families");
  bindChecks("f-mode", "modes");
  window.benchDashboard = {state: state, spec: spec, ready: renderAll(true).then(function () {
    document.body.dataset.rendered = "1";
  })};
})();
"""

STYLE = r"""
:root { --fg: #1d2330; --muted: #5f6b7a; --line: #e3e7ee; --bg: #f6f8fb; --accent: #2f6fdb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); }
header { background: #1d2330; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
header p { margin: 2px 0 0; color: #c3cad6; font-size: 13px; }
nav { display: flex; flex-wrap: wrap; gap: 4px 14px; padding: 8px 24px; background: #fff;
      border-bottom: 1px solid var(--line); }
nav a { color: var(--accent); text-decoration: none; font-size: 13px; }
.filters { position: sticky; top: 0; z-index: 10; background: #fff; border-bottom: 1px solid var(--line);
           padding: 8px 24px; display: flex; flex-wrap: wrap; gap: 8px 22px; align-items: flex-start;
           box-shadow: 0 2px 4px rgba(0,0,0,.04); }
.filters .group { display: flex; flex-wrap: wrap; gap: 2px 10px; align-items: center; max-width: 100%; }
.filters .label { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; }
.filters label { font-size: 13px; white-space: nowrap; }
.filters button { font-size: 11px; padding: 1px 6px; border: 1px solid var(--line); background: #f3f5f8;
                  border-radius: 3px; cursor: pointer; }
select { font: inherit; padding: 2px 4px; }
main { padding: 8px 24px 40px; max-width: 1500px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 16px 0; padding: 12px 16px; }
section h2 { margin: 0 0 4px; font-size: 17px; }
section h3 { margin: 12px 0 4px; font-size: 14px; }
.note { color: var(--muted); margin: 0 0 8px; font-size: 13px; }
.empty { color: var(--muted); font-style: italic; }
.fig { width: 100%; min-height: 120px; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0 8px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.grid { display: grid; grid-template-columns: minmax(280px, 1fr) minmax(280px, 1fr); gap: 8px 28px; }
@media (max-width: 900px) { .grid { grid-template-columns: 1fr; } }
.chips { display: flex; flex-wrap: wrap; gap: 4px 12px; margin: 4px 0 6px; font-size: 12px; }
.chip { display: inline-flex; align-items: center; gap: 4px; }
.chip i { width: 12px; height: 12px; border-radius: 2px; display: inline-block; }
.bad { color: #c62828; font-weight: 600; } .good { color: #2e7d32; font-weight: 600; }
.badge { display: inline-block; font-size: 11px; padding: 0 5px; border-radius: 3px; margin-left: 4px;
         white-space: nowrap; }
.badge.tie { background: #fff4d6; color: #7a5a00; } .badge.unstable { background: #fde2e1; color: #a12622; }
.badge.dtype { background: #e4ecfb; color: #23498f; }
ul.failed { margin: 0; padding: 0; list-style: none; }
ul.failed li { margin: 0 0 1px; }
#best-routes td { padding-right: 14px; }
code { background: #f1f3f6; padding: 0 3px; border-radius: 3px; }
"""

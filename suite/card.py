"""`bench card`: a model card of one cell (workload × target) from the results store, as Markdown and JSON.

Sections: what it is (workload, target, framework / format / runtime), where it came from (workload hash,
weights seed, suite version, commit, converter and runtime versions), how it was verified (status, figures
and error per profile and sweep point), how fast (median, its confidence interval, throughput,
``roofline_fraction`` where the store has that column), what it needs (parameters, FLOPs, artifact bytes,
peak memory) and on which machine. Rows are those of one run: ``--run-id``, else the latest run that has the
cell. Reads the store through :mod:`suite.results`; imports no framework.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

CARD_VERSION = 1
VERIFY_COLS = ("status", "stage", "status_reason", "max_abs_err", "max_rel_err", "cosine", "mismatch_fraction",
               "top1_agreement", "rtol", "atol", "dtype")
SPEED_COLS = ("latency_median_s", "latency_ci_low_s", "latency_ci_high_s", "latency_iqr_s", "throughput",
              "n_samples", "noisy", "roofline_fraction")
NEEDS_COLS = ("flops", "artifact_bytes", "export_s", "compile_s", "peak_rss_bytes", "device_peak_bytes")
MACHINE_COLS = ("host", "cpu_model", "cpu_count", "platform", "python_version")


def _plain(v):
    """A JSON-able scalar: NaN / NA -> None, numpy scalars -> Python."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    try:
        import pandas as pd

        if not isinstance(v, (list, dict, str)) and pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def parameter_count(wl) -> int:
    """Trainable parameters of the workload (shapes from the op catalogue, as suite.weights sizes them)."""
    from suite.ops import OPS

    params = wl.param_grid()[0]
    shapes = wl.shapes(params)
    total = 0
    for node in wl.nodes:
        for shape in (OPS[node.op].params([shapes[s] for s in node.inputs], dict(node.attrs)) or {}).values():
            total += math.prod(shape)
    return total


def build_card(results_dir: str | Path, wl, info, profiles: list[str] | None = None,
               run_id: str | None = None) -> dict:
    """The card of (workload, target) from the store.

    Args:
        results_dir: the results folder.
        wl: the workload (suite.spec); info: the target (suite.targets.registry).
        profiles: only these profiles (all when None).
        run_id: this run (the latest run with the cell when None).
    Returns:
        the card as a JSON-able dict.
    Raises:
        LookupError: no row matches (one line that says what was looked for).
    """
    from suite.results import read_results

    df = read_results(results_dir, [run_id] if run_id else None)
    df = df[(df["workload"] == wl.name) & (df["target"] == info.id)]
    if profiles:
        df = df[df["profile"].isin(profiles)]
    where = f"{wl.name} × {info.id}" + (f" on {', '.join(profiles)}" if profiles else "") + \
        (f" in run {run_id}" if run_id else "")
    if df.empty:
        raise LookupError(f"no results for {where} in {results_dir}")
    if not run_id:
        run_id = df.sort_values("timestamp")["run_id"].iloc[-1]
        df = df[df["run_id"] == run_id]
    df = df.sort_values(["profile", "mode", "batch_size", "params"])
    rows = [{k: _plain(v) for k, v in r.items()} for r in df.drop(columns=["samples_s"]).to_dict("records")]
    first = rows[0]
    has_roofline = "roofline_fraction" in df.columns

    def cell(r):
        return {"profile": r["profile"], "params": json.loads(r["params"]), "mode": r.get("mode")}

    artifacts = _artifact_provenance(wl, info, rows)
    versions: dict = {}
    for r in rows:
        try:
            versions.update(json.loads(r.get("versions") or "{}"))
        except ValueError:
            pass
    return {
        "card_version": CARD_VERSION, "run_id": run_id,
        "what": {"workload": wl.name, "description": wl.description, "target": info.id,
                 "framework": info.framework, "format": info.format, "runtime": info.runtime,
                 "variant": info.variant, "target_description": info.description,
                 "layout": first.get("layout")},
        "provenance": {"workload_hash": first.get("workload_hash"), "workload_hash_now": wl.hash,
                       "weights_seed": wl.seed, "suite_version": first.get("suite_version"),
                       "git_commit": first.get("git_commit"), "versions": dict(sorted(versions.items())),
                       "measured_at": str(first.get("timestamp")), "artifacts": artifacts},
        "verification": [dict(cell(r), **{k: r.get(k) for k in VERIFY_COLS}) for r in rows],
        "speed": [dict(cell(r), **{k: r.get(k) for k in SPEED_COLS if k != "roofline_fraction" or has_roofline})
                  for r in rows if r.get("latency_median_s") is not None],
        "needs": {"parameters": parameter_count(wl),
                  "per_cell": [dict(cell(r), **{k: r.get(k) for k in NEEDS_COLS}) for r in rows]},
        "machine": dict({k: first.get(k) for k in MACHINE_COLS},
                        profiles={r["profile"]: {"device": r.get("device"), "threads": r.get("threads")}
                                  for r in rows}),
    }


def _artifact_provenance(wl, info, rows: list[dict]) -> list[dict]:
    """For an export target: the provenance of its artifacts in the cache (manifest copy, per sweep point),
    where they are still there and of this workload's hash; [] otherwise."""
    if info.export is None:
        return []
    from suite.paths import cache_root
    from suite.targets.common.artifacts import cell_dir, read_manifest

    out, seen = [], set()
    for r in rows:
        params = json.loads(r["params"])
        folder = cell_dir(cache_root() / "artifacts", wl, params, info, r.get("device") or "cpu")
        man = read_manifest(folder) if folder not in seen else None
        seen.add(folder)
        prov = (man or {}).get("provenance")
        if prov and prov.get("workload_hash") == r.get("workload_hash"):
            out.append({"params": params, "folder": str(folder), "weights_hash": prov["weights"]["hash"],
                        "exported_at": prov.get("exported_at"), "version_key": prov.get("version_key"),
                        "verification": prov.get("verification")})
    return out


def _fmt(v, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}{unit}"
    return f"{v}{unit}"


def _ms(v) -> str:
    return "–" if v is None else f"{v * 1e3:.4g} ms"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]


def to_markdown(card: dict) -> str:
    """The card as Markdown (the same figures as the JSON)."""
    w, p, m = card["what"], card["provenance"], card["machine"]
    point = lambda c: " ".join(f"{k}={v}" for k, v in c["params"].items()) + (  # noqa: E731
        f" ({c['mode']})" if c.get("mode") not in (None, "inference") else "")
    out = [f"# Model card: {w['workload']} × {w['target']}", "", f"{w['description']}", "",
           "## What it is", "",
           f"- workload: `{w['workload']}`; target: `{w['target']}` ({w['target_description']})",
           f"- framework: {w['framework']}; format: {w['format']}; runtime: {w['runtime']}; variant: {w['variant']}",
           f"- layout: {w.get('layout') or '–'}", "",
           "## Where it came from", "",
           f"- workload hash: `{p['workload_hash']}`"
           + ("" if p["workload_hash"] == p["workload_hash_now"] else
              f" (the workload file has changed since: now `{p['workload_hash_now']}`)"),
           f"- weights: seed {p['weights_seed']} (suite.weights.init_weights, canonical float64)",
           f"- suite version: {p['suite_version']}; git commit: `{p['git_commit'] or 'unknown'}`",
           f"- run: `{card['run_id']}` ({p['measured_at']})",
           "- versions: " + (", ".join(f"{k} {v}" for k, v in p["versions"].items()) or "–")]
    out += [f"- artifact ({' '.join(f'{k}={v}' for k, v in a['params'].items())}): exported {a['exported_at']}, "
            f"weights hash `{a['weights_hash']}`, `{a['folder']}` (its provenance: `bench provenance FOLDER`)"
            for a in p["artifacts"]]
    out += ["",
           "## How it was verified", "",
           "Against the NumPy float64 reference (suite.reference), per profile and sweep point.", ""]
    out += _table(["profile", "point", "status", "max abs err", "max rel err", "cosine", "top-1", "rtol / atol",
                   "error"],
                  [[v["profile"], point(v), v["status"], _fmt(v["max_abs_err"]), _fmt(v["max_rel_err"]),
                    _fmt(v["cosine"]), _fmt(v["top1_agreement"]), f"{_fmt(v['rtol'])} / {_fmt(v['atol'])}",
                    (f"[{v['stage']}] " if v.get("stage") else "") + (v.get("status_reason") or "")]
                   for v in card["verification"]])
    out += ["", "## How fast", ""]
    if card["speed"]:
        roof = any("roofline_fraction" in s for s in card["speed"])
        out += _table(["profile", "point", "median", "95% CI of the median", "throughput /s", "samples", "noisy"]
                      + (["roofline fraction"] if roof else []),
                      [[s["profile"], point(s), _ms(s["latency_median_s"]),
                        f"{_ms(s['latency_ci_low_s'])} – {_ms(s['latency_ci_high_s'])}", _fmt(s["throughput"]),
                        _fmt(s["n_samples"]), "yes" if s.get("noisy") else "no"]
                       + ([_fmt(s.get("roofline_fraction"))] if roof else []) for s in card["speed"]])
    else:
        out += ["Not timed in this run (bench verify, or no cell passed verification)."]
    n = card["needs"]
    out += ["", "## What it needs", "", f"- parameters: {n['parameters']:,}", ""]
    out += _table(["profile", "point", "FLOPs", "artifact bytes", "export s", "compile s", "peak RSS",
                   "device peak"],
                  [[c["profile"], point(c), _fmt(c["flops"]), _fmt(c["artifact_bytes"]), _fmt(c["export_s"]),
                    _fmt(c["compile_s"]), _fmt(c["peak_rss_bytes"] and c["peak_rss_bytes"] / 2**20, " MiB"),
                    _fmt(c["device_peak_bytes"] and c["device_peak_bytes"] / 2**20, " MiB")]
                   for c in n["per_cell"]])
    out += ["", "## On which machine", "",
            f"- host: {m['host']}; CPU: {m['cpu_model']} ({m['cpu_count']} logical CPUs)",
            f"- platform: {m['platform']}; Python {m['python_version']}"]
    out += [f"- profile {name}: device {d['device']}, {d['threads']} threads" for name, d in m["profiles"].items()]
    return "\n".join(out) + "\n"


def write_card(card: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Writes ``<workload>__<target slug>.md`` and ``.json`` into ``out_dir``; returns both paths."""
    from suite.targets.common.artifacts import slug

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{card['what']['workload']}__{slug(card['what']['target'])}"
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    md.write_text(to_markdown(card))
    js.write_text(json.dumps(card, indent=1, default=str) + "\n")
    return md, js

"""Summarise results*.jsonl: per framework/setting/workload, median over reps of per-run median latency.
A run is 'clean' when foreign CPU load (other processes, burner excluded) during its measurement was
< CLEAN cores. Clean runs are used when a cell has any; otherwise all runs, marked '*'.
(Called by study.py; `study.py --analyze-only --out DIR` prints the tables of an existing folder.)"""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

CLEAN = 0.3
PATTERNS = {"spin": "results*.jsonl", "spin-unpinned": "unpinned_results*.jsonl", "torch": "oversub_results*.jsonl"}


def result_files(work_dir: Path, neighbour: str = "spin") -> list[Path]:
    """The results files of one neighbour kind in work_dir (aborted runs left out)."""
    return [f for f in sorted(Path(work_dir).glob(PATTERNS[neighbour])) if "aborted" not in f.name]


def load_cells(files) -> dict:
    cells = defaultdict(list)
    for f in files:
        with open(f) as fh:
            for line in fh:
                r = json.loads(line)
                for wl, m in r.get("results", {}).items():
                    cells[(r["fw"], r["setting"], wl, r["cond"])].append(m)
    return cells


def print_tables(files, clean: float = CLEAN) -> None:
    cells = load_cells(files)

    def pick(key):
        ms = cells.get(key, [])
        cl = [m for m in ms if m["foreign_cores"] < clean]
        use, flag = (cl, "") if cl else (ms, "*")
        if not use:
            return None, "", 0, 0, None
        return (statistics.median(m["median_ms"] for m in use), flag, len(use), len(ms),
                statistics.median(m["own_cores"] for m in use))

    order = []
    for k in cells:
        if (k[0], k[1]) not in order:
            order.append((k[0], k[1]))
    for fw in ["torch", "ort", "tf", "jax"]:
        print(f"\n## {fw}")
        print(f"{'setting':42s} {'workload':8s} {'quiet ms':>10s} {'busy ms':>10s} {'busy/q':>7s} {'q vs def':>8s} {'n q/b':>9s} {'own cpu q/b':>11s}")
        for wl in ["mlp_b1", "mlp_b32", "cnn_b1"]:
            dq = pick((fw, "default", wl, "quiet"))[0]
            for f2, s in order:
                if f2 != fw:
                    continue
                q, fq, nq, tq, oq = pick((fw, s, wl, "quiet"))
                b, fb, nb, tb, ob = pick((fw, s, wl, "busy"))
                if q is None or b is None:
                    continue
                rel = f"{(q / dq - 1) * 100:+.0f}%" if dq else ""
                print(f"{s:42s} {wl:8s} {q:9.3f}{fq or ' '} {b:9.3f}{fb or ' '} {b / q:7.1f} {rel:>8s} {nq}/{tq},{nb}/{tb:<3d} {oq:.2f}/{ob:.2f}")

"""Per-rep medians (ms) for each cell, clean runs only (foreign < 0.3 cores), to show the spread.
(Called by study.py --spread.)"""
from __future__ import annotations

import json
from collections import defaultdict

CLEAN = 0.3


def print_spread(files, clean: float = CLEAN) -> None:
    cells = defaultdict(list)
    for f in files:
        with open(f) as fh:
            for line in fh:
                r = json.loads(line)
                for wl, m in r.get("results", {}).items():
                    if m["foreign_cores"] < clean:
                        cells[(r["fw"], r["setting"], wl, r["cond"])].append(round(m["median_ms"], 3))
    for k, v in cells.items():
        print(*k, sorted(v))

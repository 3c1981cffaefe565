"""Per-rep medians (ms) for each cell, clean runs only (foreign < 0.3 cores), to show the spread.
(Called by study.py --spread.)"""
from __future__ import annotations

from analyze import CLEAN, load_cells


def print_spread(files, clean: float = CLEAN) -> None:
    for k, runs in load_cells(files).items():
        print(*k, sorted(round(m["median_ms"], 3) for m in runs if m["foreign_cores"] < clean))

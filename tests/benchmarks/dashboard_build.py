"""Benchmark (prints figures; not a timed test): dashboard build time and site size for a 100,000-row store.

    .venv/bin/python tests/benchmarks/dashboard_build.py [--rows 100000] [--keep DIR]

The synthetic store is the default-like matrix (7 workloads x batch 1, 32 x 7 targets x 4 profiles =
392 rows per run) repeated over successive runs, each row with 20-50 raw samples: what results/
holds after ~256 runs of a tracked suite. Targets: build <= 30 s, site <= 15 MB.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard_data import write_store  # noqa: E402

from suite.dashboard import build_dashboard  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--keep", default=None, help="build the site into this folder (kept)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "results"
        t0 = time.perf_counter()
        n_runs = -(-args.rows // 392)
        rows = write_store(store, n_runs=n_runs)
        gen = time.perf_counter() - t0
        store_mb = sum(p.stat().st_size for p in store.glob("*.parquet")) / 1e6
        print(f"store: {rows:,} rows in {n_runs} runs, {store_mb:.1f} MB Parquet (generated in {gen:.1f} s)")
        out = Path(args.keep) if args.keep else Path(tmp) / "site"
        info = build_dashboard(store, out)
        files = sorted((p.stat().st_size, p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        print(f"build: {info.seconds:.1f} s (target <= 30 s) {'OK' if info.seconds <= 30 else 'OVER'}")
        print(f"site:  {info.site_bytes / 1e6:.2f} MB (target <= 15 MB) {'OK' if info.site_bytes <= 15e6 else 'OVER'}")
        for size, rel in reversed(files):
            print(f"  {size / 1e6:8.2f} MB  {rel}")
        print(f"figures: {info.figures}, runs: {info.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

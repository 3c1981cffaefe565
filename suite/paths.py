"""Where the suite keeps files it creates outside results/: a leaf module (imports nothing of the suite),
so that profiles, the worker and the artifact store can all use it without importing each other."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Where references and exported artifacts are cached: $BENCH_CACHE_DIR or ~/.cache/bench-suite."""
    return Path(os.environ.get("BENCH_CACHE_DIR") or Path.home() / ".cache" / "bench-suite")

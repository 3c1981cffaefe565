"""The static comparison dashboard: ``bench dashboard`` turns the Parquet results into a site.

Modules: :mod:`.data` (results -> tidy frames, pandas only), :mod:`.best` (the fastest passing
route per workload, the page's first section), :mod:`.history` (runs over time and the regression
marker), :mod:`.figures` / :mod:`.charts` (plotly figures), :mod:`.training` (train mode next to
inference), :mod:`.page` (HTML, escaping), :mod:`.static` (the filter script) and :mod:`.build`
(writes the site). plotly is imported inside functions only, so
``import suite`` stays light.
"""
from __future__ import annotations


def build_dashboard(results_dir, out_dir, **kwargs):
    """Builds the static site; see :func:`suite.dashboard.build.build_dashboard`."""
    from suite.dashboard.build import build_dashboard as _build

    return _build(results_dir, out_dir, **kwargs)

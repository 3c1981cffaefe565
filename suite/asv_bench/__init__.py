"""asv benchmarks of the suite (``benchmark_dir`` in ``asv.conf.json``); see ``benchmarks.py``.

asv imports every module under this folder to discover benchmarks: keep it to benchmark modules with
no framework imports at module level.
"""

"""``lens monitor``: a scenario run every interval, forever, as a small service serving
Prometheus (docs/monitoring.md is the contract).

``schedule`` (when cycles start), ``state`` (counters, histograms, windows and the
``/metrics`` families), ``store`` (``--store DIR``), ``http`` (the endpoints on trio) and
``service`` (the loop, and ``run_monitor``, the blocking entry point ``lens monitor``
calls).  It drives whole runs through ``lens.pipeline``, so it sits above it, beside
``lens.workers``.
"""

"""``netlens exporter``: the live monitor's frames as Prometheus metrics (a view).

:mod:`.series` (names, labels, the cap), :mod:`.totals` (monotonic counters from
kernel deltas), :mod:`.collector` (a prometheus-client Collector and the text
renderer), :mod:`.hostmetrics` (server-level families), :mod:`.server` (the
sampler thread and the HTTP side). No textual, no rich: it runs headless.
"""

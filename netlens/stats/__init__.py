"""Live counters, rates, history and density: the layer under the dashboard.

Headless: never imports textual or rich. ``types`` is the contract the views use.
"""

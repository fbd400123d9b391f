"""Analysis over the discovered host: ``trace`` (why can or can't A reach B).

Headless (no textual, no rich): it reads the snapshot from discovery and asks
the kernel (netlens.kernel) for its own decisions; views render the results.
"""

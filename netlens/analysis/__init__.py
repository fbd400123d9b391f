"""Analysis over the discovered host: what is wrong and where.

``trace`` (why can or can't A reach B: it asks each hop's kernel for its own
decision) and ``doctor`` (findings over the whole host). Headless (no textual,
no rich): it reads the snapshot from discovery, asks the kernel through
netlens.kernel, and leaves rendering to the views.
"""

"""netlens: see what containers did to a Linux host's network.

The package is split so that data flows one way: ``discovery`` reads the kernel,
``model`` holds plain frozen data and the graph, ``stats`` turns counter samples
into rates, and the views (``cli``, ``tui``, ``export``) only read from those.
Nothing below the views imports textual or rich.
"""

__version__ = "0.1.0"

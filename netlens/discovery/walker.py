"""Build and find ``netlens-walk``, the C namespace walker (walk.c).

Why: with a thousand namespaces the discovery helper process is the long pole
of a dump, and half of its time was Python around the syscalls. netlens-walk
does what ``wire.serve(..., enter=True)`` does, with the same frames, so
:class:`netlens.discovery.sources._Pump` starts it in place of the Python
helper when it is there; the Python helper stays the fallback (no C compiler,
a build that does not run, ``NETLENS_WALK_HELPER=0``).

It is built from ``walk.c`` and ``walk_decode.c`` (the C half of decode.py) by
the system ``cc`` into ``_bin/`` next to this file, with the naming and trust
rules of :mod:`netlens.native`: ``python3 -m netlens.discovery.walker`` (what
.ci/setup.sh runs; it also retries after a failed build), or on first use. A
tree without ``walk_decode.c`` (the header stays) builds with
``-DNLW_NO_DECODE``: every reply then goes raw and the parent decodes it.
Kept light (no imports beyond :mod:`netlens.native`): finding the build runs
before the walker starts, ahead of everything else in discovery.
"""

from __future__ import annotations

import os
import sys

from netlens import native

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "walk.c")
DECODER = os.path.join(HERE, "walk_decode.c")
HEADER = os.path.join(HERE, "walk_decode.h")
BIN_DIR = os.path.join(HERE, "_bin")
USAGE_EXIT = 2  # walk.c's main without arguments
ENV = "NETLENS_WALK_HELPER"
"""``NETLENS_WALK_HELPER=0``: never use the walker (the Python helper runs)."""

_finder = native.Finder(ENV)


def program() -> native.Program:
    """The walker as configured now (tests point ``BIN_DIR`` elsewhere)."""
    if os.path.exists(DECODER):
        sources: tuple[str, ...] = (SOURCE, DECODER)
        flags: tuple[str, ...] = native.DEFAULT_FLAGS
    else:
        sources, flags = (SOURCE,), (*native.DEFAULT_FLAGS, "-DNLW_NO_DECODE")
    return native.Program(
        name="netlens-walk",
        sources=sources,
        bin_dir=BIN_DIR,
        flags=flags,
        usage_exit=USAGE_EXIT,
        headers=(HEADER,),
    )


def build(quiet: bool = True) -> str | None:
    """Compile the walker if needed; its path, or None (no working ``cc``)."""
    return program().build(quiet)


def find() -> str | None:
    """The walker to run, building it on first use; None: use the Python helper."""
    return _finder.find(program())


def forget() -> None:
    """The build failed at run time: use the Python helper for the rest of this process."""
    _finder.forget(program())


if __name__ == "__main__":
    sys.exit(native.build_main(program()))

"""Find ``netlens-spawn``, the small C program that clones batches, built with the package.

Why: a child cloned from a Python process runs Python until exec, and every
page the interpreter touches is copied on write; for a 100-container batch
that was ~2.7 ms of CPU per container, more than the kernel's own work (see
spawn_helper.c). The program is optional: batches use the Python spawner
(spawn.start_many) when it was not built (no C compiler when the package was
built), with ``NETLENS_SPAWN_HELPER=0``, when the file is not one we may run as
root (:func:`why_untrusted`), or once it failed at run time in this process
(:func:`forget`).

It also is the containers' logger (``netlens-spawn log``, log_helper.c, see
netlens_runtime.logger). It is compiled from ``spawn_helper.c`` and
``log_helper.c`` when the package is built (setup.py's
``build_helpers``: a wheel, ``pip install``, or ``make setup`` in a checkout)
into ``_bin/netlens-spawn`` beside this file; nothing is compiled at run time.
The trust rule and the verdict are :mod:`netlens.kernel.native`'s, shared with
``netlens-walk``'s finder (the runtime may import netlens.kernel, nothing else
of netlens).
"""

from __future__ import annotations

import os

from netlens.kernel import native

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "netlens-spawn"
PATH = os.path.join(HERE, "_bin", NAME)
"""Where the build step puts the program (it may be missing)."""
ENV = "NETLENS_SPAWN_HELPER"
"""``NETLENS_SPAWN_HELPER=0``: never use the program (the Python spawner runs)."""

_forgotten = False
"""The program failed at run time in this process: not used again."""


def why_untrusted(path: str, ref: str = __file__) -> str:
    """Why ``path`` may not be run as root ("" when it may), judged against this
    module's file: :func:`netlens.kernel.native.why_untrusted`."""
    return native.why_untrusted(path, ref)


def status() -> tuple[str | None, str]:
    """``(path, "")`` when batches are cloned by the program, else ``(None, why not)``."""
    return native.verdict(PATH, ENV, _forgotten, __file__)


def find() -> str | None:
    """The program to clone batches with, or None: the Python spawner."""
    return status()[0]


def forget() -> None:
    """The program failed at run time: use the Python spawner for the rest of this process."""
    global _forgotten
    _forgotten = True

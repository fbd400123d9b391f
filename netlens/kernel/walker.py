"""Find ``netlens-walk``, the C namespace walker (walk.c), built with the package.

Why: with a thousand namespaces the discovery helper process is the long pole
of a dump, and half of its time was Python around the syscalls. netlens-walk
does what :func:`netlens.kernel.serve.serve` (with ``enter=True``) does, with the same frames, so
:class:`netlens.kernel.pump.Pump` starts it in place of the Python
helper when it is there; the Python helper stays the fallback.

It is compiled from ``walk.c`` and ``walk_decode.c`` (the C half of decode.py)
when the package is built (setup.py's ``build_helpers``: a wheel, ``pip
install``, or ``make setup`` in a checkout) into ``_bin/netlens-walk`` beside
this file; nothing is compiled at run time. The Python helper runs instead when
it was not built (no C compiler at build time), with ``NETLENS_WALK_HELPER=0``,
when the file is not one we may run as root (:func:`why_untrusted`), or once it
failed at run time in this process (:func:`forget`).

Kept light (os and :mod:`netlens.kernel.native`, which holds the trust rule it
shares with :mod:`netlens_runtime.helper`): finding the walker runs before it
starts, ahead of everything else in discovery.
"""

from __future__ import annotations

import os

from netlens.kernel import native

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "netlens-walk"
PATH = os.path.join(HERE, "_bin", NAME)
"""Where the build step puts the walker (it may be missing)."""
ENV = "NETLENS_WALK_HELPER"
"""``NETLENS_WALK_HELPER=0``: never use the walker (the Python helper runs)."""

_forgotten = False
"""The walker failed at run time in this process: not started again."""


def why_untrusted(path: str, ref: str = __file__) -> str:
    """Why ``path`` may not be run as root ("" when it may), judged against this
    module's file: :func:`netlens.kernel.native.why_untrusted`."""
    return native.why_untrusted(path, ref)


def status() -> tuple[str | None, str]:
    """``(path, "")`` when discovery runs the walker, else ``(None, why not)``."""
    return native.verdict(PATH, ENV, _forgotten, __file__)


def find() -> str | None:
    """The walker to run, or None: the Python helper walks."""
    return status()[0]


def forget() -> None:
    """The walker failed at run time: use the Python helper for the rest of this process."""
    global _forgotten
    _forgotten = True

"""Did-you-mean hints: the closest existing names when a name is not there.

A troubleshooting session is full of near misses (``web1`` for ``web-1``, a lab
node's short name for its container name). The hint lists at most three names of
the kinds asked, read from the state directory's file names only (no record is
parsed, so a hint costs one ``listdir`` per kind). Only names that pass the name
rule are offered, so nothing odd a file name holds reaches the terminal.
"""

from __future__ import annotations

import difflib
import os

from netlens_runtime import names, state


def existing(kind: str) -> list[str]:
    """Names of the records of ``kind`` (``containers``, ``networks``, ``labs``)."""
    try:
        files = os.listdir(state.kind_dir(kind))
    except OSError:
        return []
    out = []
    for f in files:
        stem = f.removesuffix(".json")
        if stem != f and names.NAME_RE.fullmatch(stem):
            out.append(stem)
    return sorted(out)


def hint(name: str, *kinds: str) -> str:
    """``"; did you mean 'a' or 'b'?"`` for ``name`` among the kinds' names, or ``""``."""
    return among(name, sorted({n for kind in kinds for n in existing(kind)}))


def among(name: str, pool: list[str]) -> str:
    """The same hint for ``name`` among ``pool`` (a lab's node names, say)."""
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"

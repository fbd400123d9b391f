"""The nftables ruleset of one namespace, as ``nft -j list ruleset`` prints it.

The filter verdict of a trace needs every filter chain of the namespaces on
the path, not only the NAT ones discovery keeps. ``nft`` runs as a child of a
thread that entered the namespace (:class:`~netlens.kernel.nsquery.NsQuery`),
so it inherits exactly that namespace and nothing is created. Read-only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

_TIMEOUT_S = 10.0


def ruleset_here() -> list[dict[str, Any]] | None:
    """The calling thread's namespace's nftables objects; None when nft is
    missing or fails (the filter verdict is then unknown, never guessed)."""
    nft = shutil.which("nft")
    if nft is None:
        return None
    try:
        out = subprocess.run(
            [nft, "-j", "list", "ruleset"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        doc = json.loads(out.stdout or '{"nftables": []}')
    except ValueError:
        return None
    items = doc.get("nftables") if isinstance(doc, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else None

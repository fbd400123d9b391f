"""Name the container (or process) behind each namespace. (Being built.)"""

from __future__ import annotations

from collections.abc import Sequence

from netlens.discovery.nsfind import NsHandle
from netlens.model import Container


def identify(handles: Sequence[NsHandle], *, proc_root: str = "/proc") -> list[Container]:
    """Return one Container per namespace that has an owner (engine or process)."""
    return []

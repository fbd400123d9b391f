"""The labs shipped with netlens (``runtime/netlens_runtime/labs/``): list and find them."""

from __future__ import annotations

import os
from collections.abc import Iterator


def iter_lab_files(directory: str) -> Iterator[str]:
    """The ``*.yaml`` files of a directory, sorted (bundled labs)."""
    for entry in sorted(os.listdir(directory)):
        if entry.endswith((".yaml", ".yml")):
            yield os.path.join(directory, entry)


def bundled_lab(name: str) -> str:
    """Path of a lab file shipped in ``runtime/netlens_runtime/labs/`` (``demo`` -> demo.yaml)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "labs", f"{name}.yaml")

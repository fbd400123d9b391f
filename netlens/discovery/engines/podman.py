"""Podman: names from containers/storage's ``containers.json``.

Podman's own database (bolt or sqlite) is costly to read, but every container
it runs sits in a ``libpod-<id>`` cgroup and has an entry in containers/storage's
``overlay-containers/containers.json`` with its names and image. That file is
read once, only when some namespace's cgroup says libpod.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from netlens.discovery.engines import read_text

DEFAULT_ROOT = "/var/lib/containers/storage"


@dataclass(frozen=True, slots=True)
class PodmanContainer:
    id: str
    name: str
    image: str | None


class PodmanIndex:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.path = os.path.join(root, "overlay-containers", "containers.json")
        self._by_id: dict[str, PodmanContainer] | None = None

    def _load(self) -> dict[str, PodmanContainer]:
        if self._by_id is not None:
            return self._by_id
        self._by_id = {}
        text = read_text(self.path)
        try:
            rows = json.loads(text) if text else []
        except ValueError:
            rows = []
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict) or not row.get("id"):
                continue
            cid = str(row["id"])
            meta: dict[str, object] = {}
            if isinstance(row.get("metadata"), str):
                try:
                    loaded = json.loads(row["metadata"])
                    meta = loaded if isinstance(loaded, dict) else {}
                except ValueError:
                    meta = {}
            names = row.get("names")
            first = names[0] if isinstance(names, list) and names else cid[:12]
            name = str(meta.get("name") or first)
            image = meta.get("image-name") or row.get("image")
            self._by_id[cid] = PodmanContainer(cid, name, str(image) if image else None)
        return self._by_id

    def get(self, cid: str) -> PodmanContainer | None:
        return self._load().get(cid)

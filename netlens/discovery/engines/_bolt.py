"""A read-only reader for bbolt files (Podman's ``bolt_state.db``).

Podman up to 4.x keeps its containers' names, labels, commands and pids in a
bbolt database, and no other file without the daemon holds the labels. Python
has no bbolt module, and Podman has no daemon to ask, so we read the format
ourselves. It is small: two meta pages name the root bucket's page; a bucket
is a B+tree of branch pages (keys and child page ids) and leaf pages (keys and
values, or a nested bucket, which is *inline* when it fits in its parent's
value). We only walk; we never take bbolt's file lock, so a write landing
mid-read can show a torn tree: every offset is bounds-checked and a bad page
ends that walk instead of raising (the caller then sees fewer entries). A
page reached twice in one walk (a branch pointing at itself or an ancestor)
raises :class:`BoltError` instead: such a tree would never end, and the
caller has a fallback. A meta page whose checksum does not match (half
written) is never chosen, whatever its txid.

Format: https://github.com/etcd-io/bbolt (page.go, bucket.go, db.go), read
for its layout only.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

_MAGIC = 0xED0CDAED
_BRANCH, _LEAF, _META = 0x01, 0x02, 0x04
_BUCKET_LEAF = 0x01  # leaf element flag: the value is a nested bucket
_PAGE_HDR = struct.Struct("<QHHI")  # id, flags, count, overflow
_META_BODY = struct.Struct("<IIII QQ QQQ")  # magic ver psize flags root seq freelist pgid txid
_BRANCH_ELEM = struct.Struct("<IIQ")  # pos, ksize, pgid
_LEAF_ELEM = struct.Struct("<IIII")  # flags, pos, ksize, vsize
_BUCKET_HDR = struct.Struct("<QQ")  # root pgid, sequence
_MAX_DEPTH = 32  # a real tree of a few thousand containers is 3-4 deep
_CHECKSUM = struct.Struct("<Q")  # follows the meta body: FNV-64a of the body
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3

Tree = dict[bytes, "bytes | Tree"]


class BoltError(ValueError):
    """The file is not a bbolt database we can read."""


def _fnv64a(data: bytes) -> int:
    """FNV-1a, 64 bits: what bbolt's meta.sum64 computes (two pages, 56 bytes each)."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


class BoltFile:
    """One bbolt file held in memory (Podman's is tens to hundreds of KiB)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.page_size, self.root = self._meta()

    @classmethod
    def open(cls, path: str) -> BoltFile:
        with open(path, "rb") as fh:
            return cls(fh.read())

    def _meta(self) -> tuple[int, int]:
        """(page size, root bucket page) from the newer valid meta page."""
        best: tuple[int, int, int] | None = None  # txid, page size, root
        offsets = [0]
        if len(self.data) >= _PAGE_HDR.size + _META_BODY.size:
            first = _META_BODY.unpack_from(self.data, _PAGE_HDR.size)
            if first[0] == _MAGIC and first[2] >= 512:
                offsets.append(first[2])
        for off in offsets:
            body = off + _PAGE_HDR.size
            if body + _META_BODY.size + _CHECKSUM.size > len(self.data):
                continue
            _id, flags, _c, _o = _PAGE_HDR.unpack_from(self.data, off)
            magic, _ver, psize, _f, root, _seq, _fl, _pgid, txid = _META_BODY.unpack_from(
                self.data, body
            )
            (checksum,) = _CHECKSUM.unpack_from(self.data, body + _META_BODY.size)
            valid = (
                flags & _META
                and magic == _MAGIC
                and psize >= 512
                and checksum == _fnv64a(self.data[body : body + _META_BODY.size])
            )
            if valid and (best is None or txid > best[0]):
                best = (txid, psize, root)
        if best is None:
            raise BoltError("no valid bbolt meta page")
        return best[1], best[2]

    def bucket(self, *path: bytes) -> Iterator[tuple[bytes, bytes | None, bool]]:
        """Entries of the bucket at ``path`` from the root: (key, value, is_bucket).

        For a nested bucket the value is its raw header (pass its key down ``path``
        to read it). An empty iteration means the bucket is missing.
        """
        page = self.data
        base, root = 0, self.root
        inline: int | None = None
        for name in path:
            found = None
            for key, value, is_bucket in self._walk(page, base, root, inline, 0, set()):
                if key == name and is_bucket and value is not None:
                    found = value
                    break
            if found is None or len(found) < _BUCKET_HDR.size:
                return
            root, _seq = _BUCKET_HDR.unpack_from(found)
            if root == 0:  # inline bucket: a page image follows the header
                page, base, inline = found, _BUCKET_HDR.size, 1
            else:
                page, base, inline = self.data, 0, None
        yield from self._walk(page, base, root, inline, 0, set())

    def tree(self, *path: bytes) -> Tree:
        """The bucket at ``path`` as nested dicts (values are bytes, buckets dicts)."""
        out: Tree = {}
        for key, value, is_bucket in self.bucket(*path):
            out[key] = self.tree(*path, key) if is_bucket else (value or b"")
        return out

    def _walk(
        self, buf: bytes, base: int, pgid: int, inline: int | None, depth: int, seen: set[int]
    ) -> Iterator[tuple[bytes, bytes | None, bool]]:
        """Entries under page ``pgid``; ``seen``: the pages this walk already read,
        so a torn file's cycle or shared subtree cannot loop or blow up (at most
        one visit per page of the file)."""
        if depth > _MAX_DEPTH:
            return
        if inline is None:
            if pgid in seen:
                raise BoltError(f"page {pgid} reached twice: a torn or corrupt tree")
            seen.add(pgid)
        off = base if inline is not None else pgid * self.page_size
        if off < 0 or off + _PAGE_HDR.size > len(buf):
            return
        _id, flags, count, _overflow = _PAGE_HDR.unpack_from(buf, off)
        elems = off + _PAGE_HDR.size
        if flags & _BRANCH and inline is None:
            for i in range(count):
                at = elems + i * _BRANCH_ELEM.size
                if at + _BRANCH_ELEM.size > len(buf):
                    return
                _pos, _ksize, child = _BRANCH_ELEM.unpack_from(buf, at)
                yield from self._walk(buf, 0, child, None, depth + 1, seen)
        elif flags & _LEAF:
            for i in range(count):
                at = elems + i * _LEAF_ELEM.size
                if at + _LEAF_ELEM.size > len(buf):
                    return
                eflags, pos, ksize, vsize = _LEAF_ELEM.unpack_from(buf, at)
                kstart = at + pos
                vstart = kstart + ksize
                if vstart + vsize > len(buf):
                    return
                is_bucket = bool(eflags & _BUCKET_LEAF)
                yield buf[kstart:vstart], buf[vstart : vstart + vsize], is_bucket

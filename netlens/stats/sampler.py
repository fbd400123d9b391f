"""Counter dumps of the kept sockets turned into per-interface rates.

One RTM_GETSTATS dump per namespace socket per sample (see :mod:`netlens.stats.live`
for why the sockets stay open); each namespace's own dump time is its rates'
clock, so a long sample does not skew the last namespaces' rates.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

from netlens.model.types import Snapshot
from netlens.stats.counters import RECV_TIMEOUT, StatsReader, arm_timeout
from netlens.stats.rates import CounterTuple, rate
from netlens.stats.types import ZERO, Rate
from netlens.stats.watch import open_sockets


class CounterSampler:
    """Kept sockets plus the previous sample: turns dumps into per-interface rates.

    State is per namespace (the previous dump and its time, and the key strings
    of its interfaces), so a sample builds no new strings and an idle interface
    costs one tuple comparison.

    Every socket gets a receive timeout of ``timeout`` seconds: a namespace whose
    dump is not answered in time (it is being torn down) is skipped for that
    sample and its socket closed; the next rediscovery (:meth:`reconcile`) opens
    a fresh one if the namespace is still there.
    """

    def __init__(self, timeout: float = RECV_TIMEOUT) -> None:
        self.timeout = timeout
        self.socks: dict[str, socket.socket] = {}
        self.reader = StatsReader(deadline=2 * timeout)
        self._prev: dict[str, tuple[dict[int, CounterTuple], float]] = {}
        self._keys: dict[str, dict[int, str]] = {}
        self._zeros: dict[str, dict[str, Rate]] = {}  # per namespace: every key -> ZERO
        self.resets = 0  # counter resets seen (a test and debugging aid)
        self.ifindexes: dict[str, frozenset[int]] = {}  # per namespace, last dump

    def reconcile(self, snap: Snapshot) -> list[str]:
        """Close sockets of namespaces no longer in ``snap``; open the new ones.

        Returns the ids of namespaces whose socket was just opened.
        """
        wanted = {ns.id: ns for ns in snap.namespaces}
        for ns_id in [n for n in self.socks if n not in wanted]:
            self.drop(ns_id)
        missing = [ns for nid, ns in wanted.items() if nid not in self.socks]
        opened = open_sockets(missing) if missing else {}
        self.adopt(opened)
        return list(opened)

    def adopt(self, socks: dict[str, socket.socket]) -> None:
        """Take ownership of sockets (ns id -> socket), arming their receive timeout."""
        for ns_id, sock in socks.items():
            try:
                arm_timeout(sock, self.timeout)
            except OSError:
                sock.close()
                continue
            old = self.socks.pop(ns_id, None)
            if old is not None and old is not sock:
                old.close()
            self.socks[ns_id] = sock

    def drop(self, ns_id: str) -> None:
        """Close one namespace's socket and forget everything about it."""
        sock = self.socks.pop(ns_id, None)
        if sock is not None:
            sock.close()
        self.ifindexes.pop(ns_id, None)
        self._prev.pop(ns_id, None)
        self._keys.pop(ns_id, None)
        self._zeros.pop(ns_id, None)

    def _dump(self, ns_id: str, request: tuple[int, bytes]) -> dict[int, CounterTuple] | None:
        try:
            counters = self.reader.dump(self.socks[ns_id], request)
        except OSError:  # NetlinkDumpError included: the socket is unusable
            self.drop(ns_id)
            return None
        if counters.keys() != self.ifindexes.get(ns_id):
            self._relabel(ns_id, counters)
        return counters

    def _relabel(self, ns_id: str, counters: dict[int, CounterTuple]) -> None:
        """The namespace's set of links changed: rebuild its key strings."""
        self.ifindexes[ns_id] = frozenset(counters)
        keys = self._keys.get(ns_id, {})
        self._keys[ns_id] = new = {i: keys.get(i) or f"{ns_id}/{i}" for i in counters}
        self._zeros[ns_id] = dict.fromkeys(new.values(), ZERO)

    def baseline(self, only: Iterable[str] | None = None) -> None:
        """Dump (some) namespaces as the base of the next rates, producing none."""
        ids = list(self.socks) if only is None else [i for i in only if i in self.socks]
        request = self.reader.new_request()
        for ns_id in ids:
            counters = self._dump(ns_id, request)
            if counters is not None:
                self._prev[ns_id] = (counters, time.monotonic())

    def sample(self, min_dt: float = 0.0) -> dict[str, Rate]:
        """Dump every namespace; rates against the previous dump of each.

        Interfaces seen for the first time read zero until the next sample, and so
        does a namespace whose baseline is younger than ``min_dt`` (it was opened
        just before this sample: a rate over a few milliseconds is noise); its
        baseline is kept for the next sample. This
        is the hot loop (1000 namespaces per second), hence the local names and
        the shortcut for a namespace whose counters did not move at all (one dict
        comparison in C instead of a Python loop over its links).
        """
        out: dict[str, Rate] = {}
        mono = time.monotonic
        zero = ZERO
        request = self.reader.new_request()
        dump = self.reader.dump
        socks = self.socks
        prevs = self._prev
        all_keys = self._keys
        zeros = self._zeros
        ifindexes = self.ifindexes
        for ns_id in list(socks):
            try:
                counters = dump(socks[ns_id], request)
            except OSError:  # NetlinkDumpError included: the socket is unusable
                self.drop(ns_id)
                continue
            t = mono()
            prev = prevs.get(ns_id)
            if counters.keys() != ifindexes.get(ns_id):
                self._relabel(ns_id, counters)
            if prev is not None and t - prev[1] < min_dt:
                out.update(zeros[ns_id])  # too young a baseline: keep it
                continue
            prevs[ns_id] = (counters, t)
            if prev is None or prev[0] == counters:
                out.update(zeros[ns_id])
                continue
            pcs, pt = prev
            dt = t - pt
            get = pcs.get
            keys = all_keys[ns_id]
            for ifindex, c in counters.items():
                p = get(ifindex)
                if p == c or p is None:
                    out[keys[ifindex]] = zero
                    continue
                r, was_reset = rate(p, c, dt)
                if was_reset:
                    self.resets += 1
                out[keys[ifindex]] = r
        return out

    def latest(self, key: str) -> CounterTuple | None:
        """The last dumped counters of one interface (``IfRef.key``), in
        :data:`~netlens.stats.rates.FIELDS` order. Another thread may call this
        between samples: it only reads a dict the sampler replaces, never mutates."""
        ns_id, _, ifindex = key.rpartition("/")
        prev = self._prev.get(ns_id)
        if prev is None or not ifindex.isdigit():
            return None
        return prev[0].get(int(ifindex))

    def close(self) -> None:
        for ns_id in list(self.socks):
            self.drop(ns_id)

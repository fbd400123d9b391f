"""While a probe waits for its answer: is its fate already known?

A probe that is answered ends the wait at once; one that is dropped used to be
waited for to the end (about a second), although the kernel had said so within
milliseconds. :class:`FateWatch` reads the evidence as it comes, beside the
probe's socket (:meth:`netlens.kernel.probesock.ProbeSocket.answer`):

- the nft trace monitors' output, line by line: a rule in a table that is not
  the probe's own gave one of the probe's *requests* (as :func:`is_request`
  tells them from replies and ICMP errors) the verdict ``drop``. ``reject`` does
  not decide: it sends an ICMP error back, and that answer is worth waiting for;
- the kernel's drop records (``skb:kfree_skb``) of the probe's own skbs with a
  reason that ends its way for good (a filter, reverse-path filtering). Other
  reasons do not decide: a frame flooded by a bridge is dropped as ``OTHERHOST``
  by every namespace that does not own the address while the owner answers.

The output read here stays in each monitor's buffer, so the verdict is still
judged from the whole of it afterwards, exactly as without the watch.

After the wait, :meth:`FateWatch.settle` reads the monitors until they are quiet
(nft prints an event some time after the kernel sent it; one still unread when
nft is stopped is lost), except that it stops as soon as every monitor has shown
one of the probe's requests: then each namespace's part of the verdict (was the
probe seen there) is in, and the quiet period would only wait for replies.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Mapping

from netlens.kernel import nfttrace
from netlens.kernel.dropwatch import DropWatch

DECISIVE_REASONS = frozenset({"NETFILTER_DROP", "IP_RPFILTER"})
DROPS_EVERY_S = 0.05  # the drop records are a file, not a stream: read this often


class FateWatch:
    """Evidence that the probe was dropped (see the module doc); a
    :class:`netlens.kernel.probesock.Watcher`."""

    def __init__(
        self,
        monitors: Mapping[int, nfttrace.Monitor],
        drops: DropWatch,
        pairs: set[tuple[str, str]],
        dst: str,
    ) -> None:
        self._mon = {
            m.proc.stdout.fileno(): m for m in monitors.values() if m.proc.stdout is not None
        }
        self._open = set(self._mon)
        self._parsed = dict.fromkeys(self._mon, 0)
        self._request: dict[int, dict[str, bool]] = {fd: {} for fd in self._mon}
        self._seen: set[int] = set()  # monitors that showed one of the requests
        self._drops = drops
        self._pairs = pairs
        self._dst = dst
        self._own = nfttrace.table_name()
        self._me = os.getpid()
        self._next_read = 0.0
        self.reason: str | None = None
        """What decided (for a note), None while undecided."""

    def fds(self) -> list[int]:
        return sorted(self._open)

    def feed(self, fd: int) -> None:
        mon = self._mon.get(fd)
        if mon is None:
            return
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._open.discard(fd)  # the monitor exited; stop_monitor reaps it
            return
        mon.out += chunk
        end = mon.out.rfind(b"\n") + 1
        if end <= self._parsed[fd]:
            return
        text = bytes(mon.out[self._parsed[fd] : end]).decode("utf-8", "replace")
        self._parsed[fd] = end
        request = self._request[fd]
        for ev in nfttrace.parse(text):
            if ev.text.startswith("packet:"):
                request[ev.trace] = is_request(ev.text, self._pairs, self._dst)
                if request[ev.trace]:
                    self._seen.add(fd)
            if (
                self.reason is None
                and request.get(ev.trace, False)
                and ev.table != self._own
                and ev.verdict == "drop"
            ):
                self.reason = f"an nftables rule dropped it ({ev.where})"

    def settle(self, quiet_s: float, cap_s: float) -> None:
        """Read the monitors until none printed for ``quiet_s``, at most ``cap_s``,
        or until every monitor has shown a request (see the module doc)."""
        now = time.monotonic()
        deadline, last = now + cap_s, now
        while self._open and now < deadline and now - last < quiet_s:
            if self._seen >= self._mon.keys():
                quiet_s = 0.0  # all in: take what is ready now, wait for nothing more
            ready, _w, _x = select.select(self.fds(), [], [], min(quiet_s, deadline - now))
            for fd in ready:
                self.feed(fd)
            if ready:
                last = time.monotonic()
            now = time.monotonic()

    def decided(self) -> bool:
        if self.reason is not None:
            return True
        now = time.monotonic()
        if now >= self._next_read:
            self._next_read = now + DROPS_EVERY_S
            for d in self._drops.read():
                if (d.pid == self._me or d.probe_skb) and d.reason in DECISIVE_REASONS:
                    self.reason = f"the kernel dropped it ({d.reason})"
                    break
        return self.reason is not None


def is_request(text: str, pairs: set[tuple[str, str]], dst: str) -> bool:
    """Whether a traced packet is one of the probe's requests (not a reply, not
    an ICMP error about it): addressed to DST, or as a hop on the path sees it."""
    saddr = _field(text, "saddr")
    daddr = _field(text, "daddr")
    if saddr is None or daddr is None:
        return False
    return (dst != "" and daddr == dst) or (saddr, daddr) in pairs


def _field(text: str, name: str) -> str | None:
    parts = text.split()
    for i, word in enumerate(parts[:-1]):
        if word == name and i > 0 and parts[i - 1] in ("ip", "ip6"):
            return parts[i + 1]
    return None

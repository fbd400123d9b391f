"""The exporter process: a sampler thread and a small HTTP server on one address.

Discovery never runs per scrape. A background thread drives the live monitor
(:class:`~netlens.stats.live.LiveMonitor`: kept sockets, one counter dump per
namespace per interval, rediscovery only on change), folds each frame into the
running counters, and renders the exposition once (:func:`render`). A scrape
only hands out the last rendered bytes, so it costs the same at 1000 containers
as at one, whatever the scrape interval; the series are at most one sampling
interval old (``netlens_last_sample_timestamp_seconds`` says how old).
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from netlens.exporter.collector import (
    CONTENT_TYPE,
    Exposition,
    FrameCollector,
    build_exposition,
    render,
)
from netlens.exporter.hostmetrics import ExporterState, FindingsHook, host_extras
from netlens.exporter.series import Layout, build_layout
from netlens.exporter.totals import Totals
from netlens.model.types import Snapshot
from netlens.stats.aggregate import Plan, build_plan
from netlens.stats.types import StatsFrame

log = logging.getLogger(__name__)

DiscoverFn = Callable[[], Snapshot]

MAX_CLIENTS = 64
"""Connections served at once (Prometheus uses one per scrape target)."""
CLIENT_TIMEOUT = 30.0
"""Seconds a connection may stay silent (a scrape's request takes milliseconds)."""


class Exporter:
    """The sampling side: owns the monitor, the totals and the rendered bytes."""

    def __init__(
        self,
        monitor: Any,  # a LiveMonitor (Any: tests pass one built on their own discover)
        *,
        max_series: int,
        rates: bool,
        version: str,
        findings: FindingsHook | None = None,
    ) -> None:
        self.monitor = monitor
        self.max_series = max_series
        self.rates = rates
        self.findings = findings
        self.state = ExporterState(version=version)
        self.totals = Totals()
        self.collector = FrameCollector()
        self.body = b""
        self.body_gz: bytes | None = None
        self.want_gzip = False
        self.samples = 0
        self.stop = threading.Event()
        self._layout: Layout | None = None
        self._plan = Plan()
        self._snap: Snapshot | None = None
        self._thread: threading.Thread | None = None

    # --- discovery timing -------------------------------------------------------------
    def timed(self, fn: DiscoverFn) -> DiscoverFn:
        """``fn`` with its run time added to ``netlens_discovery_duration_seconds``."""

        def run() -> Snapshot:
            t0 = time.perf_counter()
            try:
                return fn()
            finally:
                took = time.perf_counter() - t0
                self.state.discoveries += 1
                self.state.discovery_seconds += took
                self.state.last_discovery_seconds = took

        return run

    # --- sampling ---------------------------------------------------------------------
    def adopt(self, snap: Snapshot) -> None:
        """A new structure: new plan, new layout (labels, cap)."""
        self._snap = snap
        self._plan = build_plan(snap)
        self.totals.forget_missing(self._plan)
        self._layout = build_layout(snap, self._plan, self.max_series, self.rates)
        self.state.series = self._layout.series
        self.state.dropped = self._layout.dropped

    def publish(self, frame: StatsFrame | None) -> Exposition:
        """Render one frame and make it what scrapes get."""
        assert self._layout is not None
        t0 = time.perf_counter()
        self.state.dropped_total += self.state.dropped
        extras = host_extras(frame, self.state, self._snap, self.findings)
        expo = build_exposition(self._layout, frame, self.totals, extras)
        body = render(expo)
        gz = gzip.compress(body, compresslevel=1) if self.want_gzip else None
        self.collector.current = expo
        self.body, self.body_gz = body, gz  # a scrape reads one or the other: both fresh
        self.state.render_seconds = time.perf_counter() - t0
        self.samples += 1
        return expo

    def step(self) -> None:
        """One sample: tick, fold the counters, publish."""
        new_snap, frame = self.monitor.tick()
        if new_snap is not None:
            self.adopt(new_snap)
        sampler = self.monitor.sampler
        self.totals.update(self._plan, frame.interfaces.keys(), sampler.latest)
        self.publish(frame)

    def start(self) -> None:
        """Open the monitor (first discovery: errors surface to the caller), publish a
        first exposition (zero counters) and start the sampler thread."""
        snap = self.monitor.open()
        self.adopt(snap)
        self.totals.update(self._plan, _all_keys(snap), self.monitor.sampler.latest)
        self.publish(None)
        self._thread = threading.Thread(target=self._loop, name="netlens-exporter", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
            except Exception:  # keep serving the last good sample; say why in the log
                log.exception("exporter sample failed")
                self.state.sample_errors += 1
                self.stop.wait(self.monitor.interval)

    def close(self) -> None:
        """Stop the thread (after its current tick, at most one interval) and close
        every socket of the monitor."""
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.monitor.interval * 2 + 5)
        self.monitor.close()


def _all_keys(snap: Snapshot) -> list[str]:
    return [i.ref.key for ns in snap.namespaces for i in ns.interfaces]


class _Handler(BaseHTTPRequestHandler):
    """GET /metrics: the last rendered bytes. Nothing is computed here."""

    exporter: Exporter
    protocol_version = "HTTP/1.1"
    timeout = CLIENT_TIMEOUT  # a socket timeout: an idle or dripping client is let go

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            ex = self.exporter
            body, gz = ex.body, ex.body_gz
            wants = "gzip" in self.headers.get("Accept-Encoding", "")
            if wants:
                ex.want_gzip = True  # from the next sample on
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            if wants and gz is not None:
                body = gz
                self.send_header("Content-Encoding", "gzip")
        elif path == "/":
            body = b'<html><body><a href="/metrics">/metrics</a></body></html>\n'
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
        else:
            body = b"not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class MetricsServer(ThreadingHTTPServer):
    """The HTTP side, bound at construction (a bad or busy address fails at once).

    A thread per connection, so connections are bounded: any local user reaches
    the loopback port, and one holding a thousand idle connections held a thousand
    threads of this root process, for ever. At most :data:`MAX_CLIENTS` at once
    (more are closed on accept), each let go after :data:`CLIENT_TIMEOUT` seconds
    of silence; a client that vanishes mid-answer is a debug line, not a traceback
    on stderr."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], exporter: Exporter, ipv6: bool) -> None:
        import socket

        if ipv6:
            self.address_family = socket.AF_INET6
        handler = type("Handler", (_Handler,), {"exporter": exporter})
        self._clients = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._clients.acquire(blocking=False):
            log.debug("http: %s refused: %d connections open", client_address, MAX_CLIENTS)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: nobody else releases the slot
            self._clients.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._clients.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http: connection from %s failed", client_address, exc_info=True)

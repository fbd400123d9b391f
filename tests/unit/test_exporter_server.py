"""The exporter's HTTP side against clients that never finish (loopback only).

Any local user reaches the exporter's loopback port. One that opened a thousand
connections and sent nothing held a thousand threads of the root process, for as
long as it liked (hand test: 1000 connections from uid 65534, 480 threads still
there after the client was gone). Connections are now bounded and time out.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from netlens.exporter import server as srv


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    monkeypatch.setattr(srv, "MAX_CLIENTS", 4, raising=False)
    ex: Any = srv.Exporter(None, max_series=10, rates=False, version="t")
    ex.body = b"netlens_up 1\n"
    http = srv.MetricsServer(("127.0.0.1", 0), ex, ipv6=False)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", http.server_address[1]
    finally:
        http.shutdown()
        http.server_close()
        thread.join()


def scrape(addr: tuple[str, int]) -> bytes:
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_connections_past_the_cap_are_closed_and_slots_come_back(
    served: tuple[str, int],
) -> None:
    idle = [socket.create_connection(served, timeout=10) for _ in range(4)]
    try:
        for s in idle:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")  # a request that never ends
        extra = socket.create_connection(served, timeout=10)
        with extra:
            assert extra.recv(1) == b""  # closed at once, not one more thread
    finally:
        for s in idle:
            s.close()
    # The idle ones gone, their slots are free again: a scrape is answered.
    for _ in range(50):  # their threads notice the close as they read: retry, not sleep
        answer = scrape(served)
        if answer:
            break
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"netlens_up 1\n")


def test_a_silent_client_is_let_go(
    served: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = srv._Handler.timeout
    assert limit is not None and 0 < limit <= 60  # None was: wait for ever
    monkeypatch.setattr(srv._Handler, "timeout", 0.2)  # the same path, quicker
    with socket.create_connection(served, timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        assert s.recv(1) == b""  # the server closed it (else: timeout after 10 s, fails)

"""`netlens exporter` against namespaces this test builds, and a real Prometheus.

The exporter runs in-process on the lab's stand-in discovery (see
test_stats_live.py: the real discover() would keep sockets in every namespace on
the host), served on 127.0.0.1 at a port the kernel picks. Traffic flows between
two of this test's namespaces only. One test runs the real command as a process
to check its start line, a scrape, and the clean exit on SIGTERM.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from conftest import Lab, sh
from prometheus_client.parser import text_string_to_metric_families
from test_stats_live import lab_discover, nslab, two_on_a_bridge  # noqa: F401 - a fixture

from netlens.exporter.server import Exporter, MetricsServer
from netlens.stats.live import LiveMonitor

pytestmark = pytest.mark.integration

DEADLINE = 60.0  # seconds to wait for a sample or a scrape before failing (not a timing check)


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def by_label(series: dict[tuple[tuple[str, str], ...], float], key: str, value: str) -> float:
    hits = [v for labels, v in series.items() if dict(labels).get(key) == value]
    assert len(hits) == 1, (key, value, series)
    return hits[0]


@pytest.fixture
def served(nslab: Lab) -> Iterator[tuple[Exporter, str, dict[str, str]]]:  # noqa: F811
    """Two namespaces on a bridge, an exporter sampling them at 0.2 s, served on
    127.0.0.1:<free>. Everything is stopped and closed also when the test fails."""
    lab = two_on_a_bridge(nslab)
    discover = lab_discover(nslab)
    mon = LiveMonitor(interval=0.2, discover_fn=discover, structure_fn=discover, watch_events=False)
    ex = Exporter(mon, max_series=100_000, rates=True, version="test")
    mon.discover_fn = mon.structure_fn = ex.timed(discover)
    server = MetricsServer(("127.0.0.1", 0), ex, ipv6=False)
    thread: threading.Thread | None = None
    try:
        ex.start()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.server_address[:2]
        yield ex, f"http://{host!s}:{port}/metrics", lab
    finally:
        if thread is not None:
            server.shutdown()
        server.server_close()
        ex.close()


def wait_samples(ex: Exporter, n: int) -> None:
    want = ex.samples + n
    end = time.monotonic() + DEADLINE
    while ex.samples < want:
        assert time.monotonic() < end, "the exporter stopped sampling"
        time.sleep(0.05)


def flood(lab: dict[str, str], count: int = 2000) -> None:
    """ping -f from namespace a to b (this test's namespaces only): 2000 x 1000 bytes."""
    sh(f"ip netns exec {lab['a']} ping -q -f -c {count} -s 1000 {lab['ip_b']}")


def test_counters_rise_with_traffic(served: tuple[Exporter, str, dict[str, str]]) -> None:
    ex, url, lab = served
    wait_samples(ex, 2)
    before = scrape(url)
    flood(lab)
    wait_samples(ex, 2)
    after = scrape(url)
    sent = 2000 * 1000
    for name, key, value in (
        ("netlens_container_transmit_bytes_total", "container", lab["a"]),
        ("netlens_container_receive_bytes_total", "container", lab["b"]),
        ("netlens_netns_transmit_bytes_total", "netns", lab["a"]),
        ("netlens_veth_transmit_bytes_total", "peer", lab["ha"]),  # seen from its a end
        ("netlens_bridge_receive_bytes_total", "interface", lab["br"]),
    ):
        grew = by_label(after[name], key, value) - by_label(before.get(name, {}), key, value)
        assert grew >= sent, (name, value, grew)
    a_pk = by_label(after["netlens_container_transmit_packets_total"], "container", lab["a"])
    assert a_pk >= 2000
    assert after["netlens_discovery_duration_seconds_count"][()] >= 1
    assert after["netlens_exporter_series_dropped"][()] == 0
    # counters never go down between scrapes
    for name, series in before.items():
        if name.endswith("_total"):
            for labels, v in series.items():
                assert after[name].get(labels, v) >= v, (name, labels)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def prom_query(base: str, query: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as resp:
        doc = json.load(resp)
    assert doc["status"] == "success", doc
    result: list[dict[str, object]] = doc["data"]["result"]
    return result


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus missing")
def test_real_prometheus_scrapes_the_exporter(
    served: tuple[Exporter, str, dict[str, str]],
) -> None:
    ex, url, lab = served
    target = urllib.parse.urlparse(url).netloc
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="netlens-prom-") as tmp:
        conf = os.path.join(tmp, "prometheus.yml")
        with open(conf, "w") as f:
            f.write(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                "scrape_configs:\n"
                "  - job_name: netlens\n"
                "    scrape_interval: 1s\n"
                f"    static_configs: [{{targets: ['{target}']}}]\n"
            )
        log = open(os.path.join(tmp, "log"), "w+b")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={conf}",
                f"--storage.tsdb.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            flood(lab, 500)
            query = f'netlens_container_transmit_bytes_total{{container="{lab["a"]}"}}'
            end = time.monotonic() + DEADLINE
            got: list[dict[str, object]] = []
            while True:
                assert proc.poll() is None, _log_tail(log)
                try:
                    got = prom_query(base, query)
                    up = prom_query(base, 'up{job="netlens"}')
                except OSError:
                    got, up = [], []
                if got and up and float(up[0]["value"][1]) == 1:  # type: ignore[index]
                    value = float(got[0]["value"][1])  # type: ignore[index]
                    if value >= 500 * 1000:
                        break
                assert time.monotonic() < end, (got, _log_tail(log))
                time.sleep(0.5)
            labels = got[0]["metric"]
            assert isinstance(labels, dict)
            assert labels["engine"] == "netns" and labels["netns"] == lab["a"]
            assert labels["job"] == "netlens" and labels["instance"] == target
            for name in ("netlens_uplink_capacity_bytes_per_second", "netlens_exporter_series"):
                prom_query(base, name)  # a valid query; may be empty (no uplink speed)
            assert prom_query(base, "netlens_discovery_duration_seconds_count")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
    assert ex.samples > 0


def _log_tail(log: object) -> str:
    f = log
    assert hasattr(f, "seek") and hasattr(f, "read")
    f.seek(0)
    data: bytes = f.read()
    return data[-2000:].decode(errors="replace")


def test_command_serves_and_exits_cleanly_on_sigterm() -> None:
    """The real command: start line on stderr, a scrape, SIGTERM -> exit 0, port closed."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    env = {**os.environ, "NETLENS_NO_LOG": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "netlens",
            "exporter",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "0.5",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("netlens exporter: serving http://127.0.0.1:"), line
        url = line.split()[3]
        m = scrape(url)
        assert m["netlens_build_info"]
        port = int(urllib.parse.urlparse(url).port or 0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in proc.stderr.read()
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""`netlens exporter`: serve the live counters as Prometheus metrics.

Binds to loopback unless ``--listen`` names another address (then it says so on
stderr). Runs until Ctrl-C or SIGTERM, then closes the listening socket and
every namespace socket and exits 0. Like every command module, only argparse at
import; prometheus-client is imported when the command runs.
"""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

from netlens.errors import UsageError

DEFAULT_LISTEN = "127.0.0.1:9417"
DEFAULT_MAX_SERIES = 100_000


def parse_listen(text: str) -> tuple[str, int, bool]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (address, port, is IPv6). HOST is an IP
    address or ``localhost``; port 0 takes any free port (printed at start)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"want HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        host = "127.0.0.1"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an IP address: {host!r} (use e.g. 127.0.0.1:9417 or [::1]:9417)"
        ) from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(f"bad port {port_text!r} (0-65535)")
    return str(addr), int(port_text), addr.version == 6


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.05 <= v <= 3600:
        raise argparse.ArgumentTypeError(f"interval must be 0.05-3600 seconds, got {text}")
    return v


def _series(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return int(text)


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "exporter",
        help="serve per-container, veth, bridge, namespace and uplink metrics to Prometheus",
        description=(
            "Sample every namespace in the background and serve the counters, rates and "
            "density of this server at http://LISTEN/metrics in the Prometheus text format. "
            "Binds to loopback unless --listen says otherwise."
        ),
    )
    p.add_argument(
        "--listen",
        type=parse_listen,
        default=parse_listen(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN}; port 0: any free port)",
    )
    p.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="seconds between samples (default 1; at most your scrape interval)",
    )
    p.add_argument(
        "--max-series",
        type=_series,
        default=DEFAULT_MAX_SERIES,
        metavar="N",
        help=(
            f"cap on per-entity series (default {DEFAULT_MAX_SERIES}); whole entities past it "
            "are left out and counted in netlens_exporter_series_dropped"
        ),
    )
    p.add_argument(
        "--no-rates",
        dest="rates",
        action="store_false",
        help="export counters only, no per-entity *_per_second gauges (halves the series)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    import signal
    import sys
    import threading

    from netlens import __version__
    from netlens.exporter.server import Exporter, MetricsServer
    from netlens.stats.live import LiveMonitor, _default_discover, _discover_with_nat

    host, port, ipv6 = args.listen
    exporter = Exporter(
        None,
        max_series=args.max_series,
        rates=args.rates,
        version=__version__,
        # Doctor findings plug in here (netlens.analysis.doctor, not written yet):
        # findings=lambda snap: <severity -> count>. Until then no such family.
        findings=None,
    )
    exporter.monitor = LiveMonitor(
        interval=args.interval,
        history_seconds=args.interval,
        discover_fn=exporter.timed(_default_discover),
        structure_fn=exporter.timed(_discover_with_nat),
    )
    try:
        server = MetricsServer((host, port), exporter, ipv6)
    except OSError as err:
        raise UsageError(f"--listen {host}:{port}: {err.strerror or err}") from None
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    serving: threading.Thread | None = None
    try:
        if os.geteuid() != 0:
            print(
                "netlens exporter: not root: only this process's own namespace is sampled",
                file=sys.stderr,
            )
        exporter.start()
        bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
        shown = f"[{bound_host}]" if ipv6 else str(bound_host)
        if not ipaddress.ip_address(host).is_loopback:
            print(
                f"netlens exporter: listening on {shown}:{bound_port}, not loopback: "
                "reachable from other hosts",
                file=sys.stderr,
            )
        print(
            f"netlens exporter: serving http://{shown}:{bound_port}/metrics "
            f"({exporter.state.series} series, {exporter.state.dropped} over --max-series)",
            file=sys.stderr,
            flush=True,
        )
        serving = threading.Thread(target=server.serve_forever, name="netlens-http", daemon=True)
        serving.start()
        while not stop.wait(0.5):
            pass
    finally:
        if serving is not None:
            server.shutdown()
        server.server_close()
        exporter.close()
        for s, h in old.items():
            signal.signal(s, h)
    return 0

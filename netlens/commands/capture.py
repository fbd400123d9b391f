"""`netlens capture TARGET...`: packets from any namespace's interfaces, into one file.

Discovers the host, resolves each TARGET (netlens.analysis.capture_targets),
opens a packet socket inside each target's namespace and writes one pcapng
stream (one interface per target, named ``web:eth0``) or, without ``-w``, one
line per packet. Exit 0 after a normal stop (count, duration, Ctrl-C), 2 for
bad input, 77 without root. Like every command module, only argparse at import.
"""

from __future__ import annotations

import argparse
from typing import Any

from netlens.errors import NeedsRootError, UsageError

DEFAULT_SNAPLEN = 262144


def _positive(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text}")
    return value


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "capture",
        help="capture packets on containers' and the host's interfaces into one pcapng stream",
        description=(
            "Open a packet socket inside each TARGET's namespace and capture its packets: "
            "several targets go into one pcapng stream, one interface per target named like "
            "web:eth0, packets in time order. Nothing is installed in containers. TARGET: a "
            "container or VRF (its eth0), CONTAINER:all (every interface), CONTAINER:IFNAME, "
            "VRF:IFNAME, a host interface (a bridge, a veth, a NIC), BRIDGE:ports (every port "
            "of a bridge), X:pair (both ends of a veth). Without -w, one line per packet. "
            "Examples: netlens capture web db -w - | wireshark -k -i -; "
            "netlens capture web -f 'tcp port 80' -c 100 -w web.pcapng"
        ),
    )
    p.add_argument(
        "targets",
        metavar="TARGET",
        nargs="+",
        help="what to capture: CONTAINER, VRF, CONTAINER:IFNAME, CONTAINER:all, a host "
        "interface, BRIDGE:ports or VETH:pair (several go into one stream)",
    )
    p.add_argument(
        "-f",
        "--filter",
        default="",
        metavar="FILTER",
        help="tcpdump filter syntax, compiled to classic BPF by `tcpdump -dd` (tcpdump needed "
        "on the host only) and attached in the kernel with SO_ATTACH_FILTER",
    )
    p.add_argument(
        "-c", "--count", type=_positive, metavar="COUNT", help="stop after COUNT packets"
    )
    p.add_argument(
        "-s",
        "--snaplen",
        type=_positive,
        default=DEFAULT_SNAPLEN,
        metavar="SNAPLEN",
        help=f"keep at most SNAPLEN bytes of each packet (default {DEFAULT_SNAPLEN})",
    )
    p.add_argument(
        "-G", "--seconds", type=_seconds, metavar="SECONDS", help="stop after SECONDS seconds"
    )
    p.add_argument(
        "-w",
        "--write",
        metavar="FILE",
        help="write pcapng to FILE ('-': stdout, e.g. | tshark -r - or | wireshark -k -i -)",
    )
    p.add_argument(
        "--pcap", action="store_true", help="write classic pcap instead (one TARGET only)"
    )
    p.add_argument(
        "--no-ring",
        action="store_true",
        help="read with recvmsg instead of a TPACKET_V3 ring (slower; for comparison)",
    )
    p.set_defaults(func=run)


def _report(res: Any) -> list[str]:
    from netlens.kernel.inert import terminal

    lines = []
    for o in res.targets:
        gone = " (interface vanished)" if o.gone else ""
        lines.append(
            f"{terminal(o.target.label)}: {o.captured} packets captured, {o.received} received "
            f"by filter, {o.dropped} dropped by kernel{gone}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    import os
    import signal
    import sys
    import threading

    from netlens.analysis import capture
    from netlens.analysis.capture_print import line
    from netlens.analysis.capture_targets import resolve_targets
    from netlens.discovery import discover
    from netlens.kernel.inert import terminal
    from netlens.kernel.pcapng import PcapngWriter, PcapWriter
    from netlens.outfile import open_output

    if args.pcap and args.write is None:
        raise UsageError("--pcap needs -w FILE (or -w -)")
    if os.geteuid() != 0:
        raise NeedsRootError(
            "capture opens packet sockets (CAP_NET_RAW) inside other namespaces "
            "(CAP_SYS_ADMIN for setns); run as root"
        )
    snap = discover()
    targets = resolve_targets(snap, list(args.targets))
    if args.pcap and len(targets) != 1:
        raise UsageError(
            f"--pcap holds one interface; {len(targets)} targets need pcapng (drop --pcap)"
        )
    own = capture.own_stream(1) if args.write in (None, "-") else None
    opened = capture.open_targets(
        targets, args.filter, args.snaplen, ring=not args.no_ring, own=own
    )
    out_file: Any = None
    try:
        if args.write == "-":
            out_file = sys.stdout.buffer
        elif args.write is not None:
            # Not open(): a symlink or file another user planted there must not
            # choose what root overwrites or read the packets (netlens.outfile).
            out_file = open_output(args.write)
        if own is not None and any(o.target.ns.inode == os.stat("/proc/self/ns/net").st_ino
                                   for o in opened):  # fmt: skip
            print(
                f"netlens: not capturing its own output stream (tcp {own[0]}:{own[1]} <-> "
                f"{own[2]}:{own[3]})",
                file=sys.stderr,
            )
        sink: Any
        if out_file is None:
            labels = [terminal(o.target.label) for o in opened]
            links = [o.linktype for o in opened]

            def sink(batch: list[capture.Out]) -> None:
                text = "".join(line(t, labels[i], d, n, links[i]) + "\n" for t, i, d, n in batch)
                sys.stdout.write(text)
                sys.stdout.flush()

            writer: PcapWriter | PcapngWriter | None = None
        elif args.pcap:
            writer = PcapWriter(out_file, opened[0].linktype, args.snaplen)
            sink = writer.write
        else:
            writer = PcapngWriter(
                out_file,
                [(o.linktype, args.snaplen, o.target.label) for o in opened],
                "netlens capture",
            )
            sink = writer.write

        # Signals only set the event: run() checks it between reads, so a stop never
        # tears a ring block in half, and then drains what the kernel still holds.
        stopping = threading.Event()

        def stop(_sig: int, _frame: object) -> None:
            stopping.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        print(
            f"netlens: capturing on {', '.join(terminal(o.target.label) for o in opened)}",
            file=sys.stderr,
        )

        def gone(o: capture.Opened) -> None:
            print(
                f"netlens: {terminal(o.target.label)} vanished; its capture ends, the rest go on",
                file=sys.stderr,
            )

        broken = False
        try:
            res = capture.run(
                opened,
                sink,
                count=args.count,
                seconds=args.seconds,
                on_gone=gone,
                stop=stopping,
            )
        except BrokenPipeError:
            broken = True
            res = capture.Result(opened, "output closed")
        if writer is not None and not broken:
            import time

            try:
                writer.close([(o.index, o.received, o.dropped) for o in opened], time.time_ns())
            except BrokenPipeError:
                broken = True
    finally:
        for o in opened:
            if o.gone is None:
                o.source.close()
        if out_file is not None and out_file is not sys.stdout.buffer:
            out_file.close()
    for text in _report(res):
        print(text, file=sys.stderr)
    if broken:
        raise BrokenPipeError
    return 0

"""Record the live host as a discovery fixture: ``python3 -m netlens.discovery.capture OUT``.

It runs the real discovery with recording wrappers around the live sources, so
the fixture holds exactly the raw netlink replies and procfs/sysfs text that
discovery read, and a small procfs tree (dangling ``ns/net`` symlinks and the
nsfs lines of mountinfo) that ``find_namespaces`` can walk again. Next to it,
``iproute2.json`` keeps what ``ip -j -d link / addr / route show table all``
said inside each namespace at the same moment: an independent oracle the unit
tests compare the parsers against.

``--netns NAME`` and ``--pid PID`` restrict the capture to the host namespace
plus the namespaces named (so a fixture does not pick up whatever else runs on
the machine). Capturing reads only; it needs root to enter other namespaces.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netlens.discovery.live_source import LiveNetlink, LiveProc
from netlens.discovery.nsfind import NsHandle, find_namespaces, parse_mountinfo
from netlens.discovery.resolve import build_snapshot
from netlens.discovery.sources import RecordingNetlink, RecordingProc
from netlens.errors import UsageError


def _select(handles: list[NsHandle], names: Sequence[str], pids: Sequence[int]) -> list[NsHandle]:
    if not names and not pids:
        return handles
    keep: list[NsHandle] = []
    for h in handles:
        if h.is_host or set(h.names) & set(names) or set(h.pids) & set(pids):
            keep.append(h)
            continue
        for pid in pids:
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == h.inode:
                    keep.append(h)
                    break
            except OSError:
                pass
    missing = set(names) - {n for h in keep for n in h.names}
    if missing:
        raise UsageError(f"no such network namespace: {', '.join(sorted(missing))}")
    return keep


def _write_proc_tree(root: Path, handles: list[NsHandle], proc_root: str) -> None:
    """The subset of /proc that find_namespaces needs to find ``handles`` again."""
    proc = root / "proc"
    wanted = {h.inode for h in handles}
    (proc / "self" / "ns").mkdir(parents=True, exist_ok=True)
    self_link = proc / "self" / "ns" / "net"
    if not self_link.is_symlink():
        self_link.symlink_to(os.readlink(f"{proc_root}/self/ns/net"))
    lines = []
    text = Path(f"{proc_root}/self/mountinfo").read_text()
    nsfs = {(point, inode) for _dev, inode, point in parse_mountinfo(text) if inode in wanted}
    for line in text.splitlines():
        if " - nsfs " in line and any(f"net:[{ino}]" in line for _p, ino in nsfs):
            lines.append(line)
    (proc / "self" / "mountinfo").write_text("\n".join(lines) + ("\n" if lines else ""))
    for h in handles:
        if h.is_host:
            continue  # host processes are the machine's, not the fixture's
        for pid in h.pids:
            base = Path(f"{proc_root}/{pid}")
            try:
                target = os.readlink(base / "ns" / "net")
                tids = os.listdir(base / "task")
            except OSError:
                continue
            d = proc / str(pid)
            (d / "ns").mkdir(parents=True, exist_ok=True)
            if not (d / "ns" / "net").is_symlink():
                (d / "ns" / "net").symlink_to(target)
            for name in ("comm", "cmdline", "cgroup", "status"):
                with contextlib.suppress(OSError):
                    (d / name).write_bytes((base / name).read_bytes())
            for tid in tids:
                try:
                    ttarget = os.readlink(base / "task" / tid / "ns" / "net")
                except OSError:
                    continue
                td = d / "task" / tid / "ns"
                td.mkdir(parents=True, exist_ok=True)
                if not (td / "net").is_symlink():
                    (td / "net").symlink_to(ttarget)


def _ip_json(prefix: list[str], args: list[str]) -> Any:
    res = subprocess.run([*prefix, "ip", "-j", *args], capture_output=True, text=True)
    if res.returncode != 0 or not res.stdout.strip():
        return None
    return json.loads(res.stdout)


def _oracle(handles: list[NsHandle]) -> dict[str, Any]:
    """What iproute2 reports inside each captured namespace."""
    out: dict[str, Any] = {}
    if not shutil.which("ip"):
        return out
    for h in handles:
        prefix = [] if h.is_host else ["nsenter", f"--net={h.path}"]
        out[str(h.inode)] = {
            "link": _ip_json(prefix, ["-d", "link", "show"]),
            "addr": _ip_json(prefix, ["addr", "show"]),
            "route4": _ip_json(prefix, ["-4", "route", "show", "table", "all"]),
            "route6": _ip_json(prefix, ["-6", "route", "show", "table", "all"]),
        }
    return out


def capture(out: Path, names: Sequence[str] = (), pids: Sequence[int] = ()) -> Path:
    """Record the host (restricted to ``names``/``pids`` plus the host) into ``out``."""
    proc_root = "/proc"
    handles = _select(find_namespaces(proc_root), names, pids)
    out.mkdir(parents=True, exist_ok=True)
    live = LiveNetlink()
    live.use_pump = False  # a fixture keeps raw reply bytes, never pre-decoded rows
    rec = RecordingNetlink(live)
    rproc = RecordingProc(LiveProc(proc_root))
    try:
        build_snapshot(handles, rec, rproc, root=os.geteuid() == 0)
        oracle = _oracle(handles)
    finally:
        rec.close()
    rec.write(out, {"cpu_count": os.cpu_count() or 1})
    rproc.write(out)
    _write_proc_tree(out, handles, proc_root)
    (out / "iproute2.json").write_text(json.dumps(oracle, indent=1, sort_keys=True) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m netlens.discovery.capture",
        description="Record raw netlink replies and procfs text as a discovery fixture.",
    )
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--netns", action="append", default=[], help="named namespace to keep")
    parser.add_argument("--pid", action="append", type=int, default=[], help="keep PID's netns")
    args = parser.parse_args(argv)
    try:
        path = capture(args.outdir, args.netns, args.pid)
    except UsageError as err:
        print(f"capture: {err}", file=sys.stderr)
        return err.exit_code
    print(f"captured into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

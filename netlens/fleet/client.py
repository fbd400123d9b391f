"""Reach every server at once over SSH (asyncssh) and collect what its agent sends.

Each server gets its own deadline (:attr:`HostSpec.timeout`, for connecting and
for the header, the dump and the first sample together) and its own task; the
tasks run under ``asyncio.gather(..., return_exceptions=True)``, so a server
that hangs, refuses or breaks the protocol becomes a row with a state and a
one-line reason while the others finish at their own pace.

When the client has what it needs it closes the channel: sshd then closes the
agent's stdin, and the agent stops and releases everything (see
netlens/commands/agent.py). Nothing is left running on a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netlens.errors import NetlensError
from netlens.fleet import protocol
from netlens.fleet.config import HostSpec
from netlens.fleet.merge import ServerResult

if TYPE_CHECKING:
    import asyncssh

_CHUNK = 1 << 16
MAX_LINE = 1 << 30
"""A line longer than this is not a dump (1000 namespaces make about 60 MB): a
server streaming garbage without newlines is cut off instead of filling memory."""
HEADER_LINE = 1 << 16
"""The header is about 100 bytes: a server (or a login banner) sending more before its
first newline is not an agent, and is cut off before the client holds a gigabyte."""
SAMPLE_LINE = 1 << 26
"""A rate sample is about 200 kB at 1000 containers."""


def _asyncssh() -> Any:
    """asyncssh, imported quietly: the cryptography it is built on warns about DSA
    at import time, and those lines on stderr would read as netlens errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import asyncssh

    return asyncssh


class LineReader:
    """Whole lines from an SSH stream. asyncssh's own readline stops at its receive
    window (2 MiB) and returns a partial line; a dump of a big server is larger."""

    def __init__(self, stream: asyncssh.SSHReader[bytes], limit: int = MAX_LINE) -> None:
        self._stream = stream
        self._limit = limit
        self._buf = bytearray()
        self._eof = False

    async def readline(self, limit: int | None = None) -> str | None:
        """The next line without its newline, or None at end of stream; ``limit``
        (bytes) replaces the reader's own for this line."""
        limit = self._limit if limit is None else limit
        start = 0
        while True:
            nl = self._buf.find(b"\n", start)
            if nl >= 0:
                text = self._buf[:nl].decode("utf-8", "replace")
                del self._buf[: nl + 1]
                return text
            if self._eof:
                if self._buf:
                    text = self._buf.decode("utf-8", "replace")
                    self._buf.clear()
                    return text
                return None
            start = len(self._buf)
            if start > limit:
                raise protocol.ProtocolError(f"a line longer than {limit} bytes")
            chunk = await self._stream.read(_CHUNK)
            if not chunk:
                self._eof = True
            else:
                self._buf += chunk


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    msg = text[0] if text else ""
    name = type(err).__name__
    if isinstance(err, OSError) and err.strerror:
        msg = err.strerror
    return f"{name}: {msg}" if msg else name


def _connect_kwargs(spec: HostSpec, ssh_config: list[str] | None) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if spec.port is not None:
        kw["port"] = spec.port
    if spec.user is not None:
        kw["username"] = spec.user
    if spec.key is not None:
        kw["client_keys"] = [spec.key]
    if spec.jump is not None:
        kw["tunnel"] = spec.jump
    if ssh_config is not None:
        kw["config"] = ssh_config
    return kw


async def query_host(
    spec: HostSpec,
    local_version: str,
    interval: float = 1.0,
    ssh_config: list[str] | None = None,
    on_sample: Callable[[ServerResult], None] | None = None,
) -> ServerResult:
    """One server's result; never raises for the server's faults (they become states).

    With ``on_sample`` the channel stays open after the first sample: each sample
    updates the result and calls ``on_sample``, until the stream ends or stalls
    (no sample within the host's timeout or three intervals, whichever is longer);
    the result returned then says why it ended."""
    import shlex

    from netlens.model.serialize import loads

    ssh = _asyncssh()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + spec.timeout
    res = ServerResult(alias=spec.alias, labels=dict(spec.labels))

    def left() -> float:
        return max(deadline - loop.time(), 0.001)

    try:
        conn = await asyncio.wait_for(
            ssh.connect(spec.host or spec.alias, **_connect_kwargs(spec, ssh_config)), left()
        )
    except TimeoutError:
        res.state, res.reason = "unreachable", f"no SSH connection within {spec.timeout:g} s"
        return res
    except (OSError, ssh.Error) as err:
        res.state, res.reason = "unreachable", _one_line(err)
        return res
    phase = "the agent's header"
    proc = None
    try:
        command = f"{spec.command} --interval {shlex.quote(f'{interval:g}')}"
        proc = await asyncio.wait_for(conn.create_process(command, encoding=None), left())
        reader = LineReader(proc.stdout)
        first = await asyncio.wait_for(reader.readline(HEADER_LINE), left())
        if first is None:
            res.state, res.reason = "error", await _exit_reason(proc)
            return res
        try:
            res.header = protocol.parse_header(first)
        except protocol.ProtocolError as err:
            res.state, res.reason = "error", str(err)
            return res
        if res.header[protocol.HEADER_KEY] != protocol.PROTOCOL:
            res.state = "version_mismatch"
            res.reason = (
                f"agent protocol {res.header[protocol.HEADER_KEY]} "
                f"(netlens {res.header.get('netlens_version')}), this client speaks "
                f"{protocol.PROTOCOL}"
            )
            return res
        theirs = res.header.get("netlens_version")
        if theirs != local_version:
            res.state = "version_mismatch"
            res.reason = f"agent runs netlens {theirs}, this client is {local_version}"
        phase = "the dump"
        text = await asyncio.wait_for(reader.readline(), left())
        if text is None:
            res.state, res.reason = "error", await _exit_reason(proc)
            return res
        res.snapshot = loads(text, where=f"{spec.alias}'s dump")
        phase = "the first rate sample"
        text = await asyncio.wait_for(reader.readline(SAMPLE_LINE), left())
        if text is None:
            res.state, res.reason = "error", await _exit_reason(proc)
            return res
        res.sample = protocol.parse_sample(text)
        if on_sample is None:
            return res
        on_sample(res)
        stall = max(spec.timeout, 3 * interval)
        phase = "a rate sample"
        while (text := await asyncio.wait_for(reader.readline(SAMPLE_LINE), stall)) is not None:
            res.sample = protocol.parse_sample(text)
            on_sample(res)
        res.state, res.reason = "unreachable", await _exit_reason(proc)
        return res
    except TimeoutError:
        res.state = "slow"
        res.reason = f"no {phase} within {spec.timeout:g} s"
        if phase == "a rate sample":
            res.reason = f"no {phase} within {stall:g} s"
        return res
    except (OSError, ssh.Error) as err:
        res.state, res.reason = "unreachable", f"while reading {phase}: {_one_line(err)}"
        return res
    except (protocol.ProtocolError, ValueError, NetlensError) as err:
        res.state, res.reason = "error", f"{phase}: {_one_line(err)}"
        return res
    except RecursionError:  # '[[[[...' from the server: the parsers recurse per level
        res.state, res.reason = "error", f"{phase}: JSON nested too deeply"
        return res
    finally:
        await _close(conn, proc)


async def _exit_reason(proc: Any) -> str:
    """Why the agent ended without a line: its exit status and last stderr line
    (``netlens: command not found``, a Python traceback's last line)."""
    err = b""
    with contextlib.suppress(Exception):
        err = await asyncio.wait_for(proc.stderr.read(), 2.0)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.wait_closed(), 2.0)
    lines = [x for x in err.decode("utf-8", "replace").splitlines() if x.strip()]
    status = proc.exit_status
    last = f": {lines[-1].strip()[:200]}" if lines else ""
    return f"agent ended (exit status {status}){last}"


async def _close(conn: Any, proc: Any) -> None:
    """Close the channel (EOF on the agent's stdin, then the channel itself) and the
    connection, without letting a peer that does not answer hold us up."""
    with contextlib.suppress(Exception):
        if proc is not None:
            proc.stdin.write_eof()
            proc.close()
    conn.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.wait_closed(), 2.0)


async def query_fleet(
    specs: list[HostSpec],
    local_version: str,
    interval: float = 1.0,
    ssh_config: list[str] | None = None,
) -> list[ServerResult]:
    """Every server at once; results in the order of ``specs``."""
    got = await asyncio.gather(
        *(query_host(s, local_version, interval, ssh_config) for s in specs),
        return_exceptions=True,
    )
    out: list[ServerResult] = []
    for spec, r in zip(specs, got, strict=True):
        if isinstance(r, BaseException):
            if not isinstance(r, Exception):
                raise r  # KeyboardInterrupt, CancelledError: not a server's fault
            r = ServerResult(
                alias=spec.alias, state="error", reason=_one_line(r), labels=dict(spec.labels)
            )
        out.append(r)
    return out

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
import functools
import os
import shlex
import sys
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
    at import time, and those lines on stderr would read as netlens errors. Its
    ssh config reader gets :class:`_MemoShlex`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import asyncssh

    reader: Any = sys.modules.get("asyncssh.config")
    if getattr(reader, "shlex", None) is shlex:  # not if asyncssh changed
        reader.shlex = _MemoShlex()
    return asyncssh


@functools.lru_cache(maxsize=8192)
def _split(line: str) -> tuple[str, ...]:
    return tuple(shlex.split(line))


class _MemoShlex:
    """The ``shlex`` asyncssh's config reader sees: ``split`` remembers its lines.

    asyncssh reads the whole ssh config again for every connection (Host and Match
    blocks are evaluated as it reads), splitting every line with shlex, which is
    slow (a pure-Python tokenizer): with one alias per server in ~/.ssh/config,
    that is servers x lines, 6.6 ms per connection for 50 aliases, 0.3 s of the
    first document's CPU, and it grows with the square of the fleet. The lines
    are the same each time, so their splits are too (1.3 ms per connection with
    this). A line shlex refuses raises each time, as before (lru_cache keeps no
    exceptions). Everything else is shlex's own."""

    def split(self, s: str, comments: bool = False, posix: bool = True) -> list[str]:
        if comments or not posix:
            return shlex.split(s, comments, posix)
        return list(_split(s))

    def __getattr__(self, name: str) -> Any:
        return getattr(shlex, name)


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
        data = await self.readline_bytes(limit)
        return None if data is None else data.decode("utf-8", "replace")

    async def readline_bytes(self, limit: int | None = None) -> bytes | None:
        """The next line as bytes (msgspec reads them without a str copy)."""
        limit = self._limit if limit is None else limit
        start = 0
        while True:
            nl = self._buf.find(b"\n", start)
            if nl >= 0:
                data = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return data
            if self._eof:
                if self._buf:
                    data = bytes(self._buf)
                    self._buf.clear()
                    return data
                return None
            start = len(self._buf)
            if start > limit:
                raise protocol.ProtocolError(f"a line longer than {limit} bytes")
            chunk = await self._stream.read(_CHUNK)
            if not chunk:
                self._eof = True
            else:
                self._buf += chunk


def one_line(err: BaseException) -> str:
    """An exception as one line for a row's reason: its type and first line."""
    text = str(err).strip().splitlines()
    msg = text[0] if text else ""
    name = type(err).__name__
    if isinstance(err, OSError) and err.strerror:
        msg = err.strerror
    return f"{name}: {msg}" if msg else name


def _configures_ciphers(paths: list[str]) -> bool:
    """Whether any of these ssh configs may choose ciphers: a ``Ciphers`` line, or an
    ``Include`` (not followed here: then assume it might). Unreadable files count as
    silent: asyncssh reports them itself."""
    for path in paths:
        try:
            with open(os.path.expanduser(path), encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    word = line.strip().split("=", 1)[0].split(None, 1)
                    if word and word[0].lower() in ("ciphers", "include"):
                        return True
        except OSError:
            continue
    return False


def _has_aes_instructions() -> bool:
    """x86's ``aes`` flag or arm64's ``aes`` feature in /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return "aes" in value.split()
    except OSError:
        pass
    return False


@functools.cache
def _cipher_preference(ssh_config: tuple[str, ...] | None) -> list[str] | None:
    """asyncssh's default ciphers with AES-GCM first, when the CPU has AES instructions
    and no ssh config picks ciphers (None: leave asyncssh's and the config's choice).

    asyncssh, like OpenSSH, prefers chacha20-poly1305, the faster cipher without AES
    instructions; with them, asyncssh's AES-GCM is one call per packet where its
    chacha20-poly1305 is four, and it encrypted 32 kB packets 3.6x faster here
    (3.7 vs 1.0 GB/s): 35 MB of dumps for the first document of 50 servers of 200
    containers, 10 MB/s of samples after. Every default cipher stays on offer, in
    the default's order after AES-GCM, so a server without AES-GCM negotiates what
    it did before."""
    ssh = _asyncssh()
    paths = list(ssh_config) if ssh_config is not None else ["~/.ssh/config"]
    if _configures_ciphers(paths) or not _has_aes_instructions():
        return None
    default = [a.decode("ascii") for a in ssh.encryption.get_default_encryption_algs()]
    gcm = [a for a in default if a.endswith("-gcm@openssh.com")]
    if not gcm:
        return None
    return gcm + [a for a in default if a not in gcm]


def _connect_kwargs(spec: HostSpec, ssh_config: list[str] | None) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    ciphers = _cipher_preference(None if ssh_config is None else tuple(ssh_config))
    if ciphers is not None:
        kw["encryption_algs"] = ciphers
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
    from netlens.fleet.facts import facts_from_json

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
        res.state, res.reason = "unreachable", one_line(err)
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
        dump = await asyncio.wait_for(reader.readline_bytes(), left())
        if dump is None:
            res.state, res.reason = "error", await _exit_reason(proc)
            return res
        # The dump is read for its facts (netlens.fleet.facts: what the fleet shows,
        # without building the Snapshot; that waits for a drill-down) once the first
        # sample is in, or is known not to come. The agent sends that sample an
        # interval after the dump, so the client would only wait meanwhile; reading
        # then, rather than at once, leaves the CPU to the other servers' dumps and
        # takes it off the first document's critical path. A bad dump is still what
        # gets reported.
        phase = "the first rate sample"
        text: str | None = None
        failed: BaseException | None = None
        try:
            text = await asyncio.wait_for(reader.readline(SAMPLE_LINE), left())
        except (TimeoutError, OSError, ssh.Error, protocol.ProtocolError) as err:
            failed = err
        phase = "the dump"
        res.facts = facts_from_json(dump, where=f"{spec.alias}'s dump")
        res.dump = dump
        phase = "the first rate sample"
        if failed is not None:
            raise failed
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
        res.state, res.reason = "unreachable", f"while reading {phase}: {one_line(err)}"
        return res
    except (protocol.ProtocolError, ValueError, NetlensError) as err:
        res.state, res.reason = "error", f"{phase}: {one_line(err)}"
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
                alias=spec.alias, state="error", reason=one_line(r), labels=dict(spec.labels)
            )
        out.append(r)
    return out

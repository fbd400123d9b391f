"""Text the runtime prints that others chose (names, commands), made inert.

A container's command is whatever its creator typed, and ``ps`` prints it on
root's terminal: an ESC or OSC sequence in it must show as text, not act.
The runtime never imports the inspector, so it keeps this one rule itself;
it is the rule of ``netlens.inert.terminal`` (a test holds the two to the
same answers): every character Python does not call printable becomes a
visible escape (``\\x1b``, ``\\n``, ``\\u202e``), printable Unicode stays.
"""

from __future__ import annotations

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    n = ord(ch)
    if 0xDC80 <= n <= 0xDCFF:  # a non-UTF-8 byte kept by surrogateescape
        return f"\\x{n - 0xDC00:02x}"
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def terminal(text: str) -> str:
    """``text`` with every non-printable character shown as an escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)

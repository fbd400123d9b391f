"""How a string netlens did not write becomes inert text, for each place it is printed.

Interface names, aliases, namespace names, container names, commands and images come
from the kernel, /proc and engine state files, and anyone who can make a namespace
(an unprivileged user in their own user namespace can) chooses them. Printed raw,
``ESC[31m`` recolours root's terminal, OSC 52 writes its clipboard, OSC 8 plants
links, a newline forges a table row, and a stray byte makes GraphML invalid XML.
So every output escapes such text for its format, and the rules live here, once:

- :func:`terminal`: plain text for a terminal (``stats``, error lines, the dashboard,
  the base of every export). Every character Python does not call printable (C0, DEL
  and C1 controls, format characters such as bidi overrides and zero-width marks,
  line and paragraph separators, surrogates, non-characters) becomes a visible
  escape (``\\x1b``, ``\\n``, ``\\u202e``); printable Unicode stays as it is.
  Escape sequences are thereby harmless: their ESC is shown, the rest is text.
  Backslash is kept as it is, so the function is idempotent (a label escaped twice
  reads the same), and ordinary names with a backslash print unchanged.
- :func:`dot_string`: a Graphviz double-quoted string (Graphviz reads ``\\N``,
  ``\\G``, ``\\l`` in labels as commands, so every backslash is doubled).
- :func:`mermaid_text`: text inside a quoted Mermaid label (entity codes for the
  characters its parser and its HTML and markdown rendering reserve).
- :func:`xml_text`: text for an XML 1.0 document. XML 1.0 cannot carry most control
  characters at all, not even as character references, so they are replaced by the
  same visible escapes; the XML writer escapes ``&``, ``<``, ``>`` and quotes.

JSON needs nothing from here: ``json.dumps`` and the dump's own writer escape every
control character, and the document keeps the exact name. Rich and Textual output
takes :func:`terminal` text inside a ``Text`` object, never a markup string (see
:mod:`netlens.tui.fmt`). Headless: standard library only.

It lives in :mod:`netlens.kernel` because the names it guards are the kernel's (and
the engines'), and because both halves print them: the inspector and the runtime
(``netlens run``'s tables), which may import netlens.kernel and nothing else.
"""

from __future__ import annotations

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(ch: str) -> str:
    """The visible escape of one character :meth:`str.isprintable` rejects."""
    named = _NAMED.get(ch)
    if named is not None:
        return named
    n = ord(ch)
    if 0xDC80 <= n <= 0xDCFF:
        # a byte that was not UTF-8, kept by errors="surrogateescape": show the byte
        return f"\\x{n - 0xDC00:02x}"
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def terminal(text: str) -> str:
    """``text`` with every non-printable character replaced by a visible escape.

    The common case (a printable name) costs one C-level scan and returns ``text``
    itself, so callers can apply this to every cell they paint.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def dot_string(text: str) -> str:
    """``text`` as a Graphviz double-quoted string (an id or a label), quotes included.

    Graphviz's escString reads ``\\n``, ``\\l``, ``\\N``, ``\\G``... inside labels, so
    backslashes are doubled: the drawing shows the name, not a Graphviz command.
    """
    safe = terminal(text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{safe}"'


_MERMAID = str.maketrans(
    {
        "#": "#35;",  # first of all: Mermaid reads #name; and #123; as entity codes
        "&": "#amp;",
        '"': "#quot;",
        "<": "#lt;",
        ">": "#gt;",
        "`": "#96;",  # a label opening with a backtick is markdown
    }
)


def mermaid_text(text: str) -> str:
    """``text`` for inside a quoted Mermaid label (``id["..."]``, ``subgraph id["..."]``)."""
    return terminal(text).translate(_MERMAID)


def xml_text(text: str) -> str:
    """``text`` holding only characters XML 1.0 allows (the writer escapes markup).

    Every character XML 1.0 forbids (C0 controls but tab, newline and CR; surrogates;
    U+FFFE and U+FFFF) is non-printable, so :func:`terminal` removes them all; tab,
    newline and CR go too, because an XML reader normalises them in attributes and
    a drawing tool would break the label on them.
    """
    return terminal(text)

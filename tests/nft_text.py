"""Read netlens's nft JSON commands back as nft's own rule text, for assertions.

The runtime builds its table as nft JSON (``netlens_runtime.firewall``); tests
say what they expect in the syntax ``nft list`` prints (``iifname "br" accept``),
so a reader can compare a unit test's expectation with a live table's listing.
This is an independent decoder of the few expression kinds the builder uses:
anything else fails loudly. Imported as ``nft_text`` (``tests/`` is on
``sys.path`` because ``conftest.py`` lives there).
"""

from __future__ import annotations

from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, dict) and "prefix" in v:
        return f"{v['prefix']['addr']}/{v['prefix']['len']}"
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    if isinstance(v, str) and not v.startswith("@") and not v[:1].isdigit():
        return f'"{v}"'
    return str(v)


def _left(left: dict[str, Any]) -> str:
    if "meta" in left:
        return str(left["meta"]["key"])
    if "payload" in left:
        p = left["payload"]
        return f"{p['protocol']} {p['field']}"
    if "ct" in left:
        return f"ct {left['ct']['key']}"
    if "fib" in left:
        return f"fib {' . '.join(left['fib']['flags'])} {left['fib']['result']}"
    raise AssertionError(f"unknown left side {left}")


def expr_text(e: dict[str, Any]) -> str:
    if "match" in e:
        m = e["match"]
        op = {"==": "", "in": "", "!=": "!= "}[m["op"]]
        right = m["right"]
        if "fib" in m["left"] or "ct" in m["left"]:
            right_text = _value(right).strip('"')
        else:
            right_text = _value(right)
        return f"{_left(m['left'])} {op}{right_text}"
    if "dnat" in e:
        return f"dnat to {e['dnat']['addr']}:{e['dnat']['port']}"
    for verdict in ("accept", "drop", "masquerade"):
        if verdict in e:
            return verdict
    raise AssertionError(f"unknown expression {e}")


def rules(commands: list[dict[str, Any]], chain: str) -> list[str]:
    """The rules of ``chain`` in order, as nft prints them (comments left out)."""
    out = []
    for cmd in commands:
        rule = cmd.get("add", {}).get("rule")
        if rule and rule["chain"] == chain:
            out.append(" ".join(expr_text(e) for e in rule["expr"]))
    return out


def chains(commands: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> the chain's declaration (type, hook, prio, policy)."""
    return {
        c["add"]["chain"]["name"]: c["add"]["chain"]
        for c in commands
        if "chain" in c.get("add", {})
    }

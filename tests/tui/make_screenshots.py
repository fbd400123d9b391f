"""Render the dashboard's screenshots (SVG) from the real app on the fixture source.

Run with ``make screenshots`` (or ``python3 tests/tui/make_screenshots.py [OUTDIR]``).
Writes ``screenshots/<theme>-<view>.svg`` for every bundled theme and every view, plus
the detail screens, at 120x40, and ``screenshots/README-section.md`` embedding them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "runtime"))

from netlens.tui.app import NetlensApp  # noqa: E402
from tests.tui.fixture import fixture_source  # noqa: E402

THEMES = ("netlens-dark", "netlens-light", "netlens-contrast")
SHOTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("topology", "Topology: server and uplinks, bridges as switches, VRF boxes", ()),
    ("vrfs", "VRFs and bridges (show vrf)", ("2",)),
    ("containers", "Containers: live rates, trend, drops", ("3",)),
    ("density", "Density: server fill against cores, memory and uplinks", ("4",)),
    ("findings", "Findings: what netlens doctor finds, worst first", ("5", "enter")),
    (
        "routes",
        "A VRF's routing table (show ip route vrf router)",
        ("2", *("j",) * 11, "enter", "right", "right"),
    ),
    (
        "mac-table",
        "A bridge's MAC table (show mac address-table)",
        ("2", "tab", "enter", "right", "right"),
    ),
)
SIZE = (120, 40)


async def shoot(theme: str, name: str, keys: tuple[str, ...], out: Path) -> Path:
    app = NetlensApp(fixture_source(), theme=theme)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(250):  # the snapshot, then the doctor's findings on it
            fi = app.ctx.findings
            if app.ctx.index is not None and fi is not None and fi.index is app.ctx.index:
                break
            await pilot.pause(0.02)
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
        await pilot.pause()
        path = out / f"{theme.removeprefix('netlens-')}-{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
    return path


USAGE = """## The dashboard

`netlens` opens it on the live host (as root it sees every namespace; without root a
banner says what is hidden). `netlens view dump.json` opens a saved
`netlens dump --json` read-only, no root needed. Options: `--theme NAME|FILE.toml`,
`--interval SECONDS`.

Keys: `1`-`5` views (topology, VRFs, containers, density, findings), `Enter` opens a node, `/`
filters, `Esc` clears, `s`/`r` sort and reverse (or click a header), `c` collapses a
bridge, `f` focuses a node and its neighbours, `space` pauses, `+`/`-` change the
interval, `b` bits/bytes, `?` lists every key with its binding id, `ctrl+p` the palette
(views, themes), `q` quits; arrows, vim keys and the mouse work. Remap keys in
`$XDG_CONFIG_HOME/netlens/keymap.toml` (`[keymap]` then `quit = "ctrl+q"`). Themes are
`themes/*.toml`, coloured by role (veth, bridge, uplink, vrf, rate-idle ... rate-high,
finding-error, finding-warning, finding-info); add your own in
`$XDG_CONFIG_HOME/netlens/themes/`.

### Screenshots

Generated from the real app on the fixture host by `make screenshots` (120x40).
"""


def readme_section(out: Path) -> str:
    rel = os.path.relpath(out, REPO)
    lines = [USAGE]
    for name, caption, _ in SHOTS:
        lines += [f"**{caption}**", "", f"![{caption}]({rel}/dark-{name}.svg)", ""]
    lines += ["Light and high-contrast themes:", ""]
    for theme in THEMES[1:]:
        short = theme.removeprefix("netlens-")
        lines.append(f"![{short} topology]({rel}/{short}-topology.svg)")
        lines.append(f"![{short} containers]({rel}/{short}-containers.svg)")
        lines.append("")
    return "\n".join(lines)


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as cfg:
        os.environ["XDG_CONFIG_HOME"] = cfg  # never the developer's own themes
        for theme in THEMES:
            for name, _, keys in SHOTS:
                path = await shoot(theme, name, keys, out)
                print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    (out / "README-section.md").write_text(readme_section(out) + "\n")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "screenshots"))

"""The dashboard of an installed netlens, driven by a Textual pilot.

Run by test_installed.py with the fresh venv's own interpreter in isolated mode
(``python -I pilot.py DUMP PLAN``): nothing of the checkout is on sys.path, so
every import, stylesheet and theme comes from the installed copy. It opens the
saved dump, switches to every theme the plan names (the bundled ones and a
user theme from ``$XDG_CONFIG_HOME``) and shows every view under each, then
presses a key the user's keymap added. It prints one JSON report on stdout;
the test judges it. Any error inside the app (a missing stylesheet, a theme that
does not load) makes ``run_test`` raise: a traceback and a non-zero exit.

Only the standard library and the product's own dependencies are imported here:
the venv holds nothing else.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any


def main(dump: str, plan: dict[str, Any]) -> dict[str, Any]:
    import netlens
    from netlens.tui.app import NetlensApp
    from netlens.tui.registry import VIEWS
    from netlens.tui.sources import FileSource
    from netlens.tui.themes import bundled_theme_dir

    source = FileSource(Path(dump))
    source.open()
    app = NetlensApp(source)
    report: dict[str, Any] = {
        "netlens": netlens.__file__,
        "sys_path": sys.path,
        "bundled_theme_dir": str(bundled_theme_dir()),
        "seen": [],
    }

    async def drive() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(400):
                if app.ctx.index is not None:
                    break
                await pilot.pause(0.05)
            report["loaded"] = app.ctx.index is not None
            report["themes"] = sorted(app.available_themes)
            report["notes"] = list(app._notes)  # theme files or keymap entries refused
            for theme in plan["themes"]:
                app.theme = theme
                await pilot.pause()
                for number in range(1, len(VIEWS) + 1):
                    await pilot.press(str(number))
                    await pilot.pause()
                    report["seen"].append(
                        [app.theme, app.main.active_view, app.get_css_variables()]
                    )
            await pilot.press("1", plan["user_key"])
            await pilot.pause()
            report["after_user_key"] = app.main.active_view

    asyncio.run(drive())
    for row in report["seen"]:  # keep only the role variables the test compares
        row[2] = {k: v for k, v in row[2].items() if k in plan["variables"]}
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))))

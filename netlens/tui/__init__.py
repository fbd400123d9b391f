"""The Textual dashboard: a thin view over the headless core.

Nothing outside ``netlens.tui`` and ``netlens.commands.dashboard``/``view`` imports
Textual. The app consumes a :class:`netlens.tui.sources.DataSource`, so the same screens
run on the live host, a saved dump, or a deterministic fixture.
"""

"""The main views (listed in netlens.tui.registry).

Each is a widget with ``refresh_index`` and ``refresh_frame``.
"""

"""The four main views. Each is a widget with ``refresh_index`` and ``refresh_frame``."""

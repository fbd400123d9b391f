"""Screens pushed over the main views: node detail and help."""

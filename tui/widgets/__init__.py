"""Widgets shared by llamaterm's screens."""

"""The Logs screen and its record viewer."""

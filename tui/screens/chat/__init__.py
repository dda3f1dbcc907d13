"""The Chat screen, its settings dialog, and the stream from the act loop to it."""

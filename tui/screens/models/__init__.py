"""The Models screen and its dialogs (load settings, remote servers)."""

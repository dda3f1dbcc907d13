"""The Complete screen (raw completion and the terminal simulation)."""

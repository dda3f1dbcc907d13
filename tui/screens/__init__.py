"""llamaterm's screens, one module each."""

"""llamaterm's Textual front end, and the `llamaterm` command line."""

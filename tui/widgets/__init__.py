"""llamaterm's widgets, one package per screen (status/ holds those every screen shows)."""

"""Services the app runs beside its screens (not widgets): the in-app server."""

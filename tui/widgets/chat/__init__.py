"""The Chat screen's widgets: chat list, message views, tool cards, input, status."""

"""The Models screen's widgets: model details and the Hugging Face browser."""

"""What the model sees: chat templates, reasoning markers, and a chat turned into a prompt.

- `templates.py`: the model's chat template rendered in a Jinja sandbox, and the
  fallbacks by architecture for a model that carries none
- `reasoning.py`: thinking markers (`<think>`, Harmony, ...) split out of the output
- `conversation.py`: a `Chat` on a loaded model: render, fit the context, tool formats

Nothing is imported here: `engine.toolcalls` imports `templates` and `reasoning`,
and `conversation` imports `engine.toolcalls`, so an eager import would be a circle.
"""

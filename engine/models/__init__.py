"""Models on disk and how they load: the GGUF header reader (gguf_header), what a header
says (model_facts), the local catalog, memory fit, the Hugging Face Hub (hub, download),
the remembered per-model settings (remembered), the starter model, and the one loader
every surface uses (loader: resolve_load, then load_model).

Import the modules themselves; this package imports nothing, so that `engine.models.hub`
(and its HTTP stack) loads only when asked for.
"""

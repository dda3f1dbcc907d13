"""LM Studio's websocket protocol, so that the real `lmstudio` SDK runs against llamaterm.

    import lmstudio as lms
    model = lms.Client("127.0.0.1:1234").llm.model("gemma-3-270m")
    print(model.respond("Hello"))

`lmstudio_routes(state)` gives the Starlette routes that `engine.serve.app.create_app`
adds to the server's app; `SdkState` says which models they serve (the app's
`ModelRegistry`), the API key, and how models are loaded on a client's request
(`CatalogLoader`, which `llamaterm serve` passes; the in-app server passes none).
`sdk_port.bind_sdk_port` gives `ServerHandle` the SDK's own port to serve as well.
Modules: `protocol` (message shapes), `config_stack` (KV config stacks → engine
configs), `chat_history` (wire history → Chat), `state`, `rpc`, `channels`,
`session` (one websocket), `routes`.
"""

from __future__ import annotations

from .routes import lmstudio_routes
from .state import CatalogLoader, ModelLoader, SdkState

__all__ = ["CatalogLoader", "ModelLoader", "SdkState", "lmstudio_routes"]

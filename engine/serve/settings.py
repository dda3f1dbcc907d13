"""The `[server]` table of the config file, and the server's defaults.

It lives beside the server rather than in `engine.settings` so that everything the
server can be told is in one package; `engine.settings.Settings` still holds it as
its `server` field (and re-exports the class from its old path).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1234
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_QUEUE_LIMIT = 8
DEFAULT_SDK_PORT = 41343
"""The first port the LM Studio SDK probes for a server (`lmstudio._api_server_ports`)."""


class ServerSettings(BaseModel):
    # As every config section: unknown keys are reported, and docstrings under fields
    # become their descriptions.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )

    host: str = DEFAULT_HOST
    """Where the OpenAI-compatible server listens; loopback unless you mean otherwise."""
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    """Its port."""
    api_key: str | None = None
    """When set, requests must carry `Authorization: Bearer <key>`."""
    sdk_port: int = Field(default=DEFAULT_SDK_PORT, ge=0, le=65535)
    """Also served on loopback where the LM Studio SDK looks for LM Studio, so that
    `lms.llm()` finds llamaterm (skipped when taken, e.g. while LM Studio runs); 0: off.
    The SDK sends the API key as its client passkey."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names the server answers to besides loopback ones (127.0.0.1, localhost, [::1]),
    e.g. "gpu-box.lan"; "*" answers to any. Bound to loopback, any other Host header is
    refused (403), so that a web page cannot reach the server through DNS rebinding; bound
    elsewhere, an empty list answers to any host."""
    cors_origins: list[str] = Field(default_factory=list)
    """Web origins whose pages may call the server from a browser, e.g.
    "http://localhost:3000"; "*" allows any. Empty: no CORS headers, so no page can."""
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    """The largest request body accepted, in bytes; a larger one gets 413."""
    queue_limit: int = Field(default=DEFAULT_QUEUE_LIMIT, ge=0)
    """Predictions that may run or wait for a model at once; one more gets 503 with
    Retry-After. 0: no limit."""
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client has to send a request's headers, from connecting or from the
    previous response; then the connection is closed."""
    body_timeout: float = Field(default=60.0, gt=0)
    """Seconds a client has to send a request's body; then it gets 408."""
    keep_alive_timeout: float = Field(default=5.0, gt=0)
    """Seconds an idle connection is kept open after a response."""

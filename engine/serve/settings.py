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

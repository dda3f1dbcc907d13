"""Old path of engine.formatting.templates (chat templates), kept while callers move."""

from __future__ import annotations

from .formatting.templates import *  # noqa: F403
from .formatting.templates import (
    CHATML_TEMPLATE,
    ChatTemplate,
    GEMMA_TEMPLATE,
    LLAMA3_TEMPLATE,
    REFUSED_PREFIX,
    TemplateError,
    TemplateOrigin,
    render,
    select_template,
    template_opens_reasoning,
    template_supports_tools,
)

__all__ = [
    "CHATML_TEMPLATE",
    "ChatTemplate",
    "GEMMA_TEMPLATE",
    "LLAMA3_TEMPLATE",
    "REFUSED_PREFIX",
    "TemplateError",
    "TemplateOrigin",
    "render",
    "select_template",
    "template_opens_reasoning",
    "template_supports_tools",
]

"""llamaterm's engine: GGUF models through llama.cpp, streamed as typed events.

No import of textual or tui here, ever: the engine is usable on its own, and
`import engine as lms` runs LM Studio's SDK snippets with the import changed.
"""

from __future__ import annotations

from engine.errors import ModelLoadError, ModelNotFoundError
from engine.formatting.conversation import respond_events, respond_sync
from engine.llama import EventStream, LoadedModel

from .agent import (
    ActFinished,
    FunctionTool,
    RoundFinished,
    RoundStarted,
    ToolFunctionDef,
    ToolRunFinished,
)
from .api import LLM, ActResult, PredictionNotFinished, PredictionStream, list_loaded_models, llm
from .chat import AssistantResponse, Chat, SystemPrompt, ToolCall, ToolResultMessage, UserMessage
from .client import (
    AsyncClient,
    AsyncLLM,
    Client,
    DownloadedLlm,
    configure_default_client,
    get_default_client,
    list_downloaded_models,
)
from .errors import (
    ChatFormatError,
    ConfigError,
    EngineError,
    LMStudioCancelledError,
    LMStudioClientError,
    LMStudioError,
    LMStudioModelNotFoundError,
    LMStudioPredictionError,
    LMStudioServerError,
    LoadConfigError,
    TemplateError,
    ToolError,
)
from .load_config import LoadConfig
from .prediction import (
    ContentDelta,
    Event,
    Failed,
    Finished,
    FirstToken,
    Log,
    LogRecord,
    ModelInfo,
    PredictionConfig,
    PredictionConfigError,
    PredictionFragment,
    PredictionResult,
    PredictionRoundResult,
    PredictionStats,
    PromptProgress,
    ReasoningDelta,
    StopReason,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallParseError,
    ToolCallStarted,
)
from .structured import BaseModel
from .toolcalls import ParsedOutput, detect_tool_format, parse_output
from .tools import ToolDefinition, ToolResult, load_tools

__all__ = [
    "LLM",
    "ActFinished",
    "ActResult",
    "AssistantResponse",
    "AsyncClient",
    "AsyncLLM",
    "BaseModel",
    "Chat",
    "ChatFormatError",
    "Client",
    "ConfigError",
    "ContentDelta",
    "DownloadedLlm",
    "EngineError",
    "Event",
    "EventStream",
    "Failed",
    "Finished",
    "FirstToken",
    "FunctionTool",
    "LMStudioCancelledError",
    "LMStudioClientError",
    "LMStudioError",
    "LMStudioModelNotFoundError",
    "LMStudioPredictionError",
    "LMStudioServerError",
    "LoadConfig",
    "LoadConfigError",
    "LoadedModel",
    "Log",
    "LogRecord",
    "ModelInfo",
    "ModelLoadError",
    "ModelNotFoundError",
    "ParsedOutput",
    "PredictionConfig",
    "PredictionConfigError",
    "PredictionFragment",
    "PredictionNotFinished",
    "PredictionResult",
    "PredictionRoundResult",
    "PredictionStats",
    "PredictionStream",
    "PromptProgress",
    "ReasoningDelta",
    "RoundFinished",
    "RoundStarted",
    "StopReason",
    "SystemPrompt",
    "TemplateError",
    "ToolCall",
    "ToolCallArgumentsDelta",
    "ToolCallFinished",
    "ToolCallParseError",
    "ToolCallStarted",
    "ToolDefinition",
    "ToolError",
    "ToolFunctionDef",
    "ToolResult",
    "ToolResultMessage",
    "ToolRunFinished",
    "UserMessage",
    "configure_default_client",
    "detect_tool_format",
    "get_default_client",
    "list_downloaded_models",
    "list_loaded_models",
    "llm",
    "load_tools",
    "parse_output",
    "respond_events",
    "respond_sync",
]


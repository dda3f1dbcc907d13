"""llamaterm's engine: GGUF models through llama.cpp, streamed as typed events.

No import of textual or tui here, ever: the engine is usable on its own, and
`import engine as lms` runs LM Studio's SDK snippets with the import changed.
"""

from __future__ import annotations

from engine.errors import ModelLoadError, ModelNotFoundError
from engine.formatting.conversation import respond_events, respond_sync
from engine.llama import EventStream, LoadedModel

from .agent import ActFinished, FunctionTool, RoundFinished, RoundStarted, ToolRunFinished
from .api import LLM, ActResult, PredictionNotFinished, PredictionStream, list_loaded_models, llm
from .chat import AssistantResponse, Chat, SystemPrompt, ToolCall, ToolResultMessage, UserMessage
from .errors import (
    ChatFormatError,
    ConfigError,
    EngineError,
    LMStudioError,
    LMStudioModelNotFoundError,
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
    PredictionStats,
    PromptProgress,
    ReasoningDelta,
    StopReason,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallParseError,
    ToolCallStarted,
)
from .toolcalls import ParsedOutput, detect_tool_format, parse_output
from .tools import ToolDefinition, ToolResult, load_tools

__all__ = [
    "ChatFormatError",
    "ConfigError",
    "EngineError",
    "LMStudioError",
    "LMStudioModelNotFoundError",
    "TemplateError",
    "ToolError",
    "LLM",
    "ActFinished",
    "ActResult",
    "FunctionTool",
    "ParsedOutput",
    "RoundFinished",
    "RoundStarted",
    "ToolDefinition",
    "ToolResult",
    "ToolRunFinished",
    "detect_tool_format",
    "load_tools",
    "parse_output",
    "AssistantResponse",
    "Chat",
    "SystemPrompt",
    "ToolCall",
    "ToolResultMessage",
    "UserMessage",
    "respond_events",
    "respond_sync",
    "ContentDelta",
    "Event",
    "EventStream",
    "Failed",
    "Finished",
    "FirstToken",
    "LoadConfig",
    "LoadedModel",
    "Log",
    "LogRecord",
    "ModelInfo",
    "ModelLoadError",
    "ModelNotFoundError",
    "PredictionConfig",
    "PredictionConfigError",
    "PredictionFragment",
    "PredictionNotFinished",
    "PredictionResult",
    "PredictionStats",
    "PredictionStream",
    "PromptProgress",
    "ReasoningDelta",
    "StopReason",
    "ToolCallArgumentsDelta",
    "ToolCallFinished",
    "ToolCallParseError",
    "ToolCallStarted",
    "list_loaded_models",
    "llm",
]


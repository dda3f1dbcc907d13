"""The prediction contract: config, events, stats and results.

Every consumer (TUI, CLI, Python API, server) reads the same stream of events
defined here; none re-implements generation.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Hashable
from dataclasses import asdict, dataclass, field, is_dataclass
from itertools import groupby
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import PredictionConfigError
from engine.structured import StructuredSetting, parse_structured

StopReason: TypeAlias = Literal[
    "eosFound",
    "stopStringFound",
    "maxPredictedTokensReached",
    "contextLengthReached",
    "userStopped",
    "toolCalls",
    "failed",
]

FragmentKind: TypeAlias = Literal["content", "reasoning"]

ContextOverflowPolicy: TypeAlias = Literal["stopAtLimit", "truncateMiddle", "rollingWindow"]

_NO_DRAFT_MODEL = (
    "speculative decoding with a draft model is not supported: llama-cpp-python 0.3.36 "
    "has no draft-model API (only prompt-lookup decoding); leave it out"
)


class PromptTemplate(BaseModel):
    """LM Studio's `promptTemplate`: a Jinja chat template used for one prediction instead
    of the model's own (rendered in the same sandbox, with the same limits). Also accepted
    as the Jinja source alone. The `manual` kind (before/after strings) is not supported."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    type: Literal["jinja"] = "jinja"
    template: str = Field(min_length=1)
    stop_strings: tuple[str, ...] = Field(default=(), alias="stopStrings")

    @classmethod
    def _from_sdk(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"template": value}
        if isinstance(value, dict):
            if value.get("type") == "manual":
                raise ValueError(
                    "the manual prompt template kind is not supported: give a Jinja template "
                    '({"type": "jinja", "jinjaPromptTemplate": {"template": ...}})'
                )
            jinja = value.get("jinjaPromptTemplate")
            if isinstance(jinja, dict):
                rest = {k: v for k, v in value.items() if k not in ("jinjaPromptTemplate",
                                                                   "manualPromptTemplate")}
                return {**rest, "template": jinja.get("template", "")}
        return value


class ReasoningParsing(BaseModel):
    """LM Studio's `reasoningParsing`: whether reasoning is split out of the content.
    `startString`/`endString` are taken as LM Studio's SDK sends them, but the markers
    always come from the chat template (each family's own, harmony's channels too)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    enabled: bool = True
    start_string: str | None = Field(default=None, alias="startString")
    end_string: str | None = Field(default=None, alias="endString")




class PredictionConfig(BaseModel):
    """Sampling and stopping settings for one prediction.

    Keys are LM Studio's camelCase names; snake_case aliases are accepted too.
    Unset fields (None) fall back to the caller's defaults (config file, then ours).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    temperature: float | None = Field(default=None, ge=0.0, le=5.0)
    """Sampling temperature; 0 picks the most likely token every time."""
    max_tokens: int | None = Field(default=None, alias="maxTokens")
    """Stop after this many predicted tokens; -1 means no limit but the context."""
    top_k: int | None = Field(default=None, ge=0, alias="topKSampling")
    """Keep only the k most likely tokens; 0 disables the filter."""
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, alias="topPSampling")
    """Nucleus sampling: keep the smallest set of tokens whose probability sums to p."""
    min_p: float | None = Field(default=None, ge=0.0, le=1.0, alias="minPSampling")
    """Drop tokens less likely than min_p times the most likely one."""
    repeat_penalty: float | None = Field(default=None, gt=0.0, le=10.0, alias="repeatPenalty")
    """Penalty for repeating recent tokens; 1.0 disables it."""
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0, alias="presencePenalty")
    """Subtracted from the logit of every token already generated (OpenAI's); 0 disables it."""
    frequency_penalty: float | None = Field(
        default=None, ge=-2.0, le=2.0, alias="frequencyPenalty"
    )
    """Subtracted from a token's logit once per time it was generated (OpenAI's); 0 disables it."""
    stop_strings: tuple[str, ...] | None = Field(default=None, alias="stopStrings")
    """Generation stops before any of these strings; they are never emitted."""
    seed: int | None = None
    """Sampling seed; None or -1 picks a random one."""
    reproducible: bool | None = None
    """Compute the prompt as a fresh context would, reusing only the KV cache's whole
    batches that were computed so, so that a seeded prediction gives the same tokens
    whatever ran before (ours; the server asks for it with every seeded request). It
    costs cache reuse: a follow-up re-evaluates up to a batch plus the last reply."""
    grammar: str | None = None
    """A llama.cpp GBNF grammar that constrains sampling (ours, not LM Studio's)."""
    logit_bias: tuple[tuple[int, float], ...] | None = Field(default=None, alias="logitBias")
    """Added to a token's logit before sampling, by token id: `{id: bias}`; `float("-inf")`
    bans a token (ours, as OpenAI's `logit_bias`). Given as a dict, kept as sorted pairs
    so that the config stays hashable."""
    top_logprobs: int | None = Field(default=None, ge=0, le=20, alias="topLogprobs")
    """Report each generated token's log-probability and this many likeliest alternatives
    (`TokenLogprob` events, `PredictionResult.logprobs`); None reports nothing (ours)."""
    enable_thinking: bool | None = Field(default=None, alias="enableThinking")
    """Chat: let the model reason before answering (passed to the chat template)."""
    context_overflow_policy: ContextOverflowPolicy | None = Field(
        default=None, alias="contextOverflowPolicy"
    )
    """Chat: what to do when the conversation does not fit the context."""
    reasoning_parsing: ReasoningParsing | None = Field(default=None, alias="reasoningParsing")
    """Chat: `{"enabled": false}` keeps the model's reasoning markup in the content as
    written, no reasoning split out (llama.cpp's `reasoning_format: none`); tool calls
    still parse."""
    structured: StructuredSetting | None = None
    """The reply must be JSON of a schema (or text of a GBNF grammar); `result.parsed`
    holds the parsed object. As `response_format=` (see engine.structured)."""
    cpu_threads: int | None = Field(default=None, ge=1, le=1024, alias="cpuThreads")
    """CPU threads for this prediction (the model's load setting otherwise)."""
    prompt_template: PromptTemplate | None = Field(default=None, alias="promptTemplate")
    """Chat: a Jinja template for this prediction instead of the model's own."""
    tool_call_stop_strings: tuple[str, ...] | None = Field(
        default=None, alias="toolCallStopStrings"
    )
    """Chat with tools offered: more stop strings, used only when tools are offered."""
    raw_tools: str | None = Field(default=None, alias="rawTools")
    """Chat: tools offered without running them (`{"type": "toolArray", "tools": [...]}`;
    `{"type": "none"}` offers none). Kept as JSON text so the config stays hashable."""

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _max_tokens_false(cls, value: Any) -> Any:
        # LM Studio's `maxTokens: false` means no limit.
        return -1 if value is False else value

    @field_validator("prompt_template", mode="before")
    @classmethod
    def _prompt_template_forms(cls, value: Any) -> Any:
        return PromptTemplate._from_sdk(value)

    @field_validator("tool_call_stop_strings", mode="before")
    @classmethod
    def _tool_stop_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("raw_tools", mode="before")
    @classmethod
    def _raw_tools_text(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, dict) and value.get("type") == "none":
            return "[]"
        if isinstance(value, dict) and value.get("type") == "toolArray":
            value = value.get("tools") or []
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise ValueError('expected {"type": "toolArray", "tools": [...]} or {"type": "none"}')
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    @property
    def raw_tool_list(self) -> list[dict[str, Any]] | None:
        """The `rawTools` as OpenAI function schemas (None when not set)."""
        return json.loads(self.raw_tools) if self.raw_tools is not None else None

    @field_validator("max_tokens")
    @classmethod
    def _max_tokens_positive(cls, value: int | None) -> int | None:
        if value is not None and value != -1 and value < 1:
            raise ValueError("must be a positive number of tokens, or -1 for no limit")
        return value

    @field_validator("stop_strings", mode="before")
    @classmethod
    def _stop_strings_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        return value

    @field_validator("stop_strings")
    @classmethod
    def _stop_strings_not_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and any(s == "" for s in value):
            raise ValueError("stop strings must not be empty")
        return value

    @field_validator("logit_bias", mode="before")
    @classmethod
    def _logit_bias_pairs(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return tuple(sorted(value.items(), key=lambda item: int(item[0])))
        return value

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias_values(
        cls, value: tuple[tuple[int, float], ...] | None
    ) -> tuple[tuple[int, float], ...] | None:
        for token, bias in value or ():
            if token < 0:
                raise ValueError(f"token id {token} is negative")
            if math.isnan(bias):
                raise ValueError(f"the bias of token {token} is not a number")
        return value

    @classmethod
    def parse(cls, config: PredictionConfig | dict[str, Any] | None) -> PredictionConfig:
        """Build a config from a dict, raising PredictionConfigError with every problem named."""
        if config is None:
            return cls()
        if isinstance(config, PredictionConfig):
            return config
        if isinstance(config, dict):
            # LM Studio's speculative decoding keys: named, with the reason, not "unknown".
            speculative = sorted(
                k for k in config
                if k in ("draftModel", "draft_model") or k.startswith("speculativeDecoding")
            )
            if speculative:
                raise PredictionConfigError(
                    f"invalid prediction config: {speculative[0]}: {_NO_DRAFT_MODEL}"
                )
        try:
            return cls.model_validate(config)
        except ValidationError as err:
            raise PredictionConfigError(_describe_validation_error(err)) from None

    def merged_over(self, defaults: PredictionConfig) -> PredictionConfig:
        """This config with unset fields taken from `defaults`."""
        values = defaults.model_dump(exclude_none=True)
        values.update(self.model_dump(exclude_none=True))
        return PredictionConfig.model_validate(values)


def _describe_validation_error(err: ValidationError) -> str:
    problems = []
    for item in err.errors():
        key = ".".join(str(part) for part in item["loc"]) or "config"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown prediction setting {key!r}")
        else:
            problems.append(f"{key}: {item['msg'].removeprefix('Value error, ')}")
    return "invalid prediction config: " + "; ".join(problems)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a prediction result says about the model that produced it."""

    display_name: str
    path: str
    architecture: str
    context_length: int
    """The context length the model was loaded with."""
    trained_context_length: int = 0
    model_key: str = ""
    chat_template: str = ""
    """The name of the chat template in use."""
    chat_template_reason: str = ""
    """Why that template was chosen (the model's own, a fallback, the config's file)."""
    has_chat_template: bool = True
    """False when neither the model file nor the config gives a chat template: a base
    model, most likely, which continues text rather than answers (the fallback format
    in use makes its replies repeat the prompt)."""
    # LM Studio's LlmInstanceInfo fields besides (the model handle's get_info() fills
    # them; a prediction result's copy may leave them at these defaults).
    format: str = "gguf"
    size_bytes: int = 0
    identifier: str = ""
    instance_reference: str = ""
    params_string: str | None = None
    """The parameter count as the file's metadata gives it ("270M", "7B"), if it does."""
    vision: bool = False
    """Always False: llamaterm loads no vision projector."""
    trained_for_tool_use: bool = False
    """The chat template renders tools (it has a native tool-call format)."""

    parallel: int = 1
    """Predictions the model runs at once (its slots)."""
    kv_unified: bool = False
    """Whether the slots share one KV cache, each able to use the whole context length
    (otherwise each slot has `context_length` / `parallel` of it)."""

    @property
    def max_context_length(self) -> int:
        """The context length the model was trained with (LM Studio's name)."""
        return self.trained_context_length or self.context_length

    type = "llm"


@dataclass(frozen=True, slots=True)
class PredictionStats:
    """LM Studio's stats fields, plus what our engine knows besides."""

    stop_reason: StopReason
    prompt_tokens_count: int = 0
    predicted_tokens_count: int = 0
    time_to_first_token_sec: float | None = None
    tokens_per_second: float | None = None
    prompt_tokens_evaluated: int = 0
    """Prompt tokens actually evaluated, after reusing the KV cache."""
    prompt_tokens_per_second: float | None = None
    total_time_sec: float = 0.0
    stop_string: str | None = None
    """The stop string that ended generation, when stop_reason is stopStringFound."""
    context_overflow: str | None = None
    """What the context policy did when the prompt did not fit, if anything."""
    num_gpu_layers: float | None = None
    """Layers llama.cpp offloaded to the GPU for this model (0 on CPU), as LM Studio's."""
    # Speculative decoding is not supported (see PredictionConfig.draft_model): always None.
    used_draft_model_key: str | None = None
    total_draft_tokens_count: int | None = None
    accepted_draft_tokens_count: int | None = None
    rejected_draft_tokens_count: int | None = None
    ignored_draft_tokens_count: int | None = None

    @property
    def total_tokens_count(self) -> int:
        return self.prompt_tokens_count + self.predicted_tokens_count


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token with its log-probability under the model (before sampling's
    filters), and the likeliest tokens at that step, most likely first. Also an event,
    sent before the text the token adds."""

    token: bytes
    logprob: float
    top: tuple[tuple[bytes, float], ...] = ()

    @property
    def text(self) -> str:
        return self.token.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class PredictionResult:
    """The outcome of one prediction. `str(result)` is its content, as in LM Studio's SDK."""

    content: str
    stats: PredictionStats
    model_info: ModelInfo
    reasoning: str = ""
    prompt: str = ""
    """The exact prompt text the model saw."""
    raw_text: str = ""
    """Everything the model generated, markers included, before parsing."""
    tool_calls: tuple[Any, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()
    """Each generated token's log-probability, when the config's `top_logprobs` asked."""
    prediction_config: PredictionConfig | None = None
    """The settings the prediction ran with (the Python API fills it in)."""
    load_config: Any = None
    """The LoadConfig of the model that ran it (the Python API fills it in)."""

    @property
    def parsed(self) -> Any:
        """The reply parsed as a JSON object for a structured prediction, else the content
        (as in LM Studio's SDK: a structured reply that is not a JSON object, or one that
        was stopped, stays text)."""
        setting = self.prediction_config.structured if self.prediction_config else None
        if setting is None or not setting.is_on or self.stats.stop_reason == "userStopped":
            return self.content
        value = parse_structured(self.content)
        return self.content if value is None else value

    @property
    def structured(self) -> bool:
        return not isinstance(self.parsed, str)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: content, reasoning, tool calls, stats and model info."""
        stats = asdict(self.stats)
        stats["total_tokens_count"] = self.stats.total_tokens_count
        return {
            "content": self.content,
            "reasoning": self.reasoning,
            "tool_calls": [_jsonable(call) for call in self.tool_calls],
            "stats": stats,
            "model_info": asdict(self.model_info),
        }

    def __str__(self) -> str:
        return self.content


@dataclass(frozen=True, slots=True)
class PredictionRoundResult(PredictionResult):
    """The result of one round of `act` (LM Studio's), with the round's index."""

    round_index: int = 0


@dataclass(frozen=True, slots=True)
class PredictionFragment:
    """One piece of streamed text, as the sync and async stream APIs yield it."""

    content: str
    kind: FragmentKind = "content"
    tokens_count: int = 0
    contains_drafted: bool = False
    """Whether a draft model proposed these tokens: always False (no speculative decoding)."""

    @property
    def reasoning_type(self) -> str:
        """LM Studio's name for the kind: "none" for answer text, "reasoning" otherwise."""
        return "reasoning" if self.kind == "reasoning" else "none"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


# --- events -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptProgress:
    """Prompt processing progress, 0.0 to 1.0, monotone, once per evaluated batch."""

    fraction: float
    processed_tokens: int = 0
    """Prompt tokens evaluated so far (of `total_tokens`); 0 when not counted (a remote model)."""
    total_tokens: int = 0
    """Prompt tokens to evaluate: the prompt less what the cache already holds; 0 when unknown."""


@dataclass(frozen=True, slots=True)
class FirstToken:
    """The prompt is processed and the first token is sampled."""

    time_to_first_token_sec: float


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str
    tokens_count: int = 1


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str
    tokens_count: int = 1


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArgumentsDelta:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    index: int
    call: Any


@dataclass(frozen=True, slots=True)
class ToolCallParseError:
    raw_text: str
    reason: str


@dataclass(frozen=True, slots=True)
class LogRecord:
    level: str
    """"debug", "info", "warning" or "error"."""
    source: str
    """"engine" or "llama.cpp"."""
    kind: str
    """What the record is about: "load", "prompt", "raw_output", "cache", "context", "llama"..."""
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)
    """When the record was made (seconds since the epoch), for the Logs screen and log file."""


@dataclass(frozen=True, slots=True)
class Log:
    record: LogRecord


@dataclass(frozen=True, slots=True)
class Finished:
    result: PredictionResult


@dataclass(frozen=True, slots=True)
class Failed:
    error: BaseException


Event: TypeAlias = (
    PromptProgress
    | FirstToken
    | ContentDelta
    | ReasoningDelta
    | ToolCallStarted
    | ToolCallArgumentsDelta
    | ToolCallFinished
    | ToolCallParseError
    | TokenLogprob
    | Log
    | Finished
    | Failed
)


def _run_of(event: Event) -> Hashable:
    """What a delta joins with (None: not a delta, joins nothing)."""
    if isinstance(event, ContentDelta):
        return ContentDelta
    if isinstance(event, ReasoningDelta):
        return ReasoningDelta
    if isinstance(event, ToolCallArgumentsDelta):
        return (ToolCallArgumentsDelta, event.index)
    return None


def merge_deltas(events: list[Event]) -> list[Event]:
    """Join neighbouring deltas: content with content, reasoning with reasoning, argument
    pieces of one tool call; a parser's output for one piece of input, one event per kind.

    Each run is joined in one go (adding a piece at a time would copy the run so far each
    time: quadratic when one feed gives many pieces). A lone delta is kept as it is; a
    joined one counts as one token again (`tokens_count` 1), as a fresh piece does."""
    merged: list[Event] = []
    for run, group in groupby(events, _run_of):
        same = list(group)
        if run is None or len(same) == 1:
            merged.extend(same)
            continue
        first = same[0]
        text = "".join(e.text for e in same)  # type: ignore[union-attr]  # all deltas
        if isinstance(first, ToolCallArgumentsDelta):
            merged.append(ToolCallArgumentsDelta(first.index, text))
        elif isinstance(first, ContentDelta):
            merged.append(ContentDelta(text))
        else:
            merged.append(ReasoningDelta(text))
    return merged

"""The request bodies of OpenAI's chat completions and completions, as pydantic models.

Checks that need no model live here (ranges, stop strings, `n`); what needs the engine
(roles, tool choice, schemas to grammars) is in `translate`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ApiError, validation_error

MAX_STOP_STRINGS = 16
MAX_CHOICES = 16
"""Choices (`n`) one request may ask for."""


class RequestBody(BaseModel):
    """The base of every request body here (the Responses API's too)."""

    # Fields OpenAI defines that we do not use (user, metadata, store, ...) are ignored,
    # as other OpenAI-compatible servers do, so that ordinary clients just work.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class StreamOptions(RequestBody):
    include_usage: bool = False


class FunctionSpec(RequestBody):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(RequestBody):
    type: Literal["function"] = "function"
    function: FunctionSpec


class FunctionName(RequestBody):
    name: str


class NamedToolChoice(RequestBody):
    type: Literal["function"] = "function"
    function: FunctionName


class JsonSchemaSpec(RequestBody):
    name: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(RequestBody):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    """llama.cpp's server takes a schema beside type json_object too."""


class _SamplingRequest(RequestBody):
    model: str | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=5.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, gt=0.0, le=10.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=10.0)
    """Xinference's (and Hugging Face's) name for repeat_penalty."""
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    stop: str | list[str] | None = None
    stop_token_ids: int | list[int] | None = None
    """Xinference's and vLLM's: stop at these tokens (as the stop strings of their text)."""
    seed: int | None = None
    grammar: str | None = None
    """A llama.cpp GBNF grammar, as llama.cpp's own server accepts."""
    logit_bias: dict[int, float] | None = None
    """OpenAI's: token id (a string in JSON) to a bias from -100 (banned) to 100."""
    n: int | None = 1

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings")
        if any(s == "" for s in stops):
            raise ValueError("stop strings must not be empty")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias_range(cls, value: dict[int, float] | None) -> dict[int, float] | None:
        for token, bias in (value or {}).items():
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"the bias of token {token} must be between -100 and 100")
        return value

    @field_validator("n")
    @classmethod
    def _choices(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= MAX_CHOICES:
            raise ValueError(f"n must be between 1 and {MAX_CHOICES}")
        return value

    @property
    def top_logprobs_wanted(self) -> int | None:
        """How many alternatives to report per token; None when no logprobs were asked."""
        return None

    def sampling(self) -> dict[str, Any]:
        values = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty
            if self.repeat_penalty is not None
            else self.repetition_penalty,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "top_logprobs": self.top_logprobs_wanted,
            "stop_strings": [self.stop] if isinstance(self.stop, str) else self.stop,
            "seed": self.seed,
            # OpenAI's seed promises the same reply to the same request: the KV cache
            # must not make it depend on what ran before (see PredictionConfig).
            "reproducible": True if self.seed is not None and self.seed >= 0 else None,
            "grammar": self.grammar,
            # OpenAI's -100 means "never": llama.cpp needs -inf to be sure of that.
            "logit_bias": {t: (float("-inf") if b <= -100.0 else b) for t, b in self.logit_bias.items()}
            if self.logit_bias
            else None,
        }
        return {k: v for k, v in values.items() if v is not None}

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_SamplingRequest):
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_format: Literal["none", "auto", "deepseek", "deepseek-legacy"] | None = None
    """llama-server's: "none" keeps the reasoning markup in the content as written."""
    enable_thinking: bool | None = None
    """Xinference's request-level switch; `chat_template_kwargs.enable_thinking` works too."""
    chat_template_kwargs: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None

    @field_validator("modalities")
    @classmethod
    def _text_only(cls, value: list[str] | None) -> list[str] | None:
        other = [m for m in value or () if m != "text"]
        if other:
            raise ValueError(f"only text output is supported (not {', '.join(other)})")
        return value

    @field_validator("audio")
    @classmethod
    def _no_audio(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            raise ValueError("audio output is not supported")
        return value

    @property
    def top_logprobs_wanted(self) -> int | None:
        if self.logprobs:
            return self.top_logprobs or 0
        if self.top_logprobs:
            raise validation_error_for("top_logprobs", "top_logprobs: requires logprobs to be true")
        return None


class CompletionRequest(_SamplingRequest):
    prompt: str | list[str]
    echo: bool | None = False
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=5)

    @field_validator("best_of")
    @classmethod
    def _one_candidate(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("only best_of=1 is supported (one candidate per request)")
        return value

    @property
    def top_logprobs_wanted(self) -> int | None:
        return self.logprobs

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("give one prompt (a string, or a list of one string)")
        return value

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("echo is not supported")
        return value

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("suffix (fill-in-the-middle) is not supported")
        return value

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


def parse(model: type[RequestBody], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise validation_error(err, data) from None


def validation_error_for(param: str, message: str) -> ApiError:
    return ApiError(message, param=param, code="invalid_value")

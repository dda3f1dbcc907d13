"""Chats on a loaded model: render the model's template, fit the context, parse reasoning.

The prompt is built on the model thread (a `PromptSource`) so that fitting a long
conversation into the context counts real tokens, and so that nothing renders while
an earlier request still runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar, Unpack

from engine.toolcalls.grammar import UnsupportedToolFormat, tool_call_grammar

from ..chat import Chat
from ..contract import ToolChoice
from ..llama import (
    ENGINE_DEFAULTS,
    EventStream,
    LoadedModel,
    PreparedPrompt,
    PromptSource,
    SyncEventStream,
    Tokenizer,
)
from ..prediction import ContextOverflowPolicy, PredictionConfig
from ..toolcalls import OutputPipeline, ToolCallParser, detect_tool_format, to_default_format
from .limits import RenderLimits
from .reasoning import ReasoningParser, markers_for_template, prompt_opens_reasoning
from .templates import ChatTemplate, TemplateError, render

Messages = list[dict[str, Any]]
ChatInput = Chat | dict[str, Any] | str
ConfigInput = PredictionConfig | dict[str, Any] | None
_Stream = TypeVar("_Stream", EventStream, SyncEventStream)


class ReplyOptions(TypedDict, total=False):
    """The keywords every way of asking a local model for a reply takes
    (`LoadedModel.respond_events`/`respond_sync` and the functions below), named once."""

    defaults: PredictionConfig
    """What unset prediction settings take (ENGINE_DEFAULTS when not given)."""
    tools: list[dict[str, Any]] | None
    """OpenAI function schemas offered to the model."""
    tool_choice: ToolChoice
    """"auto" (the default), "none", "required" or a function name."""
    template_kwargs: dict[str, Any] | None
    """Extra variables for the chat template (e.g. `thinking`)."""
    parallel_tool_calls: bool
    """OpenAI's switch: tool_choice "required" may be answered with one or more calls
    (True; the server's default, as OpenAI's) or exactly one (False, the default here:
    the act loop runs a call at a time)."""


def tool_format(model: LoadedModel) -> str:
    """The tool-call format of the model's template ("default" when it renders no tools).

    The model works it out once, on its own thread while it loads: detecting it renders
    the template, and no template code runs on the caller's event loop."""
    return model.tool_format


def template_tool_format(template: ChatTemplate) -> str:
    """The tool-call format a template's model writes, found by rendering a probe."""
    fmt = detect_tool_format(template.source)
    if fmt == "mistral" and "[ARGS]" in template.source:
        return "mistral_v11"  # for the grammar; the parser reads both Mistral forms
    return fmt


def constrain_tool_call(
    model: LoadedModel,
    config: PredictionConfig,
    tools: list[dict[str, Any]],
    tool_choice: ToolChoice,
    *,
    parallel: bool = False,
) -> PredictionConfig:
    """For "required" or a named function: a grammar that makes the model call a tool.
    "required" with `parallel` allows one or more calls; otherwise, and for a named
    function (OpenAI's: that function, called once), exactly one."""
    if not tools or tool_choice in (None, "auto", "none"):
        return config
    fmt = tool_format(model)
    try:
        several = parallel and tool_choice == "required"
        grammar = tool_call_grammar(tools, tool_choice, fmt, parallel=several)
    except UnsupportedToolFormat as err:
        from ..logbus import LOG_BUS

        LOG_BUS.emit("warning", "tools", f"tool_choice not enforced: {err}")
        return config
    return config.model_copy(update={"grammar": grammar})


def as_chat(history: Chat | dict[str, Any] | str) -> Chat:
    """A Chat from what LM Studio's `respond` accepts: a Chat, a history dict or one message."""
    return history if isinstance(history, Chat) else Chat.from_history(history)


def reply_reserve(config: PredictionConfig, n_ctx: int) -> int:
    """Tokens kept free for the reply when fitting a conversation into the context."""
    if config.max_tokens and config.max_tokens > 0:
        return min(config.max_tokens, n_ctx // 2)
    return n_ctx // 4


def render_chat(
    model: LoadedModel,
    messages: Messages,
    config: PredictionConfig,
    *,
    tools: list[dict[str, Any]] | None = None,
    template_kwargs: dict[str, Any] | None = None,
    limits: RenderLimits | None = None,
) -> str:
    """The prompt for `messages`; TemplateLimitError past `limits` (see formatting.limits)."""
    template: ChatTemplate = model.chat_template
    if config.prompt_template is not None:
        # LM Studio's promptTemplate: this prediction only, in the same sandbox and limits.
        template = ChatTemplate(
            config.prompt_template.template, "file", "the prediction's promptTemplate",
            "promptTemplate",
        )
    thinking = True if config.enable_thinking is None else config.enable_thinking
    kwargs = dict(template_kwargs or {})
    # DeepSeek V3.1 and Granite name the switch `thinking`; the others `enable_thinking`.
    kwargs.setdefault("thinking", thinking)
    return render(
        template,
        messages,
        tools=tools,
        add_generation_prompt=True,
        enable_thinking=thinking,
        bos_token=model.bos_text,
        eos_token=model.eos_text,
        limits=limits,
        **kwargs,
    )


def chat_prompt(
    model: LoadedModel,
    chat: Chat,
    config: PredictionConfig,
    *,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: ToolChoice = "auto",
    template_kwargs: dict[str, Any] | None = None,
) -> PromptSource:
    """The PromptSource for one reply to `chat` (a snapshot: later edits do not leak in)."""
    messages = chat.to_template_messages()
    policy: ContextOverflowPolicy = config.context_overflow_policy or "truncateMiddle"
    offered = list(tools or []) if tool_choice != "none" else []
    fmt = tool_format(model) if offered else "default"
    native_tools = offered if fmt != "default" else None

    template_has_tools = tool_format(model) != "default"
    # A forced call's grammar (constrain_tool_call) starts the output with the call, even
    # where the generation prompt opened a thinking block.
    forced = bool(offered) and tool_choice not in (None, "auto", "none") and bool(config.grammar)

    def as_rendered(candidate: Messages) -> Messages:
        # Templates without tool support learn the default [TOOL_REQUEST] format from a
        # system prompt, and see tool results as user turns; a later request that offers
        # no tools still shows the earlier calls and results that way.
        if offered and fmt == "default":
            return to_default_format(candidate, offered)
        if not template_has_tools and has_tool_history(candidate):
            return to_default_format(candidate, [])
        return candidate

    def render_messages(candidate: Messages, limits: RenderLimits) -> str:
        shaped = as_rendered(candidate)
        try:
            return render_chat(
                model, shaped, config, tools=native_tools, template_kwargs=template_kwargs,
                limits=limits,
            )
        except TemplateError:
            if not (offered and fmt == "default" and shaped and shaped[0]["role"] == "system"):
                raise
            # Some templates (gemma-2) refuse a system turn; the tool prompt then goes
            # at the top of the first user turn instead.
            return render_chat(
                model, fold_system(shaped), config, tools=None, template_kwargs=template_kwargs,
                limits=limits,
            )

    def prepare(tokenize: Tokenizer, n_ctx: int) -> PreparedPrompt:
        limits = RenderLimits.for_context(n_ctx, max_seconds=model.config.template_seconds)

        def tokens_of(candidate: Messages) -> tuple[str, list[int], bool]:
            text = render_messages(candidate, limits)
            # Templates that write bos_token themselves must not get a second one.
            add_special = not (model.bos_text and text.startswith(model.bos_text))
            return text, tokenize(text, add_special), add_special

        budget = n_ctx - reply_reserve(config, n_ctx)
        text, tokens, add_special = tokens_of(messages)
        note = None
        if len(tokens) > budget and policy != "stopAtLimit":
            fitted, dropped = fit_messages(messages, policy, lambda m: len(tokens_of(m)[1]) <= budget)
            if dropped:
                text, tokens, add_special = tokens_of(fitted)
                note = (
                    f"context overflow ({policy}): dropped {dropped} of {len(messages)} messages "
                    f"to fit {n_ctx} tokens of context"
                )
        markers = markers_for_template(model.chat_template.source)
        reasoning = ReasoningParser(
            markers,
            # The rendered prompt says whether the output starts inside a thinking block.
            starts_in_reasoning=prompt_opens_reasoning(text, markers) and not forced,
            raw=not reasoning_parsed(config),
        )
        calls = None
        if offered:
            names = [str(t.get("function", t).get("name")) for t in offered]
            calls = ToolCallParser("mistral" if fmt == "mistral_v11" else fmt, names, offered)
        parser = OutputPipeline(reasoning, calls)
        return PreparedPrompt(text, add_special, parser, note, tokens)

    return prepare


def reasoning_parsed(config: PredictionConfig) -> bool:
    """Is reasoning split out of the content (LM Studio's `reasoningParsing.enabled`)?"""
    return config.reasoning_parsing is None or config.reasoning_parsing.enabled


def has_tool_history(messages: Messages) -> bool:
    return any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)


def fold_system(messages: Messages) -> Messages:
    """The system message's text moved to the top of the first user message."""
    system, rest = messages[0], [dict(m) for m in messages[1:]]
    for message in rest:
        if message.get("role") == "user":
            message["content"] = f"{system.get('content') or ''}\n\n{message.get('content') or ''}"
            return rest
    return [{"role": "user", "content": system.get("content") or ""}, *rest]


def fit_messages(
    messages: Messages, policy: ContextOverflowPolicy, fits: Callable[[Messages], bool]
) -> tuple[Messages, int]:
    """Drop the oldest whole turns until `fits` says yes; the last turn always stays.

    A turn starts at a user message, so what remains still alternates as templates
    expect. truncateMiddle keeps the system prompt; rollingWindow lets it go too.
    """
    system = [m for m in messages[:1] if m.get("role") == "system"]
    rest = messages[len(system) :]
    starts = [i for i, m in enumerate(rest) if m.get("role") == "user"] or [0]
    keep_system = system if policy == "truncateMiddle" else []
    for start in starts[1:]:
        candidate = keep_system + rest[start:]
        if fits(candidate):
            return candidate, len(messages) - len(candidate)
    last = keep_system + rest[starts[-1] :]
    if policy == "truncateMiddle" and not fits(last):
        last = rest[starts[-1] :]
    return last, len(messages) - len(last)


def respond_events(
    model: LoadedModel, chat: ChatInput, config: ConfigInput = None, **options: Unpack[ReplyOptions]
) -> EventStream:
    """`model.respond_events(...)`, as a function (the server and older callers use it),
    taking every `ReplyOptions` key (`parallel_tool_calls` too)."""
    return start_reply(EventStream(asyncio.get_running_loop()), model, chat, config, options)


def respond_sync(
    model: LoadedModel, chat: ChatInput, config: ConfigInput = None, **options: Unpack[ReplyOptions]
) -> SyncEventStream:
    """`model.respond_sync(...)`, as a function."""
    return model.respond_sync(chat, config, **options)


def start_reply(
    stream: _Stream, model: LoadedModel, chat: ChatInput, config: ConfigInput, options: ReplyOptions
) -> _Stream:
    """Queue one reply to `chat` on `model`, its events going to `stream` (returned)."""
    unknown = sorted(options.keys() - ReplyOptions.__annotations__.keys())
    if unknown:  # as a misspelt keyword argument fails on an explicit signature
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
    defaults = options.get("defaults", ENGINE_DEFAULTS)
    tools = options.get("tools")
    tool_choice = options.get("tool_choice", "auto")
    template_kwargs = options.get("template_kwargs")
    merged = PredictionConfig.parse(config).merged_over(defaults)
    parallel = options.get("parallel_tool_calls", False)
    merged = constrain_tool_call(model, merged, list(tools or []), tool_choice, parallel=parallel)
    source = chat_prompt(
        model,
        as_chat(chat),
        merged,
        tools=tools,
        tool_choice=tool_choice,
        template_kwargs=template_kwargs,
    )
    stream.control = model.start_prediction(source, merged, stream.sink)
    return stream

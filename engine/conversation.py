"""Chats on a loaded model: render the model's template, fit the context, parse reasoning.

The prompt is built on the model thread (a `PromptSource`) so that fitting a long
conversation into the context counts real tokens, and so that nothing renders while
an earlier request still runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .chat import Chat
from .prediction import ContextOverflowPolicy, PredictionConfig
from .reasoning import ReasoningParser, markers_for_template, prompt_opens_reasoning
from .runtime import (
    ENGINE_DEFAULTS,
    EventStream,
    LoadedModel,
    PreparedPrompt,
    PromptSource,
    SyncEventStream,
    Tokenizer,
)
from .templates import ChatTemplate, render

Messages = list[dict[str, Any]]


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
) -> str:
    template: ChatTemplate = model.chat_template
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
        **kwargs,
    )


def chat_prompt(
    model: LoadedModel,
    chat: Chat,
    config: PredictionConfig,
    *,
    tools: list[dict[str, Any]] | None = None,
    template_kwargs: dict[str, Any] | None = None,
) -> PromptSource:
    """The PromptSource for one reply to `chat` (a snapshot: later edits do not leak in)."""
    messages = chat.to_template_messages()
    policy: ContextOverflowPolicy = config.context_overflow_policy or "truncateMiddle"

    def prepare(tokenize: Tokenizer, n_ctx: int) -> PreparedPrompt:
        def tokens_of(candidate: Messages) -> tuple[str, list[int], bool]:
            text = render_chat(model, candidate, config, tools=tools, template_kwargs=template_kwargs)
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
        parser = ReasoningParser(markers, starts_in_reasoning=prompt_opens_reasoning(text, markers))
        return PreparedPrompt(text, add_special, parser, note, tokens)

    return prepare


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
    model: LoadedModel,
    chat: Chat | dict[str, Any] | str,
    config: PredictionConfig | dict[str, Any] | None = None,
    *,
    defaults: PredictionConfig = ENGINE_DEFAULTS,
    tools: list[dict[str, Any]] | None = None,
    template_kwargs: dict[str, Any] | None = None,
) -> EventStream:
    """One assistant reply as an async stream of events. Call from a running event loop."""
    merged = PredictionConfig.parse(config).merged_over(defaults)
    stream = EventStream(asyncio.get_running_loop())
    source = chat_prompt(model, as_chat(chat), merged, tools=tools, template_kwargs=template_kwargs)
    stream.control = model.start_prediction(source, merged, stream.sink)
    return stream


def respond_sync(
    model: LoadedModel,
    chat: Chat | dict[str, Any] | str,
    config: PredictionConfig | dict[str, Any] | None = None,
    *,
    defaults: PredictionConfig = ENGINE_DEFAULTS,
    tools: list[dict[str, Any]] | None = None,
    template_kwargs: dict[str, Any] | None = None,
) -> SyncEventStream:
    merged = PredictionConfig.parse(config).merged_over(defaults)
    stream = SyncEventStream()
    source = chat_prompt(model, as_chat(chat), merged, tools=tools, template_kwargs=template_kwargs)
    stream.control = model.start_prediction(source, merged, stream.sink)
    return stream

"""Chat templates: choosing one for a model, and rendering chats with it ourselves.

We render with Jinja in a sandbox, the way Hugging Face transformers does, instead of
letting llama.cpp format the chat: the exact prompt string is then known, logged and
shown, and the KV-cache prefix logic sees exactly what the model sees.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeAlias

import jinja2
import jinja2.ext
import jinja2.meta
import jinja2.nodes
import jinja2.parser
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from engine.errors import TemplateError
from engine.formatting.limits import (
    STEP_FUNCTION,
    LimitedCodeGenerator,
    RenderCancelled,
    RenderLimits,
    TemplateLimitError,
    current_budget,
    instrument,
    render_budget,
    render_step,
)
from engine.formatting.reasoning import KNOWN_MARKERS, ReasoningMarkers, prompt_opens_reasoning

TemplateOrigin: TypeAlias = Literal["gguf", "fallback", "file"]

REFUSED_PREFIX = "chat template refused the conversation: "




@dataclass(frozen=True, slots=True)
class ChatTemplate:
    """A Jinja chat template and where it came from."""

    source: str
    origin: TemplateOrigin
    reason: str
    """A sentence for people: why this template was chosen."""
    name: str


# --- fallbacks ----------------------------------------------------------------------
# Used only when the GGUF carries no template. They are deliberately lenient (no role
# alternation checks, tool results become user turns) because the person cannot fix a
# template they never chose.

GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set ns = namespace(system='') -%}"
    "{%- for message in messages if message['role'] == 'system' -%}"
    "{%- set ns.system = ns.system + (message['content'] or '') + '\\n\\n' -%}"
    "{%- endfor -%}"
    "{%- set ns.first_user = true -%}"
    "{%- for message in messages if message['role'] != 'system' -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else 'user' -%}"
    "{{ '<start_of_turn>' + role + '\\n' }}"
    "{%- if role == 'user' and ns.first_user -%}{{ ns.system }}{%- set ns.first_user = false -%}"
    "{%- endif -%}"
    "{{ (message['content'] or '') | trim }}{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set role = 'ipython' if message['role'] == 'tool' else message['role'] -%}"
    "{{ '<|start_header_id|>' + role + '<|end_header_id|>\\n\\n' }}"
    "{{ (message['content'] or '') | trim }}{{ '<|eot_id|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif -%}"
)

CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- set role = 'user' if message['role'] == 'tool' else message['role'] -%}"
    "{{ '<|im_start|>' + role + '\\n' + (message['content'] or '') + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

_GEMMA_ARCHITECTURES = frozenset({"gemma", "gemma2", "gemma3", "gemma3n", "gemma-embedding"})
_LLAMA3_HINTS = ("llama-3", "llama3", "llama_3", "llama 3", "<|start_header_id|>", "<|eot_id|>")


def select_template(
    *,
    gguf_template: str | None,
    architecture: str,
    model_name: str = "",
    override_file: Path | None = None,
    hint: str = "",
) -> ChatTemplate:
    """Choose the template for a model: the person's file, else the GGUF's, else a fallback.

    `hint` is any extra text that may reveal the family when the GGUF has no template,
    e.g. the model's file name or a few special tokens of its vocabulary.
    """
    if override_file is not None:
        return _template_from_file(Path(override_file))
    if gguf_template and gguf_template.strip():
        problem = _syntax_problem(gguf_template)
        if problem is None:
            return ChatTemplate(
                source=gguf_template,
                origin="gguf",
                reason="the model file carries a chat template (tokenizer.chat_template)",
                name=f"{model_name} (from GGUF)" if model_name else "from GGUF",
            )
        return _fallback(
            architecture, model_name, hint, f"the GGUF's template does not parse ({problem})"
        )
    return _fallback(architecture, model_name, hint, "the model file carries no chat template")


def _template_from_file(path: Path) -> ChatTemplate:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TemplateError(f"cannot read chat template file {path}: {err}") from None
    problem = _syntax_problem(source)
    if problem is not None:
        raise TemplateError(f"chat template file {path} does not parse: {problem}")
    return ChatTemplate(
        source=source,
        origin="file",
        reason=f"the configuration overrides the template with {path}",
        name=path.name,
    )


def _fallback(architecture: str, model_name: str, hint: str, why: str) -> ChatTemplate:
    arch = architecture.lower()
    clues = f"{model_name} {hint}".lower()
    if arch in _GEMMA_ARCHITECTURES:
        source, name, family = GEMMA_TEMPLATE, "Gemma turns (fallback)", f"a {architecture} model"
    elif arch == "llama" and any(h in clues for h in _LLAMA3_HINTS):
        source, name, family = LLAMA3_TEMPLATE, "Llama 3 headers (fallback)", "a Llama 3 model"
    else:
        source, name = CHATML_TEMPLATE, "ChatML (fallback)"
        family = f"the {architecture or 'unknown'} architecture has no known format"
    return ChatTemplate(
        source=source, origin="fallback", reason=f"{why}; using {name} for {family}", name=name
    )


# --- rendering ----------------------------------------------------------------------


def render(
    template: ChatTemplate,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    enable_thinking: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    limits: RenderLimits | None = None,
    **kwargs: Any,
) -> str:
    """Render `messages` (HF/OpenAI shape) into the prompt string the model should see.

    Raises TemplateError, never a raw Jinja error; TemplateLimitError when the render
    goes past `limits` (steps, seconds, output size; RenderLimits() when not given).
    """
    compiled = _compile(template.source, template.name)
    # The caller's objects are copied so that templates may use list.append and pop
    # (Kimi-K2 does) without reaching the caller's data.
    messages = copy.deepcopy(messages)
    if any(m.get("tool_calls") for m in messages):
        _fit_tool_calls(messages, _tool_call_shape(template.source))
    context: dict[str, Any] = _legacy_variables(template.source, tools)
    context.update(copy.deepcopy(kwargs))
    context.update(
        messages=messages,
        add_generation_prompt=add_generation_prompt,
        enable_thinking=enable_thinking,
        bos_token=bos_token,
        eos_token=eos_token,
    )
    if tools:
        # Without tools the variable stays undefined, as llama.cpp does: tool-use
        # templates (Hermes, Command R+) loop over `tools` unguarded, which fails on
        # None, and the templates that test `tools is not none` first default an
        # undefined `tools` to none.
        context["tools"] = copy.deepcopy(tools)
    try:
        return _render_limited(compiled, context, limits or RenderLimits(), template.name)
    except TemplateError:
        raise
    except jinja2.TemplateError as err:
        raise TemplateError(f"chat template {template.name!r} failed: {_describe(err)}") from None
    except Exception as err:  # noqa: BLE001 - any failure inside a template is the template's
        raise TemplateError(
            f"chat template {template.name!r} failed while rendering: {type(err).__name__}: {err}"
        ) from None


def _render_limited(
    compiled: jinja2.Template, context: dict[str, Any], limits: RenderLimits, name: str
) -> str:
    """Render within `limits`, counting the output as it streams out of the template."""
    with render_budget(limits, name) as budget:
        parts = []
        for chunk in compiled.generate(context):
            budget.add_output(len(chunk))
            parts.append(chunk)
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class _ToolCallShape:
    """How a template wants assistant tool calls, when it differs from the HF norm
    (arguments as a dict, content a string)."""

    string_arguments: bool = False
    """Older templates (DeepSeek, Functionary, FireFunction) concatenate the arguments."""
    null_content: bool = False
    """The R1 templates recognise a tool-call turn by `content is none`."""


_PROBE_CALL = {"name": "llamaterm_probe_tool", "arguments": {"probe_arg": "probe_value"}}


@lru_cache(maxsize=32)
def _tool_call_shape(source: str) -> _ToolCallShape:
    """Find, by rendering a probe, the shape in which this template shows tool calls.

    llama.cpp's template engine probes the same way; the first shape whose rendering
    shows the call wins, and the HF norm is kept when none does.
    """
    for shape in (
        _ToolCallShape(),
        _ToolCallShape(string_arguments=True),
        _ToolCallShape(null_content=True),
        _ToolCallShape(string_arguments=True, null_content=True),
    ):
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": "probe"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "abcDEF123", "type": "function", "function": dict(_PROBE_CALL)}
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "abcDEF123",
                "name": "llamaterm_probe_tool",
                "content": "probe result",
            },
        ]
        _fit_tool_calls(messages, shape)
        context = _legacy_variables(source, None)
        context.update(messages=messages, add_generation_prompt=True, bos_token="", eos_token="")
        try:
            text = _render_limited(_compile(source, "probe"), context, RenderLimits(), "probe")
        except RenderCancelled:
            raise  # not a finding about the template: nothing may be cached
        except TemplateLimitError:
            break  # the other shapes would only take as long again
        except Exception:  # noqa: BLE001, S112 - a failed probe only rules this shape out
            continue
        if "llamaterm_probe_tool" in text and "probe_value" in text:
            return shape
    return _ToolCallShape()


def _fit_tool_calls(messages: list[dict[str, Any]], shape: _ToolCallShape) -> None:
    for message in messages:
        calls = message.get("tool_calls")
        if not calls:
            continue
        if shape.null_content and not message.get("content"):
            message["content"] = None
        if shape.string_arguments:
            for call in calls:
                function = call.get("function", {})
                if not isinstance(function.get("arguments"), str):
                    function["arguments"] = json.dumps(
                        function.get("arguments", {}), ensure_ascii=False
                    )


def _legacy_variables(source: str, tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Variables some templates expect besides the standard ones, filled as llama.cpp does.

    FireFunction v2 reads its tools from `functions` (a JSON string) and the date
    from `datetime`.
    """
    try:
        wanted = _undeclared_variables(source)
    except TemplateError:
        return {}
    extra: dict[str, Any] = {}
    if "functions" in wanted:
        specs = [tool.get("function", tool) for tool in tools or []]
        extra["functions"] = json.dumps(specs, ensure_ascii=False, indent=2)
    if "datetime" in wanted:
        extra["datetime"] = datetime.now().strftime("%b %d %Y %H:%M:%S GMT")
    return extra


def template_supports_tools(template: ChatTemplate | str) -> bool:
    """Does the template put the `tools` list into the prompt?

    Rendering with a probe tool is the reliable test: many templates mention `tools`
    only to check whether it is defined.
    """
    chat_template = _as_template(template)
    probe = "llamaterm_probe_tool"
    tool = {
        "type": "function",
        "function": {
            "name": probe,
            "description": "probe",
            "parameters": {"type": "object", "properties": {}, "required": []},
        },
    }
    messages = [{"role": "user", "content": "hello"}]
    try:
        return probe in render(chat_template, messages, tools=[tool])
    except TemplateLimitError:
        return False
    except TemplateError:
        try:
            return "tools" in _undeclared_variables(chat_template.source)
        except TemplateError:
            return False


def template_opens_reasoning(rendered_prompt: str, markers: ReasoningMarkers | None = None) -> bool:
    """Does the prompt end inside a reasoning block that the template opened?

    Without `markers`, every known family's are tried.
    """
    candidates = [markers] if markers is not None else list(KNOWN_MARKERS)
    return any(prompt_opens_reasoning(rendered_prompt, m) for m in candidates)


def _as_template(template: ChatTemplate | str) -> ChatTemplate:
    if isinstance(template, ChatTemplate):
        return template
    return ChatTemplate(source=template, origin="file", reason="given as text", name="template")


def _describe(err: jinja2.TemplateError) -> str:
    if isinstance(err, jinja2.TemplateSyntaxError):
        return f"syntax error on line {err.lineno}: {err.message}"
    if isinstance(err, jinja2.UndefinedError):
        return f"{err.message} (the template needs a value the conversation does not have)"
    if isinstance(err, jinja2.sandbox.SecurityError):
        return f"the sandbox forbids an operation: {err}"
    return str(err) or type(err).__name__


def _syntax_problem(source: str) -> str | None:
    try:
        _compile(source, "template")
    except TemplateError as err:
        return str(err).split(": ", 1)[-1]
    return None


@lru_cache(maxsize=32)
def _undeclared_variables(source: str) -> frozenset[str]:
    try:
        return frozenset(jinja2.meta.find_undeclared_variables(_environment().parse(source)))
    except jinja2.TemplateError as err:
        raise TemplateError(_describe(err)) from None


def _compile(source: str, name: str) -> jinja2.Template:
    try:
        return _compiled(source)
    except jinja2.TemplateError as err:
        raise TemplateError(f"chat template {name!r} does not parse: {_describe(err)}") from None


@lru_cache(maxsize=32)
def _compiled(source: str) -> jinja2.Template:
    return _environment().from_string(source)


# --- the Jinja environment, as transformers builds it ---------------------------------


class _GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks;
    for rendering it is a no-op, but templates that use it must still parse."""

    tags = {"generation"}  # noqa: RUF012 - jinja2 declares it as a plain set

    def parse(self, parser: jinja2.parser.Parser) -> list[jinja2.nodes.Node]:
        next(parser.stream)
        body: list[jinja2.nodes.Node] = parser.parse_statements(
            ("name:endgeneration",), drop_needle=True
        )
        return body


class _ChatSandbox(ImmutableSandboxedEnvironment):
    """transformers' sandbox, except that lists may grow and shrink.

    llama.cpp's own Jinja engine allows list.append and pop and real templates rely on
    it (Kimi-K2-Thinking queues tool-call ids). `render` deep-copies its inputs, so the
    only lists a template can change are its own.
    """

    _LIST_METHODS = frozenset({"append", "pop", "extend", "insert"})
    # `'x' * n` is checked against the output limit before it is built.
    intercepted_binops = frozenset({"*", "+"})
    code_generator_class = LimitedCodeGenerator

    def _parse(self, source: str, name: str | None, filename: str | None) -> jinja2.nodes.Template:
        return instrument(super()._parse(source, name, filename))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = current_budget()
        if budget is not None:
            budget.step()  # macros, recursive loops and methods
            budget.check_call(__obj, args)
            return budget.check_size(super().call(__context, __obj, *args, **kwargs))
        return super().call(__context, __obj, *args, **kwargs)

    def checked_size(self, value: Any) -> Any:
        budget = current_budget()
        return value if budget is None else budget.check_size(value)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = current_budget()
        if budget is None:
            return super().call_binop(context, operator, left, right)
        if operator == "*":
            budget.check_repeat(left, right)
        return budget.check_size(super().call_binop(context, operator, left, right))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, list) and attr in self._LIST_METHODS:
            return SandboxedEnvironment.is_safe_attribute(self, obj, attr, value)
        return super().is_safe_attribute(obj, attr, value)


def _raise_exception(message: str) -> None:
    raise TemplateError(REFUSED_PREFIX + str(message))


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's own tojson escapes HTML characters (<, >, &, '), which changes the
    # prompt; transformers replaces it with plain json.dumps, and so do we.
    return json.dumps(
        value,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
        default=_json_default,
    )


def _json_default(value: Any) -> Any:
    # `x | map(...) | tojson` hands over a generator; llama.cpp's engine lists it.
    if isinstance(value, Iterator):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = _ChatSandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTag, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals[STEP_FUNCTION] = render_step
    return env

"""`ChatModel`: what every model offers its consumers, local, remote or batched.

The TUI, the server, the agent loop and the Python API hold a `ChatModel` and
never ask which class it is: a fact that differs between models (where it runs,
what it holds in memory) is an attribute here, not an `isinstance` check. Harlequin's
`adapter.py` plays this part for databases; this module is importable without
llama.cpp, an HTTP client or Textual.

Implementations: `engine.llama.LoadedModel` (llama.cpp in this process) and
`engine.remote.RemoteModel` (an OpenAI-compatible server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .chat import Chat
    from .llama.channels import EventStream
    from .prediction import ModelInfo, PredictionConfig

ToolChoice = Any
"""OpenAI's tool_choice: "auto", "none", "required", or {"type": "function", "function":
{"name": ...}} (a bare tool name works too)."""


@runtime_checkable
class ChatModel(Protocol):
    """A model that streams completions and chat replies as the engine's events.

    Every prediction is an `EventStream`: `async for event in stream` yields
    `PromptProgress`, `FirstToken`, `ContentDelta`, ... and ends with exactly one
    `Finished(result)` or `Failed(error)`. Failures after the stream has started
    arrive as `Failed`, never as an exception out of the iteration.
    """

    @property
    def key(self) -> str:
        """The id the model goes by: a catalog key (local) or the server's model id (remote)."""
        ...

    @property
    def info(self) -> ModelInfo:
        """What the model is: display name, architecture, context length, chat template.

        Raises:
            ModelLoadError: a local model asked before it finished loading.
        """
        ...

    @property
    def is_loaded(self) -> bool:
        """Whether predictions may start (False once `unload` was called)."""
        ...

    @property
    def is_remote(self) -> bool:
        """True when another server runs the model: this process holds none of its memory,
        and serving it again from here would only relay it."""
        ...

    @property
    def location(self) -> str:
        """Where the model is, for display and to tell two models apart: a file path
        (local) or the server's API base URL (remote)."""
        ...

    @property
    def placement(self) -> str:
        """What runs it, in a few words for a status line: "12/12 layers on GPU",
        "CPU only (...)", "remote"."""
        ...

    def complete_events(
        self, prompt: str, config: PredictionConfig | dict[str, Any] | None = None
    ) -> EventStream:
        """Start a raw completion of `prompt`. Call from a running event loop.

        Args:
            prompt: the exact text the model continues (no chat template applied).
            config: prediction settings (LM Studio's camelCase or snake_case keys); unset
                ones take the model's defaults.

        Returns:
            The prediction's event stream; `cancel()` on it stops the prediction.

        Raises:
            PredictionConfigError: `config` has an unknown key or a bad value.
            ModelLoadError: the model has been unloaded.
        """
        ...

    def respond_events(
        self,
        chat: Chat | dict[str, Any] | str,
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: ToolChoice = "auto",
        template_kwargs: dict[str, Any] | None = None,
    ) -> EventStream:
        """Start one assistant reply to `chat`. Call from a running event loop.

        Args:
            chat: a `Chat`, an LM Studio history dict, or one user message.
            config: prediction settings; unset ones take the model's defaults.
            tools: OpenAI function schemas offered to the model.
            tool_choice: "auto", "none", "required" or a function name; the last two
                make the model call a tool.
            template_kwargs: extra variables for the chat template (e.g. `thinking`).

        Returns:
            The reply's event stream; tool calls arrive as `ToolCallStarted`,
            `ToolCallArgumentsDelta` and `ToolCallFinished` events and in the result.

        Raises:
            PredictionConfigError: `config` has an unknown key or a bad value.
            ChatFormatError: `chat` cannot be read as a conversation.
            ModelLoadError: the model has been unloaded.
        """
        ...

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """The model's token ids for `text`. Blocks: call it off the event loop.

        Args:
            text: the text to tokenise; special-token text is read as special tokens.
            add_special: whether to add the model's BOS token (if it uses one).

        Returns:
            The token ids.

        Raises:
            ModelLoadError: the model has been unloaded.
            RemoteError: a remote server that cannot tokenise (it has no `/tokenize`).
        """
        ...

    def cancel(self) -> None:
        """Stop every prediction of this model that is queued or running.

        Each stops as `cancel()` on its own stream would: it finishes with stop
        reason `userStopped` and what it had produced.
        """
        ...

    def unload(self) -> None:
        """Free what this process holds of the model. Calling it again does nothing.

        A local model cancels its predictions, frees its memory and refuses later ones.
        A remote model holds nothing here: its open streams are cancelled, and it stays
        usable, since the server keeps the model.
        """
        ...

"""LM Studio's scoped clients, in process: `Client` and `AsyncClient`.

    with lms.Client() as client:
        model = client.llm.model("gemma-3-270m")
        print(client.system.list_downloaded_models())

    async with lms.AsyncClient() as client:
        model = await client.llm.model()
        async for fragment in await model.respond_stream("Hi"):
            ...

There is no server: a client reads the config once, loads models into this process
(the same ones `lms.llm()` shares) and, when closed, unloads those it loaded itself.
The async API streams the engine's async event stream (no thread per prediction).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Self

from . import api
from .api import LLM, ActResult
from .chat import AssistantResponse, Chat
from .errors import ModelNotFoundError, PredictionNotFinished
from .llama import EventStream, LoadedModel
from .load_config import LoadConfig
from .prediction import (
    ModelInfo,
    PredictionConfig,
    PredictionFragment,
    PredictionResult,
)
from .prediction_stream import as_fragment


@dataclass(frozen=True, slots=True)
class DownloadedLlm:
    """A model file the catalog found (LM Studio's DownloadedLlm): what it is, and how to
    load it. `lms.list_downloaded_models()` and `client.llm.list_downloaded()` list them."""

    model_key: str
    path: str
    display_name: str
    size_bytes: int
    architecture: str | None
    params_string: str | None
    max_context_length: int
    trained_for_tool_use: bool
    _client: Client
    format: str = "gguf"
    vision: bool = False
    type: str = "llm"

    @property
    def info(self) -> DownloadedLlm:
        return self

    def model(self, *, ttl: float | None = None, config: Any = None) -> LLM:
        """This model, loaded if it is not yet."""
        return self._client.llm.model(self.model_key, ttl=ttl, config=config)

    def load_new_instance(
        self, *, ttl: float | None = None, instance_identifier: str | None = None,
        config: Any = None,
    ) -> LLM:
        """Another instance of this model, loaded with `config`."""
        return self._client.llm.load_new_instance(
            self.model_key, instance_identifier, ttl=ttl, config=config
        )


def _downloaded(client: Client) -> list[DownloadedLlm]:
    from .models.catalog import scan_catalog, sources_for

    entries = scan_catalog(sources_for(client.settings)).entries
    return [
        DownloadedLlm(
            model_key=e.key, path=str(e.path), display_name=e.display_name,
            size_bytes=e.size_bytes, architecture=e.architecture,
            params_string=e.size_label, max_context_length=e.context_length or 0,
            trained_for_tool_use=e.tool_format != "default", _client=client,
        )
        for e in entries
        if e.ok
    ]


def _check_namespace(namespace: str | None) -> None:
    if namespace not in (None, "llm", "embedding"):
        raise ValueError(f"unknown model namespace {namespace!r}: 'llm' or 'embedding'")


class LlmNamespace:
    """`client.llm`: the models of one client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def model(
        self,
        model_key: str | None = None,
        /,
        *,
        ttl: float | None = None,
        config: LoadConfig | dict[str, Any] | None = None,
        on_load_progress: Callable[[float], Any] | None = None,
    ) -> LLM:
        """The model `model_key` names, loaded if it is not yet; without a key, a model
        already loaded, else the configured default (or the starter model)."""
        client = self._client
        if model_key is None and config is None:
            loaded = api.loaded_models()
            if loaded:
                return client._handle(loaded[0])
        before = {id(m) for m in api.loaded_models()}
        model = api._load(model_key, config, client.settings, on_progress=on_load_progress)
        return client._handle(model, ttl=ttl, loaded_here=id(model) not in before,
                              reload=lambda: api._load(model_key, config, client.settings))

    def load_new_instance(
        self,
        model_key: str,
        instance_identifier: str | None = None,
        *,
        ttl: float | None = None,
        config: LoadConfig | dict[str, Any] | None = None,
        on_load_progress: Callable[[float], Any] | None = None,
    ) -> LLM:
        """A new instance of `model_key` (even if one is loaded), known by
        `instance_identifier` (default: LM Studio's `key:2`, `key:3`...)."""
        from .models.loader import resolve_load

        client = self._client
        key = resolve_load(model_key, client.settings).key
        identifier = instance_identifier or api.new_instance_identifier(key)
        model = api._load(model_key, config, client.settings, instance=identifier,
                          on_progress=on_load_progress)
        return client._handle(model, ttl=ttl, loaded_here=True)

    def list_loaded(self) -> list[LLM]:
        return [self._client._handle(m) for m in api.loaded_models()]

    def list_downloaded(self) -> list[DownloadedLlm]:
        return _downloaded(self._client)

    def unload(self, model_identifier: str) -> None:
        for model in api.loaded_models():
            if model.key == model_identifier:
                api._forget(model)
                model.unload()
                return
        raise ModelNotFoundError(f"no loaded model is known as {model_identifier!r}")


class SystemNamespace:
    """`client.system`: what is on this machine."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list_downloaded_models(self) -> list[DownloadedLlm]:
        return _downloaded(self._client)


class Client:
    """An in-process stand-in for LM Studio's `Client`: `client.llm`, `client.system`.

    `api_host` is accepted for scripts that pass one, and must be None or a local
    address (there is no server to reach). Closing the client unloads the models it
    loaded (not those that were loaded already)."""

    def __init__(self, api_host: str | None = None, *, settings: Any = None) -> None:
        self._check_host(api_host)
        self._scoped = True
        self.settings = settings if settings is not None else api._settings()
        self.llm = LlmNamespace(self)
        self.system = SystemNamespace(self)
        self._mine: list[LoadedModel] = []
        self._closed = False

    @staticmethod
    def _check_host(api_host: str | None) -> None:
        if api_host not in (None, "", "localhost", "127.0.0.1") and not str(api_host).startswith(
            ("localhost:", "127.0.0.1:")
        ):
            raise ValueError(
                f"api_host {api_host!r}: this client runs models in process; it reaches no "
                "server (use the lmstudio package for a remote LM Studio)"
            )

    def _handle(
        self,
        model: LoadedModel,
        *,
        ttl: float | None = None,
        loaded_here: bool = False,
        reload: Callable[[], LoadedModel] | None = None,
    ) -> LLM:
        if self._closed:
            raise RuntimeError("the client is closed")
        if loaded_here and self._scoped:
            self._mine.append(model)
        handle = LLM(model, self.settings.prediction_defaults())
        handle._reload = reload
        if ttl is not None:
            handle._keep_for(ttl)
        return handle

    def list_downloaded_models(self, namespace: str | None = None) -> list[DownloadedLlm]:
        _check_namespace(namespace)
        return [] if namespace == "embedding" else _downloaded(self)

    def list_loaded_models(self, namespace: str | None = None) -> list[LLM]:
        _check_namespace(namespace)
        return [] if namespace == "embedding" else self.llm.list_loaded()

    def close(self) -> None:
        self._closed = True
        for model in self._mine:
            api._forget(model)
            model.unload()
        self._mine.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default_client: Client | None = None


def configure_default_client(api_host: str) -> None:
    """LM Studio's: the host the default client talks to. Here, only a local host is
    accepted (there is no server); the default client must not exist yet."""
    if _default_client is not None:
        raise RuntimeError("the default client is already created, cannot set its API host")
    Client._check_host(api_host)


def get_default_client(api_host: str | None = None) -> Client:
    """The client `lms.llm()` and the module-level functions stand for (made on first use,
    never closed: what it loads stays loaded, as with `lms.llm()`)."""
    global _default_client
    if api_host is not None:
        configure_default_client(api_host)
    if _default_client is None:
        _default_client = Client()
        _default_client._scoped = False
    return _default_client


def _reset_default_client() -> None:
    """Forget the default client (for tests, as the SDK's own function of that name)."""
    global _default_client
    _default_client = None


def list_downloaded_models(namespace: str | None = None) -> list[DownloadedLlm]:
    """The models the catalog finds (LM Studio's `lms.list_downloaded_models()`); the
    config is read afresh, as `lms.llm()` reads it."""
    return Client().list_downloaded_models(namespace)


# --- async ----------------------------------------------------------------------------


class AsyncPredictionStream:
    """`async for fragment in stream`, then `result()`; `await stream.wait_for_result()`.
    An async context manager too: leaving the block early cancels the prediction."""

    def __init__(
        self,
        events: EventStream,
        finish: Callable[[PredictionResult], PredictionResult],
        on_message: Callable[[Any], Any] | None = None,
        on_fragment: Callable[[PredictionFragment], Any] | None = None,
        on_first_token: Callable[[], Any] | None = None,
        on_progress: Callable[[float], Any] | None = None,
    ) -> None:
        self._events = events
        self._finish = finish
        self._on_message = on_message
        self._on_fragment = on_fragment
        self._on_first_token = on_first_token
        self._on_progress = on_progress
        self._result: PredictionResult | None = None
        self._fragments = self._generate()

    def __aiter__(self) -> AsyncIterator[PredictionFragment]:
        return self._fragments

    async def _generate(self) -> AsyncIterator[PredictionFragment]:
        async for event in self._events:
            fragment = as_fragment(event, self._on_progress, self._on_first_token)
            if fragment is None:
                continue
            if self._on_fragment:
                self._on_fragment(fragment)
            yield fragment
        if self._events.result is not None and self._on_message:
            result = self.result()
            self._on_message(
                AssistantResponse(content=result.content, reasoning=result.reasoning,
                                  tool_calls=list(result.tool_calls))
            )

    async def wait_for_result(self) -> PredictionResult:
        async for _ in self:
            pass
        return self.result()

    def result(self) -> PredictionResult:
        if not self._events._finished:
            raise PredictionNotFinished(
                "the prediction is still running: iterate the stream or await wait_for_result()"
            )
        if self._events.error is not None:
            raise self._events.error
        if self._result is None:
            assert self._events.result is not None
            self._result = self._finish(self._events.result)
        return self._result

    async def cancel(self) -> None:
        self._events.cancel()

    async def aclose(self) -> None:
        if not self._events._finished:
            self._events.cancel()
            async for _ in self._fragments:
                pass

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncLLM:
    """The async face of a loaded model: LM Studio's AsyncLLM methods, awaited."""

    def __init__(self, handle: LLM) -> None:
        self._handle = handle

    @property
    def identifier(self) -> str:
        return self._handle.identifier

    def __repr__(self) -> str:
        return f"AsyncLLM(identifier={self.identifier!r})"

    async def get_info(self) -> ModelInfo:
        return await asyncio.to_thread(self._handle.get_info)

    async def get_load_config(self) -> LoadConfig:
        return self._handle.get_load_config()

    async def get_context_length(self) -> int:
        return self._handle.get_context_length()

    async def tokenize(self, input: str | Iterable[str]) -> list[int] | list[list[int]]:
        return await asyncio.to_thread(self._handle.tokenize, input)

    async def count_tokens(self, input: str) -> int:
        return await asyncio.to_thread(self._handle.count_tokens, input)

    async def apply_prompt_template(self, history: Any, opts: dict[str, Any] | None = None) -> str:
        return await asyncio.to_thread(self._handle.apply_prompt_template, history, opts)

    async def unload(self) -> None:
        await asyncio.to_thread(self._handle.unload)

    def _stream(
        self, events: EventStream, cfg: PredictionConfig, callbacks: dict[str, Any]
    ) -> AsyncPredictionStream:
        model = self._handle._model

        def finish(result: PredictionResult) -> PredictionResult:
            stats = dataclasses.replace(result.stats, num_gpu_layers=float(model.offload.layers))
            return dataclasses.replace(
                result, stats=stats, prediction_config=cfg, load_config=model.config,
                model_info=api.instance_info(model, result.model_info),
            )

        return AsyncPredictionStream(
            events, finish,
            on_message=callbacks.get("on_message"),
            on_fragment=callbacks.get("on_prediction_fragment"),
            on_first_token=callbacks.get("on_first_token"),
            on_progress=callbacks.get("on_prompt_processing_progress"),
        )

    async def complete_stream(
        self, prompt: str, config: Any = None, *, response_format: Any = None,
        preset: str | None = None, **callbacks: Any,
    ) -> AsyncPredictionStream:
        _check_callbacks(callbacks)
        handle = self._handle
        cfg = api.prediction_config(config, handle._defaults, response_format=response_format,
                                    preset=preset)
        events = handle._live().complete_events(prompt, cfg)
        return self._stream(events, cfg, callbacks)

    async def complete(self, prompt: str, config: Any = None, **kwargs: Any) -> PredictionResult:
        return await (await self.complete_stream(prompt, config, **kwargs)).wait_for_result()

    async def respond_stream(
        self, history: Chat | dict[str, Any] | str, config: Any = None, *,
        response_format: Any = None, preset: str | None = None,
        tools: list[dict[str, Any]] | None = None, tool_choice: Any = "auto", **callbacks: Any,
    ) -> AsyncPredictionStream:
        _check_callbacks(callbacks)
        handle = self._handle
        if tools is None:
            tools = api.raw_tools(config, handle._defaults)
        cfg = api.prediction_config(config, handle._defaults, response_format=response_format,
                                    preset=preset, tools_offered=bool(tools))
        events = handle._live().respond_events(
            history, cfg, defaults=handle._defaults, tools=tools, tool_choice=tool_choice
        )
        return self._stream(events, cfg, callbacks)

    async def respond(self, history: Any, config: Any = None, **kwargs: Any) -> PredictionResult:
        return await (await self.respond_stream(history, config, **kwargs)).wait_for_result()

    async def act(self, chat: Any, tools: Iterable[Any], config: Any = None, **kwargs: Any) -> ActResult:
        """`LLM.act` (the same keywords), run off this event loop; callbacks are called
        from the thread it runs on."""
        return await asyncio.to_thread(self._handle.act, chat, list(tools), config, **kwargs)


_CALLBACKS = {"on_message", "on_prediction_fragment", "on_first_token",
              "on_prompt_processing_progress"}


def _check_callbacks(callbacks: dict[str, Any]) -> None:
    unknown = sorted(callbacks.keys() - _CALLBACKS)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")


class AsyncLlmNamespace:
    """`client.llm` of an AsyncClient: loading runs off the event loop."""

    def __init__(self, client: AsyncClient) -> None:
        self._sync = client._sync.llm

    async def model(self, model_key: str | None = None, /, **kwargs: Any) -> AsyncLLM:
        return AsyncLLM(await asyncio.to_thread(self._sync.model, model_key, **kwargs))

    async def load_new_instance(
        self, model_key: str, instance_identifier: str | None = None, **kwargs: Any
    ) -> AsyncLLM:
        handle = await asyncio.to_thread(
            self._sync.load_new_instance, model_key, instance_identifier, **kwargs
        )
        return AsyncLLM(handle)

    async def list_loaded(self) -> list[AsyncLLM]:
        return [AsyncLLM(h) for h in self._sync.list_loaded()]

    async def list_downloaded(self) -> list[DownloadedLlm]:
        return await asyncio.to_thread(self._sync.list_downloaded)

    async def unload(self, model_identifier: str) -> None:
        await asyncio.to_thread(self._sync.unload, model_identifier)


class AsyncSystemNamespace:
    def __init__(self, client: AsyncClient) -> None:
        self._sync = client._sync.system

    async def list_downloaded_models(self) -> list[DownloadedLlm]:
        return await asyncio.to_thread(self._sync.list_downloaded_models)


class AsyncClient:
    """`Client` for asyncio: `async with lms.AsyncClient() as client: ...`."""

    def __init__(self, api_host: str | None = None, *, settings: Any = None) -> None:
        self._sync = Client(api_host, settings=settings)
        self.llm = AsyncLlmNamespace(self)
        self.system = AsyncSystemNamespace(self)

    async def list_downloaded_models(self, namespace: str | None = None) -> list[DownloadedLlm]:
        return await asyncio.to_thread(self._sync.list_downloaded_models, namespace)

    async def list_loaded_models(self, namespace: str | None = None) -> list[AsyncLLM]:
        return [AsyncLLM(h) for h in self._sync.list_loaded_models(namespace)]

    async def aclose(self) -> None:
        await asyncio.to_thread(self._sync.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = [
    "AsyncClient",
    "AsyncLLM",
    "AsyncPredictionStream",
    "Client",
    "DownloadedLlm",
    "configure_default_client",
    "get_default_client",
    "list_downloaded_models",
]

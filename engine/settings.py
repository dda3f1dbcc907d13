"""The TOML config file's engine settings as pydantic models, and how the file is read.

`Settings` holds the engine's tables (paths, model, load, prediction, chat, models,
tools, server). The same file has the app's tables too ([ui], [keymap], [remotes]:
tui.config's `AppSettings` extends `Settings` with them); the engine reads past
those (`FRONT_END_TABLES`) and checks everything else.

Every section forbids unknown keys so that a typo is reported instead of being
silently ignored. The file is only ever read: llamaterm never writes the person's
config (remembered choices go to state.json, see tui.store.app_state).
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, TypeVar, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from engine import paths
from engine.errors import ConfigError
from engine.load_config import KvCacheType, LoadConfig
from engine.prediction import PredictionConfig
from engine.serve.settings import ServerSettings  # the [server] table; re-exported
from engine.store import describe_failure

ContextOverflowPolicy: TypeAlias = Literal["stopAtLimit", "truncateMiddle", "rollingWindow"]




def _expand_user(path: Path) -> Path:
    return paths.checked_path(path).expanduser()


UserPath = Annotated[Path, AfterValidator(_expand_user)]
"""A path in the config; a leading ~ is expanded, a NUL character refused (with the key)."""


class _Section(BaseModel):
    # Docstrings under fields become their descriptions, as in Posting.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )


ConfigSection = _Section
"""The base of every table of the config file, the front ends' tables included."""


class PathsSettings(_Section):
    data_dir: UserPath | None = None
    """Where chats, logs, state and downloaded models live; unset means $XDG_DATA_HOME/llamaterm."""
    model_dirs: list[UserPath] = Field(default_factory=list)
    """More directories to scan for .gguf files, besides the data directory's models/."""


class ModelSettings(_Section):
    default: str = ""
    """The model to load at start: a catalog key or a path. Empty means the last one used,
    or the starter model the first time."""


class ChatSettings(_Section):
    enable_thinking: bool = True
    """Let models that can think do so (passed to the chat template as enable_thinking)."""
    context_overflow_policy: ContextOverflowPolicy = "truncateMiddle"
    """What to do when a chat outgrows the context: stopAtLimit, truncateMiddle or rollingWindow."""
    system_prompt: str = ""
    """The system prompt of new chats; empty means none."""
    tools: bool = False
    """Offer the tools file's tools to new chats (each chat can turn them off)."""
    tool_choice: Literal["auto", "required"] = "auto"
    """New chats' tool choice: "auto" lets the model decide, "required" makes it call one."""


class LoadOverride(_Section):
    """The [load] settings one model overrides; unset fields come from [load].

    Mirrors LoadConfig field for field, with the same aliases and limits, but every
    field optional (a test keeps the two in step). The chat template is set on the
    model override itself, not here.
    """

    context_length: int | None = Field(default=None, ge=16, alias="contextLength")
    """Tokens of context (prompt plus reply) the model is loaded with."""
    gpu_layers: int | Literal["max"] | None = Field(default=None, alias="gpuLayers")
    """Layers offloaded to the GPU: 0 for none, "max" (or -1) for all."""
    threads: int | None = Field(default=None, ge=0)
    """CPU threads for generation; 0 means the machine's physical cores."""
    batch_size: int | None = Field(default=None, ge=1, alias="batchSize")
    """Prompt tokens evaluated per batch."""
    flash_attention: bool | None = Field(default=None, alias="flashAttention")
    """Use flash attention."""
    kv_cache_type: KvCacheType | None = Field(default=None, alias="kvCacheType")
    """Type of the K and V caches."""
    use_mmap: bool | None = Field(default=None, alias="useMmap")
    """Map the weights from the file instead of reading them into memory."""
    use_mlock: bool | None = Field(default=None, alias="useMlock")
    """Lock the weights in RAM."""
    seed: int | None = None
    """Default sampling seed for this model; -1 picks a random one per prediction."""
    parallel: int | None = Field(default=None, ge=1, le=64, alias="maxConcurrentPredictions")
    """Predictions that run at once on this model."""
    swa_full: bool | None = Field(default=None, alias="swaFull")
    """Keep the full sliding-window KV cache."""
    template_seconds: float | None = Field(default=None, gt=0, le=600, alias="templateSeconds")
    """Seconds one render of the chat template may take."""


class ModelOverride(_Section):
    load: LoadOverride = Field(default_factory=LoadOverride)
    """Load settings for this model only; keys as in [load]."""
    chat_template_file: UserPath | None = None
    """A Jinja chat template to use for this model instead of the one in its GGUF."""


class ToolsSettings(_Section):
    file: UserPath | None = None
    """The TOML file of tool definitions; unset means tools.toml in the data directory."""
    allowed_roots: list[UserPath] = Field(default_factory=list)
    """Directories the built-in file tools may read and write; empty means none."""




class Settings(_Section):
    """The engine's part of the config file."""

    FRONT_END_TABLES: ClassVar[frozenset[str]] = frozenset({"ui", "keymap", "remotes"})
    """Top-level tables the app reads (tui.config); the engine skips them unchecked."""

    paths: PathsSettings = Field(default_factory=PathsSettings)
    """Where things are on disk."""
    model: ModelSettings = Field(default_factory=ModelSettings)
    """Which model to start with."""
    load: LoadConfig = Field(default_factory=LoadConfig)
    """How every model is loaded, unless [models."<key>".load] says otherwise."""
    prediction: PredictionConfig = Field(default_factory=PredictionConfig)
    """Defaults for every prediction; unset fields take the engine's defaults."""
    chat: ChatSettings = Field(default_factory=ChatSettings)
    """Chat behaviour."""
    models: dict[str, ModelOverride] = Field(default_factory=dict)
    """Per-model overrides, keyed by catalog key or file name."""
    tools: ToolsSettings = Field(default_factory=ToolsSettings)
    """Tools the model may call."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    """The OpenAI-compatible server (llamaterm serve, or F8 in the app)."""

    @model_validator(mode="before")
    @classmethod
    def _skip_front_end_tables(cls, data: Any) -> Any:
        # A subclass that declares a front-end table as a field checks it; others skip it.
        if not isinstance(data, Mapping):
            return data
        skipped = cls.FRONT_END_TABLES - set(cls.model_fields)
        return {key: value for key, value in data.items() if key not in skipped}

    def data_dir(self) -> Path:
        """The data directory, honouring [paths] data_dir."""
        return paths.data_dir(self.paths.data_dir)

    def prediction_defaults(self) -> PredictionConfig:
        """The config file's [prediction] over the engine's own defaults."""
        chat = PredictionConfig.model_validate(
            {
                "enable_thinking": self.chat.enable_thinking,
                "context_overflow_policy": self.chat.context_overflow_policy,
            }
        )
        return self.prediction.merged_over(chat.merged_over(engine_prediction_defaults()))

    def model_override(self, key: str) -> ModelOverride | None:
        """The [models."<key>"] table, if there is one."""
        return self.models.get(key)

    def model_override_for(
        self, model_key: str, file_name: str = ""
    ) -> tuple[str, ModelOverride] | None:
        """The [models."<name>"] table that applies to a model and its name: looked up by
        key, then by file name; the first found applies."""
        for name in (model_key, file_name):
            if name and name in self.models:
                return name, self.models[name]
        return None

    def load_config_for(self, model_key: str, file_name: str = "") -> LoadConfig:
        """[load] with the model's override on top (see model_override_for). What a load
        really uses also has the remembered settings and the call's own: engine.models.loader."""
        from engine.models.loader import layered_load_config

        return layered_load_config(self, model_key, file_name)[0]


def engine_prediction_defaults() -> PredictionConfig:
    """What a prediction uses when neither the caller nor the config file says."""
    # By field name through model_validate: the constructor only takes the aliases
    # as far as type checkers know.
    return PredictionConfig.model_validate(
        {
            "temperature": 0.8,
            "max_tokens": -1,
            "top_k": 40,
            "top_p": 0.95,
            "min_p": 0.05,
            "repeat_penalty": 1.1,
            "seed": None,
        }
    )


SettingsT = TypeVar("SettingsT", bound=Settings)


def load_settings(path: Path | None = None) -> Settings:
    """Read the config file (default: paths.config_path()); a missing file gives the defaults.

    Raises ConfigError naming the file and each bad key. Never writes the file.
    """
    return read_config_file(Settings, path)


def read_config_file(schema: type[SettingsT], path: Path | None = None) -> SettingsT:
    """Read the config file as `schema` (`Settings` or a front end's subclass of it).

    A missing file gives the defaults. Raises ConfigError naming the file and each
    bad key, with spelling hints from `schema`. Never writes the file.
    """
    path = paths.config_path() if path is None else Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return schema()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    data = _parse_toml(path, raw)
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe_validation_error(schema, path, err, data)) from None
    except (RecursionError, MemoryError) as err:
        raise ConfigError(f"{path}: {describe_failure(err)}") from None


def _parse_toml(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        where = _toml_error_key(text, str(err))
        prefix = f"{path}: {where}" if where else str(path)
        raise ConfigError(f"{prefix}: invalid TOML: {err}") from None
    except (RecursionError, MemoryError) as err:
        # tomllib recurses into nested arrays and inline tables; a file must not crash us.
        raise ConfigError(f"{path}: invalid TOML: {describe_failure(err)}") from None


_LINE_IN_MESSAGE = re.compile(r"at line (\d+)")
_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")
_KEY_AT_START = re.compile(r"""^\s*([A-Za-z0-9_\-."']+?)\s*=""")


def _toml_error_key(text: str, message: str) -> str:
    """Best effort at the dotted key on the line tomllib complains about, else the line."""
    match = _LINE_IN_MESSAGE.search(message)
    if match is None:
        return ""
    number = int(match.group(1))
    lines = text.splitlines()
    key = _KEY_AT_START.match(lines[number - 1]) if number <= len(lines) else None
    if key is None:
        return f"line {number}"
    table = next(
        (m.group(1) for line in reversed(lines[: number - 1]) if (m := _TABLE_HEADER.match(line))),
        None,
    )
    dotted = _unquote_key(key.group(1))
    return f"{_unquote_key(table)}.{dotted}" if table else dotted


def _unquote_key(key: str) -> str:
    return key.replace('"', "").replace("'", "").replace(" ", "")


def _describe_validation_error(
    schema: type[BaseModel], path: Path, err: ValidationError, data: Any
) -> str:
    """One line per problem: `<file>: <dotted.key>: <what is wrong>`.

    A value that fails every member of a union (gpu_layers = "lots") makes pydantic
    report once per member; those are joined into one line about the key.
    """
    problems: dict[str, list[str]] = {}
    for item in err.errors():
        key, message = _describe_item(schema, item, data)
        messages = problems.setdefault(key, [])
        if message not in messages:
            messages.append(message)
    return "\n".join(f"{path}: {key}: {' or '.join(msgs)}" for key, msgs in problems.items())


def _describe_item(schema: type[BaseModel], item: ErrorDetails, data: Any) -> tuple[str, str]:
    loc = item["loc"]
    if item["type"] == "extra_forbidden":
        return _dotted(loc), _unknown_key_message(schema, loc, data)
    if item["type"] != "missing":
        loc = _loc_in_input(loc, data)
    # "Value error, " is how pydantic prefixes a validator's own message: noise here.
    return _dotted(loc) or "(top level)", item["msg"].removeprefix("Value error, ")


def _loc_in_input(loc: tuple[int | str, ...], data: Any) -> tuple[int | str, ...]:
    # Union members and validators add parts to loc that are not keys of the file.
    node = data
    for depth, part in enumerate(loc):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, Mapping) and isinstance(part, str) and _has_dotted(node, part):
            # A keymap id that the file wrote as nested tables.
            node = _get_dotted(node, part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return loc[:depth]
    return loc


def _unknown_key_message(schema: type[BaseModel], loc: tuple[int | str, ...], data: Any) -> str:
    name = str(loc[-1])
    parent = _loc_in_input(loc[:-1], data)
    known = _known_keys(schema, parent)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown setting{hint}"


def _known_keys(schema: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names and aliases of the section at `loc`, for spelling hints."""
    target: Any = schema
    for part in loc:
        target = _child_type(target, part)
    is_section = isinstance(target, type) and issubclass(target, BaseModel)
    return sorted(_names_of(target.model_fields.items())) if is_section else []


def _child_type(parent: Any, part: int | str) -> Any:
    if get_origin(parent) is dict:
        return get_args(parent)[1]
    is_section = isinstance(parent, type) and issubclass(parent, BaseModel)
    fields = parent.model_fields.items() if is_section else ()
    return next((f.annotation for name, f in fields if part in (name, f.alias)), None)


def _names_of(fields: Iterable[tuple[str, Any]]) -> Iterable[str]:
    for name, field in fields:
        yield name
        if field.alias:
            yield field.alias


def _has_dotted(table: Mapping[str, Any], dotted: str) -> bool:
    node: Any = table
    for piece in dotted.split("."):
        if not isinstance(node, Mapping) or piece not in node:
            return False
        node = node[piece]
    return True


def _get_dotted(table: Mapping[str, Any], dotted: str) -> Any:
    node: Any = table
    for piece in dotted.split("."):
        node = node[piece]
    return node


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _dotted(loc: tuple[int | str, ...]) -> str:
    """The key as TOML would write it: model names with dots in them are quoted."""
    return ".".join(
        str(part) if _BARE_KEY.match(str(part)) else json.dumps(str(part)) for part in loc
    )

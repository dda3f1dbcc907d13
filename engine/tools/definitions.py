"""Tool definitions: the `[[tool]]` table's schema, the tools file, and argument checks.

The tools file is TOML ([tools] file in the config, else `tools.toml` beside the
config file, else `<data_dir>/tools.toml`), one `[[tool]]` table per tool; `tools.example.toml` documents every key:

```toml
[[tool]]
name = "count_lines"
description = "Count the lines of a text file."
parameters = { type = "object", properties = { path = { type = "string" } }, required = ["path"] }
command = ["wc", "-l", "--", "{path}"]
path_parameters = ["path"]
timeout_sec = 10
```

A tool runs either a built-in (`builtin = "read_text_file"`, engine.tools.builtin_tools)
or a command given as an argv list (engine.tools.commands). Approval is not decided
here: `ToolDefinition.requires_approval` tells the act loop whether to ask first.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine import paths
from engine.store import atomic_write_text, describe_failure
from engine.tools.builtin_tools import BUILTINS, BuiltinName

if TYPE_CHECKING:
    from engine.settings import Settings

TOOLS_FILE_NAME = "tools.toml"
DEFAULT_TIMEOUT_SEC = 30.0
DEFAULT_MAX_OUTPUT_CHARS = 20_000

# OpenAI's rule for function names; templates and parsers rely on it too.
_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# `{{` and `}}` are literal braces; `{name}` is a placeholder; any other brace is literal,
# so Python snippets such as `-c "d = {}"` need no escaping.
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_-]*)\}")
_EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
_log = logging.getLogger("llamaterm.tools")



class ToolDefinition(BaseModel):
    """One `[[tool]]` table of the tools file."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str = Field(pattern=_NAME_PATTERN)
    """The function name the model calls: letters, digits, `_` and `-`, at most 64."""
    description: str = ""
    """What the tool does, for the model. Built-ins have one of their own."""
    parameters: dict[str, Any] = Field(default_factory=lambda: dict(_EMPTY_OBJECT_SCHEMA))
    """A JSON schema (an object schema) for the arguments, as in OpenAI's function format.
    Built-ins have one of their own."""
    builtin: BuiltinName | None = None
    """Run one of the built-in Python tools instead of a command."""
    command: list[str] | None = Field(default=None, min_length=1)
    """The argv list to run; `{param}` elements or parts are replaced by arguments."""
    cwd: Path | None = None
    """Working directory of the command; unset means the app's."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment variables added to the app's for the command."""
    path_parameters: list[str] = Field(default_factory=list)
    """Parameters of a command that are paths: each must resolve inside the allowed
    roots, and the command receives it as an absolute path."""
    allow_options: bool = False
    """Let an argument that starts with `-` fill a placeholder at the start of an element
    before any `--` (where the program would read it as an option). Off, such a call is
    refused: `["sort", "{input}"]` must not get `--output=/etc/x` from a model."""
    timeout_sec: float = Field(default=DEFAULT_TIMEOUT_SEC, gt=0)
    """Seconds before the command, and everything it started, is killed."""
    max_output_chars: int = Field(default=DEFAULT_MAX_OUTPUT_CHARS, ge=1)
    """Characters of output sent back to the model; the rest is cut with a note."""
    requires_approval: bool = True
    """Ask the person before each call."""

    @model_validator(mode="before")
    @classmethod
    def _builtin_defaults(cls, data: Any) -> Any:
        name = data.get("builtin") if isinstance(data, dict) else None
        builtin = BUILTINS.get(name) if isinstance(name, str) else None
        if builtin is None:
            return data
        return {
            "description": builtin.description,
            "parameters": builtin.parameters,
            **data,
        }

    @field_validator("cwd")
    @classmethod
    def _expand_cwd(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            validator_for(value, default=Draft202012Validator).check_schema(value)
        except SchemaError as err:
            where = "/".join(str(p) for p in err.path)
            raise ValueError(
                f"not a valid JSON schema{f' at {where}' if where else ''}: {err.message}"
            ) from None
        if value.get("type") != "object":
            raise ValueError('must be an object schema: type = "object"')
        return value

    @model_validator(mode="after")
    def _runnable(self) -> ToolDefinition:
        if (self.builtin is None) == (self.command is None):
            raise ValueError("give exactly one of `builtin` and `command`")
        if self.command is not None:
            _check_command(self.command, self.parameter_names())
        elif self.cwd is not None or self.env or self.path_parameters or self.allow_options:
            raise ValueError("cwd, env, path_parameters and allow_options apply to commands only")
        unknown = [p for p in self.path_parameters if p not in self.parameter_names()]
        if unknown:
            raise ValueError(f"path_parameters names no parameter: {', '.join(unknown)}")
        return self

    def parameter_names(self) -> list[str]:
        properties = self.parameters.get("properties")
        return list(properties) if isinstance(properties, dict) else []

    def option_placeholders(self) -> list[str]:
        """The parameters whose value would be read as an option if it started with `-`:
        those at the start of an element, before the first literal `--`."""
        names: list[str] = []
        for element in (self.command or [])[1:]:
            if element == "--":
                break
            name = leading_placeholder(element)
            if name is not None and name not in names:
                names.append(name)
        return names

    def warnings(self) -> list[str]:
        """What is allowed but probably not meant: today, placeholders that could take an
        option, of a tool that does not allow options (calls that try are refused)."""
        if self.allow_options:
            return []
        return [
            f'{{{name}}} is not after "--": a value starting with "-" will be refused; '
            f'put "--" before it, or set allow_options = true if it takes options'
            for name in self.option_placeholders()
        ]

    def openai_schema(self) -> dict[str, Any]:
        """The tool as OpenAI's `tools` list and chat templates expect it."""
        return openai_function_schema(self.name, self.description, self.parameters)

    def to_toml_table(self) -> dict[str, Any]:
        """The table `save_tools` writes: unset keys and a built-in's own texts left out."""
        table = self.model_dump(mode="json", exclude_none=True)
        for key in ("env", "path_parameters", "allow_options"):
            if not table[key]:
                del table[key]
        builtin = BUILTINS.get(self.builtin or "")
        if builtin is not None:
            for key in ("description", "parameters"):
                if table[key] == getattr(builtin, key):
                    del table[key]
        return table


def openai_function_schema(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A function tool as OpenAI's `tools` list and chat templates expect it; the one
    shape for tools-file tools and Python-function tools (engine.agent) alike."""
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _check_command(command: list[str], parameters: list[str]) -> None:
    if placeholders(command[0]):
        # The model picks arguments, never the program.
        raise ValueError("the program (command[0]) cannot contain a placeholder")
    used = {name for element in command for name in placeholders(element)}
    unknown = sorted(used - set(parameters))
    if unknown:
        known = ", ".join(parameters) or "none"
        names = ", ".join(f"{{{name}}}" for name in unknown)
        raise ValueError(f"command placeholder {names} names no parameter (parameters: {known})")


def leading_placeholder(element: str) -> str | None:
    """The parameter of the placeholder an argv element starts with, if it does."""
    match = PLACEHOLDER.match(element)
    return match.group(1) if match is not None else None


def placeholders(element: str) -> list[str]:
    """The parameter names of the `{param}` placeholders in one argv element."""
    return [m.group(1) for m in PLACEHOLDER.finditer(element) if m.group(1)]


# --- the tools file -----------------------------------------------------------------


def tools_file_candidates(data_dir: Path) -> list[Path]:
    """Where a tools file is looked for when the config does not name one, first first:
    beside the config file (its directory holds what a person writes), then in the
    data directory (where it always was)."""
    return [paths.config_path().parent / TOOLS_FILE_NAME, Path(data_dir) / TOOLS_FILE_NAME]


def default_tools_path(data_dir: Path) -> Path:
    """The tools file read when the config does not say: the first candidate that exists,
    else the one in the data directory (where to create one). Reads the environment
    (XDG_CONFIG_HOME, LLAMATERM_CONFIG) at each call."""
    candidates = tools_file_candidates(data_dir)
    return next((path for path in candidates if path.exists()), candidates[-1])


def tools_path(settings: Settings, data_dir: Path | None = None) -> Path:
    """The tools file actually read, to read and to name to the person: [tools] file,
    else `default_tools_path` of `data_dir` (default: the settings' data directory)."""
    configured = settings.tools.file
    if configured is not None:
        return configured
    return default_tools_path(data_dir if data_dir is not None else settings.data_dir())


def read_configured_tools(settings: Settings, data_dir: Path | None = None) -> ToolsFile:
    """`read_tools_file` of `tools_path`, with a warning naming any other candidate file
    that exists and is therefore not read (so neither is ignored silently)."""
    path = tools_path(settings, data_dir)
    found = read_tools_file(path)
    if settings.tools.file is not None:
        return found
    data = data_dir if data_dir is not None else settings.data_dir()
    unread = [p for p in tools_file_candidates(data) if p != path and p.exists()]
    notes = [f"{p}: not read: {path} comes first (merge them, or remove one)" for p in unread]
    return replace(found, warnings=[*found.warnings, *notes])


@dataclass(frozen=True)
class ToolsFile:
    """What reading a tools file found."""

    path: Path
    """The file read (or looked for: a missing file is no tools and no error)."""
    tools: list[ToolDefinition] = field(default_factory=list)
    """The valid definitions, in file order."""
    errors: list[str] = field(default_factory=list)
    """One line per invalid tool, or one for a file that cannot be read at all."""
    warnings: list[str] = field(default_factory=list)
    """One line per thing allowed but probably not meant (`ToolDefinition.warnings`)."""


def read_tools_file(path: Path) -> ToolsFile:
    """The tools file's valid definitions, its errors and its warnings.

    A missing file is no tools and no error. A file that is not TOML loads nothing and
    reports its line. The file is only read, never rewritten.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ToolsFile(path)
    except OSError as err:
        return ToolsFile(path, errors=[f"{path}: cannot read: {err.strerror or err}"])
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        return ToolsFile(path, errors=[f"{path}: not UTF-8 text (byte {err.start})"])
    except tomllib.TOMLDecodeError as err:
        return ToolsFile(path, errors=[_toml_error(path, err)])
    except (RecursionError, MemoryError) as err:
        # tomllib recurses into nested arrays and inline tables; a file must not crash us.
        return ToolsFile(path, errors=[f"{path}: invalid TOML: {describe_failure(err)}"])
    try:
        return _definitions(path, data)
    except (RecursionError, MemoryError) as err:
        return ToolsFile(path, errors=[f"{path}: {describe_failure(err)}"])


def load_tools(path: Path) -> tuple[list[ToolDefinition], list[str]]:
    """The valid definitions in the tools file, and one error line per invalid one.

    Warnings are logged (logger `llamaterm.tools`), not returned: callers show the
    second list as errors, and a warned-about tool works. `read_tools_file` has them.
    """
    found = read_tools_file(path)
    for warning in found.warnings:
        _log.warning("%s", warning)
    return found.tools, found.errors


def _toml_error(path: Path, err: tomllib.TOMLDecodeError) -> str:
    match = re.search(r"at line (\d+)", str(err))
    where = f"{path}:{match.group(1)}" if match else str(path)
    return f"{where}: invalid TOML: {err}"


def _definitions(path: Path, data: dict[str, Any]) -> ToolsFile:
    errors = [
        f"{path}: unknown top-level key {key!r}{_did_you_mean(key, ['tool'])}; "
        "tools are [[tool]] tables"
        for key in data
        if key != "tool"
    ]
    tables = data.get("tool", [])
    if not isinstance(tables, list):
        return ToolsFile(
            path, errors=[*errors, f"{path}: `tool` must be an array of tables: write [[tool]]"]
        )
    tools: list[ToolDefinition] = []
    warnings: list[str] = []
    for number, table in enumerate(tables, start=1):
        label = _tool_label(number, table)
        try:
            tool = ToolDefinition.model_validate(table)
        except ValidationError as err:
            errors.append(f"{path}: {label}: {_describe(err)}")
            continue
        if any(t.name == tool.name for t in tools):
            errors.append(f"{path}: {label}: another tool already has this name; skipped")
            continue
        tools.append(tool)
        warnings.extend(f"{path}: {label}: warning: {warning}" for warning in tool.warnings())
    return ToolsFile(path, tools, errors, warnings)


def _tool_label(number: int, table: Any) -> str:
    name = table.get("name") if isinstance(table, dict) else None
    return f"tool {name!r} (#{number})" if isinstance(name, str) else f"tool #{number} (no name)"


def _describe(err: ValidationError) -> str:
    problems: list[str] = []
    for item in err.errors():
        loc = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            message = f"unknown key{_did_you_mean(loc, list(ToolDefinition.model_fields))}"
        else:
            message = item["msg"].removeprefix("Value error, ")
        problem = f"{loc}: {message}" if loc else message
        if problem not in problems:
            problems.append(problem)
    return "; ".join(problems)


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def save_tools(path: Path, tools: Iterable[ToolDefinition]) -> None:
    """Write the tools file atomically. Comments of an existing file are not kept."""
    document = {"tool": [tool.to_toml_table() for tool in tools]}
    header = "# llamaterm tools: one [[tool]] table each; see tools.example.toml.\n\n"
    atomic_write_text(Path(path), header + tomli_w.dumps(document))


# --- arguments ----------------------------------------------------------------------


def validate_arguments(tool: ToolDefinition, arguments: Mapping[str, Any] | str) -> list[str]:
    """What is wrong with `arguments` (a dict or a JSON string) for `tool`; [] if nothing."""
    parsed, problem = _parse_arguments(arguments)
    if problem is not None:
        return [problem]
    validator_class = validator_for(tool.parameters, default=Draft202012Validator)
    validator = validator_class(tool.parameters, format_checker=validator_class.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(parsed), key=lambda e: [str(p) for p in e.path])
    return [_schema_problem(error.absolute_path, error.message) for error in errors]


def _parse_arguments(arguments: Mapping[str, Any] | str) -> tuple[dict[str, Any], str | None]:
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}, None
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as err:
            return {}, f"arguments are not valid JSON: {err}"
    if not isinstance(arguments, Mapping):
        return {}, f"arguments must be a JSON object, not {type(arguments).__name__}"
    return dict(arguments), None


def _schema_problem(path: Iterable[Any], message: str) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return f"arguments{where}: {message}"


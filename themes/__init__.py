"""llamaterm's themes: TOML files validated by pydantic, turned into Textual themes.

A theme file names the base colours Textual derives its palette from, and the
colours of llamaterm's roles (who said what, reasoning, tool calls, generated
text), which become app variables such as `$role-user` in the stylesheet:

    name = "llamaterm-dark"
    dark = true

    [colors]
    primary = "#7aa2f7"
    error = "#f7768e"          # also the `error` role: Textual's own `$error`
    ...

    [roles]
    role-user = "#7dcfff"
    role-assistant = "#c0caf5"
    reasoning = "#737aa2"
    tool-call = "#e0af68"
    generated-text = "#9ece6a"

Loading never raises for a bad file: each problem comes back as one line, so the
app can report them all in one notification and go on with the themes that loaded.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from textual.color import Color, ColorParseError
from textual.theme import Theme

from engine.store import describe_failure

ROLE_VARIABLES: tuple[str, ...] = (
    "role-user",
    "role-assistant",
    "reasoning",
    "tool-call",
    "generated-text",
)
"""App variables every llamaterm theme defines (besides `error`, which is Textual's)."""

DEFAULT_ROLE_COLORS: dict[str, str] = {
    "role-user": "#5fafd7",
    "role-assistant": "#d0d0d0",
    "reasoning": "#8a8a8a",
    "tool-call": "#d7af5f",
    "generated-text": "#87d787",
}
"""Role colours for themes that are not ours (Textual's built-in ones)."""


def builtin_themes_dir() -> Path:
    """The directory of the theme files shipped with llamaterm."""
    return Path(__file__).parent


def _check_color(value: str) -> str:
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f'{value!r} is not a colour (try "#rrggbb")') from None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ThemeColors(_Section):
    """The base colours; Textual derives shades and the rest of the palette from them."""

    primary: str
    error: str
    secondary: str | None = None
    accent: str | None = None
    warning: str | None = None
    success: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    boost: str | None = None

    @field_validator("*")
    @classmethod
    def _colors(cls, value: str | None) -> str | None:
        return None if value is None else _check_color(value)


class ThemeRoles(_Section):
    """Colours of llamaterm's roles, available in the stylesheet as `$<name>`."""

    role_user: str = Field(alias="role-user")
    role_assistant: str = Field(alias="role-assistant")
    reasoning: str
    tool_call: str = Field(alias="tool-call")
    generated_text: str = Field(alias="generated-text")

    @field_validator("*")
    @classmethod
    def _colors(cls, value: str) -> str:
        return _check_color(value)

    def as_variables(self) -> dict[str, str]:
        return self.model_dump(by_alias=True)


class ThemeFile(_Section):
    """One theme file."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    dark: bool = True
    colors: ThemeColors
    roles: ThemeRoles
    variables: dict[str, str] = Field(default_factory=dict)
    """Any other Textual theme variables (e.g. "footer-key-foreground"), passed as they are."""

    def to_theme(self) -> Theme:
        colors = self.colors.model_dump()
        return Theme(
            name=self.name,
            dark=self.dark,
            variables={**self.variables, **self.roles.as_variables()},
            **colors,
        )


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message names the file and the problems."""


def load_theme_file(path: Path) -> Theme:
    """Read and validate one theme file; raises ThemeFileError."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ThemeFileError(f"{path.name}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ThemeFileError(f"{path.name}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise ThemeFileError(f"{path.name}: invalid TOML: {err}") from None
    except (RecursionError, MemoryError) as err:
        # tomllib recurses into nested arrays and inline tables; a file must not crash us.
        raise ThemeFileError(f"{path.name}: invalid TOML: {describe_failure(err)}") from None
    try:
        return ThemeFile.model_validate(data).to_theme()
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'file'}: {item['msg']}"
            for item in err.errors()
        )
        raise ThemeFileError(f"{path.name}: {problems}") from None
    except (ValueError, RecursionError, MemoryError) as err:
        raise ThemeFileError(f"{path.name}: {describe_failure(err)}") from None


def load_themes(directories: Iterable[Path]) -> tuple[list[Theme], list[str]]:
    """Every `*.toml` theme in the directories, in order, and one line per broken file.

    A later directory's theme replaces an earlier one of the same name, so a person's
    own theme directory can override a shipped theme.
    """
    themes: dict[str, Theme] = {}
    errors: list[str] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ThemeFileError as err:
                errors.append(str(err))
                continue
            themes[theme.name] = theme
    return list(themes.values()), errors

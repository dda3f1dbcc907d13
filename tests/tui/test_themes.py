"""Theme files: validated, turned into Textual themes, broken ones reported."""

from __future__ import annotations

from pathlib import Path

from themes import ROLE_VARIABLES, builtin_themes_dir, load_themes


def test_shipped_themes_load_with_every_role() -> None:
    themes, errors = load_themes([builtin_themes_dir()])
    assert errors == []
    names = {theme.name for theme in themes}
    assert {"llamaterm-dark", "llamaterm-light", "llamaterm-256", "llamaterm-contrast"} <= names
    for theme in themes:
        assert set(ROLE_VARIABLES) <= set(theme.variables), theme.name
        assert theme.error is not None
    assert any(not theme.dark for theme in themes)


def test_broken_files_are_reported_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "bad-toml.toml").write_text("name = [unclosed")
    (tmp_path / "bad-color.toml").write_text(
        'name = "x"\n[colors]\nprimary = "#12"\nerror = "red"\n'
        '[roles]\nrole-user = "red"\nrole-assistant = "red"\nreasoning = "red"\n'
        'tool-call = "red"\ngenerated-text = "red"\n'
    )
    (tmp_path / "missing-roles.toml").write_text(
        'name = "y"\n[colors]\nprimary = "red"\nerror = "red"\n'
    )
    themes, errors = load_themes([builtin_themes_dir(), tmp_path])
    assert len(themes) == 4
    assert len(errors) == 3
    joined = "\n".join(errors)
    assert "bad-toml.toml: invalid TOML" in joined
    assert "bad-color.toml: colors.primary" in joined and "not a colour" in joined
    assert "missing-roles.toml: roles" in joined


def test_a_later_directory_overrides_a_shipped_theme(tmp_path: Path) -> None:
    source = (builtin_themes_dir() / "llamaterm-dark.toml").read_text()
    (tmp_path / "mine.toml").write_text(
        source.replace('primary = "#7aa2f7"', 'primary = "#ff0000"')
    )
    themes, errors = load_themes([builtin_themes_dir(), tmp_path])
    assert errors == []
    dark = next(theme for theme in themes if theme.name == "llamaterm-dark")
    assert dark.primary == "#ff0000"

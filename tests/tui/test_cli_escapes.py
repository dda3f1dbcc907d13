"""`--stop "\\n"` is a newline: the escapes of command-line strings."""

from __future__ import annotations

import argparse

import pytest

from tui.cli.escapes import escaped_string, unescape
from tui.cli.headless import prediction_config
from tui.cli.main import build_parser


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        (r"\n", "\n"),
        (r"\t|\r", "\t|\r"),
        (r"a\\nb", "a\\nb"),
        (r"\x24 ", "$ "),
        (r"\u2014", "\u2014"),
        (r"C:\models\d", r"C:\models\d"),
        ("plain", "plain"),
        ("trailing\\", "trailing\\"),
    ],
)
def test_unescape(given: str, meant: str) -> None:
    assert unescape(given) == meant


def test_an_empty_stop_string_is_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        escaped_string("")


@pytest.mark.parametrize("command", ["complete", "chat"])
def test_the_readme_example_stops_at_a_newline(command: str) -> None:
    args = build_parser().parse_args([command, "--stop", r"\n", "--stop", "END"])
    assert prediction_config(args)["stop_strings"] == ["\n", "END"]


def test_the_help_documents_the_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["complete", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert r"\n, \t, \r, \\, \xNN and \uNNNN are read as escapes" in help_text

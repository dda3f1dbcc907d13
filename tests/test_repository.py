"""The repository stands alone: what README promises is what CI runs, and no test or benchmark
reads anything outside the repository (a fresh clone has nothing beside it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("Install and run the tests", 1)[1]
    match = re.search(r"```sh\n(.+?)\n```", section, re.S)
    assert match, "README lost its test command block"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    command = _readme_test_command()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci.splitlines(), f".ci/run does not run README's command: {command}"


def test_ci_runs_in_a_copy_of_the_repository_alone() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "git ls-files" in ci and "mktemp -d" in ci


def test_no_test_or_benchmark_reads_outside_the_repository() -> None:
    # `parents[N]` climbing above the repository, or the sibling shared/ folder.
    escapes = re.compile(r"\.\./shared|[\"']shared[\"']\s*/|/work/")
    offenders = []
    for folder in ("tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue
            text = path.read_text(encoding="utf-8")
            depth = len(path.relative_to(ROOT).parts) - 1
            for m in re.finditer(r"parents\[(\d+)\]", text):
                if int(m.group(1)) > depth:
                    offenders.append(f"{path.relative_to(ROOT)}: parents[{m.group(1)}]")
            if escapes.search(text):
                offenders.append(f"{path.relative_to(ROOT)}: {escapes.search(text).group(0)}")
    assert not offenders, offenders


def test_the_chat_templates_the_tests_read_are_in_the_repository() -> None:
    templates = ROOT / "tests" / "data" / "chat-templates"
    names = {p.name for p in templates.glob("*.jinja")}
    assert len(names) >= 39
    readme = (templates / "README.md").read_text(encoding="utf-8")
    # Each file is named (with its source model) in the README beside it.
    missing = [n for n in names if n not in readme]
    assert not missing, missing

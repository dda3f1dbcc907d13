"""README's LM Studio SDK section: its example runs, and what its table says is there, is."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import engine as lms

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("### The LM Studio SDK, in process", 1)[1].split("\n### ", 1)[0]


def test_the_example_runs(isolated_dirs: Path, tiny_model_path: Path) -> None:
    models = isolated_dirs / "data" / "llamaterm" / "models"
    models.mkdir(parents=True)
    shutil.copyfile(tiny_model_path, models / "gemma-3-270m-tiny.gguf")
    # A seed makes the run the same each time (with seed 3 the random model closes the
    # structured reply's JSON within the cap); the cap keeps the other replies short.
    config = isolated_dirs / "config" / "llamaterm" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[prediction]\nseed = 3\nmax_tokens = 300\n")
    code = re.search(r"```python\n(.*?)```", section(), re.DOTALL)
    assert code is not None
    model = lms.llm("gemma-3-270m")
    try:
        scope = {"lms": lms, "model": model}
        exec(compile(code.group(1), "README", "exec"), scope)  # noqa: S102 - our own README
        assert isinstance(scope["book"], dict) and set(scope["book"]) == {"title", "year"}
        assert scope["result"].rounds >= 1 and scope["result"].total_time_seconds > 0
    finally:
        model.unload()


def test_what_the_table_says_is_there_is(isolated_dirs: Path) -> None:
    rows = [line for line in section().splitlines() if line.startswith("| `")]
    assert len(rows) > 15
    client = lms.Client()
    roots = {"lms": lms, "LLM": lms.LLM, "Chat": lms.Chat, "client": client,
             "PredictionStream": lms.PredictionStream, "AsyncLLM": lms.AsyncLLM}
    checked = 0
    for row in rows:
        names, here = row.split(" | ")[0], row.split(" | ")[1]
        if here != "yes":
            continue
        for name in re.findall(r"`((?:lms|LLM|Chat|client|PredictionStream)\.[\w.]+)", names):
            obj = roots[name.split(".")[0]]
            for part in name.split(".")[1:]:
                assert hasattr(obj, part), f"README lists {name}, which is not there"
                obj = getattr(obj, part)
            checked += 1
    assert checked >= 12
    for name in ("get_default_client", "configure_default_client", "BaseModel",
                 "ToolFunctionDef", "AsyncClient", "LMStudioPredictionError",
                 "LMStudioModelNotFoundError", "LMStudioCancelledError"):
        assert hasattr(lms, name), name

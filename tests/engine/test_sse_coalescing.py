"""Server-sent events: what arrives together goes out in one write."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gguf_factory import EOS_ID

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.serve.requestlog import RequestLog
from engine.serve.streaming import EventStreamResponse
from engine.serve.translate import Reply, TextChunks


async def test_events_that_arrived_together_go_out_in_one_send(tiny_model_path: Path) -> None:
    model = LoadedModel.load(tiny_model_path, LoadConfig(threads=1))
    try:
        config = {"temperature": 0, "maxTokens": 30, "logitBias": {EOS_ID: float("-inf")}}
        stream = model.complete_events("the quick brown fox", config)
        # The whole prediction is in before the response starts: one wake-up's worth.
        assert await asyncio.to_thread(stream.control.done.wait, 30)
        await asyncio.sleep(0.05)
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            return {}

        log = RequestLog("POST", "/v1/completions", "test")
        response = EventStreamResponse(stream, TextChunks(Reply("tiny", "text_completion"), False), log)
        await response({"type": "http"}, receive, send)
        bodies = [m["body"] for m in sent if m["type"] == "http.response.body" and m["body"]]
        events = b"".join(bodies).split(b"\n\n")
        assert sum(e.startswith(b"data: {") for e in events) >= 30
        assert events[-2] == b"data: [DONE]"
        # All in one send, [DONE] included: not one send per token.
        assert len(bodies) == 1
        assert stream.result is not None and stream.result.stats.predicted_tokens_count == 30
    finally:
        model.unload()

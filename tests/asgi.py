"""Raw ASGI helpers: call an app with a scope and collect what it sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from corsengine.types import ASGIApp, Message


async def call(
    app: ASGIApp, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None, path: str = "/"
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One HTTP request through ``app``; returns (status, headers, body)."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers or [],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return start["status"], list(start.get("headers", [])), body


def plain_app(extra_headers: list[tuple[bytes, bytes]] | None = None) -> ASGIApp:
    """A bare ASGI app answering 200 "app" and recording each scope it saw."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _speak_lifespan(receive, send)
            return
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": list(extra_headers or [])})
        await send({"type": "http.response.body", "body": b"app"})

    app.seen = seen  # type: ignore[attr-defined]
    return app


async def _speak_lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run ``app``'s lifespan around the block, as a server does: startup, then shutdown."""
    started, stopping = anyio.Event(), anyio.Event()
    messages = iter(["lifespan.startup", "lifespan.shutdown"])

    async def receive() -> Message:
        message = next(messages)
        if message == "lifespan.shutdown":
            await stopping.wait()
        return {"type": message}

    async def send(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        await started.wait()
        try:
            yield
        finally:
            stopping.set()

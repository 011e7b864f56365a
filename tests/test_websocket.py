"""WebSocket origin checks: a cross-site handshake is refused before the app accepts it.

Raw ASGI for both ways of refusing (the ``websocket.http.response`` extension, or a close
before accept), then real uvicorn servers with both of its WebSocket implementations and a
real WebSocket client on loopback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import uvicorn
import websockets
from websockets.asyncio.client import connect

from corsengine import ConfigurationError, CORSMiddleware, Policy
from corsengine.types import Message

ALLOWED, EVIL = "https://app.example.com", "https://evil.example"


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    """Accepts a WebSocket and echoes one message; records that it ran."""
    echo_app.handshakes += 1  # type: ignore[attr-defined]
    assert scope["type"] == "websocket"
    message = await receive()
    assert message["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    message = await receive()
    if message["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message.get("text")})
    await send({"type": "websocket.close", "code": 1000})


echo_app.handshakes = 0  # type: ignore[attr-defined]


def handshake(app: Any, origin: str | None, *, extension: bool) -> tuple[int, list[Message]]:
    """Run one handshake through ``app`` as a server would; (handshakes the app saw, sent)."""
    headers = [(b"host", b"api.example.com")] + ([(b"origin", origin.encode())] if origin else [])
    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": headers,
        "extensions": {"websocket.http.response": {}} if extension else {},
    }
    incoming = iter([{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}])
    sent: list[Message] = []

    async def receive() -> Message:
        return next(incoming, {"type": "websocket.disconnect", "code": 1000})

    async def send(message: Message) -> None:
        sent.append(message)

    before = echo_app.handshakes  # type: ignore[attr-defined]
    anyio.run(app, scope, receive, send)
    return echo_app.handshakes - before, sent  # type: ignore[attr-defined]


@pytest.fixture
def guarded() -> CORSMiddleware:
    return CORSMiddleware(echo_app, allow_origins=[ALLOWED], check_websocket_origin=True)


@pytest.mark.parametrize("extension", [True, False], ids=["http-response-extension", "close-before-accept"])
def test_an_allowed_origin_reaches_the_app(guarded: CORSMiddleware, extension: bool) -> None:
    seen, sent = handshake(guarded, ALLOWED, extension=extension)
    assert seen == 1
    assert [message["type"] for message in sent] == ["websocket.accept", "websocket.send", "websocket.close"]


def test_a_refused_origin_gets_a_403_when_the_server_lets_the_app_answer(
    guarded: CORSMiddleware, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="corsengine"):
        seen, sent = handshake(guarded, EVIL, extension=True)
    assert seen == 0  # the app never accepted it
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 403
    assert sent[1] == {"type": "websocket.http.response.body", "body": b"WebSocket origin not allowed"}
    assert "refused a WebSocket handshake from origin 'https://evil.example'" in caplog.text


def test_a_refused_origin_is_closed_before_accept_otherwise(guarded: CORSMiddleware) -> None:
    seen, sent = handshake(guarded, EVIL, extension=False)
    assert seen == 0
    assert sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.parametrize("origin", [None, ALLOWED], ids=["no-origin", "allowed"])
def test_non_browser_clients_and_allowed_origins_pass(guarded: CORSMiddleware, origin: str | None) -> None:
    assert handshake(guarded, origin, extension=True)[0] == 1


def test_malformed_and_duplicated_origins_are_refused(guarded: CORSMiddleware) -> None:
    assert handshake(guarded, "https://app.example.com/", extension=True)[0] == 0
    scope_app = guarded
    headers_twice = [(b"origin", ALLOWED.encode()), (b"origin", EVIL.encode())]
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/", "headers": headers_twice, "extensions": {}}
    anyio.run(scope_app, scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_the_check_is_opt_in() -> None:
    plain = CORSMiddleware(echo_app, allow_origins=[ALLOWED])
    assert handshake(plain, EVIL, extension=True)[0] == 1  # Starlette's behaviour: untouched
    with pytest.raises(ConfigurationError) as caught:
        CORSMiddleware(echo_app, allow_origins=[ALLOWED], check_websocket_origin="yes")  # type: ignore[arg-type]
    assert caught.value.codes == ("corsengine.E019",)


def test_the_native_policy_and_dynamic_origins_decide_handshakes_too() -> None:
    allowed = {ALLOWED}
    policy = Policy(lambda: sorted(allowed))
    app = CORSMiddleware(echo_app, policy=policy, check_websocket_origin=True)
    assert handshake(app, ALLOWED, extension=True)[0] == 1
    policy.swap([])
    assert handshake(app, ALLOWED, extension=True)[0] == 0  # the first handshake after a revocation


# --- real uvicorn servers, a real WebSocket client ---------------------------------------------


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # a thread cannot install them
        pass


@pytest.fixture(params=["websockets-sansio", "wsproto"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    app = CORSMiddleware(echo_app, allow_origins=[ALLOWED], check_websocket_origin=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, ws=request.param, lifespan="off", log_level="warning")
    server = _Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_a_real_server_refuses_a_cross_site_handshake_and_serves_the_allowed_one(server_url: str) -> None:
    async def main() -> None:
        async with connect(server_url, origin=ALLOWED) as ws:  # type: ignore[arg-type]
            await ws.send("hello")
            assert await ws.recv() == "hello"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(server_url, origin=EVIL):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
        async with connect(server_url) as ws:  # no Origin: not a browser, passes
            await ws.send("cli")
            assert await ws.recv() == "cli"

    asyncio.run(main())

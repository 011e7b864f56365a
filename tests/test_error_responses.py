"""CORS headers on error responses: the recipe of docs/production.md, and why it is needed.

``app.add_middleware`` puts corsengine inside Starlette's ServerErrorMiddleware, which answers
an unhandled exception's 500 itself, outside every user middleware: that 500 has no CORS
headers and the browser hides it from the page. Wrapping the built app,
``CORSMiddleware(api, ...)``, puts corsengine outside ServerErrorMiddleware.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.testclient import TestClient

from corsengine import CORSMiddleware
from corsengine.testing import Browser

SPA = "https://spa.example"
CORS = {"allow_origins": [SPA], "allow_credentials": True}


class TenantGone(Exception):
    pass


class AuthMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not any(name == b"authorization" for name, _ in scope["headers"]):
            await PlainTextResponse("sign in first", status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build(debug: bool = False, handler: bool = False, auth: bool = False) -> FastAPI:
    api = FastAPI(debug=debug)

    @api.get("/boom")
    def boom() -> None:
        raise RuntimeError("database is down")

    @api.get("/missing")
    def missing() -> None:
        raise HTTPException(404, "no such item")

    @api.get("/gone")
    def gone() -> None:
        raise TenantGone()

    @api.get("/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    @api.exception_handler(TenantGone)
    async def tenant_gone(request: Request, exc: TenantGone) -> JSONResponse:
        return JSONResponse({"error": "tenant gone"}, status_code=410)

    if handler:

        @api.exception_handler(Exception)
        async def server_error(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"error": "internal", "kind": type(exc).__name__}, status_code=500)

    if auth:
        api.add_middleware(AuthMiddleware)
    return api


def added(**options: Any) -> Any:
    """corsengine through add_middleware: inside ServerErrorMiddleware."""
    api = build(**options)
    api.add_middleware(CORSMiddleware, **CORS)
    return api


def wrapped(**options: Any) -> Any:
    """The recipe: the built app wrapped, corsengine outside ServerErrorMiddleware."""
    return CORSMiddleware(build(**options), **CORS)


def get(app: Any, path: str, origin: str = SPA, **headers: str) -> Any:
    with TestClient(app, raise_server_exceptions=False) as client:
        return client.get(path, headers={"Origin": origin, **headers})


@pytest.mark.parametrize(
    ("stack", "path", "status", "has_cors"),
    [
        pytest.param(added, "/boom", 500, False, id="added-500-bare"),
        pytest.param(wrapped, "/boom", 500, True, id="wrapped-500-cors"),
        pytest.param(added, "/missing", 404, True, id="added-http-exception-cors"),
        pytest.param(added, "/gone", 410, True, id="added-exception-handler-cors"),
        pytest.param(wrapped, "/gone", 410, True, id="wrapped-exception-handler-cors"),
        pytest.param(wrapped, "/ok", 200, True, id="wrapped-ok"),
    ],
)
def test_which_errors_carry_cors_headers(stack: Any, path: str, status: int, has_cors: bool) -> None:
    response = get(stack(), path)
    assert response.status_code == status
    assert ("access-control-allow-origin" in response.headers) is has_cors
    if has_cors:
        assert response.headers["access-control-allow-origin"] == SPA
        assert response.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in response.headers.get("vary", "") or not has_cors


def test_the_500_still_comes_from_starlette_and_the_server_still_sees_the_exception() -> None:
    response = get(wrapped(), "/boom")
    assert response.text == "Internal Server Error"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    # ServerErrorMiddleware re-raises after answering so that the server logs it: through
    # corsengine too (a TestClient raising server exceptions shows what a server receives).
    with TestClient(wrapped()) as client, pytest.raises(RuntimeError, match="database is down"):
        client.get("/boom", headers={"Origin": SPA})


def test_a_500_handler_of_your_own_answers_with_cors_headers() -> None:
    response = get(wrapped(handler=True), "/boom")
    assert response.status_code == 500
    assert response.json() == {"error": "internal", "kind": "RuntimeError"}
    assert response.headers["access-control-allow-origin"] == SPA
    # Inside ServerErrorMiddleware, even your own 500 handler's answer has none.
    assert "access-control-allow-origin" not in get(added(handler=True), "/boom").headers


def test_debug_tracebacks_become_readable_by_allowed_origins() -> None:
    response = get(wrapped(debug=True), "/boom", accept="text/html")
    assert response.status_code == 500 and "database is down" in response.text
    assert response.headers["access-control-allow-origin"] == SPA


def test_a_refused_origin_gets_no_cors_headers_on_errors_either() -> None:
    response = get(wrapped(), "/boom", origin="https://evil.example")
    assert response.status_code == 500
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"


def test_an_auth_middlewares_401() -> None:
    # Added after CORSMiddleware, an auth middleware is outside it: its 401 has no CORS headers.
    api = build()
    api.add_middleware(CORSMiddleware, **CORS)
    api.add_middleware(AuthMiddleware)
    assert "access-control-allow-origin" not in get(api, "/ok").headers
    for app in (wrapped(auth=True), added(auth=True)):
        response = get(app, "/ok")
        assert response.status_code == 401 and response.text == "sign in first"
        assert response.headers["access-control-allow-origin"] == SPA
        # The preflight never reaches the auth middleware (it carries no Authorization).
        with TestClient(app) as client:
            preflight = client.options("/ok", headers={"Origin": SPA, "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 200


def test_the_wrapped_app_keeps_its_lifespan() -> None:
    started: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started.append("up")
        yield
        started.append("down")

    api = FastAPI(lifespan=lifespan)

    @api.get("/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(CORSMiddleware(api, **CORS)) as client:
        assert client.get("/ok", headers={"Origin": SPA}).json() == {"ok": True}
    assert started == ["up", "down"]


def test_a_bare_asgi_app_needs_an_error_handler_inside_corsengine() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("database is down")

    # Nothing answers inside corsengine: the server's own 500 has no CORS headers.
    bare = Browser(CORSMiddleware(app, **CORS)).fetch("/", origin=SPA, credentials=True)
    assert not bare.allowed and "before starting a response" in bare.why
    # Starlette's ServerErrorMiddleware (or your framework's handler) inside corsengine answers.
    handled = Browser(CORSMiddleware(ServerErrorMiddleware(app), **CORS)).fetch(
        "/", origin=SPA, credentials=True
    )
    assert handled.allowed and (handled.status, handled.text) == (500, "Internal Server Error")

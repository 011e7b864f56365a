"""The apps and the CORS configuration every benchmark shares.

Both middlewares get the same keyword arguments, so a difference in cost is a difference in
implementation, not in configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware

from corsengine import CORSMiddleware

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[..., Any]

# Credentials on, a custom header and a second method: the shape of a typical SPA-and-API setup,
# and it makes both middlewares write their full set of headers.
CORS_OPTIONS: dict[str, Any] = {
    "allow_methods": ("GET", "POST"),
    "allow_headers": ("X-Custom",),
    "allow_credentials": True,
    "max_age": 600,
}

REFUSED_ORIGIN = "https://evil.example.net"


def make_origins(size: int) -> list[str]:
    """``size`` distinct exact origins; the one requests use is the last, the worst case of a scan."""
    return [f"https://app{i}.example.com" for i in range(size)]


async def bare_app(scope: Scope, receive: Any, send: Any) -> None:
    # A fresh headers list on every call: middlewares append to it in place.
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"OK"})


def starlette_cors(app: ASGIApp, allow_origins: Any) -> ASGIApp:
    return StarletteCORSMiddleware(app, allow_origins=allow_origins, **CORS_OPTIONS)


def corsengine_cors(app: ASGIApp, allow_origins: Any) -> ASGIApp:
    return CORSMiddleware(app, allow_origins=allow_origins, **CORS_OPTIONS)


# Zero-argument factories for `uvicorn --factory benchmarks.apps:<name>` in the HTTP benchmark.
HTTP_ORIGINS = 100


def http_bare() -> ASGIApp:
    return bare_app


def http_headers_only() -> ASGIApp:
    """The floor for any CORS support: the bare app writing, itself, the headers an allowed
    credentialed request needs. Below this is the server's own per-header work."""
    origin = make_origins(HTTP_ORIGINS)[-1].encode()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"2"),
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"OK"})

    return app


def http_minimal_middleware() -> ASGIApp:
    """The floor for any ASGI middleware that writes those headers: it finds the Origin and
    appends them, with no policy at all (it would allow every origin). What a CORS middleware
    costs above this is its decision; below it is the price of being a middleware."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        origin = b""
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
        added = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]

        def send_with_headers(message: Message) -> Any:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *added]
            return send(message)

        await bare_app(scope, receive, send_with_headers)

    return app


def http_starlette() -> ASGIApp:
    return starlette_cors(bare_app, make_origins(HTTP_ORIGINS))


def http_corsengine() -> ASGIApp:
    return corsengine_cors(bare_app, make_origins(HTTP_ORIGINS))

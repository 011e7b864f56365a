"""The apps, the requests and the CORS configuration every benchmark shares.

Every middleware gets the same keyword arguments, so a difference in cost is a difference in
implementation, not in configuration; and every harness (in process, behind uvicorn, under
valgrind) sends the same browser-like requests, built here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
HOST = "api.example.com"


def make_origins(size: int) -> list[str]:
    """``size`` distinct exact origins; the one requests use is the last, the worst case of a scan."""
    return [f"https://app{i}.example.com" for i in range(size)]


# What Chromium 126 sends, in its order, for a credentialed fetch() from another site (15 header
# lines), a same-origin one (no Origin), and a preflight. The middlewares scan the raw header
# list, so its length and the place of Origin in it are part of their cost.
_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
_CLIENT_HINTS = [
    ("sec-ch-ua-platform", '"Linux"'),
    ("User-Agent", _USER_AGENT),
    ("sec-ch-ua", '"Not/A)Brand";v="8", "Chromium";v="126", "Google Chrome";v="126"'),
    ("sec-ch-ua-mobile", "?0"),
]
_ENCODING = [("Accept-Encoding", "gzip, deflate, br, zstd"), ("Accept-Language", "en-US,en;q=0.9")]
_COOKIE = ("Cookie", "session=6f1c2b7e9a4d4c1f8e3a5b2d7c9e0f14; theme=dark")


def browser_headers(origin: str | None, *, preflight: bool = False) -> list[tuple[str, str]]:
    """The request headers Chromium sends, as it writes them on the wire, ``origin`` in its place
    (``None``: a same-origin GET)."""
    start = [("Host", HOST), ("Connection", "keep-alive")]
    if preflight:
        if origin is None:
            raise ValueError("a preflight always carries an Origin")
        return [
            *start,
            ("Accept", "*/*"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type,x-custom"),
            ("Origin", origin),
            ("User-Agent", _USER_AGENT),
            ("Sec-Fetch-Mode", "cors"),
            ("Sec-Fetch-Site", "same-site"),
            ("Sec-Fetch-Dest", "empty"),
            ("Referer", f"{origin}/"),
            *_ENCODING,
        ]
    if origin is None:
        site = [("Sec-Fetch-Site", "same-origin"), ("Sec-Fetch-Mode", "cors")]
        referer = f"https://{HOST}/"
    else:
        site = [("Origin", origin), ("Sec-Fetch-Site", "same-site"), ("Sec-Fetch-Mode", "cors")]
        referer = f"{origin}/"
    return [
        *start,
        *_CLIENT_HINTS,
        ("Accept", "*/*"),
        *site,
        ("Sec-Fetch-Dest", "empty"),
        ("Referer", referer),
        *_ENCODING,
        _COOKIE,
    ]


def raw_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """As an ASGI server hands them to the app: lower-case names, latin-1 bytes."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


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


async def vary_app(scope: Scope, receive: Any, send: Any) -> None:
    """The bare app setting its own ``Vary``, as GZipMiddleware (inside CORS) does on every
    response it could compress: the middleware must merge ``Origin`` into it."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"2"),
                (b"vary", b"Accept-Encoding"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"OK"})


_PREFLIGHT_VARY = (
    b"vary",
    b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    b"Access-Control-Request-Private-Network",
)
_TEXT = (b"content-type", b"text/plain; charset=utf-8")


class MinimalCORSMiddleware:
    """The floor for a drop-in CORS middleware: the least work a class middleware can do and
    still answer what corsengine answers to the benchmarks' requests.

    Everything is prepared at construction; a request costs a scan for ``Origin`` (stopping at
    it), a set lookup and prepared headers appended to the response: ``Access-Control-Allow-Origin``
    echoing the origin, ``-Allow-Credentials`` and ``Vary: Origin`` when allowed, ``Vary: Origin``
    alone otherwise. A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered
    with prepared headers, without checking the requested method and headers (the browser does).
    The app's own ``Vary`` is left alone and ours follows it as a second line, which HTTP allows
    (RFC 9110 5.3) and merging would cost more. No validation, no dynamic origins, no
    configuration checks: what a policy costs on top of this is what corsengine must justify.
    """

    def __init__(
        self,
        app: ASGIApp,
        allow_origins: Iterable[str],
        allow_methods: Iterable[str] = ("GET",),
        allow_headers: Iterable[str] = (),
        allow_credentials: bool = False,
        max_age: int = 600,
    ) -> None:
        self.app = app
        self.origins = frozenset(origin.encode("latin-1") for origin in allow_origins)
        credentials = [(b"access-control-allow-credentials", b"true")] if allow_credentials else []
        self.vary_only = [(b"vary", b"Origin")]
        self.allowed = [*credentials, (b"vary", b"Origin")]
        simple_headers = ("Accept", "Accept-Language", "Content-Language", "Content-Type")
        self.preflight_allowed = [
            _PREFLIGHT_VARY,
            (b"access-control-allow-methods", ", ".join(allow_methods).encode("latin-1")),
            (b"access-control-max-age", str(max_age).encode("latin-1")),
            (b"access-control-allow-headers", ", ".join([*simple_headers, *allow_headers]).encode()),
            *credentials,
        ]
        self.preflight_refused = [_PREFLIGHT_VARY, (b"content-length", b"22"), _TEXT]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
                break
        if origin is None:
            added = self.vary_only
        else:
            allowed = origin in self.origins
            if scope["method"] == "OPTIONS":
                for name, _ in scope["headers"]:
                    if name == b"access-control-request-method":
                        await self._preflight(origin if allowed else None, send)
                        return
            added = [(b"access-control-allow-origin", origin), *self.allowed] if allowed else self.vary_only

        def send_with_cors(message: Message) -> Any:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *added]
            return send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, origin: bytes | None, send: Any) -> None:
        if origin is None:
            headers, status, body = list(self.preflight_refused), 400, b"Disallowed CORS origin"
        else:
            headers = [*self.preflight_allowed, (b"access-control-allow-origin", origin)]
            headers += [(b"content-length", b"2"), _TEXT]
            status, body = 200, b"OK"
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def starlette_cors(app: ASGIApp, allow_origins: Any) -> ASGIApp:
    return StarletteCORSMiddleware(app, allow_origins=allow_origins, **CORS_OPTIONS)


def corsengine_cors(app: ASGIApp, allow_origins: Any) -> ASGIApp:
    return CORSMiddleware(app, allow_origins=allow_origins, **CORS_OPTIONS)


def floor_cors(app: ASGIApp, allow_origins: Any) -> ASGIApp:
    return MinimalCORSMiddleware(app, allow_origins=allow_origins, **CORS_OPTIONS)


# Zero-argument factories for `uvicorn --factory benchmarks.apps:<name>` in the HTTP benchmark
# and the instruction count.
HTTP_ORIGINS = 100


def http_bare() -> ASGIApp:
    return bare_app


def http_headers_only() -> ASGIApp:
    """The bare app writing, itself, the headers an allowed credentialed request needs: below
    this is the server's own per-header work, above it the price of being a middleware."""
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


def http_floor() -> ASGIApp:
    return floor_cors(bare_app, make_origins(HTTP_ORIGINS))


def http_starlette() -> ASGIApp:
    return starlette_cors(bare_app, make_origins(HTTP_ORIGINS))


def http_corsengine() -> ASGIApp:
    return corsengine_cors(bare_app, make_origins(HTTP_ORIGINS))


def http_bare_vary() -> ASGIApp:
    return vary_app


def http_floor_vary() -> ASGIApp:
    return floor_cors(vary_app, make_origins(HTTP_ORIGINS))


def http_corsengine_vary() -> ASGIApp:
    return corsengine_cors(vary_app, make_origins(HTTP_ORIGINS))

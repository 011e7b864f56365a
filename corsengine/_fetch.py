"""What a browser's fetch() does with an ASGI app's responses, in process (the Fetch standard).

``corsengine.testing.Browser`` is the public face of this module. It sends the requests a
browser would send (a CORS preflight when Fetch sends one, then the actual request) straight
to the ASGI callable, with no server and no network, and applies Fetch's checks to what comes
back. Section names in comments are the Fetch standard's (https://fetch.spec.whatwg.org/).
"""

from __future__ import annotations

import asyncio
import inspect
import json as json_module
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from ._origin import parse_origin, quote
from ._policy import Decision

if TYPE_CHECKING:
    from ._middleware import CORSMiddleware
from .types import ASGIApp, Message, Scope

# Fetch: CORS-safelisted method.
_SAFELISTED_METHODS = frozenset(("GET", "HEAD", "POST"))
# Fetch: fetch() normalizes these methods to upper case, and no others ("patch" stays "patch").
_NORMALIZED_METHODS = frozenset(("DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"))
# Fetch: forbidden request-header names, which a script cannot set (the browser owns them).
_FORBIDDEN_REQUEST_HEADERS = frozenset(
    (
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "access-control-request-private-network",
        "connection",
        "content-length",
        "cookie",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "referer",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
    )
)
# Fetch: CORS-safelisted response-header names; everything else needs Access-Control-Expose-Headers.
_SAFELISTED_RESPONSE_HEADERS = frozenset(
    (
        "cache-control",
        "content-language",
        "content-length",
        "content-type",
        "expires",
        "last-modified",
        "pragma",
    )
)
# Fetch: forbidden response-header names, never readable by a script.
_FORBIDDEN_RESPONSE_HEADERS = frozenset(("set-cookie", "set-cookie2"))
_SIMPLE_CONTENT_TYPES = frozenset(("application/x-www-form-urlencoded", "multipart/form-data", "text/plain"))
_UNSAFE_BYTE = re.compile(r'[\x00-\x08\x0a-\x1f"():<>?@\[\\\]{}\x7f]')
_LANGUAGE = re.compile(r"[0-9A-Za-z *,\-.;=]*")
_SIMPLE_RANGE = re.compile(r"bytes=(\d+)-(\d+)?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What uvicorn (and hypercorn) send when an app raises before starting a response: no CORS headers.
_SERVER_500 = (
    (("content-type", "text/plain; charset=utf-8"), ("connection", "close")),
    b"Internal Server Error",
)


def _safelisted(name: str, value: str) -> bool:
    """Fetch: CORS-safelisted request-header (the name is lower case)."""
    if len(value) > 128:
        return False
    if name == "accept":
        return _UNSAFE_BYTE.search(value) is None
    if name in ("accept-language", "content-language"):
        return _LANGUAGE.fullmatch(value) is not None
    if name == "content-type":
        essence = value.split(";", 1)[0].strip().lower()
        return _UNSAFE_BYTE.search(value) is None and essence in _SIMPLE_CONTENT_TYPES
    if name == "range":
        match = _SIMPLE_RANGE.fullmatch(value)
        return match is not None and (match[2] is None or int(match[1]) <= int(match[2]))
    return False


def unsafe_header_names(headers: Mapping[str, str]) -> list[str]:
    """Fetch: CORS-unsafe request-header names: sorted, lower case, what a preflight asks for."""
    # Fetch also counts the safelisted values past 1 KiB as unsafe; one value per name, each
    # at most 128 bytes, never gets there.
    unsafe = {name.lower() for name, value in headers.items() if not _safelisted(name.lower(), value)}
    return sorted(unsafe)


def _header_list(value: str | None) -> list[str] | None:
    """Fetch: extract header list values of Access-Control-Allow-Methods/-Headers (None: absent)."""
    if value is None:
        return None
    return [item for item in (part.strip() for part in value.split(",")) if item]


@dataclass(frozen=True)
class Exchange:
    """One request the browser sent and the response it got, as they crossed the wire.

    ``headers`` are the response headers in order, names as the app wrote them; ``body`` is
    what the script reads (a gzip or deflate Content-Encoding decoded). ``raised``
    is the exception the app let escape, if any: when it raised before starting a response,
    this is the bare 500 a server (uvicorn) sends instead, without CORS headers.

    Examples:
        >>> from corsengine import CORSMiddleware
        >>> from corsengine.testing import Browser
        >>> async def app(scope, receive, send):
        ...     await send({"type": "http.response.start", "status": 204, "headers": []})
        ...     await send({"type": "http.response.body", "body": b""})
        >>> api = CORSMiddleware(app, allow_origins=["https://spa.example"], allow_methods=["DELETE"])
        >>> preflight = Browser(api).fetch("/x", origin="https://spa.example", method="DELETE").preflight
        >>> preflight.method, preflight.status, preflight.header("Access-Control-Allow-Methods")
        ('OPTIONS', 200, 'DELETE')
        >>> dict(preflight.request_headers)["access-control-request-method"]
        'DELETE'
    """

    method: str
    path: str
    request_headers: tuple[tuple[str, str], ...]
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    raised: BaseException | None = None
    complete: bool = True  # False: the app raised after starting; the body was cut short

    def header(self, name: str) -> str | None:
        """The header's value as Fetch reads it: several lines combined with ``", "``."""
        lowered = name.lower()
        values = [value for key, value in self.headers if key.lower() == lowered]
        return ", ".join(values) if values else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class FetchResult:
    """What a page's ``fetch()`` reaches: allowed (the script reads the response) or refused.

    ``why`` explains the outcome in one paragraph: the check that failed (or passed), and,
    when the app contains a corsengine middleware, its policy's reason for the request
    (``decision``).
    ``preflight`` and ``response`` are what went over the wire (``response`` is None when a
    refused preflight stopped the browser from sending the request). ``status``, ``body``
    and ``text`` are the response's, for your assertions: a script reads them only when
    ``allowed``.

    Examples:
        >>> from starlette.applications import Starlette
        >>> from starlette.responses import JSONResponse
        >>> from starlette.routing import Route
        >>> from corsengine import CORSMiddleware
        >>> from corsengine.testing import Browser
        >>> def items(request):
        ...     return JSONResponse([1, 2], headers={"X-Total": "2", "X-Internal": "db-7"})
        >>> app = Starlette(routes=[Route("/items", items)])
        >>> app.add_middleware(
        ...     CORSMiddleware, allow_origins=["https://spa.example"], expose_headers=["X-Total"]
        ... )
        >>> result = Browser(app, origin="https://spa.example").fetch("/items")
        >>> bool(result), result.json(), result.header("X-Total"), result.can_read("X-Internal")
        (True, [1, 2], '2', False)
        >>> sorted(result.readable_headers)
        ['content-length', 'content-type', 'x-total']
        >>> print(result.why)
        allowed: the response (200) passes the CORS check; exposed headers: X-Total
        corsengine's policy: origin 'https://spa.example' matches an exact entry
    """

    allowed: bool
    why: str
    origin: str
    credentials: bool
    preflight: Exchange | None
    response: Exchange | None
    decision: Decision | None = None  # the outermost corsengine policy's decision, when there is one
    _exposed: frozenset[str] = field(default=frozenset(), repr=False)
    _expose_all: bool = field(default=False, repr=False)

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status

    @property
    def body(self) -> bytes | None:
        return None if self.response is None else self.response.body

    @property
    def text(self) -> str | None:
        return None if self.response is None else self.response.text

    def json(self) -> Any:
        """The response body parsed as JSON."""
        if self.response is None:
            raise ValueError(f"no response to read: {self.why}")
        return json_module.loads(self.response.body)

    def can_read(self, name: str) -> bool:
        """True when the script reads ``response.headers.get(name)`` as a value, not null.

        That needs the request allowed, the header present, and the header name
        CORS-safelisted or listed in Access-Control-Expose-Headers.
        """
        return self.header(name) is not None

    def header(self, name: str) -> str | None:
        """What ``response.headers.get(name)`` gives the script (None: null)."""
        if not self.allowed or self.response is None:
            return None
        lowered = name.lower()
        if lowered in _FORBIDDEN_RESPONSE_HEADERS:
            return None
        if lowered in _SAFELISTED_RESPONSE_HEADERS or lowered in self._exposed or self._expose_all:
            return self.response.header(name)
        return None

    @property
    def readable_headers(self) -> dict[str, str]:
        """Every response header the script can read, as ``response.headers`` lists them."""
        if self.response is None:
            return {}
        names = dict.fromkeys(key.lower() for key, _ in self.response.headers)
        return {name: value for name in names if (value := self.header(name)) is not None}


def _cors_check(response: Exchange, origin: str, credentials: bool) -> str | None:
    """Fetch: CORS check. None when it passes, else what failed."""
    allow_origin = response.header("Access-Control-Allow-Origin")
    if allow_origin is None:
        return "has no Access-Control-Allow-Origin header"
    if allow_origin == "*" and not credentials:
        return None
    if allow_origin == "*":
        return "says Access-Control-Allow-Origin: *, which a credentialed request never accepts"
    if allow_origin != origin:
        if "," in allow_origin:
            return (
                f"has several Access-Control-Allow-Origin values ({quote(allow_origin)}): "
                "two layers set it, and Fetch accepts exactly one"
            )
        return (
            f"says Access-Control-Allow-Origin: {quote(allow_origin)}, not the page's origin {quote(origin)}"
        )
    if not credentials:
        return None
    allow_credentials = response.header("Access-Control-Allow-Credentials")
    if allow_credentials != "true":
        shown = "no Access-Control-Allow-Credentials header"
        if allow_credentials is not None:
            shown = f"Access-Control-Allow-Credentials: {quote(allow_credentials)}"
        return f"has {shown}, and the request is credentialed (it must say 'true')"
    return None


def _preflight_check(
    response: Exchange, origin: str, credentials: bool, method: str, unsafe: list[str]
) -> str | None:
    """Fetch: CORS-preflight fetch, steps after the response arrives. None when it passes."""
    failed = _cors_check(response, origin, credentials)
    if failed is not None:
        return f"the preflight response {failed}"
    if not 200 <= response.status <= 299:
        return f"the preflight response's status {response.status} is not ok (2xx)"
    methods = _header_list(response.header("Access-Control-Allow-Methods")) or []
    names = _header_list(response.header("Access-Control-Allow-Headers")) or []
    bad = [item for item in methods if not _TOKEN.fullmatch(item)]
    bad += [item for item in names if not _TOKEN.fullmatch(item)]
    if bad:
        return f"the preflight response lists {quote(bad[0])}, which is not a method or header name"
    # Fetch compares methods case-sensitively; "*" counts only without credentials.
    if method not in methods and method not in _SAFELISTED_METHODS and (credentials or "*" not in methods):
        listed = response.header("Access-Control-Allow-Methods") or ""
        return (
            f"method {quote(method)} is not in the preflight's Access-Control-Allow-Methods ({quote(listed)})"
        )
    allowed_names = {name.lower() for name in names}
    for name in unsafe:
        # Fetch: "*" never covers Authorization (a CORS non-wildcard request-header name).
        if name in allowed_names or ("*" in allowed_names and not credentials and name != "authorization"):
            continue
        listed = response.header("Access-Control-Allow-Headers") or ""
        return (
            f"request header {quote(name)} is not in the preflight's "
            f"Access-Control-Allow-Headers ({quote(listed)})"
        )
    return None


async def _call(app: ASGIApp, scope: Scope, body: bytes) -> Exchange:
    """One request to the ASGI app, as a server would make it; the exchange it produced."""
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    start: Message | None = None
    chunks: list[bytes] = []
    finished = False

    done = anyio.Event()

    async def receive() -> Message:
        if messages:
            return messages.pop()
        # Like uvicorn: http.disconnect once the response is complete, never before.
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal start, finished
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            finished = not message.get("more_body", False)
            if finished:
                done.set()

    raised: BaseException | None = None
    try:
        await app(scope, receive, send)
    except Exception as exc:  # a server logs it and carries on; so does the browser
        raised = exc
    request_headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
    if start is None:
        # uvicorn answers a bare 500 when the app raised or returned without a response.
        server_headers, server_body = _SERVER_500
        return Exchange(
            scope["method"], scope["path"], request_headers, 500, server_headers, server_body, raised
        )
    headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", ()))
    body = _decoded(b"".join(chunks), headers) if finished else b"".join(chunks)
    return Exchange(
        scope["method"],
        scope["path"],
        request_headers,
        start["status"],
        headers,
        body,
        raised,
        finished,
    )


def _copy(scope: Scope) -> Scope:
    """A scope for the app to edit (routers do), leaving ours as the server received it."""
    return {**scope, "headers": list(scope["headers"]), "state": {}, "extensions": {}}


def _decoded(body: bytes, headers: tuple[tuple[str, str], ...]) -> bytes:
    """The body as the script reads it: Content-Encoding gzip or deflate undone."""
    encodings = [value.strip().lower() for name, value in headers if name.lower() == "content-encoding"]
    encoding = encodings[0] if encodings else ""
    if encoding == "gzip":
        return zlib.decompress(body, wbits=31)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def _corsengine_layers(app: object, scope: Scope) -> list[CORSMiddleware]:
    """The corsengine middlewares a request for ``scope`` passes through, outermost first.

    Follows what ASGI stacks have in common: ``.app`` (every Starlette-style middleware),
    ``.middleware_stack`` (a built Starlette or FastAPI application) and, in a router,
    the first of its ``routes`` that ``matches()`` the request fully (a mounted sub-app).
    """
    from ._middleware import CORSMiddleware

    found: list[CORSMiddleware] = []
    seen: set[int] = set()
    scope = dict(scope)
    layer: object = app
    while layer is not None and id(layer) not in seen and len(seen) < 200:
        seen.add(id(layer))
        if isinstance(layer, CORSMiddleware):
            found.append(layer)
        inner = getattr(layer, "middleware_stack", None)
        if inner is None or inspect.ismethod(inner):
            inner = getattr(layer, "app", None)
        if inner is None or inspect.ismethod(inner):
            inner = _matching_route(getattr(layer, "routes", None), scope)
        layer = inner
    return found


def _matching_route(routes: object, scope: Scope) -> object:
    """What a Starlette-style router hands the request to: the first route matching fully."""
    if not isinstance(routes, list):
        return None
    for route in routes:
        matches = getattr(route, "matches", None)
        if matches is None:
            continue
        match, child_scope = matches(scope)
        if getattr(match, "name", None) == "FULL":
            scope.update(child_scope)
            return getattr(route, "app", None)
    return None


def _scope(url: str, base: str, method: str, headers: list[tuple[str, str]]) -> Scope:
    parts = urlsplit(url if "://" in url else base.rstrip("/") + "/" + url.lstrip("/"))
    host = parts.netloc
    default_port = 443 if parts.scheme == "https" else 80
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": parts.scheme,
        "path": parts.path or "/",
        "raw_path": (parts.path or "/").encode("latin-1"),
        "query_string": parts.query.encode("latin-1"),
        "root_path": "",
        "headers": [(b"host", host.encode("latin-1"))]
        + [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers],
        "client": ("127.0.0.1", 50000),
        "server": (parts.hostname or "testserver", parts.port or default_port),
        "state": {},
        "extensions": {},
    }


async def fetch(
    app: ASGIApp,
    base_url: str,
    url: str,
    *,
    origin: str,
    method: str,
    headers: Mapping[str, str] | None,
    body: str | bytes | None,
    json: Any,
    credentials: bool,
    cookies: Mapping[str, str] | None,
) -> FetchResult:
    """Fetch: main fetch for a script's ``fetch(url, init)`` in mode "cors"."""
    if parse_origin(origin) is None and origin != "null":
        raise ValueError(f"{quote(origin)} is not a serialized origin, such as 'https://app.example.com'")
    target = urlsplit(url if "://" in url else base_url)
    if f"{target.scheme}://{target.netloc}" == origin:
        raise ValueError(f"the page {quote(origin)} and {quote(url)} are same-origin: CORS does not apply")
    if method.upper() in _NORMALIZED_METHODS:
        method = method.upper()
    if method in ("CONNECT", "TRACE", "TRACK"):
        raise ValueError(f"fetch() refuses the forbidden method {quote(method)}")
    script_headers = dict(headers or {})
    for name in script_headers:
        lowered = name.lower()
        if lowered in _FORBIDDEN_REQUEST_HEADERS or lowered.startswith(("proxy-", "sec-")):
            raise ValueError(f"a script cannot set {quote(name)}: the browser owns it")
    payload = b""
    if json is not None:
        payload = json_module.dumps(json).encode("utf-8")
        script_headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        payload = body.encode("utf-8")
        if not any(name.lower() == "content-type" for name in script_headers):
            script_headers["Content-Type"] = "text/plain;charset=UTF-8"  # what fetch() sets
    elif body is not None:
        payload = body

    unsafe = unsafe_header_names(script_headers)
    preflight: Exchange | None = None
    # Fetch: a preflight when the method is not safelisted or a header is not.
    if method not in _SAFELISTED_METHODS or unsafe:
        # Fetch: a preflight carries no credentials and none of the script's headers.
        asked = [("Accept", "*/*"), ("Origin", origin), ("Access-Control-Request-Method", method)]
        if unsafe:
            asked.append(("Access-Control-Request-Headers", ",".join(unsafe)))
        scope = _scope(url, base_url, "OPTIONS", asked)
        preflight = await _call(app, _copy(scope), b"")
        failed = _preflight_check(preflight, origin, credentials, method, unsafe)
        if failed is not None:
            decision = await _decision(app, origin, method, unsafe, True, scope)
            why = _explain(f"refused: {failed}", preflight, decision)
            return FetchResult(False, why, origin, credentials, preflight, None, decision)

    # Like a browser: it asks for compressed responses and decodes them before the script reads.
    sent = [("Accept", "*/*"), ("Accept-Encoding", "gzip, deflate"), *script_headers.items()]
    sent.append(("Origin", origin))
    if credentials and cookies:
        sent.append(("Cookie", "; ".join(f"{name}={value}" for name, value in cookies.items())))
    if payload:
        sent.append(("Content-Length", str(len(payload))))
    scope = _scope(url, base_url, method, sent)
    response = await _call(app, _copy(scope), payload)
    decision = await _decision(app, origin, method, unsafe, False, scope)
    failed = _cors_check(response, origin, credentials)
    if failed is not None:
        why = _explain(f"refused: the response ({response.status}) {failed}", response, decision)
        return FetchResult(False, why, origin, credentials, preflight, response, decision)
    exposed = _header_list(response.header("Access-Control-Expose-Headers")) or []
    exposed_names = frozenset(name.lower() for name in exposed)
    expose_all = "*" in exposed_names and not credentials  # Fetch: "*" exposes all only without credentials
    summary = f"allowed: the response ({response.status}) passes the CORS check"
    summary += f"; exposed headers: {', '.join(exposed)}" if exposed else "; no Access-Control-Expose-Headers"
    if not response.complete:
        summary += "; but the app raised mid-body, so reading the body fails (a network error)"
    why = _explain(summary, response, decision)
    return FetchResult(
        True, why, origin, credentials, preflight, response, decision, exposed_names, expose_all
    )


async def _decision(
    app: object, origin: str, method: str, unsafe: list[str], preflight: bool, scope: Scope
) -> Decision | None:
    """The decision of the corsengine policy that decided the request, if the app has one.

    The outermost corsengine middleware answers a preflight; the innermost one the request
    reaches decides an actual response (an outer one leaves it alone). Its policy is asked
    again after the request, for the reason: the middleware builds no reason strings.
    """
    layers = _corsengine_layers(app, scope)
    if not layers:
        return None
    layer = layers[0] if preflight else layers[-1]
    policy = layer.policy_for(scope["path"])
    return await policy.aevaluate(origin, method, unsafe or None, preflight=preflight, scope=scope)


def _explain(summary: str, exchange: Exchange, decision: Decision | None) -> str:
    lines = [summary]
    bare_500 = exchange.headers is _SERVER_500[0]
    if exchange.raised is not None:
        error = f"{type(exchange.raised).__name__}({str(exchange.raised)!r})"
        if bare_500:
            lines.append(
                f"the app raised {error} before starting a response, so the server answered a bare 500 "
                "without CORS headers"
            )
        elif exchange.complete:
            lines.append(
                f"the app raised {error} after an error handler answered (re-raised for the server to log)"
            )
        else:
            lines.append(f"the app raised {error} in the middle of the body")
    refused = summary.startswith("refused")
    if decision is not None:
        lines.append(f"corsengine's policy: {decision.reason}")
        if refused and decision.allowed:
            if exchange.raised is not None and not bare_500:
                layer = "an error handler outside corsengine's middleware (Starlette's ServerErrorMiddleware)"
            else:
                layer = (
                    "a layer outside corsengine's middleware (an auth middleware added after CORSMiddleware, "
                    "an error handler) or a second CORS layer"
                )
            lines.append(
                f"the policy allows it, so {layer} answered or changed this response; "
                "see 'CORS headers on error responses' in docs/production.md"
            )
    elif refused:
        lines.append("no corsengine middleware was found in the app's stack")
    return "\n".join(lines)


def run(coroutine: Any) -> FetchResult:
    try:
        asyncio.get_running_loop()
    except RuntimeError:

        async def main() -> FetchResult:
            return await coroutine  # type: ignore[no-any-return]

        return anyio.run(main)
    coroutine.close()
    raise RuntimeError("an event loop is running: use 'await Browser(app).afetch(...)' instead of fetch()")

"""The ASGI adapter: reads raw headers, asks the policy once, writes prepared headers."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio

from ._codes import E019, E027
from ._decide import MAX_REQUEST_HEADERS_LENGTH, PreflightAnswer
from ._events import DecisionEvent, RequestKind
from ._origin import quote
from ._policy import PENDING, Pending, Policy
from ._ratelimit import LogRate
from ._settings import DEFAULTS, OriginsSpec
from .exceptions import ConfigurationError, Problem
from .types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("corsengine")

_ORIGIN = b"origin"
_REQUEST_METHOD = b"access-control-request-method"
_REQUEST_HEADERS = b"access-control-request-headers"
_WANTED = frozenset((_ORIGIN, _REQUEST_METHOD, _REQUEST_HEADERS, b"access-control-request-private-network"))
_VARY = b"vary"
_ORIGIN_TOKEN = b"Origin"
_VARY_ORIGIN = (_VARY, _ORIGIN_TOKEN)
_ONLY_VARY_ORIGIN = [_VARY_ORIGIN]  # what a response to a request without an Origin gets
# The app's Vary value -> the Vary line with Origin merged in: apps send few distinct values.
_VARY_LINES: dict[bytes, tuple[bytes, bytes]] = {}
_VARY_LINES_SIZE = 256
_MAYBE_OURS = frozenset((b"a", b"A", b"v", b"V"))
_MAYBE_OURS_CODES = frozenset(b"aAvV")  # the same first letters, as a name's first byte
_DUPLICATE = b"\x00duplicate"  # never a valid origin, so it is refused like any malformed one
# What Access-Control-Request-Headers reads as once its lines add up past the limit: still
# over the limit, so the policy refuses it, and nothing more of the request is joined.
_OVERSIZED = b"\x00" * (MAX_REQUEST_HEADERS_LENGTH + 1)


_INFO = logging.INFO
# logging caches, per logger, whether each level is enabled, and clears that cache whenever a
# level changes: reading it is a dict lookup where isEnabledFor() is a call. An unknown level
# (None) takes the path that calls isEnabledFor(), which fills the cache.
_LEVELS: dict[int, bool] = getattr(logger, "_cache", {})
_HANDLED = "corsengine.handled"  # set on http.response.start once a corsengine middleware decided


# Response header names seen that cannot be Vary or a CORS header (their first letter is not
# "a" or "v"): a set lookup per header, where the first letter costs a subscript and a lookup.
_PLAIN_NAMES: set[bytes] = set()
_PLAIN_NAMES_SIZE = 256


def _plain_name(name: bytes) -> bool:
    """True when a response header called ``name`` cannot be Vary or ours; remembered then."""
    if not name or name[0] in _MAYBE_OURS_CODES:
        return False
    if len(_PLAIN_NAMES) >= _PLAIN_NAMES_SIZE:
        _PLAIN_NAMES.clear()  # an app that names headers freely: bounded, like every memo
    _PLAIN_NAMES.add(name)
    return True


def _first_segment(path: str) -> str:
    cut = path.find("/", 1)
    return path if cut < 0 else path[:cut]


def _compile_routes(routes: Mapping[str, Policy] | None) -> dict[str, Policy]:
    """Route prefixes without their trailing slash ("/api/" and "/api" are one route)."""
    if routes is None:
        return {}
    problems: list[Problem] = []
    if not isinstance(routes, Mapping):
        problems.append(
            Problem(
                E027,
                f"routes is a {type(routes).__name__}, not a mapping",
                "write routes={'/public/': public_policy}",
                field="routes",
            )
        )
        raise ConfigurationError(problems)
    compiled: dict[str, Policy] = {}
    for prefix, policy in routes.items():
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            problems.append(
                Problem(E027, f"route {prefix!r} is not a path prefix", "start it with '/'", field="routes")
            )
        elif not isinstance(policy, Policy):
            problems.append(
                Problem(
                    E027,
                    f"route {prefix!r} maps to a {type(policy).__name__}, not a Policy",
                    "give each route a corsengine.Policy",
                    field="routes",
                )
            )
        else:
            compiled[prefix.rstrip("/") or "/"] = policy
    if problems:
        raise ConfigurationError(problems)
    return compiled


def _origin_of(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The request's Origin, every header read: None without one, and never a valid origin
    when there are two (a browser never sends two: refuse, never pick one)."""
    origin = None
    for name, value in headers:
        if name == _ORIGIN:
            origin = value if origin is None else _DUPLICATE
    return origin


def _joined(request_headers: bytes | None, line: bytes) -> bytes:
    """Access-Control-Request-Headers read so far with one more ``line``. Many lines are joined
    only up to the limit: past it, nothing more is read (joining 100,000 lines one by one
    would be quadratic)."""
    if request_headers is None:
        return line if len(line) <= MAX_REQUEST_HEADERS_LENGTH else _OVERSIZED
    if request_headers is _OVERSIZED or len(request_headers) + len(line) >= MAX_REQUEST_HEADERS_LENGTH:
        return _OVERSIZED
    return request_headers + b"," + line


def _merge_vary(current: bytes, ours: bytes) -> bytes:
    """The app's Vary value with our tokens added (each once, case-insensitively)."""
    lowered = current.lower()
    # bytes.find, not "in": "in" first tries its operand as an integer, which costs as much
    # again as the search.
    if ours == _ORIGIN_TOKEN and lowered.find(b"origin") < 0 and current.find(b"*") < 0:
        return current + b", Origin"  # the common case (Vary: Accept-Encoding), without a split
    present = {token.strip() for token in lowered.split(b",")}
    if b"*" in present:
        return current
    missing = [token for token in ours.split(b", ") if token.lower() not in present]
    return current + b", " + b", ".join(missing) if missing else current


def _response_headers(
    app_headers: Iterable[tuple[bytes, bytes]], ours: list[tuple[bytes, bytes]]
) -> list[Any]:
    """The app's headers with ours (the CORS headers, Vary last): CORS headers replaced, Vary
    merged into one line."""
    if type(app_headers) is not list:
        app_headers = list(app_headers)  # any iterable, read twice below
    # Only a name starting with "a" or "v" can be Vary or one of ours: most responses have
    # none, and are copied whole after one cheap test per header.
    try:
        for header in app_headers:
            if header[0][0] in _MAYBE_OURS_CODES:
                break
        else:
            return [*app_headers, *ours]
    except IndexError:
        return _careful(app_headers, ours)  # an empty name: kept as it is
    return _merge(app_headers, header, ours)


def _merge(app_headers: list[Any], first: tuple[bytes, bytes], ours: list[tuple[bytes, bytes]]) -> list[Any]:
    """``_response_headers()`` once ``first``, the first header that may be Vary or a CORS
    header, is found: usually the app's one Vary line, merged without a second pass."""
    if first[0] != _VARY:
        return _careful(app_headers, ours)
    if app_headers[-1] is first:
        # The app's Vary line last (GZipMiddleware's Accept-Encoding), merged with Origin
        # once per distinct value.
        line = _VARY_LINES.get(first[1])
        if line is not None and ours[-1][1] == _ORIGIN_TOKEN:
            merged = app_headers[:-1]
            merged += ours
            merged[-1] = line
            return merged
        at = len(app_headers) - 1
    else:
        at = app_headers.index(first)
        for header in app_headers[at + 1 :]:
            if not header[0] or header[0][0] in _MAYBE_OURS_CODES:
                return _careful(app_headers, ours)
    out = [*app_headers, *ours]
    del out[at]
    out[-1] = (_VARY, _with_vary(first[1], ours[-1][1]))
    return out


def _careful(app_headers: list[Any], ours: list[tuple[bytes, bytes]]) -> list[Any]:
    """The app's headers without its CORS headers, its Vary lines merged into ours."""
    out, app_vary = _without_ours(app_headers)
    out.extend(ours)
    if app_vary is not None:
        out[-1] = (_VARY, _with_vary(app_vary, ours[-1][1]))
    return out


def _with_vary(app_vary: bytes, vary: bytes) -> bytes:
    if vary != _ORIGIN_TOKEN:
        return _merge_vary(app_vary, vary)
    line = _VARY_LINES.get(app_vary)
    if line is None:
        if len(_VARY_LINES) >= _VARY_LINES_SIZE:
            _VARY_LINES.clear()
        line = _VARY_LINES[app_vary] = (_VARY, _merge_vary(app_vary, vary))
    return line[1]


def _without_ours(app_headers: list[Any]) -> tuple[list[Any], bytes | None]:
    """The app's headers without its CORS headers and Vary lines, and its Vary lines joined."""
    out: list[Any] = []
    app_vary: bytes | None = None
    for header in app_headers:
        name = header[0]
        if name[:1] not in _MAYBE_OURS:
            out.append(header)
            continue
        name = name.lower()
        if name == _VARY:
            app_vary = header[1] if app_vary is None else app_vary + b", " + header[1]
        # The middleware is authoritative: what the app set itself would be a second,
        # possibly contradicting value (Fetch fails on two Allow-Origin values).
        elif not name.startswith(b"access-control-allow-") and name != b"access-control-expose-headers":
            out.append(header)
    return out, app_vary


async def _answer_preflight(answer: PreflightAnswer, send: Send) -> None:
    # A fresh list each time: outer middleware may edit the headers in place.
    await send({"type": "http.response.start", "status": answer[0], "headers": [*answer[1]]})
    await send({"type": "http.response.body", "body": answer[2]})


class CORSMiddleware:
    """A drop-in for ``starlette.middleware.cors.CORSMiddleware`` with dynamic origins.

    Same keyword arguments and defaults as Starlette's; ``allow_origins`` may also be a
    zero-argument function (sync or async), a provider, or a list mixing exact origins and
    wildcard patterns; ``preflight_status`` (200 or 204) is accepted too. Or pass a ready
    `Policy` as ``policy=`` (and nothing else).

    Where Starlette and Fetch differ, the keyword form keeps Starlette's meaning (see
    ``Policy(starlette_compatible=True)``). ``check_websocket_origin=True`` also refuses
    WebSocket handshakes from origins the policy does not allow (cross-site WebSocket
    hijacking), before the app accepts them. ``routes={"/partners/": partner_policy}`` gives
    path prefixes their own policy (the longest prefix wins; preflights are routed alike).
    Each CORS decision goes to the deciding policy's `Policy.on_decision` listeners, and each
    refusal is logged at INFO with its reason, at a bounded rate.

    Examples:
        >>> import anyio
        >>> import httpx
        >>> from fastapi import FastAPI
        >>> from corsengine import CORSMiddleware
        >>> app = FastAPI()
        >>> app.add_middleware(
        ...     CORSMiddleware,
        ...     allow_origins=lambda: ["https://app.example.com"],  # called once per TTL
        ...     allow_credentials=True,
        ... )
        >>> async def main():
        ...     transport = httpx.ASGITransport(app)
        ...     async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        ...         response = await client.get("/", headers={"Origin": "https://app.example.com"})
        ...     return response.headers["Access-Control-Allow-Origin"], response.headers["Vary"]
        >>> anyio.run(main)
        ('https://app.example.com', 'Origin')
    """

    def __init__(
        self,
        app: ASGIApp,
        allow_origins: OriginsSpec = DEFAULTS["allow_origins"],
        allow_methods: Iterable[str] = DEFAULTS["allow_methods"],
        allow_headers: Iterable[str] = DEFAULTS["allow_headers"],
        allow_credentials: bool = DEFAULTS["allow_credentials"],
        allow_origin_regex: str | None = DEFAULTS["allow_origin_regex"],
        allow_private_network: bool = DEFAULTS["allow_private_network"],
        expose_headers: Iterable[str] = DEFAULTS["expose_headers"],
        max_age: int = DEFAULTS["max_age"],
        *,
        preflight_status: int = DEFAULTS["preflight_status"],
        policy: Policy | None = None,
        routes: Mapping[str, Policy] | None = None,
        check_websocket_origin: bool = False,
    ) -> None:
        if not isinstance(check_websocket_origin, bool):
            raise ConfigurationError(
                [
                    Problem(
                        E019,
                        f"check_websocket_origin={check_websocket_origin!r} is not True or False",
                        "write check_websocket_origin=True or check_websocket_origin=False",
                        field="check_websocket_origin",
                    )
                ]
            )
        options: dict[str, Any] = {
            "allow_origins": allow_origins,
            "allow_methods": allow_methods,
            "allow_headers": allow_headers,
            "allow_credentials": allow_credentials,
            "allow_origin_regex": allow_origin_regex,
            "allow_private_network": allow_private_network,
            "expose_headers": expose_headers,
            "max_age": max_age,
            "preflight_status": preflight_status,
        }
        if policy is None:
            policy = Policy(**options, starlette_compatible=True)
        elif options != DEFAULTS:
            raise TypeError("pass either policy= or the CORS keyword arguments, not both")
        self.app = app
        self.policy = policy
        self.routes = _compile_routes(routes)
        self._single = None if self.routes else policy  # the policy of every path, without routes
        # The first segment of every route: most paths are under none, and are told at once.
        self._route_heads = frozenset(_first_segment(prefix) for prefix in self.routes)
        self.check_websocket_origin = check_websocket_origin
        # Refused origins are logged at INFO once per origin and kind a minute, 20 lines a
        # minute in all: a flood of distinct origins cannot fill the disk.
        self._refusals_logged = LogRate(self.policy.clock)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function marked as a coroutine function (below the class, as Django marks
        # its middleware): it returns the app's own awaitable, so a request whose answer is
        # prepared costs no coroutine of corsengine's. What must wait (a lookup doing I/O, a
        # decision to tell, a preflight's two messages) returns a coroutine instead.
        if scope["type"] != "http":
            return self._not_http(scope, receive, send)
        ours: list[tuple[bytes, bytes]] | None
        origin = None
        if scope["method"] != "OPTIONS":
            # Not a preflight: only Origin matters. A comparison per header (bytes of another
            # length differ at once), up to the first Origin.
            headers = iter(scope["headers"])
            for name, value in headers:
                if name == b"origin":
                    origin = value
                    break
            if origin is None:
                ours = _ONLY_VARY_ORIGIN
            else:
                policy = self._single or self._route(scope["path"])
                if policy.answers_expire:
                    clock = policy.clock  # read, then called: a method lookup would cost more
                    if policy.prepared.until <= clock():
                        policy.expire_answers()
                # The CORS headers, Vary last: prepared in the snapshot (which offers none when
                # someone listens), or asked for below (None).
                ours = policy.answers.get(origin)
                if ours is policy.refusal:
                    # Refused, as a second Origin would be: asked again below (every Origin
                    # read) only when the refusal is logged.
                    try:
                        if _LEVELS[_INFO]:
                            ours = None
                    except KeyError:
                        ours = None  # logging's level cache was just cleared
                else:
                    # Two Origin headers are never sent by a browser: refuse, never pick one
                    # (asked below, where every Origin is read).
                    for name, _ in headers:
                        if name == b"origin":
                            ours = None
                            break
        else:
            policy = self._single or self._route(scope["path"])
            # Origin and the Access-Control-Request-* headers: what makes an OPTIONS a preflight.
            request_method = request_headers = None
            private_network = False
            for name, value in scope["headers"]:
                if name not in _WANTED:  # most headers: one set lookup, nothing else
                    continue
                if name == _ORIGIN:
                    # Two Origin headers are never sent by a browser: refuse, never pick one.
                    origin = value if origin is None else _DUPLICATE
                elif name == _REQUEST_METHOD:
                    request_method = value
                elif name == _REQUEST_HEADERS:
                    if request_headers is None and len(value) <= MAX_REQUEST_HEADERS_LENGTH:
                        request_headers = value  # one line, as browsers send it
                    else:
                        request_headers = _joined(request_headers, value)
                else:
                    private_network = True
            if origin is not None and request_method is not None:
                # Fetch: the app never sees a preflight; the answer is ours alone.
                key = (origin, request_method, request_headers, private_network)
                if policy.answers_expire:
                    clock = policy.clock
                    if policy.prepared.until <= clock():
                        policy.expire_answers()
                preflight = policy.preflights.get(key)
                if preflight is None or (preflight[3] and _LEVELS.get(_INFO) is not False):
                    return self._preflight_asked(policy, key, preflight, scope, send)
                return _answer_preflight(preflight, send)
            ours = _ONLY_VARY_ORIGIN if origin is None else None

        # A plain function returning send's awaitable: one coroutine per message, not two.
        def send_with_cors(message: Message) -> Awaitable[None]:
            if message["type"] != "http.response.start":
                return send(message)
            try:
                headers = message["headers"]
            except KeyError:
                headers = ()  # optional in ASGI
            if type(headers) is list:
                # _response_headers(), its scan inline: most responses have no header starting
                # with "a" or "v", which could be Vary or one of ours. Copied whole; and then
                # no corsengine nearer the app decided (it would have added Vary).
                try:
                    # ``first``: the first header that could be Vary or one of ours.
                    for first in headers:
                        if first[0] not in _PLAIN_NAMES and not _plain_name(first[0]):
                            break
                    else:
                        message["headers"] = [*headers, *ours]  # type: ignore[misc]
                        message[_HANDLED] = True
                        return send(message)
                except IndexError:
                    first = None  # an empty name: the careful path keeps it as it is
            else:
                first = None
            # A corsengine middleware nearer the app (a mounted sub-app's own policy) has
            # decided this response already: it is left as that one made it.
            if _HANDLED not in message:
                if first is None:
                    message["headers"] = _response_headers(headers, ours)  # type: ignore[arg-type]
                else:
                    message["headers"] = _merge(headers, first, ours)  # type: ignore[arg-type]
                message[_HANDLED] = True
            return send(message)

        if ours is None:
            # Not prepared: asked (I/O may be due), told, then the app runs with the answer.
            # Its arguments passed, not closed over: only ``ours`` is shared with send_with_cors.
            async def asked(
                middleware: CORSMiddleware, policy: Policy, scope: Scope, receive: Receive, send: Send
            ) -> None:
                nonlocal ours
                origin = _origin_of(scope["headers"])
                ours = (
                    _ONLY_VARY_ORIGIN if origin is None else await middleware._actual(policy, origin, scope)
                )
                await middleware.app(scope, receive, send)

            return asked(self, policy, scope, receive, send_with_cors)
        return self.app(scope, receive, send_with_cors)

    async def _actual(self, policy: Policy, origin: bytes, scope: Scope) -> list[tuple[bytes, bytes]]:
        """An actual request's CORS headers when the snapshot has none prepared."""
        answer = policy.actual_response(origin, scope)
        rule: str | Pending | None = PENDING  # the event looks it up again
        if isinstance(answer, Pending):
            rule = await policy.resolve(origin.decode("latin-1"), scope)
            answer = policy.actual_response_for(origin, rule)
        if policy.observed or (len(answer) == 1 and logger.isEnabledFor(_INFO)):
            await self._observe_actual(policy, origin, answer, rule, scope)
        return answer

    async def _observe_actual(
        self,
        policy: Policy,
        origin: bytes,
        answer: list[tuple[bytes, bytes]],
        rule: str | Pending | None,
        scope: Scope,
    ) -> None:
        """Tell an actual request's answer to the decision listeners (and the log, when
        refused) and to the shadow policy."""
        if policy.decision_listeners or (len(answer) == 1 and logger.isEnabledFor(_INFO)):
            self._tell(policy, origin.decode("latin-1"), len(answer) > 1, scope, rule=rule)
        shadow = policy.shadow
        if shadow is not None:
            # The shadow's own fast path first: agreeing costs a dict read, not a coroutine.
            would = shadow.actual_response(origin, scope)
            if isinstance(would, Pending) or len(would) != len(answer):
                await policy.observe(origin, len(answer) > 1, scope)

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "lifespan":
            await self._lifespan(scope, receive, send)
        elif scope_type == "websocket" and self.check_websocket_origin:
            policy = self._route(scope["path"]) if self.routes else self.policy
            await self._websocket(policy, scope, receive, send)
        else:  # WebSocket handshakes are not CORS (see docs/security.md).
            await self.app(scope, receive, send)

    async def _preflight_asked(
        self,
        policy: Policy,
        key: tuple[bytes, bytes, bytes | None, bool],
        answer: PreflightAnswer | None,
        scope: Scope,
        send: Send,
    ) -> None:
        """A preflight answered when the snapshot has no answer prepared, or when its answer is
        told to the decision listeners (and the log, when refused) and to the shadow policy."""
        origin, request_method, request_headers, private_network = key
        rule: str | Pending | None = PENDING  # the event looks it up again
        if answer is None:
            found = policy.preflight_response(origin, request_method, request_headers, private_network, scope)
            if isinstance(found, Pending):
                rule = await policy.resolve(origin.decode("latin-1"), scope)
                found = policy.preflight_response_for(
                    origin, rule, request_method, request_headers, private_network
                )
            answer = found
        method = request_method.decode("latin-1")
        asked = request_headers.decode("latin-1") if request_headers is not None else None
        if policy.shadow is not None:
            await policy.observe(
                origin, answer.status < 300, None, preflight=(method, asked, private_network)
            )
        if policy.decision_listeners or (answer.failures and logger.isEnabledFor(_INFO)):
            self._tell(
                policy,
                origin.decode("latin-1"),
                not answer.failures,
                scope,
                rule=rule,
                request="preflight",
                method=method,
                request_headers=asked,
                private_network=private_network,
                failures=answer.failures,
            )
        await _answer_preflight(answer, send)

    async def _websocket(self, policy: Policy, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a WebSocket handshake from an Origin the policy does not allow.

        Browsers apply no CORS to WebSockets: they send the page's Origin, with its cookies,
        and leave the check to the server (cross-site WebSocket hijacking). A handshake
        without an Origin (a non-browser client) passes.
        """
        origin = _origin_of(scope["headers"])
        if origin is None:
            await self.app(scope, receive, send)
            return
        text = origin.decode("latin-1")
        rule = policy.lookup(text, scope)
        if isinstance(rule, Pending):
            rule = await policy.resolve(text, scope)
        allowed = policy.actual_headers(origin, rule) is not None
        if policy.decision_listeners or not allowed:
            self._tell(policy, text, allowed, scope, rule=rule, request="websocket")
        if allowed:
            await self.app(scope, receive, send)
            return
        message = await receive()  # websocket.connect, which comes first
        if message["type"] != "websocket.connect":
            return  # the client went away
        if "websocket.http.response" in scope.get("extensions", {}):
            # The server lets the app answer the handshake itself: a plain 403.
            body = b"WebSocket origin not allowed"
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 403,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            # A close before accept: the server refuses the handshake (403 in uvicorn).
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Background refreshes and watchers live as long as the app, in its lifespan.
        policies = list(dict.fromkeys([self.policy, *self.routes.values()]))
        async with anyio.create_task_group() as task_group:
            for policy in policies:
                policy.attach(task_group)
            try:
                await self.app(scope, receive, send)
            finally:
                for policy in policies:
                    policy.attach(None)
                task_group.cancel_scope.cancel()

    def policy_for(self, path: str) -> Policy:
        """The policy that decides requests for ``path``: the longest ``routes=`` prefix, else ``policy``."""
        return self._route(path) if self.routes else self.policy

    def _tell(
        self,
        policy: Policy,
        origin: str,
        allowed: bool,
        scope: Scope,
        *,
        rule: str | Pending | None,
        request: RequestKind = "actual",
        method: str | None = None,
        request_headers: str | None = None,
        private_network: bool = False,
        failures: tuple[str, ...] = (),
    ) -> None:
        """Hand the decision to the policy's listeners, and log a refusal (bounded)."""
        log = (
            not allowed
            and logger.isEnabledFor(logging.INFO)
            and self._refusals_logged.allow((origin, request))
        )
        if not log and not policy.decision_listeners:
            return
        event = policy.event(
            origin,
            allowed,
            scope,
            rule=rule,
            request=request,
            method=method,
            request_headers=request_headers,
            private_network=private_network,
            failures=failures,
            route=self._route_prefix(scope["path"]) if self.routes else None,
        )
        policy.notify(event)
        if log:
            self._log_refusal(event)

    def _log_refusal(self, event: DecisionEvent) -> None:
        what = {
            "actual": "refused origin",
            "preflight": "refused a preflight from origin",
            "websocket": "refused a WebSocket handshake from origin",
        }
        route = f" on route {quote(event.route)}" if event.route is not None else ""
        suppressed = self._refusals_logged.take_suppressed()
        more = f" ({suppressed} similar lines suppressed)" if suppressed else ""
        logger.info(
            "corsengine: %s %s%s [%s]: %s%s",
            what[event.request],
            quote(event.origin),
            route,
            event.reason,
            event.explain(),
            more,
        )

    def _route_prefix(self, path: str) -> str | None:
        """The route prefix that chose the policy for ``path`` (None: the default policy)."""
        routes = self.routes
        if _first_segment(path) in self._route_heads:
            while path:
                if path in routes:
                    return path
                cut = path.rfind("/")
                if cut <= 0:
                    break
                path = path[:cut]
        return "/" if "/" in routes else None

    def _route(self, path: str) -> Policy:
        """The policy of the longest route prefix that ``path`` is under (whole segments)."""
        routes = self.routes
        if _first_segment(path) not in self._route_heads:
            return routes.get("/", self.policy)
        while path:
            policy = routes.get(path)
            if policy is not None:
                return policy
            cut = path.rfind("/")
            if cut <= 0:
                break
            path = path[:cut]  # one segment up: cost grows with the path's depth, not the routes
        return routes.get("/", self.policy)


def _mark_coroutine_function(function: Callable[..., Awaitable[Any]]) -> None:
    """Say that calling ``function`` returns an awaitable, for ``asyncio.iscoroutinefunction()``
    and (3.12+) ``inspect.iscoroutinefunction()``: ASGI servers tell an ASGI 3 app from an
    ASGI 2 one by them (uvicorn's ``interface="auto"``)."""
    if sys.version_info >= (3, 12):
        inspect.markcoroutinefunction(function)
    else:
        function._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]


_mark_coroutine_function(CORSMiddleware.__call__)

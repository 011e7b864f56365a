"""The ASGI adapter: reads raw headers, asks the policy once, writes prepared headers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

import anyio

from ._codes import E019, E027
from ._events import DecisionEvent, RequestKind
from ._origin import MAX_ORIGIN_LENGTH, quote
from ._policy import MAX_REQUEST_HEADERS_LENGTH, PENDING, OriginsSpec, Pending, Policy
from ._ratelimit import LogRate
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
_CONTENT_TYPE = (b"content-type", b"text/plain; charset=utf-8")
_PREFLIGHT_MEMO_SIZE = 1024
_MAYBE_OURS = frozenset((b"a", b"A", b"v", b"V"))
_MAYBE_OURS_CODES = frozenset(b"aAvV")  # the same first letters, as a name's first byte
_DUPLICATE = b"\x00duplicate"  # never a valid origin, so it is refused like any malformed one
# What Access-Control-Request-Headers reads as once its lines add up past the limit: still
# over the limit, so the policy refuses it, and nothing more of the request is joined.
_OVERSIZED = b"\x00" * (MAX_REQUEST_HEADERS_LENGTH + 1)


_HANDLED = "corsengine.handled"  # set on http.response.start once a corsengine middleware decided


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


def _read_preflight(
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[bytes | None, bytes | None, bytes | None, bool]:
    """Origin, Access-Control-Request-Method, -Headers and -Private-Network of an OPTIONS."""
    origin: bytes | None = None
    request_method: bytes | None = None
    request_headers: bytes | None = None
    private_network = False
    for name, value in headers:
        if name not in _WANTED:  # most headers: one set lookup, nothing else
            continue
        if name == _ORIGIN:
            # Two Origin headers are never sent by a browser: refuse, never pick one.
            origin = value if origin is None else _DUPLICATE
        elif name == _REQUEST_METHOD:
            request_method = value
        elif name == _REQUEST_HEADERS:
            # Many lines are joined only up to the limit: past it, nothing more is read
            # (joining 100,000 lines one by one would be quadratic).
            if request_headers is None:
                request_headers = value if len(value) <= MAX_REQUEST_HEADERS_LENGTH else _OVERSIZED
            elif request_headers is not _OVERSIZED:
                if len(request_headers) + len(value) < MAX_REQUEST_HEADERS_LENGTH:
                    request_headers = request_headers + b"," + value
                else:
                    request_headers = _OVERSIZED
        else:
            private_network = True
    return origin, request_method, request_headers, private_network


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def _merge_vary(current: bytes | None, vary: tuple[bytes, bytes]) -> bytes:
    ours = vary[1]
    if current is None:
        return ours
    if ours == _ORIGIN_TOKEN and b"origin" not in current.lower() and b"*" not in current:
        return current + b", Origin"  # the common case (Vary: Accept-Encoding), without a split
    present = {token.strip().lower() for token in current.split(b",")}
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
    try:
        for name, _ in app_headers:
            # Only a name starting with "a" or "v" can be Vary or one of ours; most responses
            # have none, and are copied whole after one cheap test per header.
            if name[0] in _MAYBE_OURS_CODES:
                break
        else:
            return [*app_headers, *ours]
    except IndexError:
        pass  # an empty name: the careful path below keeps it as it is
    out: list[Any] = []
    app_vary: bytes | None = None
    for header in app_headers:
        if header[0][:1] not in _MAYBE_OURS:
            out.append(header)
            continue
        name = header[0].lower()
        if name == _VARY:
            app_vary = header[1] if app_vary is None else app_vary + b", " + header[1]
        # The middleware is authoritative: what the app set itself would be a second,
        # possibly contradicting value (Fetch fails on two Allow-Origin values).
        elif not name.startswith(b"access-control-allow-") and name != b"access-control-expose-headers":
            out.append(header)
    vary = ours[-1]
    out.extend(ours[:-1])
    out.append((_VARY, _merge_vary(app_vary, vary)))
    return out


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
        allow_origins: OriginsSpec = (),
        allow_methods: Iterable[str] = ("GET",),
        allow_headers: Iterable[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        allow_private_network: bool = False,
        expose_headers: Iterable[str] = (),
        max_age: int = 600,
        *,
        preflight_status: int = 200,
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
        if policy is None:
            policy = Policy(
                allow_origins,
                allow_methods,
                allow_headers,
                allow_credentials,
                allow_origin_regex,
                allow_private_network,
                expose_headers,
                max_age,
                preflight_status=preflight_status,
                starlette_compatible=True,
            )
        elif (allow_origins, allow_methods, allow_headers, allow_credentials, allow_origin_regex) != (
            (),
            ("GET",),
            (),
            False,
            None,
        ) or (allow_private_network, expose_headers, max_age, preflight_status) != (False, (), 600, 200):
            raise TypeError("pass either policy= or the CORS keyword arguments, not both")
        self.app = app
        self.policy = policy
        self.routes = _compile_routes(routes)
        # The first segment of every route: most paths are under none, and are told at once.
        self._route_heads = frozenset(_first_segment(prefix) for prefix in self.routes)
        self.check_websocket_origin = check_websocket_origin
        self._preflights: dict[
            tuple[object, ...], tuple[int, tuple[tuple[bytes, bytes], ...], bytes, tuple[str, ...]]
        ] = {}
        # Refused origins are logged at INFO once per origin and kind a minute, 20 lines a
        # minute in all: a flood of distinct origins cannot fill the disk.
        self._refusals_logged = LogRate(self.policy.clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        policy = self._route(scope["path"]) if self.routes and scope_type != "lifespan" else self.policy
        if scope_type != "http":
            if scope_type == "lifespan":
                await self._lifespan(scope, receive, send)
            elif scope_type == "websocket" and self.check_websocket_origin:
                await self._websocket(policy, scope, receive, send)
            else:  # WebSocket handshakes are not CORS (see docs/security.md).
                await self.app(scope, receive, send)
            return

        origin: bytes | None = None
        request_method: bytes | None = None
        request_headers: bytes | None = None
        private_network = False
        if scope["method"] != "OPTIONS":
            # Not a preflight: only Origin matters. A comparison per header (bytes of another
            # length differ at once), and all of them: a second Origin must be seen.
            for name, value in scope["headers"]:
                if name == _ORIGIN:
                    # Two Origin headers are never sent by a browser: refuse, never pick one.
                    origin = value if origin is None else _DUPLICATE
        else:
            origin, request_method, request_headers, private_network = _read_preflight(scope["headers"])

        if origin is None:
            ours = _ONLY_VARY_ORIGIN
        elif request_method is not None and scope["method"] == "OPTIONS":
            text = origin.decode("latin-1")
            rule = policy.lookup(text, scope)
            if isinstance(rule, Pending):
                rule = await policy.resolve(text, scope)
            await self._answer_preflight(
                policy, text, rule, request_method, request_headers, private_network, scope, send
            )
            return
        else:
            answer = policy.actual_response(origin, scope)  # the CORS headers, Vary last
            if answer is PENDING:
                text = origin.decode("latin-1")
                rule = await policy.resolve(text, scope)
                answer = policy.actual_response_for(origin, rule)
                if policy.decision_listeners or (len(answer) == 1 and logger.isEnabledFor(logging.INFO)):
                    self._tell(policy, text, len(answer) > 1, scope, rule=rule)  # not asked twice
            # With no listener and no refusal to log, this is one attribute check more.
            elif policy.decision_listeners or (
                len(answer) == 1 and logger.isEnabledFor(logging.INFO)  # type: ignore[arg-type]
            ):
                allowed = len(answer) > 1  # type: ignore[arg-type]
                self._tell(policy, origin.decode("latin-1"), allowed, scope, rule=PENDING)
            ours = answer  # type: ignore[assignment]
            shadow = policy.shadow
            if shadow is not None:
                # The shadow's own fast path first: agreeing costs a dict read, not a coroutine.
                would = shadow.actual_response(origin, scope)
                if would is PENDING or len(would) != len(ours):  # type: ignore[arg-type]
                    await policy.observe(origin, len(ours) > 1, scope)

        # A plain function returning send's awaitable: one coroutine per message, not two.
        def send_with_cors(message: Message) -> Awaitable[None]:
            # A corsengine middleware nearer the app (a mounted sub-app's own policy) has
            # decided this response already: it is left as that one made it.
            if message["type"] == "http.response.start" and _HANDLED not in message:
                message["headers"] = _response_headers(message.get("headers", ()), ours)
                message[_HANDLED] = True
            return send(message)

        await self.app(scope, receive, send_with_cors)

    async def _answer_preflight(
        self,
        policy: Policy,
        origin: str,
        rule: str | None,
        request_method: bytes,
        request_headers: bytes | None,
        private_network: bool,
        scope: Scope,
        send: Send,
    ) -> None:
        # Fetch: the app never sees a preflight; the answer is ours alone. The answer is a
        # pure function of these inputs (the rule already reflects the current allowlist),
        # so encoded answers are memoized, bounded.
        key = (policy, origin, rule, request_method, request_headers, private_network, policy.vary)
        answer = self._preflights.get(key)
        if answer is None:
            decision = policy.decide(
                origin,
                rule,
                request_method.decode("latin-1"),
                request_headers.decode("latin-1") if request_headers is not None else None,
                True,
                private_network,
                explain=False,
            )
            body = (decision.body or "").encode("utf-8")
            headers = _encode(decision.headers.items())
            if decision.status != 204:  # RFC 9110 8.6: no Content-Length on a 204
                headers.append((b"content-length", str(len(body)).encode("latin-1")))
                headers.append(_CONTENT_TYPE)
            answer = (decision.status or 400, tuple(headers), body, decision.failures)
            # Oversized values are refused at once; keeping them would let a flood pin
            # _PREFLIGHT_MEMO_SIZE times a server's header limit in memory.
            if len(origin) <= MAX_ORIGIN_LENGTH and len(request_headers or b"") <= MAX_REQUEST_HEADERS_LENGTH:
                if len(self._preflights) >= _PREFLIGHT_MEMO_SIZE:
                    self._preflights.clear()
                self._preflights[key] = answer
        status, headers_tuple, body, failures = answer
        if policy.shadow is not None:
            asked = request_headers.decode("latin-1") if request_headers is not None else None
            preflight = (request_method.decode("latin-1"), asked, private_network)
            await policy.observe(origin.encode("latin-1"), status < 300, None, preflight=preflight)
        if policy.decision_listeners or (failures and logger.isEnabledFor(logging.INFO)):
            self._tell(
                policy,
                origin,
                not failures,
                scope,
                rule=rule,
                request="preflight",
                method=request_method.decode("latin-1"),
                request_headers=request_headers.decode("latin-1") if request_headers is not None else None,
                private_network=private_network,
                failures=failures,
            )
        # A fresh list each time: outer middleware may edit the headers in place.
        await send({"type": "http.response.start", "status": status, "headers": list(headers_tuple)})
        await send({"type": "http.response.body", "body": body})

    async def _websocket(self, policy: Policy, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a WebSocket handshake from an Origin the policy does not allow.

        Browsers apply no CORS to WebSockets: they send the page's Origin, with its cookies,
        and leave the check to the server (cross-site WebSocket hijacking). A handshake
        without an Origin (a non-browser client) passes.
        """
        origins = [value for name, value in scope["headers"] if name == _ORIGIN]
        if not origins:
            await self.app(scope, receive, send)
            return
        origin = origins[0] if len(origins) == 1 else _DUPLICATE
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

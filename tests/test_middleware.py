"""The ASGI adapter through raw ASGI calls: no framework, asyncio and trio."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from typing import Any

import anyio
import pytest
import uvicorn

from corsengine import CORSMiddleware, Policy, _middleware
from corsengine.providers import CallableProvider, PredicateProvider
from corsengine.testing import FakeClock

from .asgi import call, plain_app

ORIGIN = (b"origin", b"https://app.example.com")


def headers_of(raw: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    return dict(raw)


def run(coroutine_function: Any, *args: Any, backend: str = "asyncio") -> Any:
    return anyio.run(coroutine_function, *args, backend=backend)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_runs_on_a_bare_asgi_app_with_both_event_loops(backend: str) -> None:
    app = CORSMiddleware(plain_app(), allow_origins=["https://app.example.com"])
    status, headers, body = run(call, app, "GET", [ORIGIN], backend=backend)
    assert (status, body) == (200, b"app")
    assert headers_of(headers)[b"access-control-allow-origin"] == b"https://app.example.com"
    assert headers_of(headers)[b"vary"] == b"Origin"


def test_preflight_never_reaches_the_app() -> None:
    inner = plain_app()
    app = CORSMiddleware(inner, allow_origins=["https://app.example.com"], allow_methods=["PUT"])
    status, headers, body = run(call, app, "OPTIONS", [ORIGIN, (b"access-control-request-method", b"PUT")])
    assert (status, body) == (200, b"OK")
    assert inner.seen == []  # type: ignore[attr-defined]
    assert headers_of(headers)[b"content-type"] == b"text/plain; charset=utf-8"
    assert headers_of(headers)[b"content-length"] == b"2"


def test_options_without_request_method_is_an_actual_request() -> None:
    inner = plain_app()
    app = CORSMiddleware(inner, allow_origins=["https://app.example.com"])
    _, headers, body = run(call, app, "OPTIONS", [ORIGIN])
    assert body == b"app"
    assert headers_of(headers)[b"access-control-allow-origin"] == b"https://app.example.com"


def test_two_origin_headers_are_refused_without_an_exception() -> None:
    app = CORSMiddleware(plain_app(), allow_origins=["https://app.example.com"])
    status, headers, body = run(call, app, "GET", [ORIGIN, ORIGIN])
    assert (status, body) == (200, b"app")
    assert b"access-control-allow-origin" not in headers_of(headers)
    status, headers, body = run(
        call,
        app,
        "OPTIONS",
        [ORIGIN, (b"origin", b"https://evil.com"), (b"access-control-request-method", b"GET")],
    )
    assert (status, body) == (400, b"Disallowed CORS origin")


def test_servers_see_an_asgi_3_app() -> None:
    # __call__ is a plain function returning the app's awaitable, marked as a coroutine
    # function: servers tell ASGI 3 from ASGI 2 by it.
    app = CORSMiddleware(plain_app(), allow_origins=["https://app.example.com"])
    assert asyncio.iscoroutinefunction(app.__call__)
    if sys.version_info >= (3, 12):
        assert inspect.iscoroutinefunction(app.__call__)
    config = uvicorn.Config(app)
    config.load()
    assert config.interface == "asgi3"


def test_a_logged_refusal_of_two_origins_names_no_origin(caplog: pytest.LogCaptureFixture) -> None:
    # A refused first Origin is the answer to a second one too; its log line must still say
    # what was refused: two Origins (a malformed origin), not the first alone.
    app = CORSMiddleware(plain_app(), allow_origins=["https://app.example.com"])
    evil = (b"origin", b"https://evil.example")
    with caplog.at_level(logging.INFO, logger="corsengine"):
        run(call, app, "GET", [evil])  # prepared: the refusal
        run(call, app, "GET", [evil, ORIGIN])
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "evil.example" not in messages[1]
    assert "malformed-origin" in messages[1]


def test_response_header_names_remembered_as_plain_stay_bounded() -> None:
    app = CORSMiddleware(plain_app(), allow_origins=["https://app.example.com"])
    size = _middleware._PLAIN_NAMES_SIZE
    for i in range(size + 10):
        names = [(f"x-header-{i}".encode(), b"1"), (b"Vary", b"Accept")]
        _, headers, _ = run(call, CORSMiddleware(plain_app(names), policy=app.policy), "GET", [ORIGIN])
        assert headers[-1] == (b"vary", b"Accept, Origin")  # merged however many names were seen
        assert len(_middleware._PLAIN_NAMES) <= size
    assert b"vary" not in _middleware._PLAIN_NAMES and b"Vary" not in _middleware._PLAIN_NAMES


@pytest.mark.parametrize(
    "value",
    [b"https://app.example.com\r\n", b"\xff\xfe", b"https://app.example.com\x00", b"a" * 10_240, b""],
    ids=["crlf", "non-utf8", "nul", "10KB", "empty"],
)
def test_hostile_origin_bytes_are_refused(value: bytes) -> None:
    app = CORSMiddleware(plain_app(), allow_origins=["*"])
    status, headers, body = run(call, app, "GET", [(b"origin", value)])
    assert (status, body) == (200, b"app")
    assert b"access-control-allow-origin" not in headers_of(headers)


def test_app_cors_headers_are_replaced_and_vary_merged() -> None:
    inner = plain_app(
        [
            (b"Access-Control-Allow-Origin", b"*"),
            (b"access-control-expose-headers", b"X-Secret"),
            (b"Vary", b"Accept-Encoding"),
            (b"vary", b"Cookie"),
            (b"x-kept", b"1"),
        ]
    )
    app = CORSMiddleware(inner, allow_origins=["https://app.example.com"], expose_headers=["X-Total"])
    _, headers, _ = run(call, app, "GET", [ORIGIN])
    assert headers == [
        (b"x-kept", b"1"),
        (b"access-control-allow-origin", b"https://app.example.com"),
        (b"access-control-expose-headers", b"X-Total"),
        (b"vary", b"Accept-Encoding, Cookie, Origin"),
    ]
    _, headers, _ = run(call, app, "GET", [(b"origin", b"https://evil.com")])
    assert headers == [(b"x-kept", b"1"), (b"vary", b"Accept-Encoding, Cookie, Origin")]


@pytest.mark.parametrize("shape", ["list", "tuple", "generator", "lists"])
@pytest.mark.parametrize("with_vary", [False, True])
def test_app_headers_in_any_iterable_shape_are_kept(shape: str, with_vary: bool) -> None:
    own = [(b"content-type", b"text/plain"), (b"x-kept", b"1")] + (
        [(b"Vary", b"Cookie")] if with_vary else []
    )
    shaped: Any = {
        "list": lambda: list(own),
        "tuple": lambda: tuple(own),
        "generator": lambda: (header for header in own),
        "lists": lambda: [list(header) for header in own],  # ASGI allows [name, value] pairs
    }[shape]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": shaped()})
        await send({"type": "http.response.body", "body": b"app"})

    middleware = CORSMiddleware(app, allow_origins=["https://app.example.com"])
    _, headers, _ = run(call, middleware, "GET", [ORIGIN])
    assert [tuple(header) for header in headers] == [
        (b"content-type", b"text/plain"),
        (b"x-kept", b"1"),
        (b"access-control-allow-origin", b"https://app.example.com"),
        (b"vary", b"Cookie, Origin" if with_vary else b"Origin"),
    ]


def test_vary_star_is_left_alone() -> None:
    app = CORSMiddleware(plain_app([(b"vary", b"*")]), allow_origins=["https://app.example.com"])
    _, headers, _ = run(call, app, "GET", [ORIGIN])
    assert headers_of(headers)[b"vary"] == b"*"


def test_websocket_and_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    app = CORSMiddleware(inner, allow_origins=["https://app.example.com"])

    async def main() -> None:
        await app({"type": "websocket", "headers": [ORIGIN]}, None, None)  # type: ignore[arg-type]

    anyio.run(main)
    assert seen == ["websocket"]


def test_lifespan_is_forwarded_and_runs_background_refreshes() -> None:
    calls: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            calls.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    policy = Policy(lambda: ["https://app.example.com"])
    app = CORSMiddleware(inner, policy=policy)
    sent: list[str] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            assert policy._resolver._task_group is not None

    anyio.run(app, {"type": "lifespan"}, receive, send)
    assert calls == ["lifespan.startup", "lifespan.shutdown"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert policy._resolver._task_group is None


def test_policy_argument_excludes_the_keyword_arguments() -> None:
    with pytest.raises(TypeError, match="either policy= or"):
        CORSMiddleware(plain_app(), allow_origins=["https://a.com"], policy=Policy())
    app = CORSMiddleware(plain_app(), policy=Policy(["https://a.com"], allow_credentials=True))
    _, headers, _ = run(call, app, "GET", [(b"origin", b"https://a.com")])
    assert headers_of(headers)[b"access-control-allow-credentials"] == b"true"


def test_the_blog_callable_and_an_async_callable() -> None:
    def custom_origins() -> list[str]:
        return ["http://localhost", "http://localhost:3000", "https://example.com"]

    async def async_origins() -> list[str]:
        return ["https://async.example"]

    for origins, allowed in (
        (custom_origins, b"http://localhost:3000"),
        (async_origins, b"https://async.example"),
    ):
        app = CORSMiddleware(plain_app(), allow_origins=origins)
        _, headers, _ = run(call, app, "GET", [(b"origin", allowed)])
        assert headers_of(headers)[b"access-control-allow-origin"] == allowed
        _, headers, _ = run(call, app, "GET", [(b"origin", b"https://evil.com")])
        assert b"access-control-allow-origin" not in headers_of(headers)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_predicate_provider_through_the_middleware(backend: str) -> None:
    asked: list[str] = []

    async def is_tenant(origin: str) -> bool:
        asked.append(origin)
        return origin.endswith(".tenant.example")

    app = CORSMiddleware(plain_app(), allow_origins=PredicateProvider(is_tenant))
    for _ in range(3):
        _, headers, _ = run(call, app, "GET", [(b"origin", b"https://a.tenant.example")], backend=backend)
        assert headers_of(headers)[b"access-control-allow-origin"] == b"https://a.tenant.example"
    assert asked == ["https://a.tenant.example"]  # cached after the first answer
    _, headers, _ = run(call, app, "GET", [(b"origin", b"https://b.example")], backend=backend)
    assert b"access-control-allow-origin" not in headers_of(headers)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_predicate_given_the_request_is_asked_for_every_request(backend: str) -> None:
    seen: list[str] = []

    async def on_api_only(origin: str, scope: Any) -> bool:
        seen.append(scope["path"])
        return bool(scope["path"].startswith("/api/"))

    app = CORSMiddleware(plain_app(), allow_origins=PredicateProvider(on_api_only))
    origin = [(b"origin", b"https://tenant.example")]
    for path, expected in (("/api/x", True), ("/other", False), ("/api/y", True), ("/other", False)):
        _, headers, _ = run(call, app, "GET", origin, path, backend=backend)
        assert (b"access-control-allow-origin" in headers_of(headers)) is expected, path
    assert seen == ["/api/x", "/other", "/api/y", "/other"]  # no answer reused for another request


def test_refused_origins_are_logged_escaped(caplog: pytest.LogCaptureFixture) -> None:
    app = CORSMiddleware(plain_app(), allow_origins=["https://app.example.com"])
    with caplog.at_level(logging.DEBUG, logger="corsengine"):
        run(call, app, "GET", [(b"origin", b"https://evil.com\r\nINJECTED")])
    assert caplog.records, "a refusal is logged at debug level"
    message = caplog.records[0].getMessage()
    assert "\r" not in message and "\n" not in message
    assert "\\r\\nINJECTED" in message


def test_callable_provider_object_is_accepted() -> None:
    app = CORSMiddleware(plain_app(), allow_origins=CallableProvider(lambda: ["https://a.com"], ttl=5))
    _, headers, _ = run(call, app, "GET", [(b"origin", b"https://a.com")])
    assert headers_of(headers)[b"access-control-allow-origin"] == b"https://a.com"


# --- the snapshot's prepared headers never outlive what they were made from ----------------------


def allow_origin_of(app: Any, origin: str) -> bytes | None:
    async def main() -> bytes | None:
        _, headers, _ = await call(app, "GET", [(b"origin", origin.encode())])
        return dict(headers).get(b"access-control-allow-origin")

    return anyio.run(main)  # type: ignore[no-any-return]


def test_prepared_headers_are_not_used_after_a_swap() -> None:
    policy = Policy(["https://a.example"])
    app = CORSMiddleware(plain_app(), policy=policy)
    assert allow_origin_of(app, "https://a.example") == b"https://a.example"
    assert allow_origin_of(app, "https://a.example") == b"https://a.example"  # from the prepared cache
    policy.swap(["https://b.example"])
    assert allow_origin_of(app, "https://a.example") is None


def test_prepared_headers_are_not_used_after_a_ttl_reload_or_a_refresh(clock: FakeClock) -> None:
    lists = {"now": ["https://a.example"]}
    policy = Policy(CallableProvider(lambda: lists["now"], ttl=30), clock=clock)
    app = CORSMiddleware(plain_app(), policy=policy)

    async def main() -> None:
        async def allow_origin(origin: str) -> bytes | None:
            _, headers, _ = await call(app, "GET", [(b"origin", origin.encode())])
            return dict(headers).get(b"access-control-allow-origin")

        assert await allow_origin("https://a.example") == b"https://a.example"
        assert await allow_origin("https://a.example") == b"https://a.example"
        assert policy.answers.get(b"https://a.example") is not None  # prepared while fresh
        lists["now"] = ["https://b.example"]
        clock.advance(31)
        # Due for a reload: an adapter that compares the time first finds nothing prepared.
        assert policy.answers_expire and policy.prepared.until <= clock()
        policy.expire_answers()
        assert policy.answers.get(b"https://a.example") is None
        await allow_origin("https://b.example")  # expired: the reload starts
        await anyio.wait_all_tasks_blocked()
        assert await allow_origin("https://a.example") is None
        lists["now"] = ["https://a.example"]
        await policy.refresh()
        assert await allow_origin("https://a.example") == b"https://a.example"

    anyio.run(main)


def test_prepared_headers_are_not_used_past_max_stale(clock: FakeClock) -> None:
    state = {"fail": False}

    def origins() -> list[str]:
        if state["fail"]:
            raise RuntimeError("down")
        return ["https://a.example"]

    policy = Policy(CallableProvider(origins, ttl=30), max_stale=60, clock=clock)
    app = CORSMiddleware(plain_app(), policy=policy)
    assert allow_origin_of(app, "https://a.example") == b"https://a.example"
    assert allow_origin_of(app, "https://a.example") == b"https://a.example"  # prepared now
    state["fail"] = True
    clock.advance(89)
    assert allow_origin_of(app, "https://a.example") == b"https://a.example"  # last good list
    assert allow_origin_of(app, "https://a.example") == b"https://a.example"  # prepared again
    assert preflight_allows(app, "https://a.example") and preflight_allows(app, "https://a.example")
    clock.advance(2)  # past TTL + max_stale: fail closed, whatever was prepared
    assert not preflight_allows(app, "https://a.example")  # the first preflight after it
    assert allow_origin_of(app, "https://a.example") is None


def tenant_policy(clock: FakeClock) -> tuple[Policy, set[str], list[str]]:
    """A policy whose predicate allows the tenants (one, editable) and records each call."""
    tenants = {"https://t.example"}
    calls: list[str] = []

    def is_tenant(origin: str) -> bool:
        calls.append(origin)
        return origin in tenants

    return Policy(PredicateProvider(is_tenant, cache_ttl=10), clock=clock), tenants, calls


def test_predicate_answers_are_never_prepared(clock: FakeClock) -> None:
    policy, tenants, calls = tenant_policy(clock)
    app = CORSMiddleware(plain_app(), policy=policy)
    assert allow_origin_of(app, "https://t.example") == b"https://t.example"
    assert allow_origin_of(app, "https://t.example") == b"https://t.example"
    tenants.clear()
    clock.advance(10)  # the cached answer expired: asked again at the first request
    assert allow_origin_of(app, "https://t.example") is None
    assert calls == ["https://t.example", "https://t.example"]


def preflight_allows(app: Any, origin: str, method: bytes = b"GET") -> bool:
    async def main() -> bool:
        request = [(b"origin", origin.encode()), (b"access-control-request-method", method)]
        status, headers, _ = await call(app, "OPTIONS", request)
        return status == 200 and b"access-control-allow-origin" in dict(headers)

    return anyio.run(main)  # type: ignore[no-any-return]


def test_prepared_preflights_are_not_used_after_a_swap() -> None:
    policy = Policy(["https://a.example"])
    app = CORSMiddleware(plain_app(), policy=policy)
    assert preflight_allows(app, "https://a.example")
    assert len(policy.preflights) == 1  # the second one is answered from the snapshot
    assert preflight_allows(app, "https://a.example")
    policy.swap(["https://b.example"])
    assert not policy.preflights
    assert not preflight_allows(app, "https://a.example")
    assert preflight_allows(app, "https://b.example")


def test_prepared_preflights_of_an_allowlist_that_expires_end_with_it(clock: FakeClock) -> None:
    lists = {"now": ["https://a.example"]}
    policy = Policy(CallableProvider(lambda: lists["now"], ttl=30), clock=clock)
    app = CORSMiddleware(plain_app(), policy=policy)
    key = (b"https://a.example", b"GET", None, False)
    key_b = (b"https://b.example", b"GET", None, False)

    async def main() -> None:
        async def allows(origin: str) -> bool:
            request = [(b"origin", origin.encode()), (b"access-control-request-method", b"GET")]
            status, _, _ = await call(app, "OPTIONS", request)
            return status == 200

        assert await allows("https://a.example") and await allows("https://a.example")
        assert policy.preflights.get(key) is not None  # prepared, while the list is fresh
        lists["now"] = ["https://b.example"]
        await policy.refresh()
        assert policy.preflights.get(key) is None
        assert not await allows("https://a.example")  # the first preflight after the refresh
        assert await allows("https://b.example") and await allows("https://b.example")
        assert policy.preflights.get(key_b) is not None
        lists["now"] = ["https://a.example"]
        clock.advance(31)
        assert policy.answers_expire and policy.prepared.until <= clock()  # due for a reload
        await allows("https://b.example")  # answered from the list it has; the reload starts
        await anyio.wait_all_tasks_blocked()
        assert not await allows("https://b.example")

    anyio.run(main)


def test_prepared_preflights_of_a_predicate_end_with_its_cached_answer(clock: FakeClock) -> None:
    policy, tenants, calls = tenant_policy(clock)
    app = CORSMiddleware(plain_app(), policy=policy)
    assert preflight_allows(app, "https://t.example") and preflight_allows(app, "https://t.example")
    assert policy.preflights.get((b"https://t.example", b"GET", None, False)) is not None
    tenants.clear()
    clock.advance(10)  # the cached answer expired: asked again at the first preflight
    assert policy.answers_expire and policy.prepared.until <= clock()
    assert not preflight_allows(app, "https://t.example")
    assert calls == ["https://t.example", "https://t.example"]


def test_a_request_aware_predicate_is_never_prepared(clock: FakeClock) -> None:
    def tenant_of_request(origin: str, scope: Any) -> bool:
        return dict(scope["headers"]).get(b"x-tenant") == b"acme"

    policy = Policy(PredicateProvider(tenant_of_request), clock=clock)
    app = CORSMiddleware(plain_app(), policy=policy)

    async def allow_origin(tenant: bytes) -> bytes | None:
        request = [(b"origin", b"https://t.example"), (b"x-tenant", tenant)]
        _, headers, _ = await call(app, "GET", request)
        return dict(headers).get(b"access-control-allow-origin")

    async def main() -> None:
        assert await allow_origin(b"acme") == b"https://t.example"
        assert policy.answers.get(b"https://t.example") is None
        assert await allow_origin(b"globex") is None  # asked again: another request

    anyio.run(main)


def test_prepared_answers_hold_only_what_the_rules_said_and_die_with_the_snapshot() -> None:
    policy = Policy(["https://a.example"], allow_credentials=True)
    app = CORSMiddleware(plain_app(), policy=policy)
    assert allow_origin_of(app, "https://a.example") == b"https://a.example"
    assert allow_origin_of(app, "https://evil.example") is None
    assert set(policy.answers) == {b"https://a.example", b"https://evil.example"}
    assert policy.answers.get(b"https://evil.example") is policy.refusal == [(b"vary", b"Origin")]
    policy.swap(["https://evil.example"])
    assert not policy.answers
    assert allow_origin_of(app, "https://evil.example") == b"https://evil.example"


def test_an_app_header_with_an_empty_name_takes_the_careful_path() -> None:
    app = CORSMiddleware(
        plain_app([(b"", b"odd"), (b"Vary", b"Accept")]), allow_origins=["https://a.example"]
    )
    _, headers, _ = anyio.run(call, app, "GET", [(b"origin", b"https://a.example")])
    assert (b"", b"odd") in headers
    assert dict(headers)[b"vary"] == b"Accept, Origin"

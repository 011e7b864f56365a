"""The dynamic core keeps its promises: request-aware predicates, swaps from any thread, bounded
reads, failing sources that say so, and swaps that never leave a request without a list.

Each test is the first request after the change it checks; time is a FakeClock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from corsengine import ConfigurationError, CORSMiddleware, Policy
from corsengine.providers import BaseProvider, CallableProvider, PredicateProvider, Rules, StaticProvider
from corsengine.testing import FakeClock

from .asgi import call, lifespan, plain_app

A, B, C = "https://a.example", "https://b.example", "https://c.example"


def scope_for(path: str, **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "path": path,
        "headers": [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()],
    }


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    values = [value for key, value in headers if key == name]
    assert len(values) <= 1, f"{name!r} sent {len(values)} times"
    return values[0] if values else None


class Gated:
    """An async origins function that waits for its gate: a load that is still running."""

    def __init__(self, origins: list[str]) -> None:
        self.origins = origins
        self.gate = anyio.Event()
        self.calls = 0

    async def __call__(self) -> list[str]:
        self.calls += 1
        await self.gate.wait()
        return self.origins


class Closing(BaseProvider):
    """A provider that records being closed."""

    def __init__(self, origins: list[str]) -> None:
        self.rules = Rules.from_entries(origins)
        self.ttl = 30.0
        self.closed = threading.Event()

    async def load(self) -> Rules:
        return self.rules

    async def aclose(self) -> None:
        self.closed.set()


# --- 1. predicates that take the request -------------------------------------------------


def api_only(origin: str, scope: Any) -> bool:
    return origin == A and scope is not None and scope["path"].startswith("/api/")


@pytest.mark.parametrize(
    "order", [["/api/x", "/other"], ["/other", "/api/x"]], ids=["api-first", "other-first"]
)
def test_a_request_aware_predicate_is_never_answered_from_another_request(order: list[str]) -> None:
    policy = Policy(PredicateProvider(api_only))
    for path in order:
        assert policy.evaluate(A, scope=scope_for(path)).allowed is path.startswith("/api/"), path


def test_a_request_aware_predicate_with_a_cache_key_is_cached_per_key(clock: FakeClock) -> None:
    calls: list[str] = []

    def predicate(origin: str, scope: Any) -> bool:
        calls.append(scope["path"])
        return api_only(origin, scope)

    policy = Policy(PredicateProvider(predicate, cache_key=lambda origin, scope: scope["path"]), clock=clock)
    for _ in range(3):
        assert policy.evaluate(A, scope=scope_for("/api/x")).allowed
        assert not policy.evaluate(A, scope=scope_for("/other")).allowed
    assert calls == ["/api/x", "/other"]


def test_a_predicate_of_the_origin_alone_is_cached_per_origin(clock: FakeClock) -> None:
    calls: list[str] = []

    def predicate(origin: str) -> bool:
        calls.append(origin)
        return origin == A

    policy = Policy(PredicateProvider(predicate), clock=clock)
    for path in ("/api/x", "/other", "/"):
        assert policy.evaluate(A, scope=scope_for(path)).allowed
    assert calls == [A]


def test_headers_a_cached_answer_depends_on_are_named_in_vary() -> None:
    def by_tenant(origin: str, scope: Any) -> bool:
        return dict(scope["headers"]).get(b"x-tenant") == b"acme"

    provider = PredicateProvider(
        by_tenant, cache_key=lambda origin, scope: dict(scope["headers"]).get(b"x-tenant"), vary=["X-Tenant"]
    )
    app = CORSMiddleware(plain_app([(b"vary", b"Accept-Encoding")]), policy=Policy(provider))
    status, headers, _ = anyio.run(call, app, "GET", [(b"origin", A.encode()), (b"x-tenant", b"acme")])
    assert header(headers, b"access-control-allow-origin") == A.encode()
    assert header(headers, b"vary") == b"Accept-Encoding, Origin, X-Tenant"
    status, headers, _ = anyio.run(call, app, "GET", [(b"origin", A.encode()), (b"x-tenant", b"other")])
    assert header(headers, b"access-control-allow-origin") is None
    assert header(headers, b"vary") == b"Accept-Encoding, Origin, X-Tenant"
    preflight = [(b"origin", A.encode()), (b"x-tenant", b"acme"), (b"access-control-request-method", b"GET")]
    status, headers, _ = anyio.run(call, app, "OPTIONS", preflight)
    assert status == 200
    assert header(headers, b"vary").endswith(b"Access-Control-Request-Private-Network, X-Tenant")  # type: ignore[union-attr]
    assert (
        Policy(provider).evaluate(A, scope=scope_for("/", x_tenant="acme")).headers["Vary"]
        == "Origin, X-Tenant"
    )


@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda: Policy(allow_origins=lambda origin: True), "allow_origins is the function"),
        (lambda: CORSMiddleware(plain_app(), allow_origins=lambda origin: True), "cannot be called without"),
        (lambda: PredicateProvider(lambda: True), "fn(origin) or fn(origin, scope)"),
        (lambda: PredicateProvider(lambda a, b, c: True), "fn(origin) or fn(origin, scope)"),
        (lambda: CallableProvider(lambda origin: [origin]), "cannot be called as fn()"),
        (
            lambda: PredicateProvider(lambda origin: True, cache_key=lambda origin, scope: 1),
            "does not take the request",
        ),
        (
            lambda: PredicateProvider(lambda origin, scope: True, cache_key=lambda origin: 1),
            "cache_key(origin, scope)",
        ),
        (lambda: Policy([A]).on_change(lambda: None), "listener(change)"),
    ],
    ids=[
        "origins-fn",
        "dropin-origins-fn",
        "predicate-0",
        "predicate-3",
        "callable-1",
        "key-unused",
        "key-1",
        "listener-0",
    ],
)
def test_a_user_function_of_the_wrong_shape_is_a_configuration_error(
    make: Callable[[], object], names: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make()
    assert caught.value.codes == ("corsengine.E026",)
    assert names in str(caught.value) and "hint:" in str(caught.value)


# --- 2. cache_size=0 ----------------------------------------------------------------------


def test_cache_size_zero_asks_every_time_and_never_fails() -> None:
    calls: list[str] = []

    def predicate(origin: str) -> bool:
        calls.append(origin)
        return True

    app = CORSMiddleware(plain_app(), allow_origins=PredicateProvider(predicate, cache_size=0))
    for _ in range(3):
        status, headers, _ = anyio.run(call, app, "GET", [(b"origin", A.encode())])
        assert status == 200 and header(headers, b"access-control-allow-origin") == A.encode()
    assert calls == [A, A, A]


def test_a_negative_cache_size_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        PredicateProvider(lambda origin: True, cache_size=-1, cache_ttl="60", timeout=True)  # type: ignore[arg-type]
    assert caught.value.codes == ("corsengine.E024",) * 3


# --- 3. swap, refresh and on_change from any thread ------------------------------------------


def test_swap_from_a_plain_def_fastapi_endpoint_applies_and_closes_the_old_provider() -> None:
    old, new = Closing([A]), Closing([B])
    policy = Policy(old)
    app = FastAPI()
    app.add_middleware(CORSMiddleware, policy=policy)
    changes: list[object] = []
    policy.on_change(changes.append)

    @app.post("/swap")
    def swap() -> dict[str, bool]:  # FastAPI runs a def endpoint in a worker thread
        policy.swap(new)
        return {"swapped": True}

    with TestClient(app) as client:
        assert client.get("/", headers={"Origin": A}).headers.get("access-control-allow-origin") == A
        response = client.post("/swap")
        assert response.status_code == 200, response.text
        first = client.get("/", headers={"Origin": B})
        assert first.headers.get("access-control-allow-origin") == B
        assert "access-control-allow-origin" not in client.get("/", headers={"Origin": A}).headers
        assert old.closed.wait(5)
    assert not new.closed.is_set()
    assert changes  # the listener heard the swap from the worker thread


def test_swap_and_refresh_from_a_thread_with_no_loop_while_the_app_serves() -> None:
    calls = {"count": 0}

    def origins() -> list[str]:
        calls["count"] += 1
        return [A] if calls["count"] == 1 else [A, C]

    old = Closing([B])
    policy = Policy(old)
    app = CORSMiddleware(plain_app(), policy=policy)

    async def main() -> None:
        async with lifespan(app):
            await call(app, "GET", [(b"origin", B.encode())])  # the loop that serves is known now
            await anyio.to_thread.run_sync(policy.swap, CallableProvider(origins))
            with anyio.fail_after(5):
                while not old.closed.is_set():  # closed by the serving loop, soon
                    await anyio.lowlevel.checkpoint()
            _, headers, _ = await call(app, "GET", [(b"origin", A.encode())])
            assert header(headers, b"access-control-allow-origin") == A.encode()
            thread = threading.Thread(target=policy.refresh)  # a plain thread, no loop at all
            thread.start()
            await anyio.to_thread.run_sync(thread.join)
            _, headers, _ = await call(app, "GET", [(b"origin", C.encode())])  # the first request after
            assert header(headers, b"access-control-allow-origin") == C.encode()

    anyio.run(main)


def test_sync_code_with_no_loop_swaps_refreshes_and_closes() -> None:
    lists = iter([[A], [B]])
    old = Closing([C])
    policy = Policy(old)
    policy.swap(CallableProvider(lambda: next(lists)))
    assert old.closed.is_set()  # closed at once: no loop will ever come to do it
    assert policy.evaluate(A).allowed
    policy.refresh()  # not awaited: sync code
    assert policy.evaluate(B).allowed and not policy.evaluate(A).allowed


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_swap_inside_async_code_closes_the_old_provider(backend: str) -> None:
    old = Closing([A])
    policy = Policy(old)

    async def main() -> None:
        await policy.aevaluate(A)
        policy.swap([B])
        assert (await policy.aevaluate(B)).allowed  # the next request runs what was deferred
        with anyio.fail_after(5):
            while not old.closed.is_set():
                await anyio.lowlevel.checkpoint()

    anyio.run(main, backend=backend)


# --- 4. compiling off the loop --------------------------------------------------------------


def test_a_large_refreshed_list_is_compiled_in_a_worker_thread(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import corsengine.providers.dynamic as dynamic

    threads: list[int] = []
    compile_entries = dynamic.compile_entries

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return compile_entries(*args, **kwargs)

    monkeypatch.setattr(dynamic, "compile_entries", spy)
    big = [f"https://t{index}.example" for index in range(20_000)]
    policy = Policy(CallableProvider(lambda: big, ttl=30), clock=clock)

    async def main() -> None:
        loop_thread = threading.get_ident()
        assert (await policy.aevaluate("https://t7.example")).allowed
        clock.advance(31)
        await policy.refresh()
        assert threads and all(thread != loop_thread for thread in threads)

    anyio.run(main)


def test_a_compile_in_a_worker_thread_hands_the_gil_to_the_loop_between_chunks(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Else the event loop waits CPython's switch interval (5 ms) for the GIL at every turn.
    import time

    from corsengine import _patterns

    pauses: list[tuple[int, float]] = []
    sleep = time.sleep

    def spy(seconds: float) -> None:
        pauses.append((threading.get_ident(), seconds))
        sleep(seconds)

    monkeypatch.setattr(_patterns.time, "sleep", spy)
    big = [f"https://t{index}.example" for index in range(20_000)]
    policy = Policy(CallableProvider(lambda: big, ttl=30), clock=clock)

    async def main() -> None:
        loop_thread = threading.get_ident()
        assert (await policy.aevaluate("https://t7.example")).allowed  # compiled in a worker
        assert len(pauses) == len(big) // 512  # one between each two chunks of 512
        assert all(thread != loop_thread and seconds == 0 for thread, seconds in pauses)
        pauses.clear()
        _patterns.Rules.from_entries(big)  # on the loop's own thread: never
        assert pauses == []

    anyio.run(main)


# --- 6. configuration holes -----------------------------------------------------------------


def test_every_bad_option_is_listed_at_once_with_its_code() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Policy(
            [A],
            allow_methods=5,  # type: ignore[arg-type]
            allow_headers=None,  # type: ignore[arg-type]
            expose_headers=3.0,  # type: ignore[arg-type]
            allow_credentials="false",  # type: ignore[arg-type]
            allow_private_network=1,  # type: ignore[arg-type]
        )
    assert caught.value.codes == (
        "corsengine.E019",
        "corsengine.E019",
        "corsengine.E016",
        "corsengine.E016",
        "corsengine.E016",
    )


@pytest.mark.parametrize("regex", [".*", "https?://.*", "https://.*", r"https?://[^/]+"])
def test_a_catch_all_regex_with_credentials_is_refused_like_star(regex: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Policy(allow_origin_regex=regex, allow_credentials=True)
    assert caught.value.codes == ("corsengine.E012",)
    assert Policy(allow_origin_regex=regex).evaluate("https://x.example").allowed  # fine without credentials
    opted_in = Policy(
        allow_origin_regex=regex, allow_credentials=True, unsafe_allow_any_origin_with_credentials=True
    )
    assert opted_in.evaluate("https://x.example").allowed


def test_a_specific_regex_with_credentials_is_accepted() -> None:
    policy = Policy(allow_origin_regex=r"https://[a-z]+\.example\.com", allow_credentials=True)
    assert policy.evaluate("https://eu.example.com").allowed


def test_expose_star_with_credentials_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Policy([A], expose_headers=["*"], allow_credentials=True)
    assert caught.value.codes == ("corsengine.E023",)
    assert "expose_headers=['X-Total']" in str(caught.value)
    assert Policy([A], expose_headers=["*"]).evaluate(A).headers["Access-Control-Expose-Headers"] == "*"


# --- 8. refused preflights and 204 ----------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        [(b"access-control-request-method", b"DELETE")],
        [(b"access-control-request-method", b"GET"), (b"access-control-request-headers", b"x-nope")],
    ],
    ids=["method", "headers"],
)
def test_a_preflight_refused_for_method_or_headers_says_nothing_of_the_origin(
    extra: list[tuple[bytes, bytes]],
) -> None:
    app = CORSMiddleware(plain_app(), allow_origins=[A], allow_credentials=True, max_age=60)
    status, headers, body = anyio.run(call, app, "OPTIONS", [(b"origin", A.encode()), *extra])
    assert status == 400 and body.startswith(b"Disallowed CORS")
    names = {name for name, _ in headers}
    assert names == {b"vary", b"content-length", b"content-type"}


def test_a_204_preflight_has_no_content_length() -> None:
    app = CORSMiddleware(plain_app(), allow_origins=[A], preflight_status=204)
    status, headers, body = anyio.run(
        call, app, "OPTIONS", [(b"origin", A.encode()), (b"access-control-request-method", b"GET")]
    )
    assert (status, body) == (204, b"")
    assert header(headers, b"content-length") is None
    assert header(headers, b"access-control-allow-origin") == A.encode()


# --- 9. failures say so ---------------------------------------------------------------------


def test_a_failing_first_load_says_which_source_and_that_there_is_no_list(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def origins() -> list[str]:
        raise RuntimeError("config server down")

    policy = Policy(CallableProvider(origins), clock=clock)
    with caplog.at_level(logging.WARNING, logger="corsengine"):
        decision = policy.evaluate(A)
    assert not decision.allowed
    assert "CallableProvider" in decision.reason and "config server down" in decision.reason
    assert "no good list was ever loaded" in decision.reason
    assert "keeping the last good" not in caplog.text and "no good allowlist yet" in caplog.text


def test_a_failing_refresh_says_how_old_the_list_in_force_is(clock: FakeClock) -> None:
    state = {"fail": False}

    def origins() -> list[str]:
        if state["fail"]:
            raise RuntimeError("timeout talking to db")
        return [A]

    policy = Policy(CallableProvider(origins, ttl=30), clock=clock)
    assert policy.evaluate(A).allowed
    state["fail"] = True
    clock.advance(31)
    assert policy.evaluate(A).allowed  # the last good list stays in force
    clock.advance(9)
    reason = policy.evaluate(B).reason
    assert "failing for 9 s ('timeout talking to db')" in reason
    assert "its last good list, 40 s old, is in force" in reason


# --- 11. many header lines ------------------------------------------------------------------


class Counted(bytes):
    """A header value that counts the bytes copied when something is joined onto it."""

    copied = 0

    def __radd__(self, other: bytes) -> bytes:
        Counted.copied += len(other) + len(self)
        return bytes(other) + bytes(self)


def test_many_request_header_lines_are_joined_only_up_to_the_limit() -> None:
    app = CORSMiddleware(plain_app(), allow_origins=[A], allow_headers=["*"])
    lines = [
        (b"access-control-request-headers", Counted(b"x-header-number-%05d" % index))
        for index in range(5_000)
    ]
    Counted.copied = 0
    status, _headers, body = anyio.run(
        call, app, "OPTIONS", [(b"origin", A.encode()), (b"access-control-request-method", b"GET"), *lines]
    )
    assert (status, body) == (400, b"Disallowed CORS headers")
    # Joining all 5,000 lines one by one copies about 500 MB; stopping at 1 KiB, a few KB.
    assert Counted.copied < 64 * 1024, Counted.copied


def test_a_hundred_thousand_header_lines_are_refused_not_read() -> None:
    app = CORSMiddleware(plain_app(), allow_origins=[A], allow_headers=["*"])
    lines = [(b"access-control-request-headers", b"x-a") for _ in range(100_000)]
    status, _, body = anyio.run(
        call, app, "OPTIONS", [(b"origin", A.encode()), (b"access-control-request-method", b"GET"), *lines]
    )
    assert (status, body) == (400, b"Disallowed CORS headers")


def test_a_few_header_lines_are_joined_as_one_list() -> None:
    app = CORSMiddleware(plain_app(), allow_origins=[A], allow_headers=["X-A", "X-B"])
    lines = [(b"access-control-request-headers", b"x-a"), (b"access-control-request-headers", b"x-b")]
    status, _headers, _ = anyio.run(
        call, app, "OPTIONS", [(b"origin", A.encode()), (b"access-control-request-method", b"GET"), *lines]
    )
    assert status == 200


# --- 12. slow and failing predicates ---------------------------------------------------------


def test_a_sync_predicate_that_hangs_times_out_and_blocks_nobody() -> None:
    release = threading.Event()

    def hangs(origin: str) -> bool:
        release.wait(10)  # a database that does not answer
        return True

    policy = Policy(PredicateProvider(hangs, timeout=0.05) | StaticProvider([B]))

    async def main() -> None:
        order: list[str] = []

        async def slow() -> None:
            decision = await policy.aevaluate(A)
            order.append(f"A allowed={decision.allowed} released={release.is_set()}")

        async def fast() -> None:
            decision = await policy.aevaluate(B)
            order.append(f"B allowed={decision.allowed} released={release.is_set()}")

        with anyio.fail_after(8):
            async with anyio.create_task_group() as group:
                group.start_soon(slow)
                await anyio.lowlevel.checkpoint()
                group.start_soon(fast)
        release.set()
        assert order == ["B allowed=True released=False", "A allowed=False released=False"]

    try:
        anyio.run(main)
    finally:
        release.set()


def test_a_failing_predicate_is_asked_once_per_failure_ttl_and_logged_once(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def down(origin: str) -> bool:
        calls.append(origin)
        raise ConnectionError("tenant db down")

    policy = Policy(PredicateProvider(down, failure_ttl=5), clock=clock)
    with caplog.at_level(logging.WARNING, logger="corsengine"):
        for _ in range(10):
            assert not policy.evaluate(A).allowed
        assert calls == [A] and len(caplog.records) == 1
        clock.advance(5)
        assert not policy.evaluate(A).allowed
    assert calls == [A, A]


def test_concurrent_misses_for_one_origin_share_one_call() -> None:
    gate_holder: dict[str, anyio.Event] = {}
    calls: list[str] = []

    async def slow(origin: str) -> bool:
        calls.append(origin)
        await gate_holder["gate"].wait()
        return True

    policy = Policy(PredicateProvider(slow))

    async def main() -> None:
        gate_holder["gate"] = anyio.Event()
        results: list[bool] = []

        async def request() -> None:
            results.append((await policy.aevaluate(A)).allowed)

        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(request)
            await anyio.wait_all_tasks_blocked()
            gate_holder["gate"].set()
        assert results == [True] * 50

    anyio.run(main)
    assert calls == [A]


# --- 13. swaps between dynamic providers ------------------------------------------------------


def test_requests_waiting_for_a_load_follow_a_swap_to_the_new_provider() -> None:
    async def main() -> None:
        first, second = Gated([A]), Gated([A, B])
        policy = Policy(CallableProvider(first))
        results: list[bool] = []

        async def request() -> None:
            results.append((await policy.aevaluate(A)).allowed)

        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(request)
            await anyio.wait_all_tasks_blocked()
            policy.swap(CallableProvider(second))  # the first load is still running
            await anyio.wait_all_tasks_blocked()
            assert results == []  # nobody settled for "no list"
            second.gate.set()  # the swapped-out load never finishes: nobody waits for it
        assert results == [True] * 20
        assert (await policy.aevaluate(B)).allowed
        first.gate.set()

    anyio.run(main)


def test_rapid_swaps_between_callables_never_refuse_an_origin_both_allow() -> None:
    def slow(origins: list[str]) -> Callable[[], Any]:
        async def load() -> list[str]:
            for _ in range(10):  # a load that takes a few turns of the loop
                await anyio.lowlevel.checkpoint()
            return origins

        return load

    async def main() -> None:
        policy = Policy(slow([A, B]))
        refused = 0

        async def request() -> None:
            nonlocal refused
            refused += not (await policy.aevaluate(A)).allowed

        async with anyio.create_task_group() as group:
            for index in range(500):
                group.start_soon(request)
                if index % 3 == 0:  # a swap every few requests: faster than one load
                    policy.swap(slow([A, C] if index % 2 else [A, B]))
                await anyio.lowlevel.checkpoint()
        assert refused == 0

    anyio.run(main)


# --- 14. one member's refused '*' -------------------------------------------------------------


def test_a_star_from_one_source_does_not_hide_another_sources_patterns() -> None:
    static = StaticProvider(["https://app.example.com", "https://*.partner.example"])
    policy = Policy(static | CallableProvider(lambda: ["*"]), allow_credentials=True)
    decision = policy.evaluate("https://x.partner.example")
    assert decision.allowed and decision.rule == "https://*.partner.example"
    assert not policy.evaluate("https://evil.example").allowed


# --- 15. startup outages ----------------------------------------------------------------------


def test_only_the_very_first_load_is_waited_for(clock: FakeClock) -> None:
    hang = Gated([A])
    # 0.5 s: the retry below must finish within it once its gate opens, even on a busy machine.
    policy = Policy(CallableProvider(hang), timeout=0.5, clock=clock)

    async def main() -> None:
        with anyio.fail_after(10):
            assert not (await policy.aevaluate(A)).allowed  # waited, bounded by the timeout
        assert hang.calls == 1
        clock.advance(5)  # a retry is due
        # Refused at once; the retry runs in the background. It is held at the gate, so it is
        # still in flight when the request has its answer: a request that waited for it would
        # have come back only once the timeout ended it.
        assert not (await policy.aevaluate(A)).allowed
        assert any(slot.inflight is not None for slot in policy._resolver.state.slots)
        hang.gate.set()
        await anyio.wait_all_tasks_blocked()
        assert hang.calls == 2
        with anyio.fail_after(5):
            while not (await policy.aevaluate(A)).allowed:  # the retry lands in the background
                await anyio.lowlevel.checkpoint()

    anyio.run(main)


@pytest.mark.parametrize("kind", ["file", "remote"])
def test_a_large_document_is_parsed_in_a_worker_thread(
    kind: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import httpx

    import corsengine.providers._document as document
    from corsengine.providers import FileProvider, RemoteJSONProvider

    threads: list[int] = []
    parse = document.parse_document

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return parse(*args, **kwargs)

    monkeypatch.setattr(f"corsengine.providers.{kind}.parse_document", spy)
    body = json.dumps({"origins": [f"https://t{index}.example" for index in range(5_000)]})
    if kind == "file":
        path = tmp_path / "cors.json"
        path.write_text(body)
        provider: Any = FileProvider(path)
    else:
        client = httpx.AsyncClient(
            transport=httpx.MockTransport(lambda request: httpx.Response(200, text=body))
        )
        provider = RemoteJSONProvider("http://config.example/cors.json", client=client)

    async def main() -> None:
        loop_thread = threading.get_ident()
        policy = Policy(provider)
        assert (await policy.aevaluate("https://t4999.example")).allowed
        assert threads and all(thread != loop_thread for thread in threads)
        await policy.aclose()

    anyio.run(main)

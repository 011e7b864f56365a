"""The remote provider under faults, through the middleware, with respx and a real HTTP server.

For every fault, before any good document (first load) and after one (a refresh):

- no request fails: each one reaches the app and gets its answer;
- no request waits beyond the configured timeout (measured, with a bound);
- nothing is ever allowed that was not in a good document.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
import respx

from corsengine import CORSMiddleware, Policy
from corsengine.providers import RemoteJSONProvider
from corsengine.testing import FakeClock

from ..asgi import call, lifespan, plain_app
from .servers import Behaviour, DocumentServer, eventually, free_port

GOOD = "https://good.example"
EVIL = "https://evil.example"  # only ever in bad documents
GOOD_DOCUMENT = json.dumps({"origins": [GOOD], "version": "1"}).encode()
TTL = 10.0
TOTAL_TIMEOUT = 0.5
# A request that waits for a first load waits at most the provider's total timeout; the
# margin covers scheduling on a busy 2-core machine, not the network.
FIRST_LOAD_BOUND = TOTAL_TIMEOUT + 0.4
# Once there is a snapshot, requests never wait for a refresh (stale-while-revalidate).
REFRESH_BOUND = 0.1
URL = "https://config.example/cors.json"


@dataclass(frozen=True)
class Fault:
    name: str
    real: Callable[[Behaviour], None]  # how the real server misbehaves
    mocked: Any  # respx side effect
    # What a refresh leaves behind: "kept" (the last good, after a failure) or "fresh" (304).
    outcome: str = "kept"


def _body(body: bytes) -> Callable[[Behaviour], None]:
    def apply(behaviour: Behaviour) -> None:
        behaviour.mode, behaviour.body, behaviour.etag = "ok", body, None

    return apply


def _mode(mode: str, delay: float = 0.0, body: bytes | None = None) -> Callable[[Behaviour], None]:
    def apply(behaviour: Behaviour) -> None:
        behaviour.mode, behaviour.delay = mode, delay
        if body is not None:
            behaviour.body = body

    return apply


def _not_modified(behaviour: Behaviour) -> None:
    behaviour.mode, behaviour.body, behaviour.etag = "ok", GOOD_DOCUMENT, '"v1"'


async def _dribble() -> AsyncIterator[bytes]:
    yield b'["https://evil'
    await anyio.sleep(30)
    yield b'.example"]'


MALFORMED = b'["https://evil.example", '
WRONG_SCHEMA = json.dumps({"allow": [EVIL]}).encode()
BAD_ENTRY = json.dumps([EVIL, "https://evil.example/path"]).encode()
HUGE = b"[" + b'"https://evil.example",' * 5000 + b'"https://evil.example"]'

FAULTS = [
    Fault("timeout", _mode("slow", delay=5), httpx.ReadTimeout("slow")),
    Fault("http-500", _mode("500"), httpx.Response(500)),
    Fault("not-modified-304", _not_modified, httpx.Response(304), outcome="fresh"),
    Fault("malformed-json", _body(MALFORMED), httpx.Response(200, content=MALFORMED)),
    Fault("wrong-schema", _body(WRONG_SCHEMA), httpx.Response(200, content=WRONG_SCHEMA)),
    Fault("invalid-entry", _body(BAD_ENTRY), httpx.Response(200, content=BAD_ENTRY)),
    Fault("huge-body", _mode("huge"), httpx.Response(200, content=HUGE)),
    Fault("slow-body", _mode("dribble", delay=0.05, body=json.dumps([EVIL]).encode()), None),
    Fault("connection-refused", _mode("refused"), httpx.ConnectError("refused")),
    Fault("redirect-loop", _mode("redirect"), httpx.Response(302, headers={"Location": URL})),
]


class Harness:
    """A policy with a remote provider behind the middleware, driven by raw ASGI requests."""

    def __init__(self, provider: RemoteJSONProvider) -> None:
        self.clock = FakeClock()
        self.provider = provider
        self.policy = Policy(allow_origins=provider, clock=self.clock, timeout=5)
        self.app = CORSMiddleware(plain_app(), policy=self.policy)
        self.good_documents: set[str] = set()

    async def request(self, origin: str, bound: float) -> bool:
        start = time.perf_counter()
        status, headers, body = await call(self.app, headers=[(b"origin", origin.encode())])
        elapsed = time.perf_counter() - start
        assert status == 200 and body == b"app"  # the request itself never fails
        assert elapsed < bound, f"a request waited {elapsed:.3f} s (bound {bound} s)"
        allowed = (b"access-control-allow-origin", origin.encode()) in headers
        assert not allowed or origin in self.good_documents, f"{origin} allowed from a bad document"
        return allowed

    async def settle(self) -> None:
        """Wait (bounded) for the background refresh a stale request started to finish."""
        await eventually(
            lambda: all(
                slot.inflight is None and slot.fresh_until > self.clock()
                for slot in self.policy._resolver.state.slots
            )
        )

    def error(self) -> str | None:
        return self.policy._resolver.state.slots[0].error


def _provider(url: str, **options: Any) -> RemoteJSONProvider:
    return RemoteJSONProvider(
        url,
        ttl=TTL,
        min_ttl=1,
        connect_timeout=0.2,
        read_timeout=0.2,
        timeout=TOTAL_TIMEOUT,
        max_bytes=64_000,
        max_redirects=2,
        **options,
    )


async def _check_fault(harness: Harness, apply: Callable[[], None], fault: Fault) -> None:
    # First load under the fault: refused, promptly, without an error reaching anyone.
    apply()
    first_load_allows = await harness.request(EVIL, FIRST_LOAD_BOUND)
    assert not first_load_allows
    assert not await harness.request(GOOD, REFRESH_BOUND if harness.error() is None else FIRST_LOAD_BOUND)


async def _check_refresh(
    harness: Harness, serve_good: Callable[[], None], apply: Callable[[], None], fault: Fault
) -> None:
    serve_good()
    harness.good_documents.add(GOOD)
    harness.clock.advance(TTL + 1)
    await harness.request(GOOD, FIRST_LOAD_BOUND)
    await harness.settle()
    assert await harness.request(GOOD, REFRESH_BOUND)
    apply()
    harness.clock.advance(TTL + 1)
    # The refresh runs in the background; requests keep the last good list meanwhile.
    assert await harness.request(GOOD, REFRESH_BOUND)
    assert not await harness.request(EVIL, REFRESH_BOUND)
    await harness.settle()
    assert await harness.request(GOOD, REFRESH_BOUND)
    assert not await harness.request(EVIL, REFRESH_BOUND)
    if fault.outcome == "fresh":
        assert harness.error() is None
    else:
        assert harness.error() is not None


# --- with respx -------------------------------------------------------------------------------


# How the app is served: asyncio without lifespan (refreshes run as asyncio tasks), and with
# a lifespan on asyncio and on trio, as uvicorn and hypercorn run it (refreshes run in the
# lifespan's task group). Trio without a lifespan refreshes inline, by design (docs/dynamic.md).
SERVING = {"asyncio": False, "asyncio+lifespan": True, "trio+lifespan": True}


@pytest.fixture(params=list(SERVING))
def serving(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend(serving: str) -> str:
    return serving.split("+")[0]


@asynccontextmanager
async def served(harness: Harness, serving: str) -> AsyncIterator[None]:
    if SERVING[serving]:
        async with lifespan(harness.app):
            yield
    else:
        yield


@pytest.mark.anyio
@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
async def test_faults_with_respx(fault: Fault, serving: str) -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(URL)

        def apply() -> None:
            if fault.mocked is None:  # the slow body: headers at once, then a stall
                route.side_effect = lambda request: httpx.Response(200, content=_dribble())
            elif isinstance(fault.mocked, Exception):
                route.side_effect = fault.mocked
            else:
                route.side_effect = None
                route.return_value = fault.mocked

        def serve_good() -> None:
            route.side_effect = None
            route.return_value = httpx.Response(200, content=GOOD_DOCUMENT, headers={"ETag": '"v1"'})

        async with httpx.AsyncClient() as client:
            harness = Harness(_provider(URL, client=client))
            async with served(harness, serving):
                await _check_fault(harness, apply, fault)
                await _check_refresh(harness, serve_good, apply, fault)
            await harness.policy.aclose()


# --- with a real local HTTP server -----------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Any:
    with DocumentServer() as server:
        yield server


@pytest.mark.anyio
@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
async def test_faults_with_a_real_server(server: DocumentServer, fault: Fault, serving: str) -> None:
    behaviour = server.behaviour
    refused_url = f"http://127.0.0.1:{free_port()}/origins.json"

    def apply() -> None:
        if fault.name == "connection-refused":
            harness.provider.url = refused_url
        fault.real(behaviour)

    def serve_good() -> None:
        harness.provider.url = server.url
        _not_modified(behaviour)

    harness = Harness(_provider(server.url))
    async with served(harness, serving):
        if fault.name == "not-modified-304":
            # A first request carries no validators, so the real server answers 200.
            apply()
            harness.good_documents.add(GOOD)
            assert await harness.request(GOOD, FIRST_LOAD_BOUND)
        else:
            await _check_fault(harness, apply, fault)
        await _check_refresh(harness, serve_good, apply, fault)
    if fault.name == "not-modified-304":
        assert behaviour.requests[-1].get("If-None-Match") == '"v1"'
    await harness.policy.aclose()


@pytest.mark.anyio
async def test_flapping_availability_never_lets_a_bad_document_through(
    server: DocumentServer, serving: str
) -> None:
    behaviour = server.behaviour
    harness = Harness(_provider(server.url))
    states: list[tuple[str, Callable[[Behaviour], None]]] = [
        ("good", _not_modified),
        ("500", _mode("500")),
        ("good", _body(json.dumps([GOOD, "https://second.example"]).encode())),
        ("malformed", _body(MALFORMED)),
        ("timeout", _mode("slow", delay=5)),
        ("good", _body(json.dumps(["https://third.example"]).encode())),
        ("schema", _body(WRONG_SCHEMA)),
    ]
    harness.good_documents |= {GOOD, "https://second.example", "https://third.example"}
    last_good: set[str] = set()
    async with served(harness, serving):
        for round_ in range(3):
            for name, apply in states:
                apply(behaviour)
                harness.clock.advance(TTL + 1)
                bound = (
                    FIRST_LOAD_BOUND if round_ == 0 and name == "good" and not last_good else REFRESH_BOUND
                )
                await harness.request(GOOD, bound)
                await harness.settle()
                if name == "good":
                    last_good = set(json.loads(behaviour.body)) if behaviour.body.startswith(b"[") else {GOOD}
                for origin in (GOOD, "https://second.example", "https://third.example", EVIL):
                    assert await harness.request(origin, REFRESH_BOUND) == (origin in last_good), (
                        round_,
                        name,
                        origin,
                    )
    await harness.policy.aclose()


@pytest.mark.anyio
async def test_a_long_outage_fails_closed_after_max_stale_but_304s_keep_it_alive(
    server: DocumentServer,
) -> None:
    behaviour = server.behaviour
    _not_modified(behaviour)
    provider = _provider(server.url)
    clock = FakeClock()
    policy = Policy(allow_origins=provider, clock=clock, max_stale=30)
    assert (await policy.aevaluate(GOOD)).allowed
    for _ in range(5):  # 304s well past ttl + max_stale: each one is a successful refresh
        clock.advance(TTL + 1)
        await policy.refresh()
        assert (await policy.aevaluate(GOOD)).allowed
    _mode("500")(behaviour)
    clock.advance(TTL + 1)
    await policy.refresh()
    assert (await policy.aevaluate(GOOD)).allowed  # the last good list
    clock.advance(30)
    await policy.refresh()
    assert not (await policy.aevaluate(GOOD)).allowed  # too old to trust: fail closed
    await policy.aclose()

"""The remote provider under faults, through the middleware, with respx and a real HTTP server.

For every fault, before any good document (first load) and after one (a refresh):

- no request fails: each one reaches the app and gets its answer;
- a first load under a fault is cut off by the provider's own timeouts, and once there is a
  snapshot no request waits for a refresh: shown by holding the refresh at a gate while the
  requests are answered, not by timing them (a loaded CI machine makes any timing flaky);
- nothing is ever allowed that was not in a good document.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
import respx

from corsengine import CORSMiddleware, Policy
from corsengine.providers import RemoteJSONProvider, Rules
from corsengine.testing import FakeClock

from ..asgi import call, lifespan, plain_app
from .loads import STUCK, CountedLoads, settled
from .servers import Behaviour, DocumentServer, free_port

GOOD = "https://good.example"
EVIL = "https://evil.example"  # only ever in bad documents
GOOD_DOCUMENT = json.dumps({"origins": [GOOD], "version": "1"}).encode()
TTL = 10.0
# A fault that stalls meets the provider's tight timeouts; every other fetch has generous ones,
# so that a good document is never lost to a busy machine (a 0.2 s read timeout was).
TIGHT = {"connect_timeout": 0.2, "read_timeout": 0.2, "timeout": 0.5}
GENEROUS = {"connect_timeout": 5.0, "read_timeout": 5.0, "timeout": 10.0}
# Above the provider's timeouts, so that a fetch is cut off by the provider, never by the
# resolver; a stalled server answers later still.
LOAD_TIMEOUT = 20.0
STALL = 60.0
URL = "https://config.example/cors.json"


@dataclass(frozen=True)
class Fault:
    name: str
    real: Callable[[Behaviour], None]  # how the real server misbehaves
    mocked: Any  # respx side effect
    stalls: bool = False  # only the provider's timeouts end it
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
    Fault("timeout", _mode("slow", delay=STALL), httpx.ReadTimeout("slow"), stalls=True),
    Fault("http-500", _mode("500"), httpx.Response(500)),
    Fault("not-modified-304", _not_modified, httpx.Response(304), outcome="fresh"),
    Fault("malformed-json", _body(MALFORMED), httpx.Response(200, content=MALFORMED)),
    Fault("wrong-schema", _body(WRONG_SCHEMA), httpx.Response(200, content=WRONG_SCHEMA)),
    Fault("invalid-entry", _body(BAD_ENTRY), httpx.Response(200, content=BAD_ENTRY)),
    Fault("huge-body", _mode("huge"), httpx.Response(200, content=HUGE)),
    Fault("slow-body", _mode("dribble", delay=0.05, body=json.dumps([EVIL]).encode()), None, stalls=True),
    Fault("connection-refused", _mode("refused"), httpx.ConnectError("refused")),
    Fault("redirect-loop", _mode("redirect"), httpx.Response(302, headers={"Location": URL})),
]
STALLING = next(fault for fault in FAULTS if fault.name == "timeout")


class GatedProvider(CountedLoads, RemoteJSONProvider):
    """Counts its loads, and holds each one at ``gate`` while a test has closed it."""

    gate: anyio.Event | None = None

    async def load(self) -> Rules:
        if self.gate is not None:
            await self.gate.wait()
        return await super().load()

    def timeouts_for(self, fault: Fault | None) -> None:
        """Tight timeouts while ``fault`` stalls the source, generous ones otherwise."""
        options = TIGHT if fault is not None and fault.stalls else GENEROUS
        self.timeouts = httpx.Timeout(
            connect=options["connect_timeout"],
            read=options["read_timeout"],
            write=options["read_timeout"],
            pool=options["connect_timeout"],
        )
        self.timeout = options["timeout"]


class Harness:
    """A policy with a remote provider behind the middleware, driven by raw ASGI requests."""

    def __init__(self, provider: GatedProvider) -> None:
        self.clock = FakeClock()
        self.provider = provider
        self.policy = Policy(allow_origins=provider, clock=self.clock, timeout=LOAD_TIMEOUT)
        self.app = CORSMiddleware(plain_app(), policy=self.policy)
        self.good_documents: set[str] = set()

    async def request(self, origin: str) -> bool:
        # STUCK is no timing bound, only a guard: a stuck request fails instead of hanging.
        with anyio.fail_after(STUCK):
            status, headers, body = await call(self.app, headers=[(b"origin", origin.encode())])
        assert status == 200 and body == b"app"  # the request itself never fails
        allowed = (b"access-control-allow-origin", origin.encode()) in headers
        assert not allowed or origin in self.good_documents, f"{origin} allowed from a bad document"
        return allowed

    def refreshing(self) -> bool:
        return any(slot.inflight is not None for slot in self.policy._resolver.state.slots)

    async def settle(self) -> None:
        """Wait for the background refresh a stale request started, then check that it ran."""
        await settled(self.policy)
        assert all(slot.fresh_until > self.clock() for slot in self.policy._resolver.state.slots)

    def error(self) -> str | None:
        return self.policy._resolver.state.slots[0].error


def _provider(url: str, **options: Any) -> GatedProvider:
    provider = GatedProvider(url, ttl=TTL, min_ttl=1, max_bytes=64_000, max_redirects=2, **options)
    provider.timeouts_for(None)
    return provider


async def _check_fault(harness: Harness, apply: Callable[[], None], fault: Fault) -> None:
    # First load under the fault: refused, without an error reaching anyone. The request waits
    # for this load, and a stalled source is cut off by the provider's own timeouts (the
    # resolver's, far longer, would say "no answer within").
    harness.provider.timeouts_for(fault)
    apply()
    first_load_allows = await harness.request(EVIL)
    assert not first_load_allows
    if fault.stalls:
        error = harness.error()
        assert error is not None and "no answer within" not in error, error
    # The next request starts no load: a failed first load is retried later, in the background.
    loads = harness.provider.loads
    assert not await harness.request(GOOD)
    assert not harness.refreshing()
    assert harness.provider.loads == loads


async def _check_refresh(
    harness: Harness, serve_good: Callable[[], None], apply: Callable[[], None], fault: Fault
) -> None:
    harness.provider.timeouts_for(None)
    serve_good()
    harness.good_documents.add(GOOD)
    harness.clock.advance(TTL + 1)
    await harness.request(GOOD)
    await harness.settle()
    assert await harness.request(GOOD)
    harness.provider.timeouts_for(fault)
    apply()
    harness.clock.advance(TTL + 1)
    # The refresh runs in the background; requests keep the last good list meanwhile. The
    # refresh is held at the gate until they are answered: a request that waited for it
    # would not be answered before the resolver gave up on the held load.
    harness.provider.gate = anyio.Event()
    loads = harness.provider.loads
    assert await harness.request(GOOD)
    assert not await harness.request(EVIL)
    assert harness.refreshing()  # the stale request started the refresh, which is still held
    harness.provider.gate.set()
    harness.provider.gate = None
    await harness.settle()
    assert harness.provider.loads == loads + 1  # one refresh for both requests
    assert await harness.request(GOOD)
    assert not await harness.request(EVIL)
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
            assert await harness.request(GOOD)
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
        ("timeout", _mode("slow", delay=STALL)),
        ("good", _body(json.dumps(["https://third.example"]).encode())),
        ("schema", _body(WRONG_SCHEMA)),
    ]
    harness.good_documents |= {GOOD, "https://second.example", "https://third.example"}
    last_good: set[str] = set()
    async with served(harness, serving):
        for round_ in range(3):
            for name, apply in states:
                apply(behaviour)
                harness.provider.timeouts_for(STALLING if name == "timeout" else None)
                harness.clock.advance(TTL + 1)
                await harness.request(GOOD)
                await harness.settle()
                if name == "good":
                    last_good = set(json.loads(behaviour.body)) if behaviour.body.startswith(b"[") else {GOOD}
                for origin in (GOOD, "https://second.example", "https://third.example", EVIL):
                    assert await harness.request(origin) == (origin in last_good), (
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

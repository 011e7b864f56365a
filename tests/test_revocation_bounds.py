"""The bounds of docs/dynamic.md ("How fast a change arrives"), one source kind at a time, on
the fake clock: the time from a change at the source to the first request that sees it, with
a healthy source and during an outage (the last good list until ``ttl + max_stale``, then
refused). Each test asks at the bound, not until the change shows. Redis and files, where the
change travels through real processes, are held to theirs in tests/providers (test_fleet.py,
test_redis_provider.py, test_file_provider.py)."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from corsengine import Policy
from corsengine.providers import CallableProvider, FileProvider, PredicateProvider, RemoteJSONProvider
from corsengine.testing import FakeClock

A, B = "https://a.example", "https://b.example"
TTL = 30.0
MAX_STALE = 100.0
RETRY = 5.0  # after a failed load: min(ttl, 5 s)


async def ask(policy: Policy, origin: str) -> bool:
    """One request; then the background work it started (a reload) runs to its end."""
    allowed = (await policy.aevaluate(origin)).allowed
    await anyio.wait_all_tasks_blocked()
    return allowed


async def traffic(policy: Policy, clock: FakeClock, seconds: float, step: float = 1.0) -> None:
    """Requests every ``step`` seconds for ``seconds`` (what keeps refresh-ahead going)."""
    for _ in range(round(seconds / step)):
        clock.advance(step)
        await ask(policy, "https://traffic.example")


# --- static lists and swap() -----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_swap_is_seen_by_the_next_request(clock: FakeClock) -> None:
    policy = Policy(allow_origins=[A], clock=clock)
    assert await ask(policy, A)
    policy.swap([B])  # bound: none, the next request
    assert not await ask(policy, A) and await ask(policy, B)
    policy.swap(CallableProvider(lambda: [A]))  # a dynamic provider: its first load is waited for
    assert await ask(policy, A)


# --- callables and remote documents: a TTL ----------------------------------------------------


class Source:
    """A list at the source that a test changes, or breaks."""

    def __init__(self) -> None:
        self.origins = [A]
        self.down = False
        self.loads = 0

    def __call__(self) -> list[str]:
        self.loads += 1
        if self.down:
            raise ConnectionError("the source is down")
        return self.origins


@pytest.mark.anyio
async def test_a_callable_change_is_seen_within_its_ttl_while_traffic_flows(clock: FakeClock) -> None:
    source = Source()
    policy = Policy(allow_origins=CallableProvider(source, ttl=TTL), clock=clock)
    assert await ask(policy, A)
    source.origins = [B]  # changed just after a load: the worst case
    await traffic(policy, clock, TTL)  # bound: the TTL (plus one load's time)
    assert not await ask(policy, A)
    assert source.loads == 2  # refresh-ahead: one reload, before the TTL ran out


@pytest.mark.anyio
async def test_an_idle_worker_answers_its_first_request_from_the_old_list(clock: FakeClock) -> None:
    """Refresh-ahead needs traffic: after an idle spell past the TTL, the first request is
    answered at once from the list in force and starts the reload (stale-while-revalidate);
    the requests after that reload see the change."""
    source = Source()
    policy = Policy(allow_origins=CallableProvider(source, ttl=TTL), clock=clock)
    assert await ask(policy, A)
    source.origins = [B]
    clock.advance(10 * TTL)
    assert await ask(policy, A)  # the old list, and the reload starts
    assert not await ask(policy, A)


@pytest.mark.anyio
async def test_during_an_outage_the_last_good_list_holds_for_ttl_plus_max_stale(clock: FakeClock) -> None:
    source = Source()
    policy = Policy(allow_origins=CallableProvider(source, ttl=TTL), clock=clock, max_stale=MAX_STALE)
    assert await ask(policy, A)
    loaded = clock()
    source.down = True
    await traffic(policy, clock, TTL + MAX_STALE - 1)
    assert await ask(policy, A)  # the last good list, 1 s before it expires
    clock.advance(loaded + TTL + MAX_STALE - clock())
    assert not await ask(policy, A)  # then refused (fail closed)
    failed = source.loads
    # The source comes back with a change: retries run every min(ttl, 5 s) meanwhile.
    source.down, source.origins = False, [B]
    await traffic(policy, clock, RETRY)  # bound after recovery: the retry delay (plus one load)
    assert await ask(policy, B)
    assert source.loads - failed == 1


@pytest.mark.anyio
async def test_a_remote_change_is_seen_within_max_age_and_an_outage_keeps_the_last_good(
    clock: FakeClock,
) -> None:
    document = {"origins": [A], "up": True}
    served: list[float] = []  # when each good document was sent

    def server(request: httpx.Request) -> httpx.Response:
        if not document["up"]:
            return httpx.Response(503)
        served.append(clock())
        return httpx.Response(200, json=document["origins"], headers={"Cache-Control": "max-age=20"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        remote = RemoteJSONProvider("https://config.example/cors.json", client=client)
        policy = Policy(allow_origins=remote, clock=clock, max_stale=MAX_STALE)
        assert await ask(policy, A)
        assert remote.ttl == 20  # the document's max-age is the TTL
        document["origins"] = [B]
        await traffic(policy, clock, 20)  # bound: max-age (clamped to [min_ttl, max_ttl])
        assert await ask(policy, B) and not await ask(policy, A)
        document["up"] = False
        expires = served[-1] + 20 + MAX_STALE
        await traffic(policy, clock, expires - 1 - clock())
        assert await ask(policy, B)  # the last good document
        clock.advance(1)
        assert not await ask(policy, B)  # past ttl + max_stale: refused
        await policy.aclose()


# --- predicates: a cache TTL per answer -------------------------------------------------------


@pytest.mark.anyio
async def test_a_predicate_revocation_is_seen_when_the_cached_answer_expires(clock: FakeClock) -> None:
    allowed = {A}
    down = {"now": False}

    def is_allowed(origin: str) -> bool:
        if down["now"]:
            raise ConnectionError("tenant database down")
        return origin in allowed

    policy = Policy(allow_origins=PredicateProvider(is_allowed, cache_ttl=60), clock=clock)
    assert await ask(policy, A)
    allowed.clear()
    clock.advance(59.9)
    assert await ask(policy, A)  # the cached answer
    clock.advance(0.1)
    assert not await ask(policy, A)  # bound: cache_ttl, then the predicate is asked again
    allowed.add(A)
    policy.refresh()  # or at once, everywhere the policy lives
    assert await ask(policy, A)
    # No last good list for a predicate: once the cached answer expires, a failing
    # predicate refuses (and is not asked again for failure_ttl).
    down["now"] = True
    clock.advance(60)
    assert not await ask(policy, A)


# --- files: the watcher is real (tests/providers/test_file_provider.py); an outage here -------


@pytest.mark.anyio
async def test_a_file_that_goes_missing_keeps_the_last_good_list_for_ttl_plus_max_stale(
    clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "cors.json"
    path.write_text(f'["{A}"]')
    policy = Policy(allow_origins=FileProvider(path, ttl=TTL), clock=clock, max_stale=MAX_STALE)
    assert await ask(policy, A)
    path.unlink()
    policy.refresh()  # what the watcher does when it sees the file go
    await anyio.wait_all_tasks_blocked()
    clock.advance(TTL + MAX_STALE - 1)
    assert await ask(policy, A)
    clock.advance(1)
    assert not await ask(policy, A)
    await policy.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

"""Changes reach requests without waiting for a request: pushed changes reload at once, TTL
sources reload ahead of expiry. Each test checks the first request after the change."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from corsengine import Policy
from corsengine.providers import BaseProvider, CallableProvider, Rules
from corsengine.testing import FakeClock

from .asgi import call, lifespan, plain_app

A, B = "https://a.example", "https://b.example"


class Pushed(BaseProvider):
    """A source that tells the resolver when it changed, as Redis pub/sub or a file watcher does."""

    def __init__(self, origins: list[str]) -> None:
        self.origins = origins
        self.ttl = 3600.0
        self.loads = 0
        self.invalidate: Callable[[], None] | None = None
        self.watching = anyio.Event()
        self.gate: anyio.Event | None = None

    async def load(self) -> Rules:
        self.loads += 1
        if self.gate is not None:
            await self.gate.wait()
        return Rules.from_entries(self.origins)

    async def watch(self, invalidate: Callable[[], None]) -> None:
        self.invalidate = invalidate
        self.watching.set()
        await anyio.sleep_forever()

    def change(self, origins: list[str]) -> None:
        self.origins = origins
        assert self.invalidate is not None
        self.invalidate()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_pushed_change_reloads_at_once_and_the_first_request_sees_it(backend: str) -> None:
    source = Pushed([A])
    app = plain_app()
    from corsengine import CORSMiddleware

    middleware = CORSMiddleware(app, policy=Policy(source))

    async def main() -> None:
        async with lifespan(middleware):
            await call(middleware, "GET", [(b"origin", A.encode())])
            await source.watching.wait()
            source.change([B])  # no request in between: the reload starts now
            await anyio.wait_all_tasks_blocked()
            assert source.loads == 2
            _, headers, _ = await call(middleware, "GET", [(b"origin", A.encode())])
            assert b"access-control-allow-origin" not in dict(headers)  # revoked at the first request
            _, headers, _ = await call(middleware, "GET", [(b"origin", B.encode())])
            assert dict(headers)[b"access-control-allow-origin"] == B.encode()

    anyio.run(main, backend=backend)


def test_a_change_pushed_during_a_load_is_loaded_again_without_a_request() -> None:
    source = Pushed([A])
    policy = Policy(source)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            policy.attach(group)
            assert (await policy.aevaluate(A)).allowed
            await source.watching.wait()
            source.gate = anyio.Event()
            source.change([A])  # a reload starts and is held...
            await anyio.wait_all_tasks_blocked()
            source.change([B])  # ...and the source changes again before it returns
            source.gate.set()
            source.gate = None
            await anyio.wait_all_tasks_blocked()
            assert source.loads == 3
            assert (await policy.aevaluate(B)).allowed and not (await policy.aevaluate(A)).allowed
            policy.attach(None)
            group.cancel_scope.cancel()

    anyio.run(main)


def test_a_ttl_source_reloads_ahead_of_expiry_while_traffic_flows(clock: FakeClock) -> None:
    lists = {"now": [A]}
    policy = Policy(CallableProvider(lambda: lists["now"], ttl=30), clock=clock)

    async def main() -> None:
        assert (await policy.aevaluate(A)).allowed
        lists["now"] = [B]
        clock.advance(28)  # 2 s before expiry: past the refresh-ahead point (a tenth of the TTL)
        assert (await policy.aevaluate(A)).allowed  # still fresh: answered from the list in force
        await anyio.wait_all_tasks_blocked()  # the reload ran in the background
        clock.advance(1)  # still before the 30 s TTL
        assert (await policy.aevaluate(B)).allowed  # the first request after it sees the change
        assert not (await policy.aevaluate(A)).allowed

    anyio.run(main)


def test_refresh_ahead_never_starts_in_the_first_part_of_the_ttl(clock: FakeClock) -> None:
    calls = {"count": 0}

    def origins() -> list[str]:
        calls["count"] += 1
        return [A]

    policy = Policy(CallableProvider(origins, ttl=30), clock=clock)

    async def main() -> None:
        assert (await policy.aevaluate(A)).allowed
        for _ in range(26):
            clock.advance(1)
            assert (await policy.aevaluate(A)).allowed
            await anyio.wait_all_tasks_blocked()
        assert calls["count"] == 1  # 26 s in: no reload yet
        clock.advance(1.5)
        assert (await policy.aevaluate(A)).allowed
        await anyio.wait_all_tasks_blocked()
        assert calls["count"] == 2

    anyio.run(main)

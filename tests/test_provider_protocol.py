"""The provider protocols: a provider or predicate without our base classes is a first-class
citizen, through Policy and through the middleware, and the protocols are read once per swap."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import anyio
import pytest

from corsengine import CORSMiddleware, Policy
from corsengine.providers import (
    BaseProvider,
    PredicateBase,
    PredicateProvider,
    Rules,
    StaticProvider,
    UnionProvider,
    _base,
)
from corsengine.testing import FakeClock
from corsengine.types import (
    Predicate,
    Provider,
    Scope,
    SupportsAclose,
    SupportsKnownRules,
    SupportsMembers,
    SupportsWatch,
)

from .asgi import call, lifespan, plain_app

A, B, C = "https://a.example", "https://b.example", "https://c.customers.example"


class Pushed:
    """A list provider with watch() and aclose(), and no base class."""

    ttl: float | None = 3600.0

    def __init__(self, origins: list[str]) -> None:
        self.origins = origins
        self.loads = 0
        self.closed = 0
        self.invalidate: Callable[[], None] | None = None
        self.watching = anyio.Event()

    async def load(self) -> Rules:
        self.loads += 1
        return Rules.from_entries(self.origins)

    async def watch(self, invalidate: Callable[[], None]) -> None:
        self.invalidate = invalidate
        self.watching.set()
        await anyio.sleep_forever()

    async def aclose(self) -> None:
        self.closed += 1

    def change(self, origins: list[str]) -> None:
        self.origins = origins
        assert self.invalidate is not None
        self.invalidate()


class Customers:
    """A per-origin predicate, and no base class."""

    ttl: float | None = None
    cache_size = 100
    cache_ttl = 60.0
    failure_ttl = 5.0
    timeout = 1.0
    vary: tuple[str, ...] = ("X-Tenant",)
    takes_request = False

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def load(self) -> Rules:
        return Rules()

    def key(self, origin: str, scope: Scope | None) -> Hashable | None:
        return origin

    async def allows(self, origin: str, scope: Scope | None) -> bool:
        self.asked.append(origin)
        return origin.endswith(".customers.example")


class Known:
    """Rules known without I/O: never loaded."""

    ttl: float | None = None

    async def load(self) -> Rules:
        raise AssertionError("a provider with known rules is never loaded")

    def known_rules(self) -> Rules:
        return Rules.from_entries([A])


class Pair:
    """A union of two providers, without UnionProvider."""

    ttl: float | None = None

    def __init__(self, *members: Provider) -> None:
        self.members = members

    async def load(self) -> Rules:
        raise AssertionError("a union's members are loaded, not the union")


def test_our_providers_and_foreign_ones_meet_the_protocols() -> None:
    assert isinstance(Pushed([A]), Provider) and isinstance(Pushed([A]), SupportsWatch | SupportsAclose)
    assert isinstance(Customers(), Predicate)
    assert isinstance(PredicateProvider(lambda origin: True), Predicate)
    assert not isinstance(Pushed([A]), Predicate)
    assert isinstance(StaticProvider([A]), SupportsKnownRules) and isinstance(Known(), SupportsKnownRules)
    assert isinstance(Pair(Known()), SupportsMembers)
    for ours in (StaticProvider([A]), UnionProvider([StaticProvider([A])])):
        assert isinstance(ours, SupportsAclose | SupportsWatch | SupportsKnownRules | SupportsMembers)


def test_a_foreign_provider_is_watched_invalidated_and_closed_through_policy() -> None:
    source = Pushed([A])
    policy = Policy(source)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            policy.attach(group)
            assert (await policy.aevaluate(A)).allowed
            await source.watching.wait()  # started by the resolver, with no base class
            source.change([B])
            await anyio.wait_all_tasks_blocked()
            assert (await policy.aevaluate(B)).allowed and not (await policy.aevaluate(A)).allowed
            policy.swap([A])  # the replaced provider is closed
            await anyio.wait_all_tasks_blocked()
            assert source.closed == 1
            policy.attach(None)
            group.cancel_scope.cancel()

    anyio.run(main)
    assert source.loads == 2


def test_a_foreign_provider_is_closed_with_the_policy() -> None:
    source = Pushed([A])
    policy = Policy(source)

    async def main() -> None:
        assert (await policy.aevaluate(A)).allowed
        await policy.aclose()

    anyio.run(main)
    assert source.closed == 1


def test_a_foreign_predicate_is_asked_cached_and_varied_through_policy(clock: FakeClock) -> None:
    predicate = Customers()
    policy = Policy(allow_origins=predicate, clock=clock)
    decision = policy.evaluate(C)
    assert decision.allowed and decision.headers["Vary"] == "Origin, X-Tenant"
    assert policy.evaluate(C).allowed  # from the cache
    assert not policy.evaluate(A).allowed
    assert predicate.asked == [C, A]
    clock.advance(61)  # past cache_ttl: asked again
    assert policy.evaluate(C).allowed
    assert predicate.asked == [C, A, C]


def test_a_foreign_predicate_in_a_union_with_a_list() -> None:
    predicate = Customers()
    policy = Policy(allow_origins=StaticProvider([A]) | predicate)
    assert policy.evaluate(A).allowed and policy.evaluate(C).allowed and not policy.evaluate(B).allowed
    assert predicate.asked == [C, B]


def test_known_rules_and_a_foreign_union() -> None:
    policy = Policy(allow_origins=Pair(Known(), Customers()))
    assert [source.loads for source in policy.health()] == [False, False]
    assert policy.evaluate(A).allowed and policy.evaluate(C).allowed and not policy.evaluate(B).allowed
    assert len(UnionProvider([Pair(Known(), Customers()), StaticProvider([B])]).members) == 3


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_foreign_providers_through_the_middleware(backend: str) -> None:
    source, predicate = Pushed([A]), Customers()
    middleware = CORSMiddleware(plain_app(), allow_origins=UnionProvider([source, predicate]))

    async def get(origin: str) -> dict[bytes, bytes]:
        _, headers, _ = await call(middleware, "GET", [(b"origin", origin.encode())])
        return dict(headers)

    async def main() -> None:
        async with lifespan(middleware):
            assert (await get(A))[b"access-control-allow-origin"] == A.encode()
            allowed = await get(C)
            assert allowed[b"access-control-allow-origin"] == C.encode()
            assert allowed[b"vary"] == b"Origin, X-Tenant"
            await source.watching.wait()
            source.change([B])  # no request in between: the reload starts now
            await anyio.wait_all_tasks_blocked()
            assert b"access-control-allow-origin" not in await get(A)  # the first request sees it
            assert (await get(B))[b"access-control-allow-origin"] == B.encode()

    anyio.run(main, backend=backend)


def test_the_protocols_are_read_once_per_swap_never_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[object] = []
    real = _base.parts_of

    def counted(provider: Provider) -> _base.Parts:
        reads.append(provider)
        return real(provider)

    monkeypatch.setattr("corsengine._resolver.parts_of", counted)
    source, predicate = Pushed([A]), Customers()
    policy = Policy(allow_origins=UnionProvider([source, predicate]))
    assert reads == [source, predicate]
    for _ in range(3):
        assert policy.evaluate(A).allowed and policy.evaluate(C).allowed
    assert reads == [source, predicate]
    policy.swap(predicate)
    assert reads == [source, predicate, predicate]


def test_the_base_classes_need_no_protocol_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> bool:
        raise AssertionError("a protocol was checked for a provider with our base class")

    class Watched(BaseProvider):
        async def watch(self, invalidate: Callable[[], None]) -> None:
            await anyio.sleep_forever()

    class Odd(PredicateBase):
        async def allows(self, origin: str, scope: Scope | None) -> bool:
            return True

    providers = (StaticProvider([A]), Watched(), Odd())
    monkeypatch.setattr(type(Predicate), "__instancecheck__", refuse)  # every protocol's metaclass
    parts = [_base.parts_of(provider) for provider in providers]
    monkeypatch.undo()
    assert parts[0].known is not None and parts[0].watch is None and parts[0].predicate is None
    assert parts[1].known is None and parts[1].watch is not None
    assert parts[2].predicate is not None and parts[2].known == Rules()

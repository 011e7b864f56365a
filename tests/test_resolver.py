"""The resolver: TTL, single-flight, stale-while-revalidate, last-known-good, swap.

Time is a FakeClock: TTLs expire by advance(), never by sleeping.
"""

from __future__ import annotations

import gc
import logging
import math
import random
import tracemalloc
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from corsengine import Change, ConfigurationError, Policy, ProviderError, _resolver
from corsengine._memo import MEMO_SIZE
from corsengine.providers import (
    BaseProvider,
    CallableProvider,
    PredicateProvider,
    Rules,
    StaticProvider,
    UnionProvider,
)
from corsengine.testing import FakeClock

A, B, C = "https://a.example", "https://b.example", "https://c.example"


class Source:
    """A controllable upstream: what it returns, whether it fails, and a gate to hold it."""

    def __init__(self, origins: list[str]) -> None:
        self.origins: Any = origins
        self.calls = 0
        self.error: Exception | None = None
        self.gate: anyio.Event | None = None

    async def __call__(self) -> Any:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.origins


def make(source: Source, clock: FakeClock, ttl: float = 30.0, **options: Any) -> Policy:
    return Policy(CallableProvider(source, ttl=ttl), clock=clock, **options)


def allowed(policy: Policy, origin: str) -> bool:
    return policy.evaluate(origin).allowed


def test_first_load_then_cached_for_the_ttl(clock: FakeClock) -> None:
    source = Source([A])
    policy = make(source, clock)
    assert allowed(policy, A) and not allowed(policy, B)
    assert source.calls == 1
    clock.advance(29)
    assert allowed(policy, A)
    assert source.calls == 1


def test_thousand_concurrent_requests_on_a_cold_cache_make_one_call(clock: FakeClock) -> None:
    source = Source([A])
    source.gate = anyio.Event()
    policy = make(source, clock)
    results: list[bool] = []

    async def request() -> None:
        results.append((await policy.aevaluate(A)).allowed)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(1000):
                group.start_soon(request)
            await anyio.wait_all_tasks_blocked()
            assert source.gate is not None
            source.gate.set()

    anyio.run(main)
    assert source.calls == 1
    assert results == [True] * 1000


def test_stale_while_revalidate_never_makes_a_request_wait(clock: FakeClock) -> None:
    source = Source([A])
    policy = make(source, clock)
    assert allowed(policy, A)
    clock.advance(31)
    source.origins = [B]
    source.gate = anyio.Event()

    async def main() -> None:
        # The refresh is held upstream, yet requests answer at once from the stale list.
        for _ in range(100):
            assert (await policy.aevaluate(A)).allowed
        await anyio.wait_all_tasks_blocked()
        assert source.calls == 2  # one background refresh for all of them
        assert source.gate is not None
        source.gate.set()
        await anyio.wait_all_tasks_blocked()
        assert not (await policy.aevaluate(A)).allowed
        assert (await policy.aevaluate(B)).allowed

    anyio.run(main)


def test_last_known_good_then_fail_closed(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    source = Source([A])
    policy = make(source, clock, ttl=30, max_stale=300)
    assert allowed(policy, A)
    source.error = ConnectionError("upstream down")

    async def ask() -> bool:
        decision = await policy.aevaluate(A)
        await anyio.wait_all_tasks_blocked()
        return decision.allowed

    with caplog.at_level(logging.WARNING, logger="corsengine"):
        for _ in range(5):
            clock.advance(31)
            assert anyio.run(ask)  # stale but within max_stale: still allowed
    failures = [r for r in caplog.records if "upstream down" in r.getMessage()]
    assert len(failures) == 1  # logged once, not once per attempt
    assert "keeping the last good allowlist" in failures[0].getMessage()
    clock.advance(300)
    assert not anyio.run(ask)  # too old to trust: fail closed
    assert not anyio.run(ask)
    source.error = None
    clock.advance(10)
    anyio.run(ask)  # triggers the refresh, which now succeeds
    assert anyio.run(ask)


def test_invalid_result_keeps_the_last_good_list(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    source = Source([A])
    policy = make(source, clock)
    assert allowed(policy, A)
    for bad in ([B, "https://c.example/path"], "https://a.example,https://b.example", [B, 42], None):
        source.origins = bad
        clock.advance(31)
        anyio.run(policy.refresh)
        assert allowed(policy, A) and not allowed(policy, B), bad
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "corsengine.E001" in messages and "expected a list of origins" in messages


def test_first_load_is_bounded_by_the_timeout(clock: FakeClock) -> None:
    source = Source([A])
    source.gate = anyio.Event()  # never set: the upstream hangs
    policy = make(source, clock, timeout=0.05)

    async def main() -> None:
        with anyio.fail_after(5):  # a safety net; the policy's own timeout is 0.05 s
            decision = await policy.aevaluate(A)
        assert not decision.allowed
        assert "matches no rule" in decision.reason

    anyio.run(main)


def test_slow_predicate_refuses_after_its_timeout_without_delaying_others(clock: FakeClock) -> None:
    async def predicate(origin: str) -> bool:
        if origin == B:
            await anyio.sleep(60)
        return True

    policy = Policy(PredicateProvider(predicate, timeout=0.05) | StaticProvider([C]), clock=clock)

    async def main() -> None:
        with anyio.fail_after(5):
            slow = await policy.aevaluate(B)
        assert not slow.allowed
        assert (await policy.aevaluate(C)).allowed
        assert (await policy.aevaluate(A)).allowed

    anyio.run(main)


def test_predicate_answers_only_a_real_true(clock: FakeClock) -> None:
    answers: dict[str, Any] = {A: True, B: "yes", C: 1}
    policy = Policy(PredicateProvider(lambda origin: answers[origin]), clock=clock)
    assert allowed(policy, A)
    assert not allowed(policy, B)
    assert not allowed(policy, C)


def test_predicate_errors_refuse_and_are_logged_escaped(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def predicate(origin: str) -> bool:
        raise RuntimeError("db down\r\nFAKE LOG LINE")

    policy = Policy(PredicateProvider(predicate), clock=clock)
    with caplog.at_level(logging.WARNING, logger="corsengine"):
        assert not allowed(policy, A)
    (record,) = caplog.records
    assert "\n" not in record.getMessage() and "\\r\\nFAKE LOG LINE" in record.getMessage()


def test_predicate_cache_expires_and_is_revoked_by_refresh(clock: FakeClock) -> None:
    calls: list[str] = []
    verdict = {"value": True}

    def predicate(origin: str) -> bool:
        calls.append(origin)
        return verdict["value"]

    policy = Policy(PredicateProvider(predicate, cache_ttl=60), clock=clock)
    assert allowed(policy, A) and allowed(policy, A)
    assert calls == [A]
    verdict["value"] = False
    clock.advance(61)
    assert not allowed(policy, A)
    assert calls == [A, A]
    verdict["value"] = True
    anyio.run(policy.refresh)  # a refresh revokes cached answers at once
    assert allowed(policy, A)
    assert calls == [A, A, A]


def test_a_warm_predicate_answer_is_read_from_the_memo_alone(clock: FakeClock) -> None:
    calls: list[str] = []

    def predicate(origin: str) -> bool:
        calls.append(origin)
        return origin == A

    policy = Policy(PredicateProvider(predicate), clock=clock)
    assert allowed(policy, A) and not allowed(policy, B)
    assert allowed(policy, A) and not allowed(policy, B)  # folded into the snapshot's memo
    ((asker),) = policy._resolver.state.predicates
    asker.answers._data.clear()  # were the decision cache read, both would be asked again
    assert allowed(policy, A) and not allowed(policy, B)
    assert calls == [A, B]


def test_a_folded_predicate_answer_expires_with_the_cached_answer(clock: FakeClock) -> None:
    calls: list[str] = []

    def predicate(origin: str) -> bool:
        calls.append(origin)
        return True

    policy = Policy(PredicateProvider(predicate, cache_ttl=60), clock=clock)
    assert allowed(policy, A) and allowed(policy, A)
    clock.advance(59.5)
    assert allowed(policy, A)
    assert calls == [A]
    clock.advance(0.5)  # 60 s after the answer: asked again, never served from the memo
    assert allowed(policy, A)
    assert calls == [A, A]


def test_a_folded_answer_lives_no_longer_than_the_shortest_answer_it_was_made_from(
    clock: FakeClock,
) -> None:
    first_says = {"value": False}
    first = PredicateProvider(lambda origin: first_says["value"], cache_ttl=10)
    second = PredicateProvider(lambda origin: True, cache_ttl=60)
    policy = Policy(first | second, clock=clock)
    assert policy.evaluate(A).rule == repr(second)
    assert policy.evaluate(A).rule == repr(second)  # folded: the first said no, the second yes
    first_says["value"] = True
    clock.advance(9)
    assert policy.evaluate(A).rule == repr(second)
    clock.advance(1)  # the first predicate's "no" expired: the folded answer with it
    assert policy.evaluate(A).rule == repr(first)


def test_folding_into_a_full_memo_keeps_it_bounded(clock: FakeClock) -> None:
    policy = Policy(PredicateProvider(lambda origin: origin == A), clock=clock)
    assert allowed(policy, A)  # asked: the memo says the rules know nothing of A
    memo = policy._resolver.state.memos.folded
    memo.entries.update(
        (f"https://{index}.example", (None, math.inf)) for index in range(MEMO_SIZE - len(memo))
    )
    policy._resolver.state.memos.prepared.answers.clear()  # not answered from the headers
    assert allowed(policy, A)  # folding A's answer finds the memo full: cleared first
    (asker,) = policy._resolver.state.predicates
    assert memo.entries == {A: (repr(asker.predicate), clock() + asker.predicate.cache_ttl)}


def test_a_refresh_forgets_folded_predicate_answers(clock: FakeClock) -> None:
    tenants = {A}
    policy = Policy(PredicateProvider(lambda origin: origin in tenants, cache_ttl=3600), clock=clock)
    assert allowed(policy, A) and allowed(policy, A)
    tenants.clear()
    assert allowed(policy, A)  # cached for an hour...
    anyio.run(policy.refresh)
    assert not allowed(policy, A)  # ...unless refreshed


def test_flood_of_distinct_origins_keeps_the_decision_cache_bounded(clock: FakeClock) -> None:
    predicate = PredicateProvider(lambda origin: origin.endswith(".good.example"), cache_size=1000)
    policy = Policy(predicate, clock=clock)
    rng = random.Random(7)

    async def flood(count: int) -> None:
        for _ in range(count):
            await policy.aevaluate(f"https://{rng.getrandbits(64):x}.evil.example")

    anyio.run(flood, 90_000)
    gc.collect()
    tracemalloc.start()
    anyio.run(flood, 10_000)  # 100,000 distinct origins in all
    gc.collect()
    retained, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    (asker,) = policy._resolver.state.predicates
    assert len(asker.answers) == 1000
    # What is retained is the cache itself, whose 1000 entries the last 10,000 origins
    # replaced: about 320 KB (~320 B an entry). Unbounded, 10,000 entries would be ~3 MB.
    assert retained < 500_000, retained


def test_swap_is_atomic_under_load(clock: FakeClock) -> None:
    policy = Policy([A], clock=clock)
    log: list[tuple[int, str, bool]] = []

    async def request(index: int, origin: str) -> None:
        await anyio.lowlevel.checkpoint()
        log.append((index, origin, (await policy.aevaluate(origin)).allowed))

    async def swap() -> None:
        await anyio.lowlevel.checkpoint()
        policy.swap([B])

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for index in range(2000):
                group.start_soon(request, index, A if index % 2 else B)
                if index == 1000:
                    group.start_soon(swap)

    anyio.run(main)

    # Every request saw either the old list or the new one, and there is one cut: before it
    # every answer is the old list's (A allowed, B refused), after it the new list's.
    def is_new(origin: str, ok: bool) -> bool:
        return (origin == B) == ok

    cut = min(i for i, (_, origin, ok) in enumerate(log) if is_new(origin, ok))
    assert not any(is_new(origin, ok) for _, origin, ok in log[:cut])
    assert all(is_new(origin, ok) for _, origin, ok in log[cut:])
    assert 400 < cut < 1600  # the swap landed mid-stream: both sides were exercised


def test_on_change_reports_added_and_removed(clock: FakeClock) -> None:
    changes: list[Change] = []
    source = Source([A, B])
    policy = make(source, clock)
    unsubscribe = policy.on_change(changes.append)
    assert allowed(policy, A)
    assert changes == [Change(frozenset({A, B}), frozenset())]
    source.origins = [B, C]
    anyio.run(policy.refresh)
    assert changes[-1] == Change(frozenset({C}), frozenset({A}))
    policy.swap(["https://*.d.example"])
    assert changes[-1] == Change(frozenset({"https://*.d.example"}), frozenset({B, C}))
    unsubscribe()
    policy.swap([A])
    assert len(changes) == 3


def test_a_failing_listener_does_not_break_the_swap(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    policy = Policy([A], clock=clock)

    def broken(change: Change) -> None:
        raise ValueError("listener bug")

    policy.on_change(broken)
    policy.swap([B])
    assert allowed(policy, B)
    assert "a change listener raised" in caplog.text


def test_swap_to_a_dynamic_provider_and_union(clock: FakeClock) -> None:
    source = Source([B])
    policy = Policy([A], clock=clock)
    policy.swap(CallableProvider(source) | StaticProvider([C]))
    assert allowed(policy, B) and allowed(policy, C) and not allowed(policy, A)
    with pytest.raises(ConfigurationError):
        policy.swap("https://a.example")


def test_union_member_failure_contributes_nothing(clock: FakeClock) -> None:
    source = Source([B])
    source.error = ProviderError("broken")
    policy = Policy(CallableProvider(source) | StaticProvider([A]), clock=clock)
    assert allowed(policy, A)
    assert not allowed(policy, B)


class CustomProvider:
    """A provider written against the protocol only (no base class)."""

    ttl: float | None = 10.0

    def __init__(self) -> None:
        self.loads = 0
        self.invalidate: Callable[[], None] | None = None

    async def load(self) -> Rules:
        self.loads += 1
        return Rules.from_entries([A] if self.loads == 1 else [B])

    async def watch(self, invalidate: Callable[[], None]) -> None:
        self.invalidate = invalidate
        await anyio.sleep(math.inf)


def test_custom_provider_with_watch_and_invalidate(clock: FakeClock) -> None:
    provider = CustomProvider()
    policy = Policy(provider, clock=clock)

    async def main() -> None:
        assert (await policy.aevaluate(A)).allowed
        await anyio.wait_all_tasks_blocked()
        assert provider.invalidate is not None
        provider.invalidate()  # e.g. a pub/sub message: the next request reloads
        assert (await policy.aevaluate(A)).allowed  # stale answer while refreshing
        await anyio.wait_all_tasks_blocked()
        assert (await policy.aevaluate(B)).allowed
        await policy.aclose()

    anyio.run(main)
    assert provider.loads == 2


def test_provider_returning_the_wrong_type_is_a_failure(clock: FakeClock) -> None:
    class Wrong:
        ttl = 5.0

        async def load(self) -> Any:
            return [A]

    policy = Policy(Wrong(), clock=clock)
    assert not allowed(policy, A)


def test_sync_evaluate_inside_a_running_loop_needs_aevaluate(clock: FakeClock) -> None:
    policy = make(Source([A]), clock)

    async def main() -> None:
        with pytest.raises(RuntimeError, match=r"await policy\.aevaluate"):
            policy.evaluate(A)

    anyio.run(main)


def test_trio_refreshes_in_the_background_without_a_lifespan(clock: FakeClock) -> None:
    source = Source([A])
    policy = make(source, clock)

    async def main() -> tuple[bool, bool, bool]:
        first = (await policy.aevaluate(A)).allowed
        source.origins = [B]
        clock.advance(31)
        # No task group: the reload runs as a trio system task while the stale list answers.
        stale = (await policy.aevaluate(A)).allowed
        await anyio.wait_all_tasks_blocked()
        return first, stale, (await policy.aevaluate(B)).allowed

    assert anyio.run(main, backend="trio") == (True, True, True)


def test_union_provider_load_and_repr() -> None:
    union = UnionProvider([StaticProvider([A]), StaticProvider([B]) | StaticProvider([C])])
    assert len(union.members) == 3
    rules = anyio.run(union.load)
    assert rules.exact == {A, B, C}
    assert repr(union).count("StaticProvider") == 3
    anyio.run(union.aclose)


def test_provider_constructor_errors() -> None:
    with pytest.raises(ConfigurationError) as caught:
        CallableProvider("not callable")  # type: ignore[arg-type]
    assert caught.value.codes == ("corsengine.E026",)
    with pytest.raises(ConfigurationError) as caught:
        PredicateProvider(42)  # type: ignore[arg-type]
    assert caught.value.codes == ("corsengine.E026",)
    with pytest.raises(ConfigurationError):
        StaticProvider("https://a.example")


def test_sync_evaluate_waits_for_an_async_refresh(clock: FakeClock) -> None:
    lists = iter([[B], [C]])

    async def slow_origins() -> list[str]:
        await anyio.sleep(0.01)  # a refresh that needs the loop to keep running
        return next(lists)

    policy = Policy(CallableProvider(slow_origins, ttl=30), clock=clock)
    assert allowed(policy, B)
    clock.advance(31)
    # The call's own loop ends with it, so a background refresh would be cancelled:
    # a sync evaluate() waits for the reload and answers from the new list.
    assert allowed(policy, C)
    assert not allowed(policy, B)


def test_an_invalidation_during_a_refresh_is_not_lost(clock: FakeClock) -> None:
    source = Source([A])
    policy = make(source, clock, ttl=3600)
    assert allowed(policy, A)
    resolver = policy._resolver

    async def main() -> None:
        source.gate = anyio.Event()
        resolver.invalidate()
        assert (await policy.aevaluate(A)).allowed  # stale answer; the reload is held upstream
        await anyio.wait_all_tasks_blocked()
        assert source.calls == 2
        # The source changes and says so (a pub/sub message) while that reload still runs:
        # what the reload read may predate the change.
        source.origins = [B]
        resolver.invalidate()
        source.gate.set()
        await anyio.wait_all_tasks_blocked()
        source.gate = None
        await policy.aevaluate(B)  # must load again, not trust the outdated reload for an hour
        await anyio.wait_all_tasks_blocked()
        assert source.calls == 3
        assert (await policy.aevaluate(B)).allowed

    anyio.run(main)


def test_refresh_during_a_background_refresh_loads_again(clock: FakeClock) -> None:
    source = Source([A])
    policy = make(source, clock)
    assert allowed(policy, A)

    async def main() -> None:
        clock.advance(31)
        source.gate = anyio.Event()
        await policy.aevaluate(A)  # starts a background refresh, held upstream
        await anyio.wait_all_tasks_blocked()
        assert source.calls == 2
        source.origins = [B]  # changed after that refresh started

        async def release() -> None:
            await anyio.wait_all_tasks_blocked()
            assert source.gate is not None
            source.gate.set()

        async with anyio.create_task_group() as group:
            group.start_soon(release)
            await policy.refresh()
        assert source.calls == 3  # the forced refresh did not settle for the older load
        assert (await policy.aevaluate(B)).allowed

    anyio.run(main)


def test_an_unchanged_list_is_not_compiled_again_and_keeps_the_memo(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import corsengine.providers.dynamic as dynamic

    compiled: list[int] = []
    compile_entries = dynamic.compile_entries

    def spy(entries: Any, **kwargs: Any) -> Any:
        compiled.append(len(entries))
        return compile_entries(entries, **kwargs)

    monkeypatch.setattr(dynamic, "compile_entries", spy)
    source = Source([A, B])
    policy = make(source, clock)
    assert allowed(policy, A)
    state = policy._resolver.state
    clock.advance(31)
    assert allowed(policy, A)  # reloaded: the same list
    assert source.calls == 2 and compiled == [2]
    assert policy._resolver.state.rules is state.rules
    assert A in policy._resolver.state.memos.verdicts.entries  # what the memo learned still holds


def test_a_changed_list_is_never_answered_from_the_old_memo(clock: FakeClock) -> None:
    source = Source([A])
    policy = make(source, clock)
    assert allowed(policy, A) and not allowed(policy, B)  # both memoized
    source.origins = [B]
    clock.advance(31)
    # A sync evaluate() waits for the reload: the first answer after it comes from the new list.
    assert allowed(policy, B) and not allowed(policy, A)


# The resolver reads a provider's ttl after each load (remote documents set it per fetch).


class VaryingTTL(BaseProvider):
    def __init__(self) -> None:
        self.ttl = 10.0
        self.loads = 0

    async def load(self) -> Rules:
        self.loads += 1
        self.ttl = 100.0  # what a Cache-Control: max-age=100 would say
        return Rules.from_entries(["https://app.example.com"])


@pytest.mark.anyio
async def test_ttl_set_by_a_load_decides_when_the_next_load_happens(clock: FakeClock) -> None:
    provider = VaryingTTL()
    policy = Policy(allow_origins=provider, clock=clock)
    assert (await policy.aevaluate("https://app.example.com")).allowed
    assert provider.loads == 1
    clock.advance(50)  # past the ttl the provider started with, within the one it set
    assert (await policy.aevaluate("https://app.example.com")).allowed
    assert provider.loads == 1
    assert policy._resolver.state.deadline == 1000.0 + 100.0 - 10.0  # refresh-ahead: a tenth of the TTL early


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_evaluate_in_a_running_loop_refuses_a_dynamic_policy_even_when_warm(
    clock: FakeClock, backend: str
) -> None:
    policy = make(Source([A]), clock)
    assert allowed(policy, A)  # loaded: the answer is at hand, and still evaluate() refuses

    async def main() -> None:
        with pytest.raises(RuntimeError, match=r"await policy\.aevaluate"):
            policy.evaluate(A)
        assert (await policy.aevaluate(A)).allowed

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_evaluate_in_a_running_loop_answers_for_a_static_policy(backend: str) -> None:
    policy = Policy([A], allow_origin_regex=r"https://[a-z]+\.example\.org")

    async def main() -> tuple[bool, bool]:
        return policy.evaluate(A).allowed, policy.evaluate("https://x.example.org").allowed

    assert anyio.run(main, backend=backend) == (True, True)


@pytest.mark.parametrize(
    ("new", "old", "same"),
    [
        (set(), set(), True),
        (
            {f"https://{i}.example" for i in range(10_000)},
            {f"https://{i}.example" for i in range(10_000)},
            True,
        ),
        (
            {f"https://{i}.example" for i in range(10_000)},
            {f"https://{i}.example" for i in range(1, 10_001)},
            False,
        ),
        ({"https://a.example"}, {"https://a.example", "https://b.example"}, False),
    ],
    ids=["empty", "same-10k", "one-swapped-10k", "one-more"],
)
def test_a_reload_is_a_change_exactly_when_the_entries_differ(
    new: set[str], old: set[str], same: bool
) -> None:
    # Compared a slice at a time (a worker thread must not hold the GIL for the whole list).
    assert _resolver._same(frozenset(new), frozenset(old)) is same

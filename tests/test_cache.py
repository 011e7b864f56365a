"""The predicate decision cache: least recently used out first, every answer with a TTL."""

from __future__ import annotations

from corsengine._cache import DecisionCache
from corsengine.testing import FakeClock


def test_bounded_least_recently_used_first(clock: FakeClock) -> None:
    cache = DecisionCache(maxsize=2, ttl=60, clock=clock)
    cache["a"] = True
    cache["b"] = False
    assert cache.get("a") is True  # "a" is now the most recently used
    cache["c"] = True
    assert len(cache) == 2
    assert cache.get("b") is None  # "b" was the least recently used: evicted
    assert cache.get("a") is True
    assert cache.get("c") is True


def test_answers_expire_after_the_ttl(clock: FakeClock) -> None:
    cache = DecisionCache(maxsize=10, ttl=60, clock=clock)
    cache["a"] = False
    clock.advance(59)
    assert cache.get("a") is False
    clock.advance(1)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_storing_again_refreshes_the_answer_and_its_ttl(clock: FakeClock) -> None:
    cache = DecisionCache(maxsize=2, ttl=60, clock=clock)
    cache["a"] = False
    cache["b"] = True
    clock.advance(30)
    cache["a"] = True  # updated in place: nothing evicted, "a" moves to the end
    assert len(cache) == 2
    clock.advance(40)
    assert cache.get("a") is True
    assert cache.get("b") is None


def test_entry_tells_when_the_answer_expires(clock: FakeClock) -> None:
    cache = DecisionCache(maxsize=2, ttl=60, clock=clock)
    cache["a"] = True
    clock.advance(10)
    assert cache.entry("a") == (True, clock() + 50)
    assert cache.entry("b") is None
    clock.advance(50)
    assert cache.entry("a") is None

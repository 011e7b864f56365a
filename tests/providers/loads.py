"""Await a provider's loads instead of sleeping a documented bound.

A test that sleeps "the bound" and then checks passes or fails with the machine's load. These
helpers wait for the event itself (the load a watcher or a stale request started, then the
resolver publishing its result), so that the first request after it can be checked. The
waits have a generous ceiling only so that a load that never comes fails the test instead of
hanging it: it is not a timing bound.
"""

from __future__ import annotations

import anyio

from corsengine import Policy
from corsengine.providers import Rules

STUCK = 30.0  # seconds: far beyond any load here; reached only when the awaited load never comes


class Count:
    """A count that a test can await: ``await count.reach(n)``."""

    def __init__(self) -> None:
        self.value = 0
        self._changed: anyio.Event | None = None

    def add(self) -> None:
        self.value += 1
        if self._changed is not None:
            self._changed.set()

    async def reach(self, value: int) -> None:
        with anyio.fail_after(STUCK):
            while self.value < value:
                self._changed = anyio.Event()
                await self._changed.wait()


class CountedLoads:
    """Mixed in before a provider class: counts its finished loads (failed ones too)."""

    _load_count: Count | None = None  # a name no provider uses

    @property
    def loads(self) -> int:
        return self._load_count.value if self._load_count is not None else 0

    async def load(self) -> Rules:
        if self._load_count is None:
            self._load_count = Count()
        try:
            return await super().load()  # type: ignore[misc, no-any-return]
        finally:
            self._load_count.add()

    async def loaded(self, count: int) -> None:
        """Wait until ``count`` loads have finished."""
        if self._load_count is None:
            self._load_count = Count()
        await self._load_count.reach(count)


async def settled(policy: Policy) -> None:
    """Wait until the resolver has published what its loads in flight return."""
    with anyio.fail_after(STUCK):
        for slot in policy._resolver.state.slots:
            if slot.inflight is not None:
                await slot.inflight.wait()

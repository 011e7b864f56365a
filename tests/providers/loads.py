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


class CountedLoads:
    """Mixed in before a provider class: counts its finished loads (failed ones too)."""

    loads = 0
    _counted_load: anyio.Event | None = None  # a name no provider uses

    async def load(self) -> Rules:
        try:
            return await super().load()  # type: ignore[misc, no-any-return]
        finally:
            self.loads += 1
            if self._counted_load is not None:
                self._counted_load.set()

    async def loaded(self, count: int) -> None:
        """Wait until ``count`` loads have finished."""
        with anyio.fail_after(STUCK):
            while self.loads < count:
                self._counted_load = anyio.Event()
                await self._counted_load.wait()


async def settled(policy: Policy) -> None:
    """Wait until the resolver has published what its loads in flight return."""
    with anyio.fail_after(STUCK):
        for slot in policy._resolver.state.slots:
            if slot.inflight is not None:
                await slot.inflight.wait()

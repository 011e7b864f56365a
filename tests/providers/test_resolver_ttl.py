"""The resolver reads a provider's ttl after each load (remote documents set it per fetch)."""

from __future__ import annotations

import pytest

from corsengine import Policy
from corsengine._patterns import Rules
from corsengine.providers import BaseProvider
from corsengine.testing import FakeClock


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

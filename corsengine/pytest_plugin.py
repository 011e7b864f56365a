"""pytest fixtures for testing CORS policies and apps: no server, no network, no ``async``.

Registered through the ``pytest11`` entry point, so installing corsengine is enough::

    def test_partners(cors_policy, cors_assert):
        policy = cors_policy(allow_origins=["https://*.partner.example"])
        cors_assert.allowed(policy, "https://app.partner.example")
        cors_assert.refused(policy, "https://partner.example.evil.net")

    def test_the_spa_reads_items(cors_browser):
        result = cors_browser(app).fetch("/items", origin="https://spa.example", method="PUT")
        assert result.allowed, result.why

This module is imported by every pytest run in an environment where corsengine is
installed, so it imports corsengine itself only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._policy import Decision, OriginsSpec, Policy
    from .testing import Browser, FakeClock

__all__ = ["CorsAssert", "PolicyFactory", "cors_assert", "cors_browser", "cors_fake_clock", "cors_policy"]


class PolicyFactory:
    """Builds policies on the test's fake clock: ``cors_policy(allow_origins=[...], ...)``."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def __call__(self, allow_origins: OriginsSpec = (), **kwargs: Any) -> Policy:
        from ._policy import Policy

        kwargs.setdefault("clock", self.clock)
        return Policy(allow_origins, **kwargs)

    def from_file(self, path: str | Path) -> Policy:
        """The policy of a TOML or JSON configuration file (what ``corsengine check`` reads)."""
        from ._config import load_policy

        return load_policy(path, clock=self.clock)


class CorsAssert:
    """``cors_assert.allowed(policy, origin, ...)`` and ``.refused(...)``.

    Both take what :func:`corsengine.testing.assert_allowed` takes, return the decision,
    and fail with the decision's reason.
    """

    def allowed(
        self,
        policy: Policy,
        origin: str,
        method: str = "GET",
        request_headers: str | Iterable[str] | None = None,
        *,
        preflight: bool | None = None,
        private_network: bool = False,
    ) -> Decision:
        from .testing import assert_allowed

        __tracebackhide__ = True
        return assert_allowed(
            policy, origin, method, request_headers, preflight=preflight, private_network=private_network
        )

    def refused(
        self,
        policy: Policy,
        origin: str,
        method: str = "GET",
        request_headers: str | Iterable[str] | None = None,
        *,
        preflight: bool | None = None,
        private_network: bool = False,
    ) -> Decision:
        from .testing import assert_refused

        __tracebackhide__ = True
        return assert_refused(
            policy, origin, method, request_headers, preflight=preflight, private_network=private_network
        )


@pytest.fixture
def cors_fake_clock() -> FakeClock:
    """A clock that moves only on ``advance(seconds)``: TTLs expire without sleeping."""
    from .testing import FakeClock

    return FakeClock()


@pytest.fixture
def cors_policy(cors_fake_clock: FakeClock) -> PolicyFactory:
    """A factory of policies that run on ``cors_fake_clock``."""
    return PolicyFactory(cors_fake_clock)


@pytest.fixture
def cors_assert() -> CorsAssert:
    """Assertions on decisions whose failure message is the decision's reason."""
    return CorsAssert()


@pytest.fixture
def cors_browser() -> type[Browser]:
    """``cors_browser(app)``: a `corsengine.testing.Browser` that fetches through your ASGI app."""
    from .testing import Browser

    return Browser

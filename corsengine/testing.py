"""Helpers for testing CORS policies in your own test suite.

A policy test needs no server, no network and no event loop::

    from corsengine import Policy
    from corsengine.testing import assert_allowed, assert_refused

    policy = Policy(allow_origins=["https://*.example.com"])
    assert_allowed(policy, "https://app.example.com")
    assert_refused(policy, "https://example.com.evil.net")

The failure message carries the decision's reason.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._policy import Decision, Policy

__all__ = ["FakeClock", "assert_allowed", "assert_refused"]


class FakeClock:
    """A monotonic clock that moves only when told: pass it as ``Policy(clock=...)``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward; TTLs expire without sleeping."""
        if seconds < 0:
            raise ValueError("a monotonic clock never goes back")
        self.now += seconds


def _decide(
    policy: Policy,
    origin: str,
    method: str,
    request_headers: str | Iterable[str] | None,
    preflight: bool | None,
    private_network: bool,
) -> Decision:
    if preflight is None:
        # A request that a browser would preflight: a non-simple method or any header.
        preflight = method not in ("GET", "HEAD", "POST") or bool(request_headers)
    return policy.evaluate(
        origin, method, request_headers, preflight=preflight, private_network=private_network
    )


def assert_allowed(
    policy: Policy,
    origin: str,
    method: str = "GET",
    request_headers: str | Iterable[str] | None = None,
    *,
    preflight: bool | None = None,
    private_network: bool = False,
) -> Decision:
    """Assert the request is allowed; returns the decision for further checks."""
    decision = _decide(policy, origin, method, request_headers, preflight, private_network)
    if not decision.allowed:
        raise AssertionError(f"expected {origin!r} {method} to be allowed, but {decision.reason}")
    return decision


def assert_refused(
    policy: Policy,
    origin: str,
    method: str = "GET",
    request_headers: str | Iterable[str] | None = None,
    *,
    preflight: bool | None = None,
    private_network: bool = False,
) -> Decision:
    """Assert the request is refused; returns the decision for further checks."""
    decision = _decide(policy, origin, method, request_headers, preflight, private_network)
    if decision.allowed:
        raise AssertionError(f"expected {origin!r} {method} to be refused, but {decision.reason}")
    return decision

"""Helpers for testing CORS policies in your own test suite.

A policy test needs no server, no network and no event loop. The failure message carries
the decision's reason. The pytest plugin's fixtures (`cors_policy`, `cors_assert`,
`cors_fake_clock`) are thin wrappers over these helpers.

Examples:
    >>> from corsengine import Policy
    >>> from corsengine.testing import assert_allowed, assert_refused
    >>> policy = Policy(allow_origins=["https://*.example.com"])
    >>> _ = assert_allowed(policy, "https://app.example.com")
    >>> _ = assert_refused(policy, "https://example.com.evil.net")
"""

from __future__ import annotations

from collections.abc import Iterable

from ._policy import Decision, Policy

__all__ = ["FakeClock", "assert_allowed", "assert_refused"]


class FakeClock:
    """A monotonic clock that moves only when told: pass it as ``Policy(clock=...)``.

    TTLs then expire when the test says so, without sleeping.

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.providers import CallableProvider
        >>> from corsengine.testing import FakeClock
        >>> origins = ["https://old.example.com"]
        >>> clock = FakeClock()
        >>> policy = Policy(allow_origins=CallableProvider(lambda: origins, ttl=30), clock=clock)
        >>> policy.evaluate("https://old.example.com").allowed
        True
        >>> origins = ["https://new.example.com"]
        >>> clock.advance(31)  # past the TTL: the next evaluate() reloads first
        >>> policy.evaluate("https://new.example.com").allowed
        True
    """

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
    """Assert the request is allowed; returns the decision for further checks.

    Like a browser, it asks with a preflight when the method is not GET, HEAD or POST or
    when request headers are given; pass ``preflight=`` to decide yourself.

    Raises:
        AssertionError: the request is refused; the message is the decision's reason.

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.testing import assert_allowed
        >>> policy = Policy(["https://app.example.com"], allow_methods=["GET", "PUT"], max_age=300)
        >>> decision = assert_allowed(policy, "https://app.example.com", "PUT")
        >>> decision.kind, decision.headers["Access-Control-Max-Age"]
        ('preflight', '300')
        >>> assert_allowed(policy, "https://app.example.com", "DELETE")
        Traceback (most recent call last):
            ...
        AssertionError: expected 'https://app.example.com' DELETE to be allowed, but ...
    """
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
    """Assert the request is refused; returns the decision for further checks.

    Takes the same arguments as `assert_allowed`.

    Raises:
        AssertionError: the request is allowed; the message is the decision's reason.

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.testing import assert_refused
        >>> policy = Policy(allow_origins=["https://*.partner.example"])
        >>> print(assert_refused(policy, "https://partner.example").reason)
        origin 'https://partner.example' matches no rule
    """
    decision = _decide(policy, origin, method, request_headers, preflight, private_network)
    if decision.allowed:
        raise AssertionError(f"expected {origin!r} {method} to be refused, but {decision.reason}")
    return decision

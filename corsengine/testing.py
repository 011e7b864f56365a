"""Helpers for testing CORS policies, and the application that serves them, in your own tests.

A policy test needs no server, no network and no event loop. The failure message carries
the decision's reason. `Browser` goes one step further: it sends what a browser's ``fetch()``
sends through your whole ASGI application, in process, and tells what the page's script can
read, because the middleware order of the app decides that too. The pytest plugin's fixtures
(`cors_policy`, `cors_assert`, `cors_fake_clock`, `cors_browser`) are thin wrappers over these
helpers.

Examples:
    >>> from corsengine import Policy
    >>> from corsengine.testing import assert_allowed, assert_refused
    >>> policy = Policy(allow_origins=["https://*.example.com"])
    >>> _ = assert_allowed(policy, "https://app.example.com")
    >>> _ = assert_refused(policy, "https://example.com.evil.net")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import _fetch
from ._fetch import Exchange, FetchResult
from ._policy import Decision, Policy
from .types import ASGIApp

__all__ = ["Browser", "Exchange", "FakeClock", "FetchResult", "assert_allowed", "assert_refused"]


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


class Browser:
    """A browser for your ASGI app, in process: what a page's ``fetch()`` reaches, and why.

    ``fetch()`` does what Fetch does for a cross-origin request from a page of ``origin``:
    it sends a preflight when a browser would (a method other than GET, HEAD or POST, or a
    header that is not CORS-safelisted, such as ``Content-Type: application/json``), checks
    it, sends the request, and applies the CORS check to the response. ``credentials=True``
    is ``fetch(url, {credentials: "include"})``: the preflight and the response must then
    say ``Access-Control-Allow-Credentials: true`` and name the origin (``*`` does not do),
    and ``cookies`` are sent with the request. The requests go straight to the ASGI app:
    every middleware of the stack runs, as behind a server, with no server and no network.
    An exception that escapes the app becomes the bare 500 a server such as uvicorn sends.

    The `FetchResult` says whether the script can read the response (``allowed``), which
    headers it can read (``can_read()``, ``header()``), and why (``why``, with the
    decision of the app's corsengine policy when its stack contains a corsengine middleware).
    To explain, it asks the corsengine policy once more after the request (a predicate whose
    answers are not cached is called again). Like Starlette's ``TestClient`` outside a
    ``with`` block, it does not run the app's lifespan. Each call is independent: no cookie
    jar, no preflight cache, no redirects followed.

    Examples:
        >>> from fastapi import FastAPI
        >>> from corsengine import CORSMiddleware
        >>> from corsengine.testing import Browser
        >>> app = FastAPI()
        >>> @app.put("/items")
        ... def put_items():
        ...     return {"ok": True}
        >>> app.add_middleware(
        ...     CORSMiddleware,
        ...     allow_origins=["https://spa.example"],
        ...     allow_methods=["GET", "PUT"],
        ...     allow_headers=["X-Token"],
        ...     allow_credentials=True,
        ... )
        >>> browser = Browser(app)
        >>> result = browser.fetch("/items", origin="https://spa.example", method="PUT",
        ...                        headers={"X-Token": "1"}, credentials=True)
        >>> result.allowed, result.preflight.status, result.status, result.json()
        (True, 200, 200, {'ok': True})
        >>> refused = browser.fetch("/items", origin="https://evil.example", method="PUT")
        >>> print(refused.why)
        refused: the preflight response has no Access-Control-Allow-Origin header
        corsengine's policy: preflight refused: origin 'https://evil.example' matches no rule
    """

    def __init__(
        self, app: ASGIApp, *, base_url: str = "http://testserver", origin: str | None = None
    ) -> None:
        self.app = app
        self.base_url = base_url
        self.origin = origin

    def fetch(
        self,
        url: str,
        *,
        origin: str | None = None,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: str | bytes | None = None,
        json: Any = None,
        credentials: bool = False,
        cookies: Mapping[str, str] | None = None,
    ) -> FetchResult:
        """What ``fetch(url, {method, headers, body, credentials})`` from a page of ``origin`` reaches.

        ``url`` is a path on ``base_url`` or a full URL. ``json`` sends the value as JSON with
        ``Content-Type: application/json`` (which a browser preflights); a ``str`` body is
        sent as ``text/plain;charset=UTF-8`` (which it does not). Raises ValueError for what a
        browser would not send: a forbidden header such as ``Origin`` or ``Cookie`` (use
        ``origin=`` and ``cookies=``), a malformed origin, or a same-origin URL.
        """
        return _fetch.run(
            self.afetch(
                url,
                origin=origin,
                method=method,
                headers=headers,
                body=body,
                json=json,
                credentials=credentials,
                cookies=cookies,
            )
        )

    async def afetch(
        self,
        url: str,
        *,
        origin: str | None = None,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: str | bytes | None = None,
        json: Any = None,
        credentials: bool = False,
        cookies: Mapping[str, str] | None = None,
    ) -> FetchResult:
        """``fetch()`` for async tests, on the running event loop."""
        page = origin if origin is not None else self.origin
        if page is None:
            raise TypeError("fetch() needs the page's origin: pass origin= here or to Browser()")
        return await _fetch.fetch(
            self.app,
            self.base_url,
            url,
            origin=page,
            method=method,
            headers=headers,
            body=body,
            json=json,
            credentials=credentials,
            cookies=cookies,
        )

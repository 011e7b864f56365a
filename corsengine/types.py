"""ASGI aliases and the provider protocol, defined once for the whole package."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._patterns import Rules

__all__ = ["ASGIApp", "Clock", "Message", "Provider", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Clock = Callable[[], float]
"""A monotonic clock in seconds; injected so tests advance time instead of sleeping."""


@runtime_checkable
class Provider(Protocol):
    """Anything that produces an allowlist snapshot.

    ``load()`` returns the current `corsengine.providers.Rules`; raise any exception
    (or return rules built from bad data, which the provider should reject itself) and the
    resolver keeps the last good snapshot. ``ttl`` is how many seconds a snapshot stays
    fresh (``None``: forever). Optional extras the resolver uses when present:

    - ``async def aclose(self) -> None``: release connections when the app shuts down.
    - ``async def watch(self, invalidate: Callable[[], None]) -> None``: a long-running
      task (file polling, Redis pub/sub) that calls ``invalidate()`` when the source changed.

    Subclass `corsengine.providers.BaseProvider` to get ``|`` as well.

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.providers import Provider, Rules
        >>> class TenantTable:
        ...     ttl = 300.0  # re-read every five minutes
        ...     async def load(self) -> Rules:
        ...         return Rules.from_entries(["https://acme.example", "https://*.globex.example"])
        >>> isinstance(TenantTable(), Provider)
        True
        >>> Policy(allow_origins=TenantTable()).evaluate("https://eu.globex.example").allowed
        True
    """

    ttl: float | None

    async def load(self) -> Rules: ...

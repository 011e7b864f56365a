"""ASGI aliases and the provider protocols, defined once for the whole package.

`Provider` is what the resolver calls: ``ttl`` and ``load()``, and the optional members
below, each its own small protocol. `corsengine.providers.BaseProvider` has a default for
every optional one; a provider that does not subclass it implements the ones it needs. The
resolver finds them once, when a provider is installed (at construction and at each swap),
never per request. A `Predicate` is a provider that is asked about each origin instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._patterns import Rules

__all__ = [
    "ASGIApp",
    "Clock",
    "Message",
    "Predicate",
    "Provider",
    "Receive",
    "Scope",
    "Send",
    "SupportsAclose",
    "SupportsKnownRules",
    "SupportsMembers",
    "SupportsWatch",
]

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
    fresh (``None``: forever). Optional members the resolver calls when present
    (`corsengine.providers.BaseProvider` has a default for each):

    - ``async def aclose(self) -> None``: release connections when the app shuts down
      (`SupportsAclose`).
    - ``async def watch(self, invalidate: Callable[[], None]) -> None``: a long-running
      task (file polling, Redis pub/sub) that calls ``invalidate()`` when the source changed
      (`SupportsWatch`).
    - ``known_rules() -> Rules | None``: the rules when they are known without I/O (a
      static list), so the first request needs no load (`SupportsKnownRules`).
    - ``members``: the providers a union combines, each cached on its own
      (`SupportsMembers`).

    A provider that decides per origin instead of listing origins implements `Predicate`.
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


@runtime_checkable
class SupportsAclose(Protocol):
    """A provider that holds resources: ``aclose()`` is awaited when it is swapped out or
    the app shuts down."""

    async def aclose(self) -> None: ...


@runtime_checkable
class SupportsWatch(Protocol):
    """A provider told of changes: the resolver runs ``watch(invalidate)`` as a background
    task in the app's lifespan; each ``invalidate()`` reloads every dynamic source at once."""

    async def watch(self, invalidate: Callable[[], None]) -> None: ...


@runtime_checkable
class SupportsKnownRules(Protocol):
    """A provider whose rules may be known without I/O: ``known_rules()`` returns them (it
    is then never loaded, and answers from the first request), or None to be loaded."""

    def known_rules(self) -> Rules | None: ...


@runtime_checkable
class SupportsMembers(Protocol):
    """A union: ``members`` are the providers it combines (none of them a union itself),
    each cached by the resolver with its own TTL and last good snapshot."""

    @property
    def members(self) -> tuple[Provider, ...]: ...


@runtime_checkable
class Predicate(Provider, Protocol):
    """A provider that decides per origin instead of listing origins.

    ``allows(origin, scope)`` answers for one request (``scope`` is its ASGI scope, None
    from ``evaluate()`` without one); only ``True`` allows, and an exception or a timeout
    refuses. The resolver caches each answer under ``key(origin, scope)`` (None: never
    reuse it) for ``cache_ttl`` seconds, at most ``cache_size`` of them, remembers a
    failure for ``failure_ttl`` seconds, and adds ``vary`` to the ``Vary`` of every
    response. ``takes_request`` says the answer may depend on more than the origin (it is
    then never folded into the per-origin memo). ``timeout`` is how long ``allows()`` may
    take: it enforces it itself, and a ``TimeoutError`` is reported with it. A predicate
    lists nothing, so it is never loaded: ``load()`` returns empty `Rules` for direct use.

    Subclass `corsengine.providers.PredicateBase` for those defaults, or implement the
    protocol on any class.

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.providers import Predicate, Rules
        >>> class CustomerOrigins:  # no base class: the protocol is enough
        ...     ttl = None
        ...     cache_size, cache_ttl, failure_ttl, timeout = 1_000, 60.0, 5.0, 1.0
        ...     vary, takes_request = (), False
        ...     async def load(self):
        ...         return Rules()
        ...     def key(self, origin, scope):
        ...         return origin
        ...     async def allows(self, origin, scope):
        ...         return origin.endswith(".customers.example")  # a tenant-table lookup
        >>> isinstance(CustomerOrigins(), Predicate)
        True
        >>> Policy(allow_origins=CustomerOrigins()).evaluate("https://acme.customers.example").allowed
        True
    """

    cache_size: int
    cache_ttl: float
    failure_ttl: float
    timeout: float
    vary: tuple[str, ...]
    takes_request: bool

    def key(self, origin: str, scope: Scope | None) -> Hashable | None: ...

    async def allows(self, origin: str, scope: Scope | None) -> bool: ...

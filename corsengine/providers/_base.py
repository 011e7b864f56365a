"""The provider base class and the union of providers."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING

from .._patterns import Rules
from ..types import Provider

if TYPE_CHECKING:
    from ..types import Scope

DEFAULT_TTL = 30.0
"""Seconds a dynamic snapshot stays fresh (see docs/dynamic.md for the reasoning)."""


class BaseProvider:
    """Convenience base for providers: ``|`` combines providers into a union.

    Subclasses implement ``load()``; ``ttl`` is how long a snapshot stays fresh.

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.providers import BaseProvider, Rules, StaticProvider
        >>> class Partners(BaseProvider):
        ...     ttl = 60.0
        ...     async def load(self) -> Rules:
        ...         return Rules.from_entries(["https://*.partner.example"])
        >>> policy = Policy(allow_origins=Partners() | StaticProvider(["https://app.example.com"]))
        >>> policy.evaluate("https://eu.partner.example").allowed
        True
    """

    ttl: float | None = None  # None: the snapshot never goes stale

    async def load(self) -> Rules:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release resources; the default has none."""

    def __or__(self, other: Provider) -> UnionProvider:
        return UnionProvider((self, other))

    def __ror__(self, other: Provider) -> UnionProvider:
        return UnionProvider((other, self))


class UnionProvider(BaseProvider):
    r"""Allows an origin when any member allows it. A failing member contributes nothing.

    The resolver caches each member separately (each with its own TTL and last good
    snapshot); ``load()`` here only serves direct use outside a resolver. ``a | b`` builds
    one, flattening nested unions.

    Examples:
        >>> from corsengine.providers import RegexProvider, StaticProvider, UnionProvider
        >>> union = StaticProvider(["https://app.example.com"]) | RegexProvider(r"https://[a-z]+\.example\.org")
        >>> isinstance(union, UnionProvider), len(union.members)
        (True, 2)
    """

    def __init__(self, members: Iterable[Provider]) -> None:
        flat: list[Provider] = []
        for member in members:
            flat.extend(member.members if isinstance(member, UnionProvider) else (member,))
        self.members: tuple[Provider, ...] = tuple(flat)

    async def load(self) -> Rules:
        rules = Rules()
        for member in self.members:
            rules = rules | await member.load()
        return rules

    async def aclose(self) -> None:
        for member in self.members:
            close = getattr(member, "aclose", None)
            if close is not None:
                await close()

    def __repr__(self) -> str:
        return " | ".join(repr(member) for member in self.members)


class PredicateBase(BaseProvider):
    """Base for providers that decide per origin instead of listing origins.

    Implement ``async def allows(self, origin, scope) -> bool``; ``scope`` is the request's
    ASGI scope (None from ``evaluate()`` without one). The resolver caches each answer under
    ``key(origin, scope)`` (the origin, by default) for ``cache_ttl`` seconds, at most
    ``cache_size`` of them, remembers a failure for ``failure_ttl`` seconds, and adds ``vary``
    to the ``Vary`` of every response. A predicate whose answer depends on the request sets
    ``takes_request = True`` and returns None from ``key()`` for answers never to be reused.
    `PredicateProvider` wraps a plain function.

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.providers import PredicateBase
        >>> class CustomerOrigins(PredicateBase):
        ...     cache_size, cache_ttl, timeout = 1_000, 60.0, 1.0
        ...     async def allows(self, origin, scope):
        ...         return origin.endswith(".customers.example")  # a tenant-table lookup
        >>> Policy(allow_origins=CustomerOrigins()).evaluate("https://acme.customers.example").allowed
        True
    """

    cache_size: int = 10_000
    cache_ttl: float = 60.0
    failure_ttl: float = 5.0
    timeout: float = 1.0
    vary: tuple[str, ...] = ()
    takes_request: bool = False

    async def load(self) -> Rules:
        return Rules()

    def key(self, origin: str, scope: Scope | None) -> Hashable | None:
        """The cache key of one request's answer; None: never reuse it for another request."""
        return origin

    async def allows(self, origin: str, scope: Scope | None) -> bool:
        raise NotImplementedError

"""The provider base class, the union of providers, and what the resolver may call on each."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._patterns import Rules
from ..types import Predicate, Provider, SupportsAclose, SupportsKnownRules, SupportsMembers, SupportsWatch

if TYPE_CHECKING:
    from ..types import Scope

DEFAULT_TTL = 30.0
"""Seconds a dynamic snapshot stays fresh (see docs/dynamic.md for the reasoning)."""


class BaseProvider:
    """Convenience base for providers: ``|`` combines providers into a union.

    Subclasses implement ``load()``; ``ttl`` is how long a snapshot stays fresh. Every
    optional member of the `Provider` protocol has a default here: ``aclose()`` and
    ``watch()`` do nothing, ``known_rules()`` is None (the rules are loaded), and
    ``members`` is the provider alone.

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

    async def watch(self, invalidate: Callable[[], None]) -> None:
        """Call ``invalidate()`` whenever the source changes; the default is told of nothing
        (the TTL alone refreshes), and no task is started for it."""

    def known_rules(self) -> Rules | None:
        """The rules when they are known without I/O; the default: None, they are loaded."""
        return None

    @property
    def members(self) -> tuple[Provider, ...]:
        """The providers this one combines: itself alone, unless it is a union."""
        return (self,)

    def as_predicate(self) -> Predicate | None:
        """The `Predicate` to ask about each origin; None (the default): this provider lists
        its origins. `PredicateBase` returns itself."""
        return None

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
        self._members = tuple(leaf for member in members for leaf in members_of(member))

    @property
    def members(self) -> tuple[Provider, ...]:
        return self._members

    async def load(self) -> Rules:
        rules = Rules()
        for member in self.members:
            rules = rules | await member.load()
        return rules

    async def aclose(self) -> None:
        for member in self.members:
            close = parts_of(member).aclose
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
    `PredicateProvider` wraps a plain function; the `Predicate` protocol is the same
    without a base class.

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

    def as_predicate(self) -> Predicate:
        return self

    def key(self, origin: str, scope: Scope | None) -> Hashable | None:
        """The cache key of one request's answer; None: never reuse it for another request."""
        return origin

    async def allows(self, origin: str, scope: Scope | None) -> bool:
        raise NotImplementedError


# --- what the resolver calls: found once per provider, when it is installed -------------


Watch = Callable[[Callable[[], None]], Coroutine[Any, Any, None]]
Close = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Parts:
    """The optional members of one provider that the resolver calls (None: it has none)."""

    known: Rules | None  # known without I/O: never loaded, no deadline
    predicate: Predicate | None
    watch: Watch | None
    aclose: Close | None


def members_of(provider: Provider) -> tuple[Provider, ...]:
    """The leaves of ``provider``: a union's members, or the provider alone."""
    if isinstance(provider, BaseProvider | SupportsMembers):  # our base first: no protocol check
        return provider.members
    return (provider,)


def parts_of(provider: Provider) -> Parts:
    """What the resolver may call on ``provider``, from the protocols it implements.

    A `BaseProvider` has every optional member, so it needs no protocol check: those cost
    about 10 µs each, and only a provider without our base pays them, once per swap.
    """
    if isinstance(provider, BaseProvider):
        known, predicate = provider.known_rules(), provider.as_predicate()
        # The default watches nothing: no background task is started for it.
        watch = provider.watch if type(provider).watch is not BaseProvider.watch else None
        aclose: Close | None = provider.aclose
    else:
        known = provider.known_rules() if isinstance(provider, SupportsKnownRules) else None
        predicate = provider if isinstance(provider, Predicate) else None
        watch = provider.watch if isinstance(provider, SupportsWatch) else None
        aclose = provider.aclose if isinstance(provider, SupportsAclose) else None
    if predicate is not None and known is None:
        known = Rules()  # a predicate lists nothing: it is asked, never loaded
    return Parts(known, predicate, watch, aclose)

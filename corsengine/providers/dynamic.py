"""Providers backed by user functions: a callable listing origins, a per-origin predicate."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio

from .._patterns import Rules, compile_entries
from ..exceptions import ProviderError
from ..types import Scope
from ._base import DEFAULT_TTL, BaseProvider, PredicateBase

OriginsFunction = Callable[[], Iterable[str] | Awaitable[Iterable[str]]]
PredicateFunction = Callable[[str, Scope | None], bool | Awaitable[bool]]

DEFAULT_PREDICATE_CACHE_SIZE = 10_000
DEFAULT_PREDICATE_CACHE_TTL = 60.0
DEFAULT_PREDICATE_TIMEOUT = 1.0


def _name(function: Any) -> str:
    return getattr(function, "__qualname__", None) or repr(function)


def validate_entries(result: object, source: str, *, regexes: Iterable[str] = ()) -> Rules:
    """Validate what a dynamic source returned; one bad entry rejects the whole result."""
    if isinstance(result, str | bytes) or not isinstance(result, Iterable):
        raise ProviderError(f"{source} returned {type(result).__name__}, expected a list of origins")
    rules, problems, _ = compile_entries(list(result), regexes=regexes)
    if problems:
        details = "; ".join(str(problem) for problem in problems)
        raise ProviderError(f"{source} returned invalid entries, keeping the last good list: {details}")
    return rules


class CallableProvider(BaseProvider):
    """Origins (and wildcard patterns) returned by a zero-argument function, sync or async.

    The function is called at most once per ``ttl`` seconds, whatever the request rate.
    A function given as ``allow_origins=`` becomes one with the default TTL (30 s).

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.providers import CallableProvider
        >>> async def origins_from_database():
        ...     return ["https://tenant-a.example", "https://*.tenant-b.example"]
        >>> policy = Policy(allow_origins=CallableProvider(origins_from_database, ttl=300))
        >>> policy.evaluate("https://eu.tenant-b.example").allowed
        True
    """

    def __init__(self, function: OriginsFunction, *, ttl: float = DEFAULT_TTL) -> None:
        if not callable(function):
            raise TypeError(f"CallableProvider needs a function, got {type(function).__name__}")
        self.function = function
        self.ttl = ttl

    async def load(self) -> Rules:
        result = self.function()
        if inspect.isawaitable(result):
            result = await result
        return validate_entries(result, f"origins function {_name(self.function)}")

    def __repr__(self) -> str:
        return f"CallableProvider({_name(self.function)}, ttl={self.ttl})"


class PredicateProvider(PredicateBase):
    """Asks a function, sync or async, about each origin: ``fn(origin, scope) -> bool``.

    For allowlists that cannot be listed (a tenant table). Only a real ``True`` allows.
    Answers are cached per origin (LRU with a TTL, bounded by ``cache_size``); a swap or
    refresh of the policy revokes the cache at once.

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.providers import PredicateProvider
        >>> async def is_customer(origin, scope):
        ...     return origin.endswith(".customers.example")  # a tenant-table lookup
        >>> policy = Policy(allow_origins=PredicateProvider(is_customer, cache_size=10_000, cache_ttl=60))
        >>> policy.evaluate("https://acme.customers.example").allowed
        True
        >>> policy.evaluate("https://customers.example.evil.net").allowed
        False
    """

    def __init__(
        self,
        function: PredicateFunction,
        *,
        cache_size: int = DEFAULT_PREDICATE_CACHE_SIZE,
        cache_ttl: float = DEFAULT_PREDICATE_CACHE_TTL,
        timeout: float = DEFAULT_PREDICATE_TIMEOUT,
    ) -> None:
        if not callable(function):
            raise TypeError(f"PredicateProvider needs a function, got {type(function).__name__}")
        self.function = function
        self.cache_size = cache_size
        self.cache_ttl = cache_ttl
        self.timeout = timeout

    async def allows(self, origin: str, scope: Scope | None) -> bool:
        # A sync function runs inline (keep it fast, or make it async for I/O); only an
        # awaitable can be, and is, bounded by the timeout.
        result = self.function(origin, scope)
        if inspect.isawaitable(result):
            with anyio.fail_after(self.timeout):
                result = await result
        return result is True

    def __repr__(self) -> str:
        return f"PredicateProvider({_name(self.function)})"

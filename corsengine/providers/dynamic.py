"""Providers backed by user functions: a callable listing origins, a per-origin predicate."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread

from .._callables import accepts, is_async, name_of
from .._codes import E024, E026
from .._patterns import Rules, compile_entries, in_worker_thread
from .._suffixes import is_loaded
from ..exceptions import ConfigurationError, Problem, ProviderError
from ..types import Scope
from ._base import DEFAULT_TTL, BaseProvider, PredicateBase
from ._options import Options

__all__ = ["CallableProvider", "PredicateProvider"]

T = TypeVar("T")
OriginsFunction = Callable[[], Iterable[str] | Awaitable[Iterable[str]]]
PredicateFunction = Callable[..., bool | Awaitable[bool]]
"""``fn(origin)`` or ``fn(origin, scope)``, sync or async."""
CacheKeyFunction = Callable[[str, Scope], Hashable]

DEFAULT_PREDICATE_CACHE_SIZE = 10_000
DEFAULT_PREDICATE_CACHE_TTL = 60.0
DEFAULT_PREDICATE_FAILURE_TTL = 5.0
DEFAULT_PREDICATE_TIMEOUT = 1.0
# Above this many entries a result is compiled in a worker thread: compiling costs a few
# microseconds an entry, and a 100,000-entry list compiled on the event loop stalls every
# request in flight for a fraction of a second.
COMPILE_IN_THREAD_ABOVE: Final = 2_000
PARSE_IN_THREAD_ABOVE: Final = 64 * 1024  # bytes of a document: about 2,000 origins


def validate_entries(result: object, source: str, *, regexes: Iterable[str] = ()) -> Rules:
    """Validate what a dynamic source returned; one bad entry rejects the whole result."""
    if isinstance(result, str | bytes) or not isinstance(result, Iterable):
        raise ProviderError(f"{source} returned {type(result).__name__}, expected a list of origins")
    rules, problems, _ = compile_entries(list(result), regexes=regexes)
    if problems:
        details = "; ".join(str(problem) for problem in problems)
        raise ProviderError(f"{source} returned invalid entries, keeping the last good list: {details}")
    return rules


async def off_loop_if(large: bool, work: Callable[[], T]) -> T:
    """``work()`` in a worker thread when ``large``, so the event loop keeps serving meanwhile."""
    return await anyio.to_thread.run_sync(_in_worker_thread, work) if large else work()


def _in_worker_thread(work: Callable[[], T]) -> T:
    # A compile here hands the GIL to the event loop between chunks (compile_entries).
    in_worker_thread.active = True
    try:
        return work()
    finally:
        in_worker_thread.active = False


class Compiler:
    """Compiles what a dynamic source returns, off the loop when it is large, and not at all
    when the source returned the same list as last time (a list that has not changed costs a
    comparison, not a compile)."""

    __slots__ = ("_last", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._last: tuple[list[object], Rules] | None = None

    async def compile(self, result: object) -> Rules:
        if not isinstance(result, list | tuple | set | frozenset):
            return validate_entries(result, self.source)  # refused with a clear message
        entries = list(result)  # a copy: the source may mutate its own list meanwhile
        # A first wildcard reads the Public Suffix List: about 120 ms, once per process.
        first_wildcard = not is_loaded() and any(
            isinstance(entry, str) and "*." in entry for entry in entries
        )
        large = len(entries) > COMPILE_IN_THREAD_ABOVE or first_wildcard
        rules = await off_loop_if(large, lambda: self._compile(entries))
        self._last = (entries, rules)
        return rules

    def _compile(self, entries: list[object]) -> Rules:
        last = self._last
        if last is not None and last[0] == entries:
            return last[1]  # the same object: the resolver then publishes nothing new
        return validate_entries(entries, self.source)


def _shape_problem(what: str, function: object, expected: str, hint: str, field: str) -> Problem:
    return Problem(E026, f"{what} {name_of(function)} cannot be called as {expected}", hint, field=field)


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
        problems: list[Problem] = []
        if not callable(function):
            problems.append(
                Problem(
                    E026,
                    f"CallableProvider needs a function, got {type(function).__name__}",
                    "pass a zero-argument function returning a list of origins",
                    field="function",
                )
            )
        elif accepts(function, 0) is False:
            problems.append(
                _shape_problem(
                    "the origins function",
                    function,
                    "fn()",
                    "an origins function takes no arguments and returns a list; "
                    "to decide per origin, use PredicateProvider(fn)",
                    "function",
                )
            )
        options = Options("CallableProvider")
        options.seconds("ttl", ttl, example=DEFAULT_TTL)
        problems.extend(options.problems)
        if problems:
            raise ConfigurationError(problems)
        self.function = function
        self.ttl = ttl
        self._compiler = Compiler(f"origins function {name_of(function)}")

    async def load(self) -> Rules:
        result = self.function()
        if isinstance(result, Awaitable):
            result = await result
        return await self._compiler.compile(result)

    def __repr__(self) -> str:
        return f"CallableProvider({name_of(self.function)}, ttl={self.ttl})"


class PredicateProvider(PredicateBase):
    """Asks a function about each origin: ``fn(origin)`` or ``fn(origin, scope)``, sync or async.

    For allowlists that cannot be listed (a tenant table). Only a real ``True`` allows.

    - ``fn(origin)`` depends on the origin alone: its answers are cached per origin (LRU with
      a TTL, bounded by ``cache_size``; 0 turns the cache off).
    - ``fn(origin, scope)`` is given the request (the ASGI scope; None from ``evaluate()``
      without one). Its answer may differ from one request to the next, so it is never
      reused for another request unless ``cache_key(origin, scope)`` names what it depends
      on; when that key reads request headers, list them in ``vary`` so that caches keep
      the responses apart (they are added to ``Vary``).

    A sync function runs in a worker thread, so ``timeout`` holds and nothing else waits. A
    failing or timed-out call refuses, and that failure is remembered for ``failure_ttl``
    seconds, so a tenant database that is down is not asked again on every request.
    Concurrent requests for the same uncached key share one call. A swap or refresh of the
    policy revokes every cached answer at once.

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.providers import PredicateProvider
        >>> async def is_customer(origin):
        ...     return origin.endswith(".customers.example")  # a tenant-table lookup
        >>> policy = Policy(allow_origins=PredicateProvider(is_customer, cache_size=10_000, cache_ttl=60))
        >>> policy.evaluate("https://acme.customers.example").allowed
        True
        >>> policy.evaluate("https://customers.example.evil.net").allowed
        False

        A predicate that needs the request names what its answer depends on:

        >>> def api_only(origin, scope):
        ...     return scope is not None and scope["path"].startswith("/api/")
        >>> by_path = PredicateProvider(api_only, cache_key=lambda origin, scope: scope["path"])
        >>> policy = Policy(allow_origins=by_path)
        >>> policy.evaluate("https://a.example", scope={"path": "/api/x"}).allowed
        True
        >>> policy.evaluate("https://a.example", scope={"path": "/admin"}).allowed
        False
    """

    def __init__(
        self,
        function: PredicateFunction,
        *,
        cache_key: CacheKeyFunction | None = None,
        vary: Iterable[str] = (),
        cache_size: int = DEFAULT_PREDICATE_CACHE_SIZE,
        cache_ttl: float = DEFAULT_PREDICATE_CACHE_TTL,
        failure_ttl: float = DEFAULT_PREDICATE_FAILURE_TTL,
        timeout: float = DEFAULT_PREDICATE_TIMEOUT,
    ) -> None:
        problems: list[Problem] = []
        takes_request = False
        if not callable(function):
            problems.append(
                Problem(
                    E026,
                    f"PredicateProvider needs a function, got {type(function).__name__}",
                    "pass fn(origin) -> bool, or fn(origin, scope) -> bool when it needs the request",
                    field="function",
                )
            )
        else:
            takes_request = accepts(function, 2) is True
            if not takes_request and accepts(function, 1) is False:
                problems.append(
                    _shape_problem(
                        "the predicate",
                        function,
                        "fn(origin) or fn(origin, scope)",
                        "a predicate takes the origin, and the ASGI scope if it needs the request",
                        "function",
                    )
                )
        if cache_key is not None:
            if not takes_request:
                problems.append(
                    Problem(
                        E026,
                        "cache_key is given for a predicate that does not take the request",
                        "a predicate of the origin alone is cached per origin already; drop cache_key",
                        field="cache_key",
                    )
                )
            elif not callable(cache_key) or accepts(cache_key, 2) is False:
                problems.append(
                    _shape_problem(
                        "cache_key",
                        cache_key,
                        "cache_key(origin, scope)",
                        "return what the answer depends on, e.g. "
                        "lambda origin, scope: (origin, scope['path'])",
                        "cache_key",
                    )
                )
        vary_names: tuple[str, ...] = ()
        if isinstance(vary, str) or not isinstance(vary, Iterable):
            problems.append(
                Problem(
                    E024,
                    f"vary={vary!r} is not a list of header names",
                    "write vary=['X-Tenant']",
                    field="vary",
                )
            )
        else:
            vary_names = tuple(vary)
            for index, name in enumerate(vary_names):
                if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
                    problems.append(
                        Problem(
                            E024,
                            f"vary entry {name!r} is not a header name",
                            "e.g. 'X-Tenant'",
                            field="vary",
                            index=index,
                        )
                    )
        options = Options("PredicateProvider")
        options.count("cache_size", cache_size, minimum=0, example="10_000 (0 turns the cache off)")
        options.seconds("cache_ttl", cache_ttl, example=DEFAULT_PREDICATE_CACHE_TTL)
        options.seconds("failure_ttl", failure_ttl, example=DEFAULT_PREDICATE_FAILURE_TTL)
        options.seconds("timeout", timeout, example=DEFAULT_PREDICATE_TIMEOUT)
        problems.extend(options.problems)
        if problems:
            raise ConfigurationError(problems)
        self.function = function
        self.takes_request = takes_request
        self.cache_key = cache_key
        self.vary = vary_names
        self.cache_size = cache_size
        self.cache_ttl = cache_ttl
        self.failure_ttl = failure_ttl
        self.timeout = timeout
        self._async = is_async(function)

    def key(self, origin: str, scope: Scope | None) -> Hashable | None:
        """The cache key of this request's answer; None when it must not be reused."""
        if not self.takes_request:
            return origin
        if self.cache_key is None or scope is None:
            return None
        return (origin, self.cache_key(origin, scope))

    async def allows(self, origin: str, scope: Scope | None) -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # trio
            with anyio.fail_after(self.timeout):
                return await self._ask(origin, scope)
        # On asyncio, its own timeout: anyio's cancel scope costs about 10 µs a call.
        async with asyncio.timeout(self.timeout):
            return await self._ask(origin, scope)

    async def _ask(self, origin: str, scope: Scope | None) -> bool:
        args = (origin, scope) if self.takes_request else (origin,)
        if self._async:
            result: Any = await self.function(*args)  # type: ignore[misc]
        else:
            # A sync function (a database driver, requests) blocks its thread, not the loop;
            # on timeout the request goes on refused and the thread is abandoned.
            result = await anyio.to_thread.run_sync(lambda: self.function(*args), abandon_on_cancel=True)
            if isinstance(result, Awaitable):
                result = await result
        return result is True

    def __repr__(self) -> str:
        return f"PredicateProvider({name_of(self.function)})"

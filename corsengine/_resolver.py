"""The resolver: one cached snapshot per provider, refreshed without making requests wait.

- Each leaf provider of a union has its own slot: its last good rules, when they go stale,
  and at most one load in flight (single-flight).
- Requests read ``resolver.state``, one immutable object holding the merged rules, the
  predicates with their decision caches, and the earliest deadline. A swap or refresh
  publishes a new state in one assignment, so a request never sees a mix of old and new.
- Only a provider's very first load is waited for, bounded by ``timeout``; if it fails,
  requests are refused at once while retries run in the background. Once a slot has rules,
  a stale slot is reloaded in the background while requests keep the stale rules
  (stale-while-revalidate). A failed load keeps the last good rules for up to ``max_stale``
  seconds past their TTL; after that the slot contributes nothing (fail closed).
- ``swap()`` and ``refresh()`` work from any thread and from sync code: work that needs the
  event loop (closing the replaced provider, reloading) is handed to the loop that serves
  the app, or done at the next request when there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Hashable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Final

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.abc import TaskGroup

from ._cache import DecisionCache
from ._callables import check_listener
from ._memo import Memos
from ._origin import quote
from ._patterns import Rules
from .providers._base import Close, Watch, members_of, parts_of
from .providers.dynamic import COMPILE_IN_THREAD_ABOVE
from .types import Clock, Predicate, Provider, Scope

logger = logging.getLogger("corsengine")

DEFAULT_LOAD_TIMEOUT = 5.0
DEFAULT_MAX_STALE = 3600.0
RETRY_AFTER = 5.0
FAILURE_CACHE_SIZE: Final = 1024
# Entries compared per C call when telling whether a reload changed the list.
_SAME_SLICE: Final = 4096


@dataclass(frozen=True, slots=True)
class Change:
    """What a refresh or swap changed in the allowlist (rule texts).

    `Policy.on_change` listeners receive one after every change.

    Examples:
        >>> from corsengine import Policy
        >>> policy = Policy(allow_origins=["https://a.example"])
        >>> changes = []
        >>> unsubscribe = policy.on_change(changes.append)
        >>> policy.swap(["https://b.example"])
        >>> changes[-1]
        Change(added=frozenset({'https://b.example'}), removed=frozenset({'https://a.example'}))
        >>> unsubscribe()
    """

    added: frozenset[str]
    removed: frozenset[str]


ChangeListener = Callable[[Change], object]


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """The health of one source of a policy's allowlist, as `Policy.health` reports it.

    Times are seconds since the epoch (``time.time()``); durations are seconds. ``loads`` is
    False for sources known at construction (a static list, a predicate), which never load
    and never fail. ``age`` is how old the list in force is, ``staleness`` how far past its
    TTL; both are None when none of its lists is in force (never loaded, or past
    ``max_stale``).

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.testing import FakeClock
        >>> clock = FakeClock()
        >>> policy = Policy(allow_origins=lambda: ["https://app.example.com"], clock=clock)
        >>> policy.evaluate("https://app.example.com").allowed  # the first load
        True
        >>> clock.advance(45)  # the callable's list lives 30 s by default
        >>> (source,) = policy.health()
        >>> source.loads, source.ok, source.age, source.staleness, source.error
        (True, True, 45.0, 15.0, None)
    """

    source: str
    loads: bool
    ok: bool
    last_success: float | None
    last_error_at: float | None
    error: str | None
    failing_since: float | None
    age: float | None
    staleness: float | None
    load_seconds: float | None


@dataclass(eq=False, slots=True)
class _Slot:
    provider: Provider
    ttl: float | None
    # The provider's optional members (types.Provider), found when it was installed.
    predicate: Predicate | None = None
    watch: Watch | None = None
    close: Close | None = None
    static: bool = False  # known at construction: never loads
    rules: Rules | None = None
    fresh_until: float = -math.inf  # past this, the rules are stale
    refresh_at: float = -math.inf  # past this, a reload starts in the background (refresh-ahead)
    load_seconds: float = 0.0  # how long the last load took
    good_at: float = -math.inf
    inflight: anyio.Event | None = None
    attempted: bool = False  # a load has finished, well or not: only the first is waited for
    forced: bool = False  # refresh() asked for a reload that requests wait for
    retired: bool = False  # swapped out: its loads are neither published nor waited for
    error: str | None = None
    failing_since: float | None = None
    failed_at: float | None = None  # the last failed load, kept after the source recovers
    invalidations: int = 0  # bumped by invalidate() and refresh(): a load in flight is outdated


@dataclass(eq=False, slots=True)
class _Call:
    """One predicate call that concurrent requests for the same key share."""

    done: anyio.Event
    answer: bool = False


@dataclass(eq=False, slots=True)
class Asker:
    """A predicate with its caches: answers by key, recent failures, and calls in flight."""

    predicate: Predicate
    name: str
    answers: DecisionCache[bool]
    failures: DecisionCache[str]
    calls: dict[Hashable, _Call] = field(default_factory=dict)

    async def ask(self, origin: str, scope: Scope | None) -> bool:
        """The predicate's answer for this request: cached, shared with a call in flight, or asked."""
        predicate = self.predicate
        try:
            key = predicate.key(origin, scope)
        except Exception as error:
            self._failed(origin, origin, error)
            return False
        failure_key = origin if key is None else key
        if self.failures.get(failure_key) is not None:
            return False  # failed a moment ago: refused without asking again
        if key is None:
            return await self._call(origin, scope, failure_key)
        cached = self.answers.get(key)
        if cached is not None:
            return cached
        shared = self.calls.get(key)
        if shared is not None:
            await shared.done.wait()
            return shared.answer
        call = self.calls[key] = _Call(anyio.Event())
        try:
            call.answer = await self._call(origin, scope, failure_key)
            if self.failures.get(failure_key) is None:
                self.answers.put(key, call.answer)
        finally:
            del self.calls[key]
            call.done.set()
        return call.answer

    async def _call(self, origin: str, scope: Scope | None, failure_key: Hashable) -> bool:
        try:
            return await self.predicate.allows(origin, scope)
        except Exception as error:
            self._failed(origin, failure_key, error)
            return False

    def _failed(self, origin: str, failure_key: Hashable, error: Exception) -> None:
        if isinstance(error, TimeoutError):
            message = f"no answer within {self.predicate.timeout:g} s"
        else:
            message = str(error) or type(error).__name__
        # Logged once per key per failure_ttl: an outage of the predicate's database is one
        # line per origin every few seconds, not one per request.
        logger.warning(
            "corsengine: predicate %s failed for origin %s, refusing for %g s: %s",
            self.name,
            quote(origin),
            self.predicate.failure_ttl,
            quote(message, 200),
        )
        if self.predicate.failure_ttl > 0:
            self.failures.put(failure_key, message, self.predicate.failure_ttl)


@dataclass(frozen=True, slots=True)
class State:
    """What one request sees: replaced as a whole, never reassigned in part."""

    rules: Rules
    predicates: tuple[Asker, ...] = ()
    deadline: float = math.inf  # the earliest moment a slot goes stale or its rules expire
    generation: int = 0
    slots: tuple[_Slot, ...] = field(default=(), repr=False)
    # What requests learned of origins, for this state only (a swap or refresh starts new
    # ones): what the rules say of an origin (a rule, None, or MALFORMED), the predicates'
    # answers folded in until they expire, the encoded CORS headers of an actual response
    # (unconditional, or until a folded answer expires), and encoded preflight answers.
    memos: Memos = field(default_factory=lambda: Memos(time.monotonic), repr=False)
    # True when every predicate decides from the origin alone, so that its cached answers
    # may be folded into the memo.
    foldable: bool = True
    vary: tuple[str, ...] = ()  # request headers that predicates' answers depend on
    # The Vary header of a response to a request with an Origin, encoded once per state.
    vary_header: tuple[bytes, bytes] = (b"vary", b"Origin")
    # The CORS headers of every refused actual response: Vary alone.
    refusal: list[tuple[bytes, bytes]] = field(default_factory=lambda: [(b"vary", b"Origin")])
    closes_at: float = math.inf  # the earliest moment last good rules expire (max_stale)
    # True when no source ever loads and no predicate is asked: answers never need I/O.
    static: bool = True


class Reload:
    """What ``refresh()`` returns: await it to wait for the reload (optional)."""

    __slots__ = ("_resolver",)

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    def __await__(self) -> Generator[Any, None, None]:
        return self._resolver.settle().__await__()


def loop_running_here() -> bool:
    try:
        anyio.lowlevel.current_token()
    except Exception:  # NoEventLoopError, or a loop anyio does not know
        return False
    return True


class Resolver:
    """Caches the snapshots of a provider (or a union of providers) for a policy."""

    def __init__(
        self,
        provider: Provider,
        *,
        clock: Clock,
        timeout: float = DEFAULT_LOAD_TIMEOUT,
        max_stale: float = DEFAULT_MAX_STALE,
        on_publish: Callable[[State], None] | None = None,
    ) -> None:
        self.clock = clock
        # Told each new state as it is published, before any request can read it.
        self.on_publish = on_publish
        self.timeout = timeout
        self.max_stale = max_stale
        self._listeners: list[ChangeListener] = []
        self._task_group: TaskGroup | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._watching: set[int] = set()
        # The event loop serving the app, so that sync code in other threads can reach it.
        self._home: anyio.lowlevel.EventLoopToken | None = None
        self._home_thread: int | None = None
        # Background work that found no loop to run on; done at the next request.
        self._deferred: list[Callable[[], Coroutine[Any, Any, None]]] = []
        # Publishing reads the slots and replaces the state: swaps and refreshes from other
        # threads must not interleave with a load finishing in the loop.
        self._lock = threading.RLock()
        self.state = State(Rules())
        self.provider = provider
        self._install(provider)

    # --- installing and publishing ---------------------------------------------------

    def _install(self, provider: Provider) -> tuple[_Slot, ...]:
        now = self.clock()
        slots = []
        for member in members_of(provider):
            parts = parts_of(member)  # the protocol checks, once per swap: never per request
            # ttl is the protocol's; a provider without one is never stale, as None says.
            slot = _Slot(member, getattr(member, "ttl", None), parts.predicate, parts.watch, parts.aclose)
            if parts.known is not None:
                # Known at construction: no load, no deadline, evaluate() works at once.
                slot.static = slot.attempted = True
                slot.rules = parts.known
                slot.fresh_until = slot.refresh_at = math.inf
                slot.good_at = now
            slots.append(slot)
        with self._lock:
            old = self.state.slots
            self.provider = provider
            self._publish(tuple(slots), new_generation=True)
        return old

    def _republish(self, slot: _Slot | None = None, prepared: _Merged | None = None) -> None:
        """Publish the current slots again (unless ``slot`` was swapped out meanwhile)."""
        with self._lock:
            if slot is None or not slot.retired:
                self._publish(self.state.slots, prepared=prepared)

    def _live(self, slots: tuple[_Slot, ...], now: float) -> tuple[tuple[Rules, ...], float, float]:
        """The rules in force now, the next deadline, and when the first of them expires."""
        live = []
        deadline = closes_at = math.inf
        for slot in slots:
            deadline = min(deadline, slot.refresh_at)
            if slot.rules is None:
                continue
            expires = slot.good_at + (slot.ttl if slot.ttl is not None else math.inf) + self.max_stale
            if now >= expires:
                continue  # fail closed: the last good rules are too old to trust
            closes_at = min(closes_at, expires)
            live.append(slot.rules)
        return tuple(live), min(deadline, closes_at), closes_at

    async def _prepare_off_loop(self) -> _Merged | None:
        """Merge and compare a large snapshot in a worker thread, ready for ``_publish``.

        With 100,000 origins the merge and the comparison with the old list take about 70 ms:
        done on the loop, every request in flight would wait that long.
        """
        live, _, _ = self._live(self.state.slots, self.clock())
        if sum(len(rules.exact) + len(rules.subdomains) for rules in live) <= COMPILE_IN_THREAD_ABOVE:
            return None
        old = self.state.rules
        return await anyio.to_thread.run_sync(_merge, live, old, bool(self._listeners))

    def _publish(
        self, slots: tuple[_Slot, ...], *, new_generation: bool = False, prepared: _Merged | None = None
    ) -> None:
        """Replace the state; callers hold ``_lock``."""
        now = self.clock()
        old = self.state
        live, deadline, closes_at = self._live(slots, now)
        listening = bool(self._listeners)
        if prepared is None or not prepared.fits(live, old.rules, listening):
            prepared = _merge(live, old.rules, listening)
        merged, changed, change = prepared.merged, prepared.changed, prepared.change
        generation = old.generation + 1 if (new_generation or changed) else old.generation
        if generation != old.generation:
            predicates = tuple(
                Asker(
                    predicate,
                    repr(slot.provider),
                    DecisionCache(predicate.cache_size, predicate.cache_ttl, self.clock),
                    DecisionCache(FAILURE_CACHE_SIZE, predicate.failure_ttl, self.clock),
                )
                for slot in slots
                if (predicate := slot.predicate) is not None
            )
        else:
            predicates = old.predicates
        foldable = not any(asker.predicate.takes_request for asker in predicates)
        vary = tuple(dict.fromkeys(name for asker in predicates for name in asker.predicate.vary))
        # Same rules, same predicate caches: what the memos learned still holds.
        same = merged is old.rules and generation == old.generation
        memos = old.memos if same else Memos(self.clock)
        vary_header = (b"vary", b", ".join([b"Origin", *(name.encode("latin-1") for name in vary)]))
        self.state = state = State(
            merged,
            predicates,
            deadline,
            generation,
            slots,
            memos=memos,
            foldable=foldable,
            vary=vary,
            vary_header=vary_header,
            refusal=[vary_header],
            closes_at=closes_at,
            static=all(slot.static and slot.predicate is None for slot in slots),
        )
        if self.on_publish is not None:
            self.on_publish(state)
        if change is not None:
            for listener in list(self._listeners):
                try:
                    listener(change)
                except Exception:
                    logger.exception("corsengine: a change listener raised")

    def swap(self, provider: Provider) -> None:
        """Replace the provider atomically, from any thread; the replaced one is closed.

        Requests already running keep the old rules; the next request sees the new ones
        (waiting for the new provider's first load, never for a load of the old one).
        """
        old = self._install(provider)
        for slot in old:
            if not any(slot.provider is new.provider for new in self.state.slots):
                self._retire(slot)

    def _retire(self, slot: _Slot) -> None:
        slot.retired = True
        inflight = slot.inflight
        if inflight is not None:
            # Requests waiting for the old provider's load go on to the new provider's.
            self._call_soon(inflight.set)
        if slot.close is not None:
            self._run_soon(slot.close, now_if_no_loop=True)

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(Change)`` whenever the allowlist changes; returns an unsubscribe."""
        check_listener(listener, "change", "change", "Change")
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # --- refreshing -----------------------------------------------------------------

    async def current(self, *, wait: bool = False) -> State:
        """The state for a request whose snapshot deadline has passed.

        Stale snapshots reload in the background; a request waits only for a provider's
        first load and for a reload that ``refresh()`` forced. With ``wait`` (a sync
        ``evaluate()``, whose event loop ends with the call) every stale load is waited for.
        """
        if not wait:
            self._remember_home()
        await self._run_deferred()
        self._start_watchers()
        # A waiting request follows swaps to the newest provider's load, for at most one
        # load timeout in all; then it settles for what is there.
        give_up = anyio.current_time() + self.timeout
        while anyio.current_time() < give_up:
            state = self.state
            now = self.clock()
            waiting = []
            for slot in state.slots:
                if now < slot.refresh_at:
                    continue
                if now < slot.fresh_until:
                    # Refresh-ahead: still fresh, reloaded in the background before it expires
                    # so that no request is answered from a list older than its TTL.
                    if slot.inflight is None and not wait:
                        self._start_load(slot)
                    continue
                if slot.inflight is None and not wait:
                    self._start_load(slot)
                if wait or slot.forced or not slot.attempted or slot.inflight is None:
                    waiting.append(slot)
            if not waiting:
                break
            for slot in waiting:
                if self.state is not state:
                    break  # swapped meanwhile: follow the new provider
                if slot.inflight is not None:
                    await slot.inflight.wait()
                elif self.clock() >= slot.fresh_until:
                    await self._load(slot, anyio.Event())
            if self.state is state and not any(slot.forced for slot in waiting):
                break
        if self.clock() >= self.state.closes_at:
            self._republish()  # last good rules past max_stale: fail closed now
        return self.state

    def refresh(self) -> Reload:
        """Reload every dynamic provider and revoke cached predicate answers, from any thread.

        Cached answers are revoked at once; the next request waits for the reload. Await
        the result to wait for the reload here.
        """
        with self._lock:
            slots = self.state.slots
            for slot in slots:
                if not slot.static:
                    slot.fresh_until = slot.refresh_at = -math.inf
                    slot.invalidations += 1
                    slot.forced = True
            self._publish(slots, new_generation=True)
        if any(not slot.static for slot in slots):
            self._run_soon(self._reload_in_background)
        return Reload(self)

    async def settle(self) -> None:
        """Wait until no forced reload is pending (what awaiting ``refresh()`` does)."""
        await self.current(wait=True)

    async def _reload_in_background(self) -> None:
        await self.current()

    def invalidate(self) -> None:
        """The source changed (a pub/sub message, a file event): reload now, in the background.

        Requests keep the list in force until the reload lands; the first request after it
        sees the change, whether traffic flows or not.
        """
        with self._lock:
            for slot in self.state.slots:
                if not slot.static:
                    slot.fresh_until = slot.refresh_at = -math.inf
                    slot.invalidations += 1
            self._publish(self.state.slots)
        self._run_soon(self._reload_in_background)

    def _start_load(self, slot: _Slot) -> None:
        """Start loading ``slot`` in the background; leaves ``inflight`` None if it cannot."""
        event = slot.inflight = anyio.Event()
        if not self._spawn(lambda: self._load(slot, event)):
            slot.inflight = None

    def _set_fresh(self, slot: _Slot, until: float) -> None:
        slot.fresh_until = until
        ttl = slot.ttl
        if ttl is None or not math.isfinite(until):
            slot.refresh_at = until
            return
        # Start reloading ahead of expiry by a tenth of the TTL, or twice the last load's time
        # when that is longer, but never in the first half of the TTL.
        ahead = min(0.5 * ttl, max(0.1 * ttl, 2 * slot.load_seconds))
        slot.refresh_at = until - ahead

    async def _load(self, slot: _Slot, done: anyio.Event) -> None:
        slot.inflight = done
        invalidations = slot.invalidations
        prepared = None
        started = self.clock()
        try:
            with anyio.fail_after(self.timeout):
                rules = await slot.provider.load()
            if not isinstance(rules, Rules):
                raise TypeError(f"load() returned {type(rules).__name__}, expected Rules")
        except Exception as error:
            now = self.clock()
            if isinstance(error, TimeoutError):
                message = f"no answer within {self.timeout:g} s"
            else:
                message = str(error) or type(error).__name__
            if message != slot.error:
                if slot.rules is not None:
                    kept = f"keeping the last good allowlist, loaded {now - slot.good_at:.0f} s ago"
                else:
                    kept = "no good allowlist yet: refusing the origins it would allow, retrying"
                logger.warning(
                    "corsengine: provider %r failed (%s): %s", slot.provider, kept, quote(message, 500)
                )
            slot.error, slot.failed_at = message, now
            if slot.failing_since is None:
                slot.failing_since = now
            ttl = slot.ttl if slot.ttl is not None else RETRY_AFTER
            slot.fresh_until = slot.refresh_at = now + min(ttl, RETRY_AFTER)
        else:
            now = self.clock()
            slot.rules, slot.error, slot.failing_since, slot.good_at = rules, None, None, now
            # A provider may set its ttl per load (a remote document's Cache-Control max-age).
            slot.ttl = getattr(slot.provider, "ttl", slot.ttl)
            slot.load_seconds = max(0.0, now - started)
            self._set_fresh(slot, now + slot.ttl if slot.ttl is not None else math.inf)
            if slot.invalidations != invalidations:
                # The source changed while this load ran (a pub/sub message, a file event,
                # refresh()): what it read may predate the change, so it loads again.
                slot.fresh_until = slot.refresh_at = -math.inf
            if not slot.retired:
                prepared = await self._prepare_off_loop()
        finally:
            slot.attempted = True
            if slot.invalidations == invalidations:
                slot.forced = False
            if slot.inflight is done:
                slot.inflight = None
            done.set()
            self._republish(slot, prepared)
            if slot.invalidations != invalidations and not slot.retired and not slot.forced:
                self._run_soon(self._reload_in_background)  # the change that came meanwhile

    def health(self) -> tuple[SourceHealth, ...]:
        """A read-only view of every source's slot (for health endpoints and exporters)."""
        now = self.clock()
        wall = time.time()

        def epoch(moment: float | None) -> float | None:
            return None if moment is None or not math.isfinite(moment) else wall - (now - moment)

        out = []
        for slot in self.state.slots:
            age = staleness = None
            if slot.rules is not None and self._in_force(slot, now):
                age = max(0.0, now - slot.good_at) if not slot.static else 0.0
                fresh_for = slot.ttl if slot.ttl is not None else math.inf
                staleness = max(0.0, now - slot.good_at - fresh_for) if not slot.static else 0.0
            out.append(
                SourceHealth(
                    source=repr(slot.provider),
                    loads=not slot.static,
                    ok=slot.error is None,
                    last_success=epoch(slot.good_at) if slot.rules is not None else None,
                    last_error_at=epoch(slot.failed_at),
                    error=slot.error,
                    failing_since=epoch(slot.failing_since),
                    age=age,
                    staleness=staleness,
                    load_seconds=slot.load_seconds if slot.rules is not None and not slot.static else None,
                )
            )
        return tuple(out)

    def _in_force(self, slot: _Slot, now: float) -> bool:
        """Whether the slot's last good rules are still trusted (not past ``max_stale``)."""
        ttl = slot.ttl if slot.ttl is not None else math.inf
        return slot.rules is not None and now < slot.good_at + ttl + self.max_stale

    def source_failing(self, origin: str, scope: Scope | None) -> bool:
        """Whether a failing source may be why ``origin`` matched nothing: a source that has
        no list in force, or a predicate whose last call for this origin failed."""
        state = self.state
        for slot in state.slots:
            if slot.error is not None and not self._in_force(slot, self.clock()):
                return True
        for asker in state.predicates:
            try:
                key = asker.predicate.key(origin, scope)
            except Exception:
                return True
            if asker.failures.entry(origin if key is None else key) is not None:
                return True
        return False

    def failure_report(self) -> str | None:
        """Which sources are failing, since when, and what is in force instead (for reasons)."""
        now = self.clock()
        parts = []
        for slot in self.state.slots:
            if slot.error is None:
                continue
            since = now - (slot.failing_since if slot.failing_since is not None else now)
            if slot.rules is None:
                kept = "no good list was ever loaded from it"
            elif now >= slot.good_at + (slot.ttl or 0.0) + self.max_stale:
                kept = f"its last good list, {now - slot.good_at:.0f} s old, is past max_stale and refused"
            else:
                kept = f"its last good list, {now - slot.good_at:.0f} s old, is in force"
            parts.append(
                f"source {slot.provider!r} failing for {since:.0f} s ({quote(slot.error, 200)}); {kept}"
            )
        return "; ".join(parts) or None

    # --- predicates -----------------------------------------------------------------

    @staticmethod
    async def ask_predicates(state: State, origin: str, scope: Scope | None) -> str | None:
        """Ask each predicate (cache first); the name of the one that allowed, or None.

        A predicate that raises or times out refuses, and its failure is remembered for
        its ``failure_ttl`` so that it is not asked again on every request.
        """
        for asker in state.predicates:
            if await asker.ask(origin, scope):
                return asker.name
        return None

    # --- background work ------------------------------------------------------------

    def attach(self, task_group: TaskGroup | None) -> None:
        """Run background refreshes in ``task_group`` (the app's lifespan) from now on."""
        self._task_group = task_group
        self._watching.clear()
        if task_group is not None:
            self._remember_home()

    def _remember_home(self) -> None:
        thread = threading.get_ident()
        if self._home_thread != thread or self._home is None:
            self._home = anyio.lowlevel.current_token()
            self._home_thread = thread

    def _spawn(self, make: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run ``make()`` in the background of this thread's loop; False if there is none.

        The coroutine is made when the task starts, so a task cancelled before it ran (at
        shutdown) leaves no coroutine that was never awaited.
        """
        if self._task_group is not None and self._home_thread == threading.get_ident():
            self._task_group.start_soon(_quiet, make)
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Trio without the lifespan task group: a system task (trio is loaded if it runs).
            trio = sys.modules.get("trio")
            if trio is not None:
                with contextlib.suppress(RuntimeError):  # not inside trio.run
                    trio.lowlevel.spawn_system_task(_quiet, make)
                    return True
            return False  # no loop at all: a sync evaluate()
        task = loop.create_task(_quiet(make))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return True

    def _elsewhere(self) -> anyio.lowlevel.EventLoopToken | None:
        """The serving loop's token when it runs in another thread than this one."""
        return self._home if self._home_thread != threading.get_ident() else None

    def _call_soon(self, function: Callable[[], object]) -> None:
        """Call ``function`` in the serving loop's thread (at once if this is it)."""
        home = self._elsewhere()
        if home is not None:
            with contextlib.suppress(Exception):  # if that loop has ended, nobody waits in it
                anyio.from_thread.run_sync(function, token=home)
                return
        function()

    def _run_soon(
        self, make: Callable[[], Coroutine[Any, Any, None]], *, now_if_no_loop: bool = False
    ) -> None:
        """Start ``make()`` in the background of the serving loop, from any thread.

        With no loop to run on, it runs at the next request, or at once in a private loop
        when ``now_if_no_loop`` (closing a provider must not wait for traffic).
        """
        home = self._elsewhere()
        if home is not None:
            try:
                anyio.from_thread.run_sync(self._run_soon, make, token=home)
                return
            except Exception:
                self._home = self._home_thread = None  # that loop has ended
        if loop_running_here():
            if not self._spawn(make):
                self._deferred.append(make)
            return
        if now_if_no_loop:
            anyio.run(_quiet, make)
        else:
            self._deferred.append(make)

    async def _run_deferred(self) -> None:
        while self._deferred:
            await _quiet(self._deferred.pop(0))

    def _start_watchers(self) -> None:
        for slot in self.state.slots:
            if slot.watch is not None and id(slot.provider) not in self._watching:
                self._watching.add(id(slot.provider))
                self._spawn(functools.partial(slot.watch, self.invalidate))

    async def aclose(self) -> None:
        """Stop background tasks and close every provider."""
        await self._run_deferred()
        for task in list(self._background):
            task.cancel()
        for slot in self.state.slots:
            if slot.close is not None:
                await _quiet(slot.close)


@dataclass(frozen=True, slots=True)
class _Merged:
    """The rules in force merged into one snapshot, and what changed from the old one."""

    live: tuple[Rules, ...]
    old: Rules
    merged: Rules
    changed: bool
    change: Change | None  # what changed, worked out only when someone listens

    def fits(self, live: tuple[Rules, ...], old: Rules, listening: bool) -> bool:
        """Whether this was made from the same snapshots (compared by identity: cheap)."""
        return (
            self.old is old
            and (self.change is not None or not self.changed or not listening)
            and len(self.live) == len(live)
            and all(a is b for a, b in zip(self.live, live, strict=True))
        )


def _same(new: frozenset[str], old: frozenset[str]) -> bool:
    """``new == old``, compared a slice at a time: one C call over 100,000 entries would hold
    the GIL for milliseconds, and this runs in a worker thread while the event loop serves."""
    if len(new) != len(old):
        return False
    rest = iter(new)
    while chunk := list(islice(rest, _SAME_SLICE)):
        if not old.issuperset(chunk):
            return False
    return True


def _merge(live: tuple[Rules, ...], old: Rules, listening: bool) -> _Merged:
    merged = Rules()
    for rules in live:
        merged = merged | rules
    if merged is old or _same(merged.entries, old.entries):
        return _Merged(live, old, merged, False, None)
    if not listening:
        return _Merged(live, old, merged, True, None)
    change = Change(merged.entries - old.entries, old.entries - merged.entries)
    return _Merged(live, old, merged, True, change)


async def _quiet(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        await make()
    except Exception:
        logger.exception("corsengine: background task failed")

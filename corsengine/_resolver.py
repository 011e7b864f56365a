"""The resolver: one cached snapshot per provider, refreshed without making requests wait.

- Each leaf provider of a union has its own slot: its last good rules, when they go stale,
  and at most one refresh in flight (single-flight).
- Requests read ``resolver.state``, one immutable object holding the merged rules, the
  predicates with their decision caches, and the earliest deadline. A swap or refresh
  publishes a new state in one assignment, so a request never sees a mix of old and new.
- Once a slot has rules, a stale slot is refreshed in the background while requests keep
  the stale rules (stale-while-revalidate). Only the first load is waited for, bounded by
  ``timeout``. A failed refresh keeps the last good rules for up to ``max_stale`` seconds
  past their TTL; after that the slot contributes nothing (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from ._cache import DecisionCache
from ._origin import quote
from ._patterns import Rules
from .providers._base import PredicateBase, UnionProvider
from .providers.static import StaticProvider
from .types import Clock, Provider, Scope

logger = logging.getLogger("corsengine")

DEFAULT_LOAD_TIMEOUT = 5.0
DEFAULT_MAX_STALE = 3600.0
RETRY_AFTER = 5.0
MEMO_SIZE = 4096


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


@dataclass(eq=False, slots=True)
class _Slot:
    provider: Provider
    ttl: float | None
    rules: Rules | None = None
    fresh_until: float = -math.inf
    good_at: float = -math.inf
    inflight: anyio.Event | None = None
    error: str | None = None
    invalidations: int = 0  # bumped by invalidate(), so a refresh in flight knows it is outdated


@dataclass(frozen=True, slots=True)
class State:
    """What one request sees: never mutated, replaced as a whole."""

    rules: Rules
    # (predicate, its decision cache, its name as a rule) for each predicate provider
    predicates: tuple[tuple[PredicateBase, DecisionCache, str], ...] = ()
    deadline: float = math.inf
    generation: int = 0
    slots: tuple[_Slot, ...] = field(default=(), repr=False)
    # origin -> what the rules say (a rule, None, or MALFORMED), filled by requests. It
    # belongs to this state, so a swap or refresh starts a new one. Bounded by MEMO_SIZE.
    memo: dict[str, object] = field(default_factory=dict, repr=False)


class Resolver:
    """Caches the snapshots of a provider (or a union of providers) for a policy."""

    def __init__(
        self,
        provider: Provider,
        *,
        clock: Clock,
        timeout: float = DEFAULT_LOAD_TIMEOUT,
        max_stale: float = DEFAULT_MAX_STALE,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.max_stale = max_stale
        self._listeners: list[ChangeListener] = []
        self._task_group: TaskGroup | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._watching: set[int] = set()
        self.state = State(Rules())
        self.provider = provider
        self._install(provider)

    # --- installing and publishing ---------------------------------------------------

    def _install(self, provider: Provider) -> None:
        members = provider.members if isinstance(provider, UnionProvider) else (provider,)
        now = self.clock()
        slots = []
        for member in members:
            slot = _Slot(member, getattr(member, "ttl", None))
            if isinstance(member, StaticProvider | PredicateBase):
                # Known at construction: no load, no deadline, evaluate() works at once.
                slot.rules = member.rules if isinstance(member, StaticProvider) else Rules()
                slot.fresh_until = math.inf
                slot.good_at = now
            slots.append(slot)
        self.provider = provider
        self._publish(tuple(slots), new_generation=True)

    def _publish(self, slots: tuple[_Slot, ...], *, new_generation: bool = False) -> None:
        now = self.clock()
        old = self.state
        merged = Rules()
        deadline = math.inf
        for slot in slots:
            deadline = min(deadline, slot.fresh_until)
            if slot.rules is None:
                continue
            expires = slot.good_at + (slot.ttl if slot.ttl is not None else math.inf) + self.max_stale
            if now >= expires:
                # Fail closed: the last good rules are too old to trust.
                continue
            deadline = min(deadline, expires)
            merged = merged | slot.rules
        changed = merged.entries != old.rules.entries
        generation = old.generation + 1 if (new_generation or changed) else old.generation
        if generation != old.generation:
            predicates = tuple(
                (
                    slot.provider,
                    DecisionCache(slot.provider.cache_size, slot.provider.cache_ttl, self.clock),
                    repr(slot.provider),
                )
                for slot in slots
                if isinstance(slot.provider, PredicateBase)
            )
        else:
            predicates = old.predicates
        self.state = State(merged, predicates, deadline, generation, slots)
        if changed:
            change = Change(merged.entries - old.rules.entries, old.rules.entries - merged.entries)
            for listener in list(self._listeners):
                try:
                    listener(change)
                except Exception:
                    logger.exception("corsengine: a change listener raised")

    def swap(self, provider: Provider) -> None:
        """Replace the provider atomically; requests already running keep the old rules."""
        old = self.state.slots
        self._install(provider)
        for slot in old:
            if not any(slot.provider is new.provider for new in self.state.slots):
                self._spawn(_close(slot.provider))

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(Change)`` whenever the allowlist changes; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def loaded(self) -> bool:
        """True once every provider produced rules or failed at least once."""
        return all(slot.rules is not None or slot.error is not None for slot in self.state.slots)

    # --- refreshing -----------------------------------------------------------------

    async def current(self, *, wait: bool = False) -> State:
        """The state for a request whose snapshot deadline has passed.

        Stale snapshots refresh in the background unless ``wait`` (a sync ``evaluate()``,
        whose event loop ends with the call, waits for them instead).
        """
        self._start_watchers()
        now = self.clock()
        state = self.state
        first_loads = []
        for slot in state.slots:
            if now < slot.fresh_until:
                continue
            if slot.rules is None:
                first_loads.append(slot)
            elif wait or (slot.inflight is None and not self._spawn(self._refresh(slot))):
                first_loads.append(slot)  # nowhere to run it in the background: wait
        for slot in first_loads:
            await self._refresh(slot)
        if self.state is state and now >= state.deadline:
            self._publish(state.slots)  # a fail-closed deadline passed
        return self.state

    async def refresh(self) -> None:
        """Reload every dynamic provider now, and revoke cached predicate answers."""
        slots = self.state.slots
        for slot in slots:
            if slot.ttl is not None or slot.rules is None:
                slot.fresh_until = -math.inf
                slot.invalidations += 1
                # A refresh already in flight may have read the source before this call: the
                # first _refresh() may only wait for it, and it then leaves the slot stale.
                for _ in range(2):
                    await self._refresh(slot)
                    if slot.fresh_until != -math.inf:
                        break
        if self.state.slots is slots:
            self._publish(slots, new_generation=True)

    def invalidate(self) -> None:
        """Mark every dynamic snapshot stale; the next request triggers a reload."""
        for slot in self.state.slots:
            if slot.ttl is not None:
                slot.fresh_until = -math.inf
                slot.invalidations += 1
        self._publish(self.state.slots)

    async def _refresh(self, slot: _Slot) -> None:
        if slot.inflight is not None:
            await slot.inflight.wait()
            return
        done = slot.inflight = anyio.Event()
        invalidations = slot.invalidations
        try:
            with anyio.fail_after(self.timeout):
                rules = await slot.provider.load()
            if not isinstance(rules, Rules):
                raise TypeError(f"load() returned {type(rules).__name__}, expected Rules")
        except Exception as error:
            message = str(error) or type(error).__name__
            if message != slot.error:
                kept = "keeping the last good allowlist" if slot.rules is not None else "refusing"
                logger.warning(
                    "corsengine: provider %r failed (%s): %s", slot.provider, kept, quote(message, 500)
                )
            slot.error = message
            ttl = slot.ttl if slot.ttl is not None else RETRY_AFTER
            slot.fresh_until = self.clock() + min(ttl, RETRY_AFTER)
        else:
            now = self.clock()
            slot.rules, slot.error, slot.good_at = rules, None, now
            # A provider may set its ttl per load (a remote document's Cache-Control max-age).
            slot.ttl = getattr(slot.provider, "ttl", slot.ttl)
            slot.fresh_until = now + slot.ttl if slot.ttl is not None else math.inf
            if slot.invalidations != invalidations:
                # The source changed while this load ran (a pub/sub message, a file event):
                # what it read may predate the change, so the next request loads again.
                slot.fresh_until = -math.inf
        finally:
            slot.inflight = None
            done.set()
            if any(slot is installed for installed in self.state.slots):
                self._publish(self.state.slots)

    # --- predicates -----------------------------------------------------------------

    async def ask_predicates(self, state: State, origin: str, scope: Scope | None) -> str | None:
        """Ask each predicate (cache first); the name of the one that allowed, or None.

        A predicate that raises or times out refuses this request; the failure is logged
        and not cached, so the next request asks again.
        """
        for predicate, cache, name in state.predicates:
            cached = cache.get(origin)
            if cached is None:
                try:
                    cached = await predicate.allows(origin, scope)
                except Exception as error:
                    logger.warning(
                        "corsengine: predicate %r failed for origin %s, refusing: %s",
                        predicate,
                        quote(origin),
                        quote(str(error) or type(error).__name__, 200),
                    )
                    continue
                cache[origin] = cached
            if cached:
                return name
        return None

    # --- background work ------------------------------------------------------------

    def attach(self, task_group: TaskGroup | None) -> None:
        """Run background refreshes in ``task_group`` (the app's lifespan) from now on."""
        self._task_group = task_group
        self._watching.clear()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> bool:
        """Run ``coroutine`` in the background; False (and closed) when there is nowhere to."""
        if self._task_group is not None:
            self._task_group.start_soon(_quiet, coroutine)
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No asyncio loop: a sync evaluate(), or trio without the lifespan task group.
            coroutine.close()
            return False
        task = loop.create_task(_quiet(coroutine))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return True

    def _start_watchers(self) -> None:
        for slot in self.state.slots:
            watch = getattr(slot.provider, "watch", None)
            if watch is not None and id(slot.provider) not in self._watching:
                self._watching.add(id(slot.provider))
                self._spawn(watch(self.invalidate))

    async def aclose(self) -> None:
        """Stop background tasks and close every provider."""
        for task in list(self._background):
            task.cancel()
        await _close(self.provider)


async def _close(provider: Provider) -> None:
    close = getattr(provider, "aclose", None)
    if close is not None:
        await _quiet(close())


async def _quiet(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        await coroutine
    except Exception:
        logger.exception("corsengine: background task failed")

"""Policy: the CORS rules of one allowlist, and the request API every adapter calls.

A `Policy` holds three things: its `Settings` (validated and compiled once, `_settings.py`),
a `Resolver` serving the allowlist's current snapshot (`_resolver.py`), and the memos of that
snapshot (`_memo.py`). Its request API finds the rule that allows an origin (``lookup``,
``resolve``) and hands it to the pure decision functions (`_decide.py`): ``evaluate()``, the
ASGI middleware, the CLI and the pytest plugin all take that path to a decision.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, Final, Generic, TypeVar, overload

import anyio
from anyio.abc import TaskGroup

from . import _decide, _lookup
from ._callables import check_listener, name_of
from ._codes import E028
from ._decide import MAX_REQUEST_HEADERS_LENGTH, Decision, Headers, PreflightAnswer
from ._events import FAILURE_REASONS, DecisionEvent, Reason, RequestKind
from ._lookup import PENDING, Pending
from ._memo import MALFORMED, PreflightKey, Prepared
from ._origin import MAX_ORIGIN_LENGTH
from ._patterns import Rules
from ._ratelimit import LogRate
from ._resolver import (
    DEFAULT_LOAD_TIMEOUT,
    DEFAULT_MAX_STALE,
    Change,
    Resolver,
    SourceHealth,
    State,
    loop_running_here,
)
from ._settings import (
    DEFAULTS,
    OriginsSpec,
    accept_any_origin,
    check_credentials,
    compile_settings,
    origins_provider,
    static_rules,
    with_regex,
)
from ._shadow import ShadowReport, observe
from .exceptions import ConfigurationError, Problem
from .providers._options import Options
from .types import Clock, Scope

T = TypeVar("T")
logger = logging.getLogger("corsengine")

__all__ = ["PENDING", "Decision", "OriginsSpec", "Pending", "Policy"]


_NEVER: Final = math.inf
_NO_ANSWERS: Final[Mapping[Any, Any]] = {}  # what a policy someone listens to offers: never written


class _Setting(Generic[T]):
    """A read-only attribute of ``Policy`` that reads the field of the same name in its
    ``settings``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, policy: None, owner: type) -> _Setting[T]: ...

    @overload
    def __get__(self, policy: Policy, owner: type) -> T: ...

    def __get__(self, policy: Policy | None, owner: type) -> _Setting[T] | T:
        if policy is None:
            return self
        return getattr(policy.settings, self.name)  # type: ignore[no-any-return]

    def __set__(self, policy: Policy, value: object) -> None:
        raise AttributeError(f"Policy.{self.name} is read-only: build a new Policy to change it")


def _expires(state: State) -> bool:
    """True when a snapshot's answers can expire before it does: it has a deadline (a TTL,
    ``max_stale``) or predicates' cached answers. Each of its prepared answers is then kept
    until the earlier of the two (`Prepared`)."""
    return state.deadline != _NEVER or bool(state.predicates)


def _keep_until(state: State, origin: str) -> float | None:
    """Until when the answer just found for ``origin`` may be kept: the snapshot's deadline
    when the rules decided, a predicate's folded answer's expiry when sooner; None when it
    may not be kept (a request-aware predicate's answer)."""
    if _lookup.decided_by_rules(state, origin):
        return state.deadline
    folded = _lookup.folded_until(state, origin)
    return None if folded is None else min(folded, state.deadline)


def _unexpired(state: State, clock: Clock) -> Prepared:
    """A snapshot's prepared answers, without those whose time has come."""
    prepared = state.memos.prepared
    if _expires(state):
        now = clock()
        if prepared.until <= now:
            prepared.expire(now)
    return prepared


def _run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    async def main() -> T:
        return await coroutine

    return anyio.run(main)


class Policy:
    """A CORS policy: the allowlist (any provider) plus methods, headers and credentials.

    Everything is validated and compiled at construction; a bad configuration raises one
    `ConfigurationError` listing every problem. ``evaluate()`` answers from plain
    strings, so a policy test needs no server and no event loop. ``swap()`` replaces the
    allowlist atomically and ``refresh()`` reloads every dynamic provider now.

    Examples:
        >>> from corsengine import Policy
        >>> policy = Policy(
        ...     allow_origins=["https://app.example.com", "https://*.partner.example"],
        ...     allow_methods=["GET", "PUT"],
        ... )
        >>> policy.evaluate("https://eu.partner.example", "PUT", preflight=True).allowed
        True
        >>> print(policy.evaluate("https://partner.example").reason)  # the apex is not a subdomain
        origin 'https://partner.example' matches no rule
        >>> policy.swap(["https://app.example.com"])  # the next request sees the new list
        >>> policy.evaluate("https://eu.partner.example").allowed
        False

    ``starlette_compatible=True`` is what the drop-in ``CORSMiddleware`` sets: ``*`` in
    ``allow_headers`` then also covers ``Authorization`` (Starlette's meaning; Fetch's ``*``
    never does), and a static allowlist that lets any origin in with credentials (``["*"]``,
    a catch-all regex) mirrors the origin and is reported in the log instead of refused.
    """

    # The snapshot's prepared answers, for adapters to read before asking: an Origin's
    # actual-response headers (Vary last; ``refusal`` itself, Vary alone, when refused), and
    # a preflight's encoded answer keyed by (Origin, -Request-Method, -Request-Headers,
    # -Private-Network) as sent. Plain dicts, read without a method call. When
    # ``answers_expire`` (a TTL, max_stale, a predicate's cached answers), an adapter first
    # compares ``prepared.until`` with ``clock()`` and calls ``expire_answers()`` once it has
    # passed. Empty while someone listens (``observed``): then every request is asked for,
    # through actual_response() and preflight_response().
    answers: Mapping[bytes, Headers]
    refusal: Headers
    preflights: Mapping[PreflightKey, PreflightAnswer]
    prepared: Prepared
    answers_expire: bool

    def __init__(
        self,
        allow_origins: OriginsSpec = DEFAULTS["allow_origins"],
        allow_methods: Iterable[str] = DEFAULTS["allow_methods"],
        allow_headers: Iterable[str] = DEFAULTS["allow_headers"],
        allow_credentials: bool = DEFAULTS["allow_credentials"],
        allow_origin_regex: str | None = DEFAULTS["allow_origin_regex"],
        allow_private_network: bool = DEFAULTS["allow_private_network"],
        expose_headers: Iterable[str] = DEFAULTS["expose_headers"],
        max_age: int = DEFAULTS["max_age"],
        *,
        preflight_status: int = DEFAULTS["preflight_status"],
        unsafe_allow_any_origin_with_credentials: bool = False,
        starlette_compatible: bool = False,
        timeout: float = DEFAULT_LOAD_TIMEOUT,
        max_stale: float = DEFAULT_MAX_STALE,
        clock: Clock | None = None,
        shadow: Policy | None = None,
    ) -> None:
        problems: list[Problem] = []
        if shadow is not None and not isinstance(shadow, Policy):
            problems.append(
                Problem(
                    E028,
                    f"shadow is a {type(shadow).__name__}, not a Policy",
                    "pass the candidate as shadow=Policy(...)",
                    field="shadow",
                )
            )
        settings, origins = compile_settings(
            allow_origins=allow_origins,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
            allow_credentials=allow_credentials,
            allow_origin_regex=allow_origin_regex,
            allow_private_network=allow_private_network,
            expose_headers=expose_headers,
            max_age=max_age,
            preflight_status=preflight_status,
            unsafe_allow_any_origin_with_credentials=unsafe_allow_any_origin_with_credentials,
            starlette_compatible=starlette_compatible,
            problems=problems,
        )
        options = Options("Policy")
        options.seconds("timeout", timeout, example=DEFAULT_LOAD_TIMEOUT)
        options.seconds("max_stale", max_stale, example=DEFAULT_MAX_STALE, zero=True)
        problems.extend(options.problems)
        check_credentials(settings, static_rules(origins) | settings.regex, problems, allow_origins)
        if problems:
            raise ConfigurationError(problems)
        self.settings = accept_any_origin(settings, static_rules(origins) | settings.regex)
        self.clock: Clock = clock or time.monotonic
        self.shadow = shadow
        self.shadow_report = ShadowReport(self.clock)
        # Replaced, never mutated: a request iterates the tuple it read while another thread
        # subscribes.
        self.decision_listeners: tuple[Callable[[DecisionEvent], object], ...] = ()
        # True when a decision listener or a shadow policy wants to hear about requests: the
        # one attribute the middleware checks for both, per request.
        self.observed = shadow is not None
        self._listener_errors = LogRate(self.clock)
        self._resolver = Resolver(
            with_regex(self.settings, origins),
            clock=self.clock,
            timeout=timeout,
            max_stale=max_stale,
            on_publish=self._published,
        )

    def _published(self, state: State) -> None:
        prepared = state.memos.prepared
        self.refusal = state.refusal
        # Whether to compare the time first, set before the dicts are.
        self.prepared = prepared
        self.answers_expire = _expires(state) and not self.observed
        if self.observed:
            self.answers = self.preflights = _NO_ANSWERS
        else:
            self.answers = prepared.answers
            self.preflights = prepared.preflights

    def expire_answers(self) -> None:
        """Drop the prepared answers whose time has come (what an adapter calls once
        ``prepared.until`` has passed, when ``answers_expire``)."""
        self.prepared.expire(self.clock())

    # --- the settings, read-only ------------------------------------------------------

    allow_credentials: _Setting[bool] = _Setting()
    allow_private_network: _Setting[bool] = _Setting()
    allow_methods: _Setting[tuple[str, ...]] = _Setting()
    # The allowed request headers: the safelisted ones and those listed ("*" aside).
    allow_headers: _Setting[tuple[str, ...]] = _Setting()
    allow_all_headers: _Setting[bool] = _Setting()
    expose_headers: _Setting[tuple[str, ...]] = _Setting()
    max_age: _Setting[int] = _Setting()
    preflight_status: _Setting[int] = _Setting()
    starlette_compatible: _Setting[bool] = _Setting()
    unsafe_allow_any_origin_with_credentials: _Setting[bool] = _Setting()

    # --- hot swap ---------------------------------------------------------------------

    def swap(self, allow_origins: OriginsSpec) -> None:
        """Replace the allowlist atomically; the next request sees the new one.

        Takes what ``allow_origins`` takes (a list, a function or a provider) and
        validates it first: a bad list raises ConfigurationError and nothing changes.
        Works from any thread, from sync code and from async code; the replaced provider
        is closed.
        """
        problems: list[Problem] = []
        origins = origins_provider(allow_origins, problems)
        check_credentials(self.settings, static_rules(origins), problems, allow_origins)
        if problems:
            raise ConfigurationError(problems)
        self._resolver.swap(with_regex(self.settings, origins))

    def refresh(self) -> Awaitable[None]:
        """Reload every dynamic provider now and forget cached predicate answers.

        Works from any thread and from sync code: the cached answers are revoked at once and
        the next request waits for the reload. In async code, ``await policy.refresh()``
        also waits for the reload here.
        """
        return self._resolver.refresh()

    def on_change(self, listener: Callable[[Change], object]) -> Callable[[], None]:
        """Call ``listener(change)`` with the added and removed rules after each change.

        Returns a function that unsubscribes the listener.
        """
        return self._resolver.on_change(listener)

    def on_decision(self, listener: Callable[[DecisionEvent], object]) -> Callable[[], None]:
        """Call ``listener(event)`` with a `DecisionEvent` for each CORS request decided.

        The middleware calls it on the request path, after deciding and before answering:
        keep it fast (count, or hand off to a queue). A listener that raises is logged (at
        a bounded rate) and never breaks the request. Returns a function that unsubscribes
        the listener. Requests without an Origin header are not CORS requests: no event.

        Examples:
            >>> from corsengine import Policy
            >>> policy = Policy(["https://app.example.com"])
            >>> seen = []
            >>> unsubscribe = policy.on_decision(lambda event: seen.append(event.reason))
            >>> policy.notify(policy.event("https://evil.example", False))  # what the middleware does
            >>> seen
            ['no-rule']
            >>> unsubscribe()
            >>> policy.decision_listeners
            ()
        """
        check_listener(listener, "decision", "event", "DecisionEvent")
        self.decision_listeners = (*self.decision_listeners, listener)
        self.observed = True
        self._published(self._resolver.state)

        def unsubscribe() -> None:
            listeners = list(self.decision_listeners)
            if listener in listeners:
                listeners.remove(listener)
                self.decision_listeners = tuple(listeners)
                self.observed = bool(listeners) or self.shadow is not None
                self._published(self._resolver.state)

        return unsubscribe

    def notify(self, event: DecisionEvent) -> None:
        """Hand ``event`` to every decision listener; one that raises is logged, not raised."""
        for listener in self.decision_listeners:
            try:
                listener(event)
            except Exception:
                if self._listener_errors.allow(id(listener)):
                    logger.exception("corsengine: the decision listener %s raised", name_of(listener))

    def event(
        self,
        origin: str,
        allowed: bool,
        scope: Scope | None = None,
        *,
        rule: str | Pending | None = PENDING,
        request: RequestKind = "actual",
        method: str | None = None,
        request_headers: str | None = None,
        private_network: bool = False,
        failures: tuple[str, ...] = (),
        route: str | None = None,
    ) -> DecisionEvent:
        """The `DecisionEvent` of a decision an adapter made (``allowed``).

        ``rule`` is what ``lookup()``/``resolve()`` said (looked up again when not given);
        ``failures`` are a refused preflight's (``Decision.failures``). ``method`` defaults to
        the scope's.
        """
        if isinstance(rule, Pending):
            rule = self.lookup(origin, scope)
            if isinstance(rule, Pending):
                rule = None  # the allowlist is reloading: the middleware decided from the last one
        if method is None:
            method = scope.get("method", "GET") if scope is not None else "GET"
        state = self._resolver.state
        kind = _lookup.rule_kind(state, origin, rule) if rule is not None else None
        reason: Reason
        if allowed:
            reason = "allowed"
        elif failures and failures[0] != "origin":
            reason = FAILURE_REASONS.get(failures[0], "headers")
        else:
            failing = self._resolver.source_failing(origin, scope)
            reason = _lookup.refusal_kind(state, origin, rule, failing)
        return DecisionEvent(
            allowed,
            reason,
            request,
            origin,
            rule,
            kind,
            route,
            method,
            request_headers,
            private_network,
            self,
            scope,
        )

    def health(self) -> tuple[SourceHealth, ...]:
        """The health of each source of the allowlist: last success, last error, staleness.

        One `SourceHealth` per provider (each member of a ``|`` union), read from the
        resolver without waiting for anything; for health endpoints and the exporters in
        `corsengine.metrics`.

        Examples:
            >>> from corsengine import Policy
            >>> (source,) = Policy(["https://app.example.com"]).health()
            >>> source.source, source.loads, source.ok
            ("StaticProvider(['https://app.example.com'])", False, True)
        """
        return self._resolver.health()

    @property
    def rules(self) -> Rules:
        """The allowlist in force now (the merged snapshot of every provider)."""
        return self._resolver.state.rules

    @property
    def vary(self) -> tuple[str, ...]:
        """Request headers that predicates' answers depend on (added to ``Vary``)."""
        return self._resolver.state.vary

    def attach(self, task_group: TaskGroup | None) -> None:
        """Run background reloads in ``task_group`` (the app's lifespan); None detaches."""
        self._resolver.attach(task_group)

    async def aclose(self) -> None:
        """Stop background refreshes and close the providers."""
        await self._resolver.aclose()

    # --- the request API: lookup, resolve, then the decision ---------------------------

    def lookup(self, origin: str, scope: Scope | None = None) -> str | Pending | None:
        """The rule allowing ``origin`` from what is at hand: its text, None, or PENDING.

        PENDING means the answer needs I/O (a load, a predicate call): ``await resolve()``.
        """
        return _lookup.lookup(self._resolver.state, origin, scope, self.clock)

    async def resolve(self, origin: str, scope: Scope | None = None, *, wait: bool = False) -> str | None:
        """``lookup()`` carried through: loads what is due and asks predicates.

        ``wait`` waits for every due load (a sync ``evaluate()``, whose loop ends with it).
        """
        state = self._resolver.state
        if state.deadline <= self.clock():
            state = await self._resolver.current(wait=wait)
        verdict = _lookup.rules_say(state, origin)
        if type(verdict) is str:
            return verdict
        if verdict is MALFORMED or not state.predicates:
            return None
        return await self._resolver.ask_predicates(state, origin, scope)

    def allow_origin(self, rule: str, origin: str) -> str | None:
        """What Access-Control-Allow-Origin says for a matched rule (None: refused)."""
        return _decide.allow_origin(self.settings, rule, origin)

    def actual_headers(self, origin: bytes, rule: str | None) -> Headers | None:
        """The encoded CORS headers of an actual response (``Vary`` aside); None: refused.

        ``origin`` is the request's Origin as sent: an allowed origin is echoed byte for byte.
        """
        return _decide.actual_headers(self.settings, origin, rule)

    def actual_response(self, origin: bytes, scope: Scope | None = None) -> Headers | Pending:
        """The encoded CORS headers of an actual response to this Origin, ``Vary`` last (only
        ``Vary`` when refused), or PENDING when the answer needs I/O (then ``resolve()`` and
        ``actual_response_for()``).

        What the middleware asks when ``answers`` has no entry: a warm answer is one dict read
        from the snapshot's memos, which die with the snapshot.
        """
        state = self._resolver.state
        prepared = _unexpired(state, self.clock)
        # Past the deadline, nothing prepared is found: lookup() decides between a load and a
        # malformed origin's refusal.
        hit = prepared.answers.get(origin)
        if hit is not None:
            return hit
        text = origin.decode("latin-1")
        rule = self.lookup(text, scope)
        if isinstance(rule, Pending):
            return PENDING
        headers = _decide.actual_response(self.settings, origin, rule, state.vary_header)
        until = _keep_until(state, text)
        if until is not None:
            if len(headers) == 1:
                headers = state.refusal  # the same list for every refusal: what adapters test
            prepared.keep_answer(origin, headers, until)
        return headers

    def actual_response_for(self, origin: bytes, rule: str | None) -> Headers:
        """``actual_response()`` once the rule is known (what ``resolve()`` returned)."""
        return _decide.actual_response(self.settings, origin, rule, self._resolver.state.vary_header)

    def preflight_response(
        self,
        origin: bytes,
        method: bytes,
        request_headers: bytes | None,
        private_network: bool,
        scope: Scope | None = None,
    ) -> PreflightAnswer | Pending:
        """The encoded answer to a preflight (Origin, Access-Control-Request-Method, -Headers
        as sent, and whether -Private-Network was asked), or PENDING when the answer needs I/O
        (then ``resolve()`` and ``preflight_response_for()``)."""
        state = self._resolver.state
        prepared = _unexpired(state, self.clock)
        key = (origin, method, request_headers, private_network)
        hit = prepared.preflights.get(key)
        if hit is not None:
            return hit
        text = origin.decode("latin-1")
        rule = self.lookup(text, scope)
        if isinstance(rule, Pending):
            return PENDING
        answer = self.preflight_response_for(origin, rule, method, request_headers, private_network, state)
        until = _keep_until(state, text)
        if until is not None and len(request_headers or b"") <= MAX_REQUEST_HEADERS_LENGTH:
            prepared.keep_preflight(key, answer, until)
        return answer

    def preflight_response_for(
        self,
        origin: bytes,
        rule: str | None,
        method: bytes,
        request_headers: bytes | None,
        private_network: bool,
        state: State | None = None,
    ) -> PreflightAnswer:
        """``preflight_response()`` once the rule is known (what ``resolve()`` returned)."""
        state = state or self._resolver.state
        key = ((origin, method, request_headers, private_network), rule)
        decisions = state.memos.decisions
        answer = decisions.entries.get(key)
        if answer is None:
            asked = request_headers.decode("latin-1") if request_headers is not None else None
            decision = _decide.decide(
                self.settings,
                origin.decode("latin-1"),
                rule,
                method.decode("latin-1"),
                asked,
                True,
                private_network,
                state.vary,
                None,  # no reasons: the middleware never reads them
            )
            answer = _decide.encode_preflight(decision)
            # Oversized values are refused at once; keeping them would let a flood pin the
            # memo's size times a server's header limit in memory.
            if len(origin) <= MAX_ORIGIN_LENGTH and len(request_headers or b"") <= MAX_REQUEST_HEADERS_LENGTH:
                decisions.put(key, answer)
        return answer

    async def observe(
        self,
        origin: bytes,
        allowed: bool,
        scope: Scope | None = None,
        *,
        preflight: tuple[str, str | None, bool] | None = None,
    ) -> None:
        """Ask the shadow policy about a request this one decided (``allowed``), and record a
        disagreement in ``shadow_report``. ``preflight`` is (method, request headers, private
        network) for a preflight. Nothing the shadow says changes the response.
        """
        if self.shadow is not None:
            await observe(self, self.shadow, origin, allowed, scope, preflight)

    def evaluate(
        self,
        origin: str | None,
        method: str = "GET",
        request_headers: str | Iterable[str] | None = None,
        *,
        preflight: bool = False,
        private_network: bool = False,
        scope: Scope | None = None,
    ) -> Decision:
        """Decide a request from plain strings.

        For a preflight (``preflight=True``), ``method`` and ``request_headers`` are what
        the browser asks for (Access-Control-Request-Method / -Headers) and
        ``private_network`` is Access-Control-Request-Private-Network. For an actual
        request only the origin matters. ``scope`` is the ASGI scope that predicates which
        take the request are given.

        No I/O happens for a static allowlist. An allowlist with a dynamic source (a provider
        that loads, a predicate) may need I/O (a first load, a TTL expired, a predicate to
        ask): ``evaluate()`` then runs it in an event loop of its own and waits for it.
        Inside a running event loop, ``evaluate()`` on such a policy raises ``RuntimeError``,
        whatever its caches hold at that moment: use ``await aevaluate()`` in async code.
        """
        if not self._resolver.state.static and loop_running_here():
            raise RuntimeError(
                "this policy has a dynamic source, which may need I/O to answer, and an event loop "
                "is running: use 'await policy.aevaluate(...)' instead of evaluate()"
            )
        rule: str | Pending | None = None
        if origin is not None:
            rule = self.lookup(origin, scope)
            if isinstance(rule, Pending):
                rule = _run_sync(self.resolve(origin, scope, wait=True))
        return self.decide(origin, rule, method, request_headers, preflight, private_network)

    async def aevaluate(
        self,
        origin: str | None,
        method: str = "GET",
        request_headers: str | Iterable[str] | None = None,
        *,
        preflight: bool = False,
        private_network: bool = False,
        scope: Scope | None = None,
    ) -> Decision:
        """``evaluate()`` for async code: loads and asks predicates without blocking."""
        rule: str | None = None
        if origin is not None:
            now = self.lookup(origin, scope)
            rule = await self.resolve(origin, scope) if isinstance(now, Pending) else now
        return self.decide(origin, rule, method, request_headers, preflight, private_network)

    def decide(
        self,
        origin: str | None,
        rule: str | Pending | None,
        method: str = "GET",
        request_headers: str | Iterable[str] | None = None,
        preflight: bool = False,
        private_network: bool = False,
        *,
        explain: bool = True,
    ) -> Decision:
        """The decision once the rule is known (what ``lookup()``/``resolve()`` returned).

        ``explain=False`` leaves ``reason`` empty (a reason costs more to build than the rest
        of a preflight's decision).
        """
        return _decide.decide(
            self.settings,
            origin,
            rule if isinstance(rule, str) else None,
            method,
            request_headers,
            preflight,
            private_network,
            self.vary,
            self._resolver.failure_report if explain else None,
        )

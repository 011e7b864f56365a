"""Policy and Decision: the CORS rules, compiled once, evaluated from plain strings.

The policy's request API (``lookup``, ``resolve``, ``actual_headers``, ``decide``) is what
every adapter calls: ``evaluate()``, the ASGI middleware, the CLI and the pytest plugin take
the same path to a decision.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, cast

import anyio
from anyio.abc import TaskGroup

from ._callables import accepts, check_listener, name_of
from ._codes import E009, E011, E012, E013, E014, E015, E016, E019, E023, E026, E028
from ._events import FAILURE_REASONS, DecisionEvent, Reason, RequestKind, RuleKind
from ._origin import MAX_ORIGIN_LENGTH, describe_invalid_origin, parse_origin, quote
from ._patterns import Rules, compile_regex, entry_index
from ._ratelimit import LogRate
from ._resolver import (
    DEFAULT_LOAD_TIMEOUT,
    DEFAULT_MAX_STALE,
    MEMO_SIZE,
    Change,
    Resolver,
    SourceHealth,
    State,
)
from ._shadow import Disagreement, Flip, ShadowReport
from .exceptions import ConfigurationError, Problem
from .providers._base import UnionProvider
from .providers._options import Options
from .providers.dynamic import CallableProvider
from .providers.static import StaticProvider, compile_or_raise, string_not_list
from .types import Clock, Provider, Scope

T = TypeVar("T")
logger = logging.getLogger("corsengine")

# Starlette's list, so that allow_methods=["*"] means the same in the drop-in.
ALL_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY")
# Fetch: CORS-safelisted request headers, always allowed (Starlette lists them too).
SAFELISTED_HEADERS: Final = ("Accept", "Accept-Language", "Content-Language", "Content-Type")
PREFLIGHT_VARY: Final = (
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    "Access-Control-Request-Private-Network"
)
# A browser sends a short, sorted list; anything longer is refused unread (rs/cors CVE-2025-47908).
MAX_REQUEST_HEADERS_LENGTH: Final = 1024
MAX_MAX_AGE: Final = 86400
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Origins no allowlist has reason to allow together: a regex that fully matches two of them
# allows (nearly) every origin, which with credentials is E012's misconfiguration.
_PROBE_ORIGINS: Final = (
    "https://corsengine-probe.invalid",
    "http://attacker.example.net",
    "https://xn--80ak6aa92e.xn--p1ai",
    "http://198.51.100.7:8080",
)

Kind = Literal["preflight", "actual", "not-cors"]
OriginsSpec = Iterable[str] | Callable[[], Any] | Provider


class Pending:
    """What ``Policy.lookup()`` returns when the answer needs I/O (a load, a predicate call)."""

    __repr__ = object.__repr__


PENDING: Final = Pending()
MALFORMED: Final = object()  # the Origin is not a canonical serialized origin
_MISSING: Final = object()
_NEVER: Final = math.inf
_ACAO: Final = b"access-control-allow-origin"


@dataclass(frozen=True, slots=True)
class Decision:
    """What corsengine does with one request, and why.

    ``headers`` are the CORS response headers in the order they are sent (``Vary`` is
    merged into the app's own ``Vary`` by the middleware). ``status`` and ``body`` are set
    for preflights, which the middleware answers itself.

    Examples:
        >>> from corsengine import Policy
        >>> policy = Policy(["https://app.example.com"], allow_credentials=True, expose_headers=["X-Total"])
        >>> decision = policy.evaluate("https://app.example.com")
        >>> decision.allowed, decision.kind, decision.rule
        (True, 'actual', 'https://app.example.com')
        >>> dict(decision.headers)  # doctest: +NORMALIZE_WHITESPACE
        {'Access-Control-Allow-Origin': 'https://app.example.com', 'Access-Control-Allow-Credentials': 'true',
         'Access-Control-Expose-Headers': 'X-Total', 'Vary': 'Origin'}
        >>> refused = policy.evaluate("https://evil.example")
        >>> bool(refused), refused.reason
        (False, "origin 'https://evil.example' matches no rule")
    """

    allowed: bool
    kind: Kind
    reason: str
    headers: Mapping[str, str]
    status: int | None = None
    body: str | None = None
    failures: tuple[str, ...] = ()
    rule: str | None = None

    def __bool__(self) -> bool:
        return self.allowed


def _names(name: str, value: object, code: str, problems: list[Problem]) -> list[str]:
    """The HTTP tokens of a list option (methods, header names), every bad entry reported."""
    if isinstance(value, str):
        problems.append(string_not_list(name, value))
        return []
    if isinstance(value, bytes) or not isinstance(value, Iterable):
        problems.append(
            Problem(
                E016,
                f"{name} is a {type(value).__name__}, not a list",
                f"pass a list of names, e.g. {name}=['X-Token']",
                field=name,
            )
        )
        return []
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not _TOKEN.fullmatch(item):
            problems.append(
                Problem(
                    code,
                    f"{name} entry {item!r} is not a valid HTTP token",
                    "check for spaces or commas",
                    field=name,
                    index=index,
                )
            )
        else:
            out.append(item)
    return out


def _flag(name: str, value: object, problems: list[Problem]) -> bool:
    if not isinstance(value, bool):
        problems.append(
            Problem(
                E019,
                f"{name}={value!r} is not True or False",
                f"a string such as 'false' is truthy; write {name}=True or {name}=False",
                field=name,
            )
        )
        return False
    return value


def _run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:

        async def main() -> T:
            return await coroutine

        return anyio.run(main)
    coroutine.close()
    raise RuntimeError(
        "this policy needs I/O to answer (a first load or an async predicate) and an event loop "
        "is running: use 'await policy.aevaluate(...)' instead of evaluate()"
    )


def allows_any_origin(rules: Rules) -> bool:
    """True when ``rules`` allow every origin: ``*``, or a regex matching unrelated probes."""
    if rules.allow_all:
        return True
    return any(sum(1 for probe in _PROBE_ORIGINS if regex.fullmatch(probe)) >= 2 for regex in rules.regexes)


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

    def __init__(
        self,
        allow_origins: OriginsSpec = (),
        allow_methods: Iterable[str] = ("GET",),
        allow_headers: Iterable[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        allow_private_network: bool = False,
        expose_headers: Iterable[str] = (),
        max_age: int = 600,
        *,
        preflight_status: int = 200,
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
        self.allow_credentials = _flag("allow_credentials", allow_credentials, problems)
        self.allow_private_network = _flag("allow_private_network", allow_private_network, problems)
        self.starlette_compatible = _flag("starlette_compatible", starlette_compatible, problems)
        self.unsafe_allow_any_origin_with_credentials = _flag(
            "unsafe_allow_any_origin_with_credentials", unsafe_allow_any_origin_with_credentials, problems
        )
        origins = self._origins_provider(allow_origins, problems)
        regex_rules = Rules()
        if allow_origin_regex is not None:
            regex = compile_regex(allow_origin_regex, problems)
            regex_rules = Rules(regexes=(regex,)) if regex is not None else regex_rules

        methods = _names("allow_methods", allow_methods, E014, problems)
        if "*" in methods:
            methods = list(ALL_METHODS)
        headers = _names("allow_headers", allow_headers, E015, problems)
        expose = _names("expose_headers", expose_headers, E015, problems)
        if "*" in expose and self.allow_credentials:
            problems.append(
                Problem(
                    E023,
                    "expose_headers=['*'] with allow_credentials=True exposes no header at all",
                    "Fetch reads '*' as a header literally named '*' on credentialed responses; "
                    "list the headers to expose, e.g. expose_headers=['X-Total']",
                    field="expose_headers",
                    index=entry_index(expose_headers, "*"),
                )
            )

        if isinstance(max_age, bool) or not isinstance(max_age, int) or not 0 <= max_age <= MAX_MAX_AGE:
            problems.append(
                Problem(
                    E009,
                    f"max_age={max_age!r} is out of range",
                    f"use whole seconds from 0 to {MAX_MAX_AGE}; browsers cap it lower anyway",
                    field="max_age",
                )
            )
        if isinstance(preflight_status, bool) or preflight_status not in range(200, 300):
            problems.append(
                Problem(
                    E013,
                    f"preflight_status={preflight_status!r} is not 2xx",
                    "Fetch fails a preflight whose status is not ok (200-299); use 200 or 204",
                    field="preflight_status",
                )
            )
        options = Options("Policy")
        options.seconds("timeout", timeout, example=DEFAULT_LOAD_TIMEOUT)
        options.seconds("max_stale", max_stale, example=DEFAULT_MAX_STALE, zero=True)
        problems.extend(options.problems)
        static = origins.rules if isinstance(origins, StaticProvider) else Rules()
        self._check_credentials(static | regex_rules, problems, allow_origins)
        if problems:
            raise ConfigurationError(problems)

        if self.allow_credentials and self.starlette_compatible and allows_any_origin(static | regex_rules):
            # Starlette mirrors the origin here; kept so that migrating works, but said loudly.
            self.unsafe_allow_any_origin_with_credentials = True
            logger.warning(
                "corsengine: this CORS configuration lets every origin read credentialed responses "
                "(allow_origins=['*'] or a catch-all allow_origin_regex with allow_credentials=True; "
                "kept for Starlette compatibility): list the trusted origins instead"
            )

        self.allow_methods: tuple[str, ...] = tuple(methods)
        self._methods = frozenset(methods)
        self.allow_all_headers = "*" in headers
        # Fetch: a "*" in Access-Control-Allow-Headers never covers Authorization; Starlette's
        # "*" mirrors whatever is asked, Authorization included.
        self._star_covers_authorization = self.starlette_compatible
        explicit = [name for name in headers if name != "*"]
        self.allow_headers: tuple[str, ...] = tuple(sorted(set(SAFELISTED_HEADERS) | set(explicit)))
        self._headers = frozenset(name.lower() for name in self.allow_headers)
        self.expose_headers = tuple(expose)
        self.max_age = max_age
        self.preflight_status = preflight_status
        self.clock: Clock = clock or time.monotonic

        # Prepared once: the tail of every allowed actual response, and of every preflight.
        actual: dict[str, str] = {}
        if self.allow_credentials:
            actual["Access-Control-Allow-Credentials"] = "true"
        if self.expose_headers:
            actual["Access-Control-Expose-Headers"] = ", ".join(self.expose_headers)
        self._actual_tail: Mapping[str, str] = actual
        self._encoded_tail = tuple(
            (name.lower().encode(), value.encode("latin-1")) for name, value in actual.items()
        )
        self._methods_value = ", ".join(self.allow_methods)
        self._headers_value = ", ".join(self.allow_headers)

        self.shadow = shadow
        self.shadow_report = ShadowReport(self.clock)
        # Replaced, never mutated: a request iterates the tuple it read while another thread
        # subscribes. Empty (falsy) is what the middleware checks: one attribute per request.
        self.decision_listeners: tuple[Callable[[DecisionEvent], object], ...] = ()
        self._listener_errors = LogRate(self.clock)
        self._regex = regex_rules
        self._resolver = Resolver(
            self._combine(origins), clock=self.clock, timeout=timeout, max_stale=max_stale
        )

    # --- construction helpers --------------------------------------------------------

    def _origins_provider(self, value: OriginsSpec, problems: list[Problem]) -> Provider:
        if isinstance(value, str):
            problems.append(string_not_list("allow_origins", value))
        # A provider is anything with a load() method (the Provider protocol); asked directly,
        # since isinstance() on a runtime-checkable protocol costs about 16 µs.
        elif callable(getattr(value, "load", None)) and not isinstance(value, type):
            return cast(Provider, value)
        elif callable(value):
            if accepts(value, 0) is False:
                problems.append(
                    Problem(
                        E026,
                        f"allow_origins is the function {name_of(value)}, which cannot be called without "
                        "arguments",
                        "allow_origins takes a zero-argument function returning a list of origins; "
                        "to decide per origin, pass PredicateProvider(fn)",
                        field="allow_origins",
                    )
                )
                return StaticProvider()
            try:
                return CallableProvider(value)
            except ConfigurationError as error:
                problems.extend(error.problems)
        elif isinstance(value, Iterable):
            rules, found = compile_or_raise(value)
            problems.extend(found)
            return StaticProvider.from_rules(rules)
        else:
            problems.append(
                Problem(
                    E016,
                    f"allow_origins is a {type(value).__name__}",
                    "pass a list of origins, a zero-argument function, or a provider",
                    field="allow_origins",
                )
            )
        return StaticProvider()

    def _check_credentials(self, rules: Rules, problems: list[Problem], origins: object) -> None:
        if not self.allow_credentials:
            return
        if (
            allows_any_origin(rules)
            and not self.unsafe_allow_any_origin_with_credentials
            and not self.starlette_compatible
        ):
            what = "allow_origins=['*']" if rules.allow_all else "a catch-all allow_origin_regex"
            problems.append(
                Problem(
                    E012,
                    f"{what} with allow_credentials=True lets every site read authenticated responses",
                    "list the trusted origins, or pass unsafe_allow_any_origin_with_credentials=True "
                    "if that is really meant",
                    field="allow_origins" if rules.allow_all else "allow_origin_regex",
                    index=entry_index(origins, "*") if rules.allow_all else None,
                )
            )
        if "null" in rules.exact:
            problems.append(
                Problem(
                    E011,
                    "'null' is allowed together with credentials",
                    "sandboxed iframes and file:// pages all send Origin: null; "
                    "never trust it with credentials",
                    field="allow_origins",
                    index=entry_index(origins, "null"),
                )
            )

    def _combine(self, origins: Provider) -> Provider:
        # allow_origin_regex is its own member, so swap() replaces only allow_origins.
        if not self._regex:
            return origins
        return UnionProvider([origins, StaticProvider.from_rules(self._regex)])

    # --- hot swap ---------------------------------------------------------------------

    def swap(self, allow_origins: OriginsSpec) -> None:
        """Replace the allowlist atomically; the next request sees the new one.

        Takes what ``allow_origins`` takes (a list, a function or a provider) and
        validates it first: a bad list raises ConfigurationError and nothing changes.
        Works from any thread, from sync code and from async code; the replaced provider
        is closed.
        """
        problems: list[Problem] = []
        origins = self._origins_provider(allow_origins, problems)
        if isinstance(origins, StaticProvider):
            self._check_credentials(origins.rules, problems, allow_origins)
        if problems:
            raise ConfigurationError(problems)
        self._resolver.swap(self._combine(origins))

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

        def unsubscribe() -> None:
            listeners = list(self.decision_listeners)
            if listener in listeners:
                listeners.remove(listener)
                self.decision_listeners = tuple(listeners)

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
        kind = self._rule_kind(origin, rule) if rule is not None else None
        reason: Reason
        if allowed:
            reason = "allowed"
        elif failures and failures[0] != "origin":
            reason = FAILURE_REASONS.get(failures[0], "headers")
        else:
            reason = self._origin_refusal(origin, rule, scope)
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

    def _rule_kind(self, origin: str, rule: str) -> RuleKind:
        if rule == "*":
            return "star"
        if rule == "null":
            return "null"
        if rule == origin:
            return "exact"
        state = self._resolver.state
        if any(asker.name == rule for asker in state.predicates):
            return "predicate"
        if rule.startswith("regex "):  # how Rules.match names a regex's match
            return "regex"
        return "pattern"

    def _origin_refusal(self, origin: str, rule: str | None, scope: Scope | None) -> Reason:
        if rule == "*":
            return "credentials-star"
        if rule == "null":
            return "credentials-null"
        # What the rules said is memoized: None for a well-formed origin they do not match.
        verdict = self._resolver.state.memo.get(origin, _MISSING)
        if verdict is MALFORMED:
            return "malformed-origin"
        unknown = verdict is _MISSING and origin != "null"
        if unknown and (len(origin) > MAX_ORIGIN_LENGTH or parse_origin(origin) is None):
            return "malformed-origin"
        if self._resolver.source_failing(origin, scope):
            return "source-failing"
        return "no-rule"

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

    # --- the request API: lookup, resolve, actual_headers, decide --------------------

    @staticmethod
    def _rules_say(state: State, origin: str) -> object:
        """What the snapshot's rules say of ``origin``: a rule, None, or MALFORMED (memoized)."""
        if len(origin) > MAX_ORIGIN_LENGTH:
            return MALFORMED  # refused unread and never memoized: a flood of them keeps nothing
        memo = state.memo
        verdict = memo.get(origin, _MISSING)
        if type(verdict) is tuple:
            return None  # the rules said nothing; this is the predicates' answer, folded in
        if verdict is _MISSING:
            rules = state.rules
            if origin in rules.exact:
                verdict = origin
            else:
                # The grammar check comes before any pattern, regex or predicate sees it.
                parsed = parse_origin(origin)
                verdict = MALFORMED if parsed is None else rules.match(origin, parsed)
            if len(memo) >= MEMO_SIZE:
                memo.clear()  # bounded under a flood of distinct origins
            memo[origin] = verdict
        return verdict

    def lookup(self, origin: str, scope: Scope | None = None) -> str | Pending | None:
        """The rule allowing ``origin`` from what is at hand: its text, None, or PENDING.

        PENDING means the answer needs I/O (a load, a predicate call): ``await resolve()``.
        """
        state = self._resolver.state
        deadline = state.deadline
        if deadline < _NEVER and deadline <= self.clock():  # a static list never reads the clock
            # A malformed origin can match nothing: it never triggers a provider load.
            if origin != "null" and parse_origin(origin) is None:
                return None
            return PENDING
        # The memo hit inline: this runs on every request with an Origin, and a call costs
        # more than the lookup itself.
        verdict = state.memo.get(origin, _MISSING)
        if type(verdict) is str:
            return verdict
        if type(verdict) is tuple:
            # The predicates' answer, folded into the memo with the moment it expires: a
            # warm predicate costs one dict read and a clock read, like a callable's TTL.
            if verdict[1] > self.clock():
                return verdict[0]  # type: ignore[no-any-return]
            return self._predicates_now(state, origin, scope)
        if verdict is _MISSING:
            verdict = self._rules_say(state, origin)
            if type(verdict) is str:
                return verdict
        if verdict is None and state.predicates:
            return self._predicates_now(state, origin, scope)
        return None

    @staticmethod
    def _predicates_now(state: State, origin: str, scope: Scope | None) -> str | Pending | None:
        """The predicates' cached answers (folded into the memo when they depend on the origin
        alone); PENDING when one must be asked."""
        answer: str | None = None
        expires = math.inf
        for asker in state.predicates:
            try:
                key = asker.predicate.key(origin, scope)
            except Exception:
                return PENDING  # resolve() records the failure
            failed = asker.failures.entry(origin if key is None else key)
            if failed is not None:
                expires = min(expires, failed[1])  # refused by this one for now
                continue
            if key is None:
                return PENDING  # an answer that is never reused: ask
            entry = asker.answers.entry(key)
            if entry is None:
                return PENDING
            # The folded answer lives no longer than any cached answer it was made from.
            expires = min(expires, entry[1])
            if entry[0]:
                answer = asker.name
                break
        if state.foldable:
            memo = state.memo
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[origin] = (answer, expires)
        return answer

    async def resolve(self, origin: str, scope: Scope | None = None, *, wait: bool = False) -> str | None:
        """``lookup()`` carried through: loads what is due and asks predicates.

        ``wait`` waits for every due load (a sync ``evaluate()``, whose loop ends with it).
        """
        state = self._resolver.state
        if state.deadline <= self.clock():
            state = await self._resolver.current(wait=wait)
        verdict = self._rules_say(state, origin)
        if type(verdict) is str:
            return verdict
        if verdict is MALFORMED or not state.predicates:
            return None
        return await self._resolver.ask_predicates(state, origin, scope)

    def allow_origin(self, rule: str, origin: str) -> str | None:
        """What Access-Control-Allow-Origin says for a matched rule (None: refused)."""
        if rule == "null" and self.allow_credentials:
            # Every sandboxed iframe and file:// page sends "null": never with credentials
            # (E011 statically; refused here when a dynamic source returns it).
            return None
        if rule != "*":
            return origin
        if not self.allow_credentials:
            return "*"
        # "*" with credentials: the drop-in mirrors the origin (Starlette compatibility);
        # a dynamic source returning "*" for a credentialed native policy is refused.
        return origin if self.unsafe_allow_any_origin_with_credentials else None

    def actual_headers(self, origin: bytes, rule: str | None) -> list[tuple[bytes, bytes]] | None:
        """The encoded CORS headers of an actual response (``Vary`` aside); None: refused.

        ``origin`` is the request's Origin as sent: an allowed origin is echoed byte for byte.
        """
        if rule is None:
            return None
        if rule == "*" or rule == "null":  # the two rules whose answer depends on credentials
            value = self.allow_origin(rule, origin.decode("latin-1"))
            if value is None:
                return None
            origin = value.encode("latin-1")
        return [(_ACAO, origin), *self._encoded_tail]

    def actual_response(
        self, origin: bytes, scope: Scope | None = None
    ) -> list[tuple[bytes, bytes]] | Pending:
        """The encoded CORS headers of an actual response to this Origin, ``Vary`` last (only
        ``Vary`` when refused), or PENDING when the answer needs I/O (then ``resolve()`` and
        ``actual_response_for()``).

        What the middleware asks on every actual request: a warm answer is one dict read from
        the snapshot's own cache, which dies with the snapshot.
        """
        state = self._resolver.state
        deadline = state.deadline
        # Past the deadline, lookup() decides between a load and a malformed origin's refusal.
        if deadline == _NEVER or deadline > self.clock():
            hit = state.prepared.get(origin)
            if hit is not None:
                if type(hit) is list:
                    return hit
                if hit[1] > self.clock():  # type: ignore[index]
                    return hit[0]  # type: ignore[index,no-any-return]
        text = origin.decode("latin-1")
        rule = self.lookup(text, scope)
        if rule is PENDING:
            return PENDING
        headers = self.actual_response_for(origin, rule, state)  # type: ignore[arg-type]
        verdict = state.memo.get(text, _MISSING)
        if type(verdict) is str or verdict is MALFORMED or (verdict is None and not state.predicates):
            entry: object = headers  # what the rules said holds as long as the snapshot
        elif type(verdict) is tuple:
            entry = (headers, verdict[1])  # a predicate's folded answer, until it expires
        else:
            return headers  # a request-aware predicate: never reused for another request
        prepared = state.prepared
        if len(prepared) >= MEMO_SIZE:
            prepared.clear()  # bounded under a flood of distinct origins
        prepared[origin] = entry
        return headers

    def actual_response_for(
        self, origin: bytes, rule: str | None, state: State | None = None
    ) -> list[tuple[bytes, bytes]]:
        """``actual_response()`` once the rule is known: ``actual_headers()`` and ``Vary``."""
        vary = (state or self._resolver.state).vary_header
        allowed = self.actual_headers(origin, rule)
        if allowed is None:
            return [vary]
        allowed.append(vary)
        return allowed

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
        candidate = self.shadow
        if candidate is None:
            return
        text = origin.decode("latin-1")
        if preflight is None:
            answer = candidate.actual_response(origin, scope)
            if isinstance(answer, Pending):
                answer = candidate.actual_response_for(origin, await candidate.resolve(text, scope))
            would = len(answer) > 1  # more than Vary: allowed
        else:
            rule = candidate.lookup(text, scope)
            if isinstance(rule, Pending):
                rule = await candidate.resolve(text, scope)
            would = candidate.decide(text, rule, *preflight[:2], True, preflight[2], explain=False).allowed
        if would == allowed:
            return
        method, headers, network = preflight or ("GET", None, False)
        kind = preflight is not None
        enforced = await self.aevaluate(
            text, method, headers, preflight=kind, private_network=network, scope=scope
        )
        shadowed = await candidate.aevaluate(
            text, method, headers, preflight=kind, private_network=network, scope=scope
        )
        flip: Flip = "would allow" if would else "would refuse"
        self.shadow_report.record(Disagreement(text, flip, kind, enforced.reason, shadowed.reason))

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
        """
        rule: str | Pending | None = None
        if origin is not None:
            rule = self.lookup(origin, scope)
            if rule is PENDING:
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

        ``explain=False`` leaves ``reason`` empty (the middleware never reads it, and a
        reason costs more to build than the rest of a preflight's decision).
        """
        if origin is None:
            return Decision(False, "not-cors", "no Origin header: not a CORS request", {"Vary": "Origin"})
        vary = ", ".join(("Origin", *self.vary))
        encoded = self.actual_headers(origin.encode("latin-1"), rule) if isinstance(rule, str) else None
        value = None if encoded is None else encoded[0][1].decode("latin-1")
        rule_text = rule if isinstance(rule, str) and value is not None else None
        if not explain:
            origin_reason = ""
        elif rule_text is None:
            origin_reason = self._refusal_reason(origin, rule)
        else:
            matched = "an exact entry" if rule_text == origin else quote(rule_text)
            origin_reason = f"origin {quote(origin)} matches {matched}"
        if preflight:
            return self._preflight(
                origin,
                value,
                origin_reason,
                rule_text,
                method,
                request_headers,
                private_network,
                vary,
                explain,
            )
        if encoded is None:
            return Decision(False, "actual", origin_reason, {"Vary": vary})
        headers = {"Access-Control-Allow-Origin": value or "", **self._actual_tail, "Vary": vary}
        return Decision(True, "actual", origin_reason, headers, rule=rule_text)

    def _refusal_reason(self, origin: str, rule: object) -> str:
        if rule == "*":
            return "origin matches '*', which is refused together with credentials"
        if rule == "null":
            return "origin 'null' is refused together with credentials"
        if origin != "null" and parse_origin(origin) is None:
            return describe_invalid_origin(origin)
        reason = f"origin {quote(origin)} matches no rule"
        failing = self._resolver.failure_report()
        return f"{reason}; {failing}" if failing else reason

    def _preflight(
        self,
        origin: str,
        value: str | None,
        origin_reason: str,
        rule_text: str | None,
        method: str,
        request_headers: str | Iterable[str] | None,
        private_network: bool,
        vary: str,
        explain: bool,
    ) -> Decision:
        failures: list[str] = []
        reasons = [origin_reason]
        if value is None:
            failures.append("origin")
        if method not in self._methods:
            failures.append("method")
            reasons.append(f"method {quote(method)} is not in allow_methods ({self._methods_value})")
        headers_value, headers_problem = self._check_request_headers(request_headers)
        if headers_problem is not None:
            failures.append("headers")
            reasons.append(headers_problem)
        if private_network and not self.allow_private_network:
            failures.append("private-network")
            reasons.append("private network access was requested and allow_private_network is off")

        preflight_vary = PREFLIGHT_VARY if not self.vary else f"{PREFLIGHT_VARY}, {', '.join(self.vary)}"
        headers: dict[str, str] = {"Vary": preflight_vary}
        if failures:
            # A refused preflight says nothing about origins, methods or credentials.
            return Decision(
                False,
                "preflight",
                "preflight refused: " + "; ".join(reasons) if explain else "",
                headers,
                status=400,
                body="Disallowed CORS " + ", ".join(failures),
                failures=tuple(failures),
            )
        value = value or ""  # not None: the origin did not fail
        # The order is Starlette's: prepared headers first, per-request values after.
        if value == "*":
            headers["Access-Control-Allow-Origin"] = value
        headers["Access-Control-Allow-Methods"] = self._methods_value
        headers["Access-Control-Max-Age"] = str(self.max_age)
        if not self.allow_all_headers:
            headers["Access-Control-Allow-Headers"] = headers_value
        if self.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        headers["Access-Control-Allow-Origin"] = value
        if self.allow_all_headers and headers_value:
            headers["Access-Control-Allow-Headers"] = headers_value
        if private_network:
            headers["Access-Control-Allow-Private-Network"] = "true"
        # RFC 9110: a 204 has no content.
        body = "OK" if self.preflight_status != 204 else ""
        return Decision(
            True,
            "preflight",
            "preflight allowed: " + "; ".join(reasons) if explain else "",
            headers,
            status=self.preflight_status,
            body=body,
            rule=rule_text,
        )

    def _check_request_headers(self, requested: str | Iterable[str] | None) -> tuple[str, str | None]:
        """The Access-Control-Allow-Headers value and the problem with the request, if any."""
        # With "*" the value mirrors the request (the only way "*" works with credentials);
        # otherwise it is the prepared list, whatever was asked.
        fixed = "" if self.allow_all_headers else self._headers_value
        if requested is None:
            return fixed, None
        raw = requested if isinstance(requested, str) else ", ".join(requested)
        if len(raw) > MAX_REQUEST_HEADERS_LENGTH:
            limit = MAX_REQUEST_HEADERS_LENGTH
            return fixed, f"Access-Control-Request-Headers is over the {limit}-byte limit"
        names = [name for name in (part.strip() for part in raw.split(",")) if name]
        for name in names:
            lowered = name.lower()
            if not _TOKEN.fullmatch(name):
                return fixed, f"request header {quote(name)} is not a valid header name"
            if lowered in self._headers:
                continue
            if self.allow_all_headers and (lowered != "authorization" or self._star_covers_authorization):
                continue
            why = " ('*' never covers Authorization)" if self.allow_all_headers else ""
            return fixed, f"request header {quote(name)} is not in allow_headers{why}"
        # Only the validated names, re-joined: never the raw value's CR, LF or other controls.
        return (", ".join(names) if self.allow_all_headers else fixed), None

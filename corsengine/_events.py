"""Decision events: what an adapter decided, as a stable record that users subscribe to.

`Policy.on_decision(listener)` registers a listener; the middleware builds one
`DecisionEvent` per CORS request it answers (actual requests, preflights, checked WebSocket
handshakes) through `Policy.event()` and hands it to `Policy.notify()`. With no listener the
middleware builds nothing: its cost is one attribute check per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from .types import Scope

if TYPE_CHECKING:
    from ._policy import Policy

Reason = Literal[
    "allowed",
    "no-rule",
    "malformed-origin",
    "credentials-star",
    "credentials-null",
    "source-failing",
    "method",
    "headers",
    "private-network",
]
# The reason codes, each with what it means (docs/production.md's table is tested against it).
REASONS: Final[dict[str, str]] = {
    "allowed": "the origin matched a rule (and a preflight's method, headers and private network passed)",
    "no-rule": "the origin is well formed and matches no rule",
    "malformed-origin": "the Origin header is not a serialized origin (or was sent twice, "
    "or is over 326 bytes)",
    "credentials-star": "the origin matched '*', which is refused together with credentials",
    "credentials-null": "the origin is 'null', which is refused together with credentials",
    "source-failing": "the origin matched no rule while a source that might allow it is failing "
    "(no list of it in force, or its predicate failed for this origin)",
    "method": "a preflight asked for a method outside allow_methods",
    "headers": "a preflight asked for a header outside allow_headers (or an invalid or oversized list)",
    "private-network": "a preflight asked for private network access and allow_private_network is off",
}
RuleKind = Literal["exact", "pattern", "regex", "star", "null", "predicate"]
RULE_KINDS: Final = ("exact", "pattern", "regex", "star", "null", "predicate")
RequestKind = Literal["actual", "preflight", "websocket"]
# A preflight's failures (Decision.failures) other than the origin's, as reason codes.
FAILURE_REASONS: Final[dict[str, Reason]] = {
    "method": "method",
    "headers": "headers",
    "private-network": "private-network",
}


# Not frozen: a frozen dataclass costs four times as much to build (one object.__setattr__ a
# field), and one is built per request while anyone listens. Read-only by contract.
@dataclass(slots=True)
class DecisionEvent:
    """One CORS decision the middleware made, for `Policy.on_decision` listeners.

    ``reason`` is a stable code (``allowed``, ``no-rule``, ``malformed-origin``,
    ``credentials-star``, ``credentials-null``, ``source-failing``, ``method``, ``headers``,
    ``private-network``); ``explain()`` gives the sentence behind it. ``request`` is
    ``actual``, ``preflight`` or ``websocket``. ``rule_kind`` says what kind of rule matched
    (``exact``, ``pattern``, ``regex``, ``star``, ``null``, ``predicate``; None when none did)
    and ``rule`` its text. ``route`` is the ``routes=`` prefix whose policy decided (None: the
    middleware's own ``policy=``). ``origin`` is the header as sent: quote it before logging it.
    ``method`` is the request's method (for a preflight, the one it asks for). ``scope`` is
    the request's ASGI scope, to correlate the event with your own request ids. Every
    listener gets the same event: treat it as read-only.

    Examples:
        >>> import anyio
        >>> from corsengine import CORSMiddleware, Policy
        >>> events = []
        >>> policy = Policy(["https://app.example.com"], allow_methods=["GET", "PUT"])
        >>> unsubscribe = policy.on_decision(events.append)
        >>> async def app(scope, receive, send):
        ...     await send({"type": "http.response.start", "status": 200, "headers": []})
        ...     await send({"type": "http.response.body", "body": b""})
        >>> async def preflight(origin, method):
        ...     scope = {"type": "http", "method": "OPTIONS", "path": "/", "headers": [
        ...         (b"origin", origin.encode()), (b"access-control-request-method", method.encode())]}
        ...     async def receive(): return {"type": "http.request"}
        ...     async def send(message): pass
        ...     await CORSMiddleware(app, policy=policy)(scope, receive, send)
        >>> anyio.run(preflight, "https://app.example.com", "DELETE")
        >>> event = events[-1]
        >>> event.allowed, event.reason, event.request, event.rule_kind, event.route
        (False, 'method', 'preflight', 'exact', None)
        >>> for part in event.explain().split("; "):
        ...     print(part)
        preflight refused: origin 'https://app.example.com' matches an exact entry
        method 'DELETE' is not in allow_methods (GET, PUT)
        >>> unsubscribe()
    """

    allowed: bool
    reason: Reason
    request: RequestKind
    origin: str
    rule: str | None
    rule_kind: RuleKind | None
    route: str | None
    method: str
    request_headers: str | None = None
    private_network: bool = False
    policy: Policy | None = field(default=None, repr=False, compare=False)
    scope: Scope | None = field(default=None, repr=False, compare=False)

    @property
    def preflight(self) -> bool:
        """True for a preflight (the middleware answered it; the app never saw it)."""
        return self.request == "preflight"

    def explain(self) -> str:
        """The human-readable reason, as `Policy.evaluate` words it (built on demand)."""
        if self.policy is None:
            return self.reason
        decision = self.policy.decide(
            self.origin,
            self.rule,
            self.method,
            self.request_headers,
            self.preflight,
            self.private_network,
        )
        return decision.reason

"""The decision: pure functions of (settings, rule, request) that build headers and `Decision`.

Nothing here reads a clock, an allowlist or a cache: the rule that allows the origin (or None)
has been found already (``Policy.lookup()``/``resolve()``), and what a decision says follows
from it, the policy's `Settings` and the request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from ._origin import describe_invalid_origin, parse_origin, quote
from ._settings import TOKEN, Settings

PREFLIGHT_VARY: Final = (
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    "Access-Control-Request-Private-Network"
)
# A browser sends a short, sorted list; anything longer is refused unread (rs/cors CVE-2025-47908).
MAX_REQUEST_HEADERS_LENGTH: Final = 1024
_ACAO: Final = b"access-control-allow-origin"
_CONTENT_TYPE: Final = (b"content-type", b"text/plain; charset=utf-8")

Kind = Literal["preflight", "actual", "not-cors"]
Headers = list[tuple[bytes, bytes]]
"""Encoded response headers, as ASGI sends them."""


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


class PreflightAnswer(NamedTuple):
    """A preflight's response, encoded: what the middleware sends without calling the app."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    failures: tuple[str, ...]  # empty: allowed (see Decision.failures)


def allow_origin(settings: Settings, rule: str, origin: str) -> str | None:
    """What Access-Control-Allow-Origin says for a matched rule (None: refused)."""
    if rule == "null" and settings.allow_credentials:
        # Every sandboxed iframe and file:// page sends "null": never with credentials
        # (E011 statically; refused here when a dynamic source returns it).
        return None
    if rule != "*":
        return origin
    if not settings.allow_credentials:
        return "*"
    # "*" with credentials: the drop-in mirrors the origin (Starlette compatibility);
    # a dynamic source returning "*" for a credentialed native policy is refused.
    return origin if settings.unsafe_allow_any_origin_with_credentials else None


def actual_headers(settings: Settings, origin: bytes, rule: str | None) -> Headers | None:
    """The encoded CORS headers of an allowed actual response (``Vary`` aside); None: refused.

    ``origin`` is the request's Origin as sent: an allowed origin is echoed byte for byte.
    """
    if rule is None:
        return None
    if rule == "*" or rule == "null":  # the two rules whose answer depends on credentials
        value = allow_origin(settings, rule, origin.decode("latin-1"))
        if value is None:
            return None
        origin = value.encode("latin-1")
    return [(_ACAO, origin), *settings.encoded_tail]


def actual_response(
    settings: Settings, origin: bytes, rule: str | None, vary: tuple[bytes, bytes]
) -> Headers:
    """The CORS headers of an actual response, ``Vary`` last (only ``Vary`` when refused)."""
    allowed = actual_headers(settings, origin, rule)
    if allowed is None:
        return [vary]
    allowed.append(vary)
    return allowed


def decide(
    settings: Settings,
    origin: str | None,
    rule: str | None,
    method: str,
    request_headers: str | Iterable[str] | None,
    preflight: bool,
    private_network: bool,
    vary: tuple[str, ...],
    failing: Callable[[], str | None] | None,
) -> Decision:
    """The decision once the rule is known. ``failing`` says which sources are failing, for
    a refusal's reason; None leaves every reason empty (the middleware never reads them)."""
    if origin is None:
        return Decision(False, "not-cors", "no Origin header: not a CORS request", {"Vary": "Origin"})
    value = allow_origin(settings, rule, origin) if rule is not None else None
    rule_text = rule if value is not None else None
    if failing is None:
        origin_reason = ""
    elif rule_text is None:
        origin_reason = refusal_reason(origin, rule, failing)
    else:
        matched = "an exact entry" if rule_text == origin else quote(rule_text)
        origin_reason = f"origin {quote(origin)} matches {matched}"
    if preflight:
        return _preflight(
            settings, value, origin_reason, rule_text, method, request_headers, private_network, vary, failing
        )
    vary_value = ", ".join(("Origin", *vary))
    if value is None:
        return Decision(False, "actual", origin_reason, {"Vary": vary_value})
    headers = {"Access-Control-Allow-Origin": value, **settings.actual_tail, "Vary": vary_value}
    return Decision(True, "actual", origin_reason, headers, rule=rule_text)


def refusal_reason(origin: str, rule: str | None, failing: Callable[[], str | None]) -> str:
    """Why ``origin`` is refused, naming the failing sources when there are some."""
    if rule == "*":
        return "origin matches '*', which is refused together with credentials"
    if rule == "null":
        return "origin 'null' is refused together with credentials"
    if origin != "null" and parse_origin(origin) is None:
        return describe_invalid_origin(origin)
    reason = f"origin {quote(origin)} matches no rule"
    report = failing()
    return f"{reason}; {report}" if report else reason


def _preflight(
    settings: Settings,
    value: str | None,
    origin_reason: str,
    rule_text: str | None,
    method: str,
    request_headers: str | Iterable[str] | None,
    private_network: bool,
    vary: tuple[str, ...],
    failing: Callable[[], str | None] | None,
) -> Decision:
    failures: list[str] = []
    reasons = [origin_reason]
    if value is None:
        failures.append("origin")
    if method not in settings.methods:
        failures.append("method")
        reasons.append(f"method {quote(method)} is not in allow_methods ({settings.methods_value})")
    headers_value, headers_problem = check_request_headers(settings, request_headers)
    if headers_problem is not None:
        failures.append("headers")
        reasons.append(headers_problem)
    if private_network and not settings.allow_private_network:
        failures.append("private-network")
        reasons.append("private network access was requested and allow_private_network is off")

    explain = failing is not None
    headers: dict[str, str] = {"Vary": PREFLIGHT_VARY if not vary else f"{PREFLIGHT_VARY}, {', '.join(vary)}"}
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
    headers["Access-Control-Allow-Methods"] = settings.methods_value
    headers["Access-Control-Max-Age"] = str(settings.max_age)
    if not settings.allow_all_headers:
        headers["Access-Control-Allow-Headers"] = headers_value
    if settings.allow_credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    headers["Access-Control-Allow-Origin"] = value
    if settings.allow_all_headers and headers_value:
        headers["Access-Control-Allow-Headers"] = headers_value
    if private_network:
        headers["Access-Control-Allow-Private-Network"] = "true"
    # RFC 9110: a 204 has no content.
    body = "OK" if settings.preflight_status != 204 else ""
    return Decision(
        True,
        "preflight",
        "preflight allowed: " + "; ".join(reasons) if explain else "",
        headers,
        status=settings.preflight_status,
        body=body,
        rule=rule_text,
    )


def check_request_headers(
    settings: Settings, requested: str | Iterable[str] | None
) -> tuple[str, str | None]:
    """The Access-Control-Allow-Headers value and the problem with the request, if any."""
    # With "*" the value mirrors the request (the only way "*" works with credentials);
    # otherwise it is the prepared list, whatever was asked.
    fixed = "" if settings.allow_all_headers else settings.headers_value
    if requested is None:
        return fixed, None
    raw = requested if isinstance(requested, str) else ", ".join(requested)
    if len(raw) > MAX_REQUEST_HEADERS_LENGTH:
        return fixed, f"Access-Control-Request-Headers is over the {MAX_REQUEST_HEADERS_LENGTH}-byte limit"
    names = [name for name in (part.strip() for part in raw.split(",")) if name]
    for name in names:
        lowered = name.lower()
        if not TOKEN.fullmatch(name):
            return fixed, f"request header {quote(name)} is not a valid header name"
        if lowered in settings.headers:
            continue
        if settings.allow_all_headers and (lowered != "authorization" or settings.star_covers_authorization):
            continue
        why = " ('*' never covers Authorization)" if settings.allow_all_headers else ""
        return fixed, f"request header {quote(name)} is not in allow_headers{why}"
    # Only the validated names, re-joined: never the raw value's CR, LF or other controls.
    return (", ".join(names) if settings.allow_all_headers else fixed), None


def encode_preflight(decision: Decision) -> PreflightAnswer:
    """A preflight's `Decision` as the middleware sends it."""
    body = (decision.body or "").encode("utf-8")
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in decision.headers.items()
    ]
    if decision.status != 204:  # RFC 9110 8.6: no Content-Length on a 204
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
        headers.append(_CONTENT_TYPE)
    return PreflightAnswer(decision.status or 400, tuple(headers), body, decision.failures)

"""Property tests: invariants that hold for any policy and any request.

The reference model below is deliberately naive (a set, a suffix test on whole labels,
the default-port rule) so that it is obviously correct; ``evaluate()`` must agree with it
on generated policies and origins. Examples are bounded so the module runs in seconds.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import anyio
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from corsengine import ConfigurationError, CorsEngineWarning, CORSMiddleware, Policy

from ..asgi import call, plain_app

SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

DEFAULT_PORTS = {"http": 80, "https": 443}
LABELS = ["a", "b", "api", "app", "example", "evil", "com", "net", "xn--pi-7ld", "localhost"]
PORTS = [None, 80, 443, 3000, 8443]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "get"]
HEADER_NAMES = ["X-Token", "x-token", "Content-Type", "Authorization", "X-Other"]


# --- generated origins -----------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedOrigin:
    """An Origin header value and, when it is a canonical serialization, its parts."""

    value: str
    scheme: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def canonical(self) -> bool:
        return self.scheme is not None


hosts = st.lists(st.sampled_from(LABELS), min_size=1, max_size=4).map(".".join)


@st.composite
def origins(draw: st.DrawFn) -> GeneratedOrigin:
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(hosts)
    port = draw(st.sampled_from(PORTS))
    text = f"{scheme}://{host}" + (f":{port}" if port is not None else "")
    mutation = draw(
        st.sampled_from(["none"] * 6 + ["upper", "trailing-dot", "slash", "space", "crlf", "userinfo"])
    )
    if mutation != "none":
        # Each mutation makes a value no browser sends; the model refuses them all.
        mutated = {
            "upper": text.upper(),
            "trailing-dot": f"{scheme}://{host}." + (f":{port}" if port is not None else ""),
            "slash": text + "/",
            "space": " " + text,
            "crlf": text + "\r\n",
            "userinfo": f"{scheme}://u@{host}",
        }[mutation]
        return GeneratedOrigin(mutated)
    if port == DEFAULT_PORTS[scheme]:
        return GeneratedOrigin(text)  # an explicit default port is not canonical
    return GeneratedOrigin(text, scheme, host, port)


any_origin = st.one_of(
    origins(),
    st.just(GeneratedOrigin("null")),
    st.text(max_size=40).map(GeneratedOrigin),
)


# --- generated policies ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """An allowlist entry as configured, and what it means to the reference model."""

    text: str
    kind: str  # exact, subdomains, any-port, star, null
    scheme: str = ""
    host: str = ""
    port: int | str | None = None  # "*" for any port


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    kind = draw(st.sampled_from(["exact", "exact", "exact", "subdomains", "any-port", "star", "null"]))
    scheme = draw(st.sampled_from(["http", "https"]))
    if kind == "star":
        return Entry("*", kind)
    if kind == "null":
        return Entry("null", kind)
    if kind == "exact":
        host = draw(hosts)
        port = draw(st.sampled_from(PORTS))
        text = f"{scheme}://{host}" + (f":{port}" if port is not None else "")
        if draw(st.booleans()):
            text = text.upper() if draw(st.booleans()) else text + "/"  # normalized at construction
        return Entry(text, kind, scheme, host, None if port == DEFAULT_PORTS[scheme] else port)
    if kind == "subdomains":
        # Parents of two labels or more: "*.com" is a public suffix (E006).
        parent = draw(st.lists(st.sampled_from(LABELS), min_size=2, max_size=3).map(".".join))
        port = draw(st.sampled_from([None, 3000, "*"]))
        return Entry(
            f"{scheme}://*.{parent}" + (f":{port}" if port is not None else ""), kind, scheme, parent, port
        )
    host = draw(hosts)
    return Entry(f"{scheme}://{host}:*", kind, scheme, host, "*")


@dataclass(frozen=True)
class GeneratedPolicy:
    entries: tuple[Entry, ...]
    credentials: bool
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]

    def options(self) -> dict[str, Any]:
        return {
            "allow_credentials": self.credentials,
            "allow_methods": list(self.methods),
            "allow_headers": list(self.headers),
            "expose_headers": list(self.expose),
        }


policies = st.builds(
    GeneratedPolicy,
    st.lists(entries(), max_size=6).map(tuple),
    st.booleans(),
    st.lists(st.sampled_from(["GET", "POST", "PUT", "DELETE"]), min_size=1, max_size=3).map(tuple),
    st.lists(st.sampled_from(["X-Token", "Content-Type", "*"]), max_size=2).map(tuple),
    st.lists(st.sampled_from(["X-Secret", "X-Count"]), max_size=2).map(tuple),
)


# --- the reference model -------------------------------------------------------------------


def model_config_error(policy: GeneratedPolicy) -> bool:
    """'*' or 'null' together with credentials is refused at construction (E012, E011)."""
    return policy.credentials and any(entry.kind in ("star", "null") for entry in policy.entries)


def model_allows(policy: GeneratedPolicy, origin: GeneratedOrigin) -> bool:
    """The obviously correct answer: a set, whole-label suffixes and the port rules."""
    if origin.value == "null":
        return any(entry.kind == "null" for entry in policy.entries)
    if not origin.canonical:
        return False
    assert origin.host is not None
    for entry in policy.entries:
        if entry.kind == "star":
            return True
        if entry.scheme != origin.scheme:
            continue
        if entry.kind == "exact" and (entry.host, entry.port) == (origin.host, origin.port):
            return True
        if entry.kind == "any-port" and entry.host == origin.host:
            return True
        if (
            entry.kind == "subdomains"
            and origin.host.endswith("." + entry.host)
            and entry.port in ("*", origin.port)
        ):
            return True
    return False


def model_allow_origin(policy: GeneratedPolicy, origin: GeneratedOrigin) -> str | None:
    """Any entry but "*" that matches echoes the origin; "*" answers only when none does (so
    that a "*" refused with credentials never hides another entry)."""
    if not model_allows(policy, origin):
        return None
    echoed = any(entry.kind != "star" for entry in policy.entries if model_allows(only(entry), origin))
    return origin.value if echoed else "*"


def only(entry: Entry) -> GeneratedPolicy:
    return GeneratedPolicy((entry,), False, (), (), ())


def build(policy: GeneratedPolicy) -> Policy | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorsEngineWarning)  # upper-case entries are normalized
            built = Policy([entry.text for entry in policy.entries], **policy.options())
    except ConfigurationError as error:
        assert model_config_error(policy), error
        assert set(error.codes) <= {"corsengine.E011", "corsengine.E012"}
        return None
    assert not model_config_error(policy)
    return built


# --- properties ----------------------------------------------------------------------------


@SETTINGS
@given(policies, st.lists(any_origin, min_size=1, max_size=8))
def test_evaluate_agrees_with_the_reference_model(
    policy: GeneratedPolicy, origins: list[GeneratedOrigin]
) -> None:
    built = build(policy)
    if built is None:
        return
    for origin in origins:
        decision = built.evaluate(origin.value)
        assert decision.allowed is model_allows(policy, origin), (origin, decision.reason)
        assert decision.headers.get("Access-Control-Allow-Origin") == model_allow_origin(policy, origin)


@SETTINGS
@given(policies, st.lists(origins(), min_size=1, max_size=4))
def test_a_callable_decides_like_the_same_static_list(
    policy: GeneratedPolicy, origins: list[GeneratedOrigin]
) -> None:
    static = build(policy)
    if static is None:
        return
    texts = [entry.text for entry in policy.entries]
    dynamic = Policy(lambda: texts, **policy.options())
    # A callable is a dynamic source: it has no construction-time check, so "null" and "*"
    # with credentials are refused per request instead (build() refused them statically).
    for origin in origins:
        assert static.evaluate(origin.value).headers == dynamic.evaluate(origin.value).headers


@SETTINGS
@given(
    policies,
    any_origin,
    st.sampled_from(METHODS),
    st.none() | st.lists(st.sampled_from(HEADER_NAMES), max_size=3).map(", ".join),
    st.booleans(),
    st.booleans(),
)
def test_response_headers_are_always_safe(
    policy: GeneratedPolicy,
    origin: GeneratedOrigin,
    method: str,
    requested: str | None,
    preflight: bool,
    private_network: bool,
) -> None:
    built = build(policy)
    if built is None:
        return
    decision = built.evaluate(
        origin.value, method, requested, preflight=preflight, private_network=private_network
    )
    headers = decision.headers
    allow_origin = headers.get("Access-Control-Allow-Origin")
    # Never "*" with credentials.
    if allow_origin == "*":
        assert "Access-Control-Allow-Credentials" not in headers
    # The allowed origin is the request's, byte for byte, or absent, or "*".
    assert allow_origin in (None, "*", origin.value)
    # A refused origin learns nothing: no credentials, no exposed headers, no methods.
    if not model_allows(policy, origin):
        assert not decision.allowed
        assert not [name for name in headers if name.startswith("Access-Control-")]
    # A preflight is allowed only when every part is.
    if preflight:
        wanted = {name.strip().lower() for name in (requested or "").split(",") if name.strip()}
        listed = {name.lower() for name in policy.headers} | {
            "accept",
            "accept-language",
            "content-language",
            "content-type",
        }
        star = "*" in policy.headers
        headers_ok = all(name in listed or (star and name != "authorization") for name in wanted)
        expected = (
            model_allows(policy, origin) and method in policy.methods and headers_ok and not private_network
        )
        assert decision.allowed is expected, decision.reason
        assert decision.status == (200 if expected else 400)
    for value in headers.values():
        assert not re.search(r"[\x00-\x1f\x7f]", value)


@SETTINGS
@given(st.sampled_from(["http://a.example.com", "http://b.example.com", "http://a.example.com:3000"]))
def test_dropin_star_with_credentials_mirrors_and_never_sends_star(origin: str) -> None:
    app = CORSMiddleware(plain_app(), allow_origins=["*"], allow_credentials=True)
    decision = app.policy.evaluate(origin)
    assert decision.headers["Access-Control-Allow-Origin"] == origin
    assert decision.headers["Access-Control-Allow-Credentials"] == "true"


# --- the middleware never raises on arbitrary header bytes ---------------------------------

header_names = st.sampled_from(
    [b"origin", b"access-control-request-method", b"access-control-request-headers",
     b"access-control-request-private-network", b"vary", b"cookie"]
) | st.binary(max_size=20)  # fmt: skip
header_values = st.sampled_from([b"https://app.example.com", b"GET", b"null", b"*", b"x-token"]) | st.binary(
    max_size=400
)
MIDDLEWARE = CORSMiddleware(
    plain_app([(b"vary", b"Accept"), (b"access-control-allow-origin", b"*")]),
    allow_origins=["https://app.example.com", "https://*.example.org"],
    allow_methods=["GET", "PUT"],
    allow_headers=["*"],
    allow_credentials=True,
    expose_headers=["X-Secret"],
)


@SETTINGS
@given(
    st.sampled_from(["GET", "OPTIONS", "POST", "PUT"]),
    st.lists(st.tuples(header_names, header_values), max_size=8),
)
def test_middleware_never_raises_on_arbitrary_header_bytes(
    method: str, headers: list[tuple[bytes, bytes]]
) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/", "headers": headers, "query_string": b""}
    anyio.run(MIDDLEWARE, scope, receive, send)
    start = sent[0]
    assert start["type"] == "http.response.start"
    assert start["status"] in (200, 400)
    response = start["headers"]
    names = [name for name, _ in response]
    assert names.count(b"access-control-allow-origin") <= 1
    assert names.count(b"vary") == 1
    origins_sent = [value for name, value in headers if name == b"origin"]
    for name, value in response:
        assert not re.search(rb"[\x00-\x1f\x7f]", value)
        if name == b"access-control-allow-origin":
            # Only ever the one Origin the request carried, byte for byte.
            assert origins_sent == [value]


# --- one decision path: the middleware sends what evaluate() decides --------------------------


@SETTINGS
@given(
    policies,
    st.none() | any_origin,
    st.sampled_from(METHODS),
    st.none() | st.lists(st.sampled_from(HEADER_NAMES), max_size=3).map(", ".join),
    st.booleans(),
    st.booleans(),
    st.sampled_from([200, 204]),
    st.booleans(),
)
def test_the_middleware_sends_what_evaluate_decides(
    policy: GeneratedPolicy,
    origin: GeneratedOrigin | None,
    method: str,
    requested: str | None,
    preflight: bool,
    private_network: bool,
    preflight_status: int,
    dropin: bool,
) -> None:
    """For any policy and request, the status, body and CORS headers on the wire are the
    decision's: the middleware has no decision path of its own."""
    value = None if origin is None else origin.value
    assume(value is None or all(ord(char) < 256 for char in value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorsEngineWarning)
        try:
            options = {**policy.options(), "max_age": 60, "preflight_status": preflight_status}
            entries = [entry.text for entry in policy.entries]
            if dropin:
                app = CORSMiddleware(plain_app(), allow_origins=entries, **options)
            else:
                app = CORSMiddleware(plain_app(), policy=Policy(entries, **options))
        except ConfigurationError:
            return
    headers: list[tuple[bytes, bytes]] = []
    if value is not None:
        headers.append((b"origin", value.encode("latin-1")))
    if preflight:
        headers.append((b"access-control-request-method", method.encode()))
        if requested is not None:
            headers.append((b"access-control-request-headers", requested.encode()))
        if private_network:
            headers.append((b"access-control-request-private-network", b"true"))
    status, sent, body = anyio.run(call, app, "OPTIONS" if preflight else "GET", headers)

    decision = app.policy.evaluate(
        value, method, requested, preflight=preflight and value is not None, private_network=private_network
    )
    cors = [(name, value) for name, value in sent if name.startswith(b"access-control-") or name == b"vary"]
    expected = [(name.lower().encode(), value.encode("latin-1")) for name, value in decision.headers.items()]
    assert cors == expected, decision.reason
    if preflight and value is not None:
        assert (status, body.decode()) == (decision.status, decision.body)
        assert (dict(sent).get(b"content-length") is None) is (decision.status == 204)
    else:
        assert (status, body) == (200, b"app")  # an actual request always reaches the app

"""One regression test per published CORS vulnerability class, named after the advisory."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from corsengine import ConfigurationError, CORSMiddleware, Policy
from corsengine._decide import MAX_REQUEST_HEADERS_LENGTH
from corsengine._origin import quote
from corsengine.providers import PredicateProvider

from ..asgi import call, plain_app

ORIGIN = "https://app.example.com"


def cors_headers(raw: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    return {name: value for name, value in raw if name.startswith(b"access-control-")}


def request(
    app: Any, method: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[bytes, bytes], bytes]:
    status, raw, body = anyio.run(call, app, method, headers)
    return status, dict(raw), body


# --- CVE-2024-1681 (flask-cors): log injection through the Origin ----------------------

HOSTILE_ORIGINS = {
    "crlf-fake-line": "https://evil.com\r\n[INFO] corsengine: allowed origin https://admin.example.com",
    "lf-only": "https://evil.com\nroot logged in",
    "ansi-clear-screen": "https://evil.com\x1b[2J\x1b[1;1H",
    "ansi-colour": "\x1b[31mhttps://evil.com\x1b[0m",
    "backspaces": "https://evil.com\x08\x08\x08\x08ok",
    "nul": "https://evil.com\x00",
}


def assert_escaped(text: str) -> None:
    for control in ("\r", "\n", "\x1b", "\x08", "\x00"):
        assert control not in text


@pytest.mark.parametrize("origin", HOSTILE_ORIGINS.values(), ids=HOSTILE_ORIGINS.keys())
def test_cve_2024_1681_refused_origin_is_logged_escaped(
    origin: str, caplog: pytest.LogCaptureFixture
) -> None:
    """CVE-2024-1681: flask-cors logged the raw Origin at DEBUG, so CRLF forged log lines."""
    caplog.set_level(logging.DEBUG, logger="corsengine")
    app = CORSMiddleware(plain_app(), allow_origins=[ORIGIN])
    request(app, "GET", [(b"origin", origin.encode("latin-1"))])
    messages = [record.getMessage() for record in caplog.records if record.name == "corsengine"]
    assert messages, "the refused origin should be logged at DEBUG"
    for message in messages:
        assert_escaped(message)
    # The origin is there, escaped the way repr() escapes it: visible, inert, one line.
    assert any(f"refused origin {quote(origin)}" in message for message in messages)


@pytest.mark.parametrize("origin", HOSTILE_ORIGINS.values(), ids=HOSTILE_ORIGINS.keys())
def test_cve_2024_1681_decision_reasons_are_escaped(origin: str) -> None:
    """CVE-2024-1681: reasons end up in logs and CLI output too; they quote escaped."""
    policy = Policy([ORIGIN])
    for decision in (policy.evaluate(origin), policy.evaluate(origin, "PUT", preflight=True)):
        assert not decision.allowed
        assert_escaped(decision.reason)


def test_cve_2024_1681_predicate_errors_are_logged_escaped(caplog: pytest.LogCaptureFixture) -> None:
    """CVE-2024-1681: an exception message quoting the origin must not forge lines either."""
    caplog.set_level(logging.DEBUG, logger="corsengine")

    def lookup(origin: str, scope: object) -> bool:
        raise LookupError("no tenant for\r\nFAKE LINE\x1b[31m")

    policy = Policy(PredicateProvider(lookup))
    assert not policy.evaluate("https://tenant.example.com").allowed
    messages = [record.getMessage() for record in caplog.records if record.name == "corsengine"]
    assert messages
    for message in messages:
        assert_escaped(message)


# --- CVE-2024-6221 (flask-cors): private network access allowed by default --------------

PNA_PREFLIGHT = [
    (b"origin", ORIGIN.encode()),
    (b"access-control-request-method", b"GET"),
    (b"access-control-request-private-network", b"true"),
]


def test_cve_2024_6221_private_network_preflight_refused_by_default() -> None:
    """CVE-2024-6221: flask-cors answered Allow-Private-Network: true unless told otherwise."""
    decision = Policy([ORIGIN]).evaluate(ORIGIN, "GET", preflight=True, private_network=True)
    assert not decision.allowed
    assert "Access-Control-Allow-Private-Network" not in decision.headers
    assert "private-network" in decision.failures

    status, headers, _ = request(
        CORSMiddleware(plain_app(), allow_origins=[ORIGIN]), "OPTIONS", PNA_PREFLIGHT
    )
    assert status == 400
    assert b"access-control-allow-private-network" not in headers


def test_cve_2024_6221_private_network_only_for_allowed_origins_when_enabled() -> None:
    """CVE-2024-6221: even when enabled, only an allowed origin gets private network access."""
    app = CORSMiddleware(plain_app(), allow_origins=[ORIGIN], allow_private_network=True)
    status, headers, _ = request(app, "OPTIONS", PNA_PREFLIGHT)
    assert (status, headers[b"access-control-allow-private-network"]) == (200, b"true")
    evil = [(b"origin", b"https://evil.com"), *PNA_PREFLIGHT[1:]]
    status, headers, _ = request(app, "OPTIONS", evil)
    assert status == 400
    assert cors_headers(list(headers.items())) == {}


# --- CVE-2025-47908 (rs/cors): unbounded work on a huge Access-Control-Request-Headers ----


class NoSplit(str):
    """A header value that fails the test if anything splits it into names."""

    __slots__ = ()

    def split(self, *args: Any, **kwargs: Any) -> list[str]:  # type: ignore[override]
        raise AssertionError("a value over the cap must be refused unread")


@pytest.mark.parametrize("allow_headers", [["X-Token"], ["*"]], ids=["listed", "star"])
@pytest.mark.parametrize("size", [MAX_REQUEST_HEADERS_LENGTH + 1, 64 * 1024, 1024 * 1024], ids=str)
def test_cve_2025_47908_huge_request_headers_refused_unread(allow_headers: list[str], size: int) -> None:
    """CVE-2025-47908: rs/cors split and sorted a megabyte of header names per preflight."""
    requested = NoSplit(("x-token," * size)[:size])
    decision = Policy([ORIGIN], allow_headers=allow_headers).evaluate(
        ORIGIN, "GET", requested, preflight=True
    )
    assert not decision.allowed
    assert decision.failures == ("headers",)
    assert f"over the {MAX_REQUEST_HEADERS_LENGTH}-byte limit" in decision.reason
    assert len(decision.reason) < 300
    assert all(len(value) < 300 for value in decision.headers.values())


def test_cve_2025_47908_cap_is_about_one_kibibyte() -> None:
    """CVE-2025-47908: a browser's list is short; the cap sits at 1 KiB, inclusive."""
    policy = Policy([ORIGIN], allow_headers=["*"])
    at_cap = ",".join(["x-a"] * 256)[:MAX_REQUEST_HEADERS_LENGTH].rstrip(",-")
    at_cap = at_cap + "x" * (MAX_REQUEST_HEADERS_LENGTH - len(at_cap))
    assert len(at_cap) == MAX_REQUEST_HEADERS_LENGTH == 1024
    assert policy.evaluate(ORIGIN, "GET", at_cap, preflight=True).allowed
    assert not policy.evaluate(ORIGIN, "GET", at_cap + "x", preflight=True).allowed


PREPARED_LIST = b"Accept, Accept-Language, Content-Language, Content-Type, X-Token"


@pytest.mark.parametrize("allow_headers", [["X-Token"], ["*"]], ids=["listed", "star"])
def test_cve_2025_47908_middleware_never_echoes_huge_or_repeated_headers(allow_headers: list[str]) -> None:
    """CVE-2025-47908: through ASGI, one huge header or many repeated ones are refused alike."""
    app = CORSMiddleware(plain_app(), allow_origins=[ORIGIN], allow_headers=allow_headers)
    preflight = [(b"origin", ORIGIN.encode()), (b"access-control-request-method", b"GET")]
    huge = [(b"access-control-request-headers", b"x-a," * 100_000)]
    repeated = [(b"access-control-request-headers", b"x-a,x-b,x-c")] * 200
    for extra in (huge, repeated):
        status, raw, body = anyio.run(call, app, "OPTIONS", preflight + extra)
        assert status == 400
        assert body == b"Disallowed CORS headers"
        # Never an echo: "*" answers nothing, a list answers the prepared list (as Starlette).
        assert dict(raw).get(b"access-control-allow-headers") in (None, PREPARED_LIST)
        assert sum(len(name) + len(value) for name, value in raw) < 1024


# --- Starlette 2020: allow_origin_regex must match the whole origin -------------------

REGEX_CASES = {
    "suffix-after-match": (r"https://.*\.example\.org", "https://www.example.org.evil.com"),
    "exact-regex-prefix": (r"https://example\.org", "https://example.org.evil.com"),
    "exact-regex-port": (r"https://example\.org", "https://example.org:8443"),
    "alternation-precedence": (
        r"https://a\.example\.org|https://b\.example\.org",
        "https://b.example.org.evil.com",
    ),
    "alternation-prefix": (
        r"https://a\.example\.org|https://b\.example\.org",
        "https://evil.com#https://a.example.org",
    ),
    "dollar-before-newline": (r"https://example\.org$", "https://example.org\n"),
    "caret-only": (r"^https://example\.org", "https://example.org.evil.com"),
}


@pytest.mark.parametrize(("regex", "origin"), REGEX_CASES.values(), ids=REGEX_CASES.keys())
def test_starlette_2020_regex_is_a_full_match(regex: str, origin: str) -> None:
    """Starlette's 2020 fix: allow_origin_regex used re.match, a prefix match."""
    assert not Policy(allow_origin_regex=regex).evaluate(origin).allowed
    _, headers, _ = request(
        CORSMiddleware(plain_app(), allow_origin_regex=regex), "GET", [(b"origin", origin.encode())]
    )
    assert b"access-control-allow-origin" not in headers


# --- Tomcat CVE-2018-8014, http4s CVE-2021-39185, @koa/cors CVE-2023-49803 ------------


def test_cve_2018_8014_cve_2021_39185_cve_2023_49803_native_policy_refuses_wildcard_with_credentials() -> (
    None
):
    """Tomcat, http4s and @koa/cors defaulted to reflecting any origin with credentials."""
    with pytest.raises(ConfigurationError) as caught:
        Policy(["*"], allow_credentials=True)
    assert caught.value.codes == ("corsengine.E012",)


def test_cve_2018_8014_cve_2021_39185_cve_2023_49803_dropin_logs_and_never_sends_star_with_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The drop-in keeps Starlette's mirroring but logs it, and never sends '*' with credentials."""
    with caplog.at_level(logging.WARNING, logger="corsengine"):
        app = CORSMiddleware(plain_app(), allow_origins=["*"], allow_credentials=True, allow_headers=["*"])
    assert "every origin read credentialed responses" in caplog.text
    for method, extra in (("GET", []), ("OPTIONS", [(b"access-control-request-method", b"GET")])):
        status, headers, _ = request(app, method, [(b"origin", b"https://evil.com"), *extra])
        assert status == 200
        assert headers[b"access-control-allow-origin"] == b"https://evil.com"
        assert headers[b"access-control-allow-credentials"] == b"true"


def test_cve_2018_8014_cve_2021_39185_cve_2023_49803_dynamic_star_with_credentials_is_refused() -> None:
    """A callable returning '*' must not be a way around E012."""
    policy = Policy(lambda: ["*"], allow_credentials=True)
    decision = policy.evaluate("https://evil.com")
    assert not decision.allowed
    assert "Access-Control-Allow-Origin" not in decision.headers
    assert "refused together with credentials" in decision.reason


def test_cve_2018_8014_star_without_credentials_never_adds_credentials() -> None:
    """Tomcat CVE-2018-8014: '*' is only safe without credentials, so none are ever added."""
    _, headers, _ = request(
        CORSMiddleware(plain_app(), allow_origins=["*"]), "GET", [(b"origin", b"https://evil.com")]
    )
    assert headers[b"access-control-allow-origin"] == b"*"
    assert b"access-control-allow-credentials" not in headers


# --- exact origins sharing a suffix (suffix matching bugs in several CORS libraries) ------

SHARED_SUFFIX = {
    "glued-prefix": "https://barfoo.com",
    "glued-suffix": "https://foobar.com",
    "one-under-the-other": "https://foo.com.bar.com",
    "other-under-one": "https://bar.com.foo.com",
    "subdomain-of-one": "https://x.foo.com",
    "hyphenated": "https://bar-foo.com",
}


@pytest.mark.parametrize("origin", SHARED_SUFFIX.values(), ids=SHARED_SUFFIX.keys())
def test_exact_origins_sharing_a_suffix_allow_nothing_else(origin: str) -> None:
    """Exact entries 'foo.com' and 'bar.com' never combine into 'barfoo.com'."""
    policy = Policy(["https://foo.com", "https://bar.com"], allow_credentials=True)
    assert policy.evaluate("https://foo.com").allowed
    assert policy.evaluate("https://bar.com").allowed
    decision = policy.evaluate(origin)
    assert not decision.allowed
    assert decision.headers == {"Vary": "Origin"}

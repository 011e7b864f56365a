"""Decision tables for Policy.evaluate(): plain strings in, a Decision with a reason out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from corsengine import ConfigurationError, CorsEngineWarning, Decision, Policy
from corsengine._decide import PREFLIGHT_VARY
from corsengine._settings import ALL_METHODS
from corsengine.testing import assert_allowed, assert_refused

ORIGINS = ["https://app.example.com", "https://*.partner.example", "http://localhost:*"]


@dataclass
class Case:
    id: str
    origin: str | None
    allowed: bool
    reason: str
    method: str = "GET"
    headers: str | None = None
    preflight: bool = False
    pna: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, str | None] = field(default_factory=dict)


CASES = [
    Case("exact origin", "https://app.example.com", True, "matches an exact entry",
         expect={"Access-Control-Allow-Origin": "https://app.example.com", "Vary": "Origin"}),
    Case("unknown origin", "https://evil.com", False, "'https://evil.com' matches no rule",
         expect={"Access-Control-Allow-Origin": None, "Vary": "Origin"}),
    Case("reflection attempt with path", "https://app.example.com/x", False, "malformed Origin"),
    Case("prefix attack", "https://app.example.com.evil.com", False, "matches no rule"),
    Case("suffix attack", "https://evilapp.example.com", False, "matches no rule"),
    Case("http downgrade", "http://app.example.com", False, "matches no rule"),
    Case("another port", "https://app.example.com:8443", False, "matches no rule"),
    Case("null not listed", "null", False, "'null' matches no rule"),
    Case("subdomain pattern", "https://eu.partner.example", True, "matches 'https://*.partner.example'"),
    Case("pattern apex", "https://partner.example", False, "matches no rule"),
    Case("any port pattern", "http://localhost:5173", True, "matches 'http://localhost:*'"),
    Case("no origin", None, False, "not a CORS request", expect={"Vary": "Origin"}),
    Case("hostile bytes", "https://app.example.com\r\nX: y", False, "malformed Origin header 'https://app"),
    Case("10 KB origin", "https://" + "a" * 10_000 + ".com", False, "over the 326-byte limit"),
    Case("credentials header", "https://app.example.com", True, "exact",
         options={"allow_credentials": True, "expose_headers": ["X-Total"]},
         expect={"Access-Control-Allow-Credentials": "true", "Access-Control-Expose-Headers": "X-Total"}),
    Case("refused origin gets no credentials", "https://evil.com", False, "no rule",
         options={"allow_credentials": True, "expose_headers": ["X-Total"]},
         expect={"Access-Control-Allow-Credentials": None, "Access-Control-Expose-Headers": None}),
    Case("star without credentials", "https://any.example", True, "matches '*'",
         options={"allow_origins": ["*"]}, expect={"Access-Control-Allow-Origin": "*"}),
    Case("star still validates the origin", "https://any.example/", False, "malformed",
         options={"allow_origins": ["*"]}),
    Case("regex full match", "https://api.example.net", True, "regex",
         options={"allow_origin_regex": r"https://[a-z]+\.example\.net"}),
    Case("regex is anchored", "https://api.example.net.evil.com", False, "no rule",
         options={"allow_origin_regex": r"https://[a-z]+\.example\.net"}),
    # Preflights
    Case("preflight allowed", "https://app.example.com", True, "preflight allowed", method="PUT",
         headers="x-token", preflight=True,
         options={"allow_methods": ["GET", "PUT"], "allow_headers": ["X-Token"], "max_age": 60},
         expect={"Access-Control-Allow-Methods": "GET, PUT", "Access-Control-Max-Age": "60",
                 "Access-Control-Allow-Headers": "Accept, Accept-Language, Content-Language, Content-Type, X-Token",
                 "Vary": PREFLIGHT_VARY}),
    Case("preflight method case-sensitive", "https://app.example.com", False, "method 'put' is not in",
         method="put", preflight=True, options={"allow_methods": ["PUT"]}),
    Case("preflight header case-insensitive", "https://app.example.com", True, "allowed", method="GET",
         headers="X-TOKEN,content-type", preflight=True, options={"allow_headers": ["x-token"]}),
    Case("preflight unlisted header", "https://app.example.com", False, "'x-other' is not in allow_headers",
         headers="x-other", preflight=True, options={"allow_headers": ["x-token"]}),
    Case("preflight refused origin is minimal", "https://evil.com", False, "matches no rule", preflight=True,
         options={"allow_credentials": True},
         expect={"Access-Control-Allow-Origin": None, "Access-Control-Allow-Credentials": None,
                 "Access-Control-Allow-Methods": None, "Vary": PREFLIGHT_VARY}),
    Case("star headers mirror", "https://app.example.com", True, "allowed", headers="X-A, X-B", preflight=True,
         options={"allow_headers": ["*"]}, expect={"Access-Control-Allow-Headers": "X-A, X-B"}),
    Case("star headers never cover authorization", "https://app.example.com", False, "never covers Authorization",
         headers="authorization", preflight=True, options={"allow_headers": ["*"]}),
    Case("authorization when listed", "https://app.example.com", True, "allowed",
         headers="authorization", preflight=True, options={"allow_headers": ["*", "Authorization"]}),
    Case("huge request headers", "https://app.example.com", False, "over the 1024-byte limit",
         headers="x," * 600, preflight=True, options={"allow_headers": ["*"]},
         expect={"Access-Control-Allow-Headers": None}),
    Case("invalid request header name", "https://app.example.com", False, "not a valid header name",
         headers="x y", preflight=True, options={"allow_headers": ["*"]}),
    Case("private network refused by default", "https://app.example.com", False, "private network",
         preflight=True, pna=True, expect={"Access-Control-Allow-Private-Network": None}),
    Case("private network allowed", "https://app.example.com", True, "allowed", preflight=True, pna=True,
         options={"allow_private_network": True}, expect={"Access-Control-Allow-Private-Network": "true"}),
    Case("all methods", "https://app.example.com", True, "allowed", method="QUERY", preflight=True,
         options={"allow_methods": ["*"]}, expect={"Access-Control-Allow-Methods": ", ".join(ALL_METHODS)}),
    Case("preflight status 204", "https://app.example.com", True, "allowed", preflight=True,
         options={"preflight_status": 204}),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_decision_table(case: Case) -> None:
    options = {"allow_origins": ORIGINS, **case.options}
    policy = Policy(**options)
    decision = policy.evaluate(
        case.origin, case.method, case.headers, preflight=case.preflight, private_network=case.pna
    )
    assert decision.allowed is case.allowed, decision.reason
    assert bool(decision) is case.allowed

    async def asynchronously() -> Decision:
        return await policy.aevaluate(
            case.origin, case.method, case.headers, preflight=case.preflight, private_network=case.pna
        )

    assert anyio.run(asynchronously) == decision  # aevaluate() answers what evaluate() answers
    assert case.reason in decision.reason
    for name, value in case.expect.items():
        assert decision.headers.get(name) == value, name
    if case.preflight:
        assert decision.kind == "preflight"
        expected_status = case.options.get("preflight_status", 200) if case.allowed else 400
        assert decision.status == expected_status
        assert decision.body == ("" if expected_status == 204 else "OK") if case.allowed else decision.body
    # Invariants every decision keeps.
    assert not (
        decision.headers.get("Access-Control-Allow-Origin") == "*"
        and decision.headers.get("Access-Control-Allow-Credentials") == "true"
    )
    if "\r" in (case.origin or ""):
        assert "\r" not in decision.reason and "\n" not in decision.reason


def test_refused_preflight_lists_every_failure_like_starlette() -> None:
    policy = Policy(["https://example.org"], allow_headers=["X-Example"])
    decision = policy.evaluate("https://another.org", "POST", "X-Nope", preflight=True)
    assert decision.body == "Disallowed CORS origin, method, headers"
    assert decision.failures == ("origin", "method", "headers")
    decision = policy.evaluate("https://example.org", "GET", "X-Nope-1, X-Nope-2", preflight=True)
    assert decision.body == "Disallowed CORS headers"


def test_testing_helpers_put_the_reason_in_the_failure() -> None:
    policy = Policy(["https://app.example.com"], allow_methods=["GET", "PUT"])
    assert assert_allowed(policy, "https://app.example.com").kind == "actual"
    assert assert_allowed(policy, "https://app.example.com", "PUT").kind == "preflight"
    assert assert_refused(policy, "https://evil.com").kind == "actual"
    with pytest.raises(AssertionError, match=re.escape("'https://evil.com' matches no rule")):
        assert_allowed(policy, "https://evil.com")
    with pytest.raises(AssertionError, match="to be refused, but origin"):
        assert_refused(policy, "https://app.example.com")


CONFIG_ERRORS = {
    "negative max_age": ({"max_age": -1}, ["corsengine.E009"]),
    "max_age over a day": ({"max_age": 86401}, ["corsengine.E009"]),
    "max_age not an int": ({"max_age": "600"}, ["corsengine.E009"]),
    "comma-separated origins": ({"allow_origins": "https://a.com,https://b.com"}, ["corsengine.E010"]),
    "comma-separated methods": ({"allow_methods": "GET,POST"}, ["corsengine.E010"]),
    "comma-separated headers": ({"allow_headers": "X-A, X-B"}, ["corsengine.E010"]),
    "comma-separated expose": ({"expose_headers": "X-A, X-B"}, ["corsengine.E010"]),
    "null with credentials": ({"allow_origins": ["null"], "allow_credentials": True}, ["corsengine.E011"]),
    "star with credentials": ({"allow_origins": ["*"], "allow_credentials": True}, ["corsengine.E012"]),
    "preflight status 302": ({"preflight_status": 302}, ["corsengine.E013"]),
    "bad method": ({"allow_methods": ["GE T"]}, ["corsengine.E014"]),
    "bad header": ({"allow_headers": ["X:A"]}, ["corsengine.E015"]),
    "origins of the wrong type": ({"allow_origins": 42}, ["corsengine.E016"]),
    "invalid regex": ({"allow_origin_regex": "https://(x"}, ["corsengine.E007"]),
    "nested quantifier regex": ({"allow_origin_regex": r"https://(a+)+\.com"}, ["corsengine.E008"]),
    "many at once": (
        {"allow_origins": ["https://a.com/path", "*.b.com"], "max_age": -5, "allow_methods": "GET"},
        ["corsengine.E001", "corsengine.E003", "corsengine.E009", "corsengine.E010"],
    ),
}


@pytest.mark.parametrize(("options", "codes"), list(CONFIG_ERRORS.values()), ids=list(CONFIG_ERRORS))
@pytest.mark.usefixtures("no_re2")  # E008 is the guard of Python's engine
def test_configuration_errors(options: dict[str, Any], codes: list[str]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Policy(**options)
    assert sorted(raised.value.codes) == sorted(codes)
    for problem in raised.value.problems:
        assert problem.code in str(raised.value)


def test_star_with_credentials_is_an_explicit_opt_in() -> None:
    policy = Policy(["*"], allow_credentials=True, unsafe_allow_any_origin_with_credentials=True)
    decision = policy.evaluate("https://any.example")
    assert decision.headers["Access-Control-Allow-Origin"] == "https://any.example"
    assert decision.headers["Access-Control-Allow-Credentials"] == "true"


def test_configured_origins_are_normalized_with_a_warning() -> None:
    with pytest.warns(CorsEngineWarning, match="normalized to 'https://app.example.com'"):
        policy = Policy(["HTTPS://APP.example.com:443/"])
    assert policy.evaluate("https://app.example.com").allowed
    assert not policy.evaluate("HTTPS://APP.example.com:443/").allowed


def test_swap_validates_before_replacing() -> None:
    policy = Policy(["https://a.example"], allow_credentials=True)
    with pytest.raises(ConfigurationError) as raised:
        policy.swap(["https://b.example", "null"])
    assert raised.value.codes == ("corsengine.E011",)
    assert policy.evaluate("https://a.example").allowed
    policy.swap(["https://b.example"])
    assert not policy.evaluate("https://a.example").allowed
    assert policy.evaluate("https://b.example").allowed

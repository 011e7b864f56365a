"""Replay the Origin values that public CORS scanners send, against every kind of policy.

The vectors are derived from a target host the way CORScanner, Corsy and corsair derive
them (reflection, prefix, suffix, substring, unescaped dot, special characters after the
host, null, third-party hosting, http downgrade, subdomains, ports, case, trailing dot,
userinfo, whitespace and CRLF). Each is replayed against policies built from an exact
list, wildcard patterns, a regex, a callable, a predicate and a remote JSON document,
through ``evaluate()`` and through the ASGI middleware. A vector is refused unless the
policy legitimately allows it, by the obvious oracle written next to the policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from corsengine import CORSMiddleware, Policy
from corsengine.providers import PredicateProvider, RemoteJSONProvider

from ..asgi import call, plain_app

TARGET = "api.example.com"
APEX = "example.com"

# After the host: what CORScanner's special_characters_bypass and Corsy's "unescaped
# regex" probes append before a domain the attacker owns.
SPECIAL_CHARACTERS = {
    "underscore": "_",
    "percent-60": "%60",
    "backtick": "`",
    "bang": "!",
    "tilde": "~",
    "pipe": "|",
    "open-brace": "{",
    "close-brace": "}",
    "caret": "^",
    "equals": "=",
    "plus": "+",
    "ampersand": "&",
    "quote": "'",
    "double-quote": '"',
    "semicolon": ";",
    "dollar": "$",
    "hyphen": "-",
    "comma": ",",
    "open-paren": "(",
    "close-paren": ")",
    "asterisk": "*",
    "backslash": "\\",
    "percent-0d": "%0d",
    "percent-2e": "%2e",
}

THIRD_PARTY_HOSTS = {
    "github-pages": "x.github.io",
    "github-pages-named": "example.github.io",
    "gitlab-pages": "example.gitlab.io",
    "heroku": "api-example.herokuapp.com",
    "vercel": "example.vercel.app",
    "now-sh": "example.now.sh",
    "netlify": "example.netlify.app",
    "s3-bucket": "example.s3.amazonaws.com",
    "s3-root": "s3.amazonaws.com",
    "cloudfront": "d111111abcdef8.cloudfront.net",
    "cloudflare-pages": "example.pages.dev",
    "cloudflare-workers": "example.workers.dev",
    "firebase": "example.firebaseapp.com",
    "firebase-web-app": "example.web.app",
    "appspot": "example.appspot.com",
    "azure": "example.azurewebsites.net",
    "ngrok": "abcd1234.ngrok.io",
    "codepen": "codepen.io",
    "jsfiddle": "fiddle.jshell.net",
    "glitch": "example.glitch.me",
    "surge": "example.surge.sh",
}


def scanner_origins(target: str = TARGET, apex: str = APEX) -> dict[str, str]:
    """The Origin values a CORS scanner sends for ``target`` (id -> value)."""
    name, _, tld = apex.rpartition(".")
    first = target.split(".")[0]
    vectors = {
        # controls: what a legitimate frontend sends
        "control-target": f"https://{target}",
        "control-www": f"https://www.{apex}",
        # reflection
        "reflect-evil": "https://evil.com",
        "reflect-evil-http": "http://evil.com",
        "reflect-attacker-subdomain": "https://attacker.evil.com",
        # prefix: the trusted name as the start of an attacker's domain
        "prefix-target": f"https://{target}.evil.com",
        "prefix-apex": f"https://{apex}.evil.com",
        "prefix-target-no-dot": f"https://{target}evil.com",
        "prefix-target-hyphen": f"https://{target}-evil.com",
        # suffix: an attacker's name ending with the trusted one
        "suffix-glued-target": f"https://evil{target}",
        "suffix-glued-apex": f"https://evil{apex}",
        "suffix-hyphen-apex": f"https://evil-{apex}",
        "suffix-hyphen-target": f"https://evil-{target}",
        # substring ("include") matches
        "substring-truncated-tld": f"https://{target[:-1]}",
        "substring-inner": f"https://{target[1:-1]}",
        "substring-apex-inner": f"https://{apex[1:]}",
        "substring-other-tld": f"https://{target}.co",
        "substring-tld-glued": f"https://{name}{tld}.com",
        # unescaped dot in a regex
        "unescaped-dot-target": f"https://{first}X{apex}",
        "unescaped-dot-target-digit": f"https://{first}1{apex}",
        "unescaped-dot-apex": f"https://{name}X{tld}",
        "unescaped-dot-hyphen": f"https://{first}-{apex}",
        "unescaped-dot-glued": f"https://{first}{apex}",
        # null: sandboxed iframes, file://, data: URLs
        "null": "null",
        "null-upper": "Null",
        "null-quoted": '"null"',
        # http downgrade
        "downgrade-target": f"http://{target}",
        "downgrade-www": f"http://www.{apex}",
        # arbitrary subdomains
        "subdomain-evil": f"https://evil.{apex}",
        "subdomain-of-target": f"https://evil.{target}",
        "subdomain-deep": f"https://a.b.c.{target}",
        "subdomain-punycode": f"https://xn--pi-7ld.{apex}",
        "apex": f"https://{apex}",
        # ports
        "port-8443": f"https://{target}:8443",
        "port-default-explicit": f"https://{target}:443",
        "port-zero": f"https://{target}:0",
        "port-too-big": f"https://{target}:65536",
        "port-leading-zero": f"https://{target}:0443",
        "port-empty": f"https://{target}:",
        "port-http-default-explicit": f"http://{target}:80",
        # case
        "upper-host": f"https://{target.upper()}",
        "upper-scheme": f"HTTPS://{target}",
        "mixed-case": f"https://Api.{apex}",
        # trailing dot and empty labels
        "trailing-dot": f"https://{target}.",
        "double-dot": f"https://api..{apex}",
        "leading-dot": f"https://.{target}",
        # userinfo
        "userinfo-before-target": f"https://user@{target}",
        "userinfo-target-at-evil": f"https://{target}@evil.com",
        "userinfo-evil-at-target": f"https://evil.com@{target}",
        "userinfo-password": f"https://user:pass@{target}",
        # whitespace, CRLF and other bytes
        "leading-space": f" https://{target}",
        "trailing-space": f"https://{target} ",
        "trailing-tab": f"https://{target}\t",
        "trailing-crlf": f"https://{target}\r\n",
        "crlf-header-injection": f"https://{target}\r\nX-Injected: 1",
        "lf-injection": f"https://{target}\nSet-Cookie: a=b",
        "nul-byte": f"https://{target}\x00.evil.com",
        "ansi-escape": f"https://{target}\x1b[31m",
        "backslash-at": f"https://{target}\\@evil.com",
        "unicode-homograph": f"https://\u0430pi.{apex}",
        "fullwidth-dot": f"https://{first}\uff0e{apex}",
        # paths, queries, fragments and lists
        "trailing-slash": f"https://{target}/",
        "path": f"https://{target}/evil",
        "query": f"https://{target}?evil.com",
        "fragment": f"https://{target}#.evil.com",
        "list-comma": f"https://{target}, https://evil.com",
        "list-space": f"https://{target} https://evil.com",
        # other schemes
        "scheme-wss": f"wss://{target}",
        "scheme-file": "file://",
        "scheme-chrome-extension": "chrome-extension://abcdefghijklmnop",
        "scheme-javascript": "javascript:alert(1)//",
        "scheme-data": "data:text/html,x",
        "scheme-missing": f"//{target}",
        "scheme-none": target,
        # addresses and local names
        "loopback-ip": "http://127.0.0.1",
        "loopback-ip-port": "http://127.0.0.1:3000",
        "localhost-port": "http://localhost:3000",
        "localhost-https": "https://localhost",
        "localhost-prefix": "http://localhost.evil.com:3000",
        "localhost-suffix": "http://evillocalhost:3000",
        "ipv6-loopback": "http://[::1]:3000",
        "ipv4-octal": "http://0177.0.0.1",
        "ipv4-integer": "http://2130706433",
        # length
        "long-label": f"https://{'a' * 64}.{apex}",
        "over-326-bytes": f"https://{'a.' * 200}{apex}",
        "empty": "",
        "star": "*",
    }
    for label, char in SPECIAL_CHARACTERS.items():
        vectors[f"special-{label}"] = f"https://{target}{char}.evil.com"
        vectors[f"special-{label}-apex"] = f"https://{apex}{char}.evil.com"
    for label, host in THIRD_PARTY_HOSTS.items():
        vectors[f"third-party-{label}"] = f"https://{host}"
    return vectors


VECTORS = scanner_origins()

# --- the policies and what each legitimately allows --------------------------------------

EXACT = frozenset({f"https://{TARGET}", f"https://www.{APEX}"})
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
UNDER_APEX = re.compile(rf"https://(?:{LABEL}\.)+example\.com")
ONE_LEVEL = re.compile(rf"https://(?:{LABEL}\.)?example\.com")
LOCALHOST_ANY_PORT = re.compile(r"http://localhost:[1-9][0-9]{0,4}")


def host_fits(origin: str) -> bool:
    # A DNS name is at most 253 bytes (and a serialized origin at most 326).
    return len(origin.partition("://")[2]) <= 253


def in_exact(origin: str) -> bool:
    return origin in EXACT


def under_apex_or_localhost(origin: str) -> bool:
    # "https://*.example.com" and "http://localhost:*": labels under the apex, never the apex.
    return host_fits(origin) and bool(UNDER_APEX.fullmatch(origin) or LOCALHOST_ANY_PORT.fullmatch(origin))


def one_level_or_apex(origin: str) -> bool:
    return bool(ONE_LEVEL.fullmatch(origin))


def exact_or_under_apex(origin: str) -> bool:
    return origin in EXACT or (host_fits(origin) and bool(UNDER_APEX.fullmatch(origin)))


def remote_policy(document: object = None, **options: Any) -> Policy:
    """A policy fed by RemoteJSONProvider through httpx.MockTransport (no network)."""
    if document is None:
        document = {
            "origins": [f"https://{TARGET}", f"https://www.{APEX}"],
            "patterns": [f"https://*.{APEX}"],
        }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url == "https://config.example.net/cors.json"
        return httpx.Response(200, json=document)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Policy(RemoteJSONProvider("https://config.example.net/cors.json", client=client), **options)


PolicyFactory = Callable[..., Policy]


async def async_origins() -> list[str]:
    return sorted(EXACT)


POLICIES: dict[str, tuple[PolicyFactory, Callable[[str], bool]]] = {
    "exact": (lambda **options: Policy(sorted(EXACT), **options), in_exact),
    "wildcard": (
        lambda **options: Policy([f"https://*.{APEX}", "http://localhost:*"], **options),
        under_apex_or_localhost,
    ),
    "regex": (
        lambda **options: Policy(allow_origin_regex=r"https://([a-z0-9-]+\.)?example\.com", **options),
        one_level_or_apex,
    ),
    "callable": (lambda **options: Policy(lambda: sorted(EXACT), **options), in_exact),
    "async-callable": (lambda **options: Policy(async_origins, **options), in_exact),
    "predicate": (
        lambda **options: Policy(PredicateProvider(lambda origin: origin in EXACT), **options),
        in_exact,
    ),
    "remote-json": (remote_policy, exact_or_under_apex),
}

OPTIONS = {
    "allow_credentials": True,
    "allow_methods": ["GET", "PUT"],
    "allow_headers": ["X-Token"],
    "expose_headers": ["X-Secret"],
}
CASES = [
    pytest.param(policy, origin, id=f"{policy}-{vector}")
    for policy in POLICIES
    for vector, origin in VECTORS.items()
]


def test_the_vector_set_is_what_scanners_send() -> None:
    assert len(VECTORS) == len(set(VECTORS.values())) >= 140
    assert {"https://api.example.com.evil.com", "https://evilexample.com", "https://apiXexample.com"} <= set(
        VECTORS.values()
    )
    assert {"https://api.example.com_.evil.com", "https://api.example.com%60.evil.com", "null"} <= set(
        VECTORS.values()
    )


# --- evaluate() ---------------------------------------------------------------------


@pytest.mark.parametrize(("policy_name", "origin"), CASES)
def test_evaluate_refuses_unless_legitimately_allowed(policy_name: str, origin: str) -> None:
    factory, legitimate = POLICIES[policy_name]
    policy = factory(**OPTIONS)
    expected = legitimate(origin)
    for decision in (
        policy.evaluate(origin),
        policy.evaluate(origin, "PUT", "x-token", preflight=True),
    ):
        assert decision.allowed is expected, decision.reason
        headers = decision.headers
        if expected:
            assert headers["Access-Control-Allow-Origin"] == origin
            assert headers["Access-Control-Allow-Credentials"] == "true"
        else:
            assert not {name for name in headers if name.startswith("Access-Control-")}, decision.reason
        for value in headers.values():
            assert "\r" not in value and "\n" not in value


# --- the middleware, through raw ASGI calls ------------------------------------------


def _raw(origin: str) -> bytes:
    return origin.encode("utf-8")


@pytest.mark.parametrize(("policy_name", "origin"), CASES)
def test_middleware_refuses_unless_legitimately_allowed(policy_name: str, origin: str) -> None:
    factory, legitimate = POLICIES[policy_name]
    inner = plain_app()
    app = CORSMiddleware(inner, policy=factory(**OPTIONS))
    expected = legitimate(origin)

    async def both() -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        actual = await call(app, "GET", [(b"origin", _raw(origin))])
        preflight = await call(
            app,
            "OPTIONS",
            [
                (b"origin", _raw(origin)),
                (b"access-control-request-method", b"PUT"),
                (b"access-control-request-headers", b"x-token"),
            ],
        )
        return [actual, preflight]

    (status, headers, body), (preflight_status, preflight_headers, _) = anyio.run(both)
    # CORS is not authorization: the actual request reaches the app either way.
    assert (status, body) == (200, b"app")
    assert len(inner.seen) == 1  # type: ignore[attr-defined]
    for raw_headers in (headers, preflight_headers):
        cors = {name: value for name, value in raw_headers if name.startswith(b"access-control-")}
        if expected:
            assert cors[b"access-control-allow-origin"] == _raw(origin)
            assert cors[b"access-control-allow-credentials"] == b"true"
        else:
            assert cors == {}
    assert preflight_status == (200 if expected else 400)


# --- null from dynamic sources -------------------------------------------------------


def test_null_from_a_callable_never_gets_credentials() -> None:
    # Statically this is corsengine.E011; a dynamic source must not be a way around it.
    policy = Policy(lambda: ["null", "https://app.example.com"], allow_credentials=True)
    decision = policy.evaluate("null")
    assert not decision.allowed
    assert "Access-Control-Allow-Credentials" not in decision.headers
    assert "'null' is refused together with credentials" in decision.reason


def test_null_is_never_asked_of_a_predicate() -> None:
    asked: list[str] = []
    policy = Policy(PredicateProvider(lambda origin: asked.append(origin) is None))
    assert not policy.evaluate("null").allowed
    assert asked == []


@pytest.mark.parametrize("entry", ["*", "null"])
def test_a_remote_document_cannot_grant_star_or_null_with_credentials(entry: str) -> None:
    policy = remote_policy({"origins": [entry, f"https://{TARGET}"]}, allow_credentials=True)
    for origin in ("https://evil.com", "null"):
        decision = policy.evaluate(origin)
        assert not decision.allowed
        assert "Access-Control-Allow-Credentials" not in decision.headers
    assert policy.evaluate(f"https://{TARGET}").allowed

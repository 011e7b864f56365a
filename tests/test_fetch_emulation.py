"""corsengine.testing.Browser follows the Fetch standard: when it preflights, what it checks.

The apps here are raw ASGI callables that answer with fixed headers, so each rule of Fetch is
tested on its own, without any CORS middleware deciding.
"""

from __future__ import annotations

import gzip
from typing import Any

import anyio
import pytest

from corsengine import CORSMiddleware
from corsengine._fetch import unsafe_header_names
from corsengine.testing import Browser

PAGE = "https://spa.example"


class Fixed:
    """An app answering every request with ``status`` and ``headers``; it records the requests."""

    def __init__(
        self, headers: dict[str, str] | None = None, status: int = 200, preflight: Any = None
    ) -> None:
        self.headers = headers or {}
        self.status = status
        self.preflight = preflight  # (status, headers) for OPTIONS, else the same answer
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["method"], headers))
        status, answer = self.status, self.headers
        if scope["method"] == "OPTIONS" and self.preflight is not None:
            status, answer = self.preflight
        encoded = [(k.encode(), v.encode()) for k, v in answer.items()]
        await send({"type": "http.response.start", "status": status, "headers": encoded})
        await send({"type": "http.response.body", "body": b"body"})

    @property
    def methods(self) -> list[str]:
        return [method for method, _ in self.requests]


def open_to(origin: str = PAGE, **extra: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, **extra}


@pytest.mark.parametrize(
    ("method", "headers", "preflighted"),
    [
        pytest.param("GET", {}, False, id="get"),
        pytest.param("HEAD", {}, False, id="head"),
        pytest.param("POST", {"Content-Type": "text/plain"}, False, id="post-text"),
        pytest.param("POST", {"Content-Type": "application/x-www-form-urlencoded"}, False, id="post-form"),
        pytest.param("POST", {"Content-Type": "application/json"}, True, id="post-json"),
        pytest.param(
            "GET", {"Accept": "application/json", "Accept-Language": "fr-CH, en;q=0.8"}, False, id="safe"
        ),
        pytest.param("GET", {"Accept": "text/(html)"}, True, id="accept-unsafe-byte"),
        pytest.param("GET", {"Accept": "a" * 129}, True, id="safelisted-value-too-long"),
        pytest.param("GET", {"Range": "bytes=0-99"}, False, id="simple-range"),
        pytest.param("GET", {"Range": "bytes=9-1"}, True, id="backwards-range"),
        pytest.param("GET", {"X-Token": "1"}, True, id="custom-header"),
        pytest.param("PUT", {}, True, id="put"),
        pytest.param("delete", {}, True, id="lower-case-delete"),
    ],
)
def test_a_preflight_exactly_when_fetch_sends_one(
    method: str, headers: dict[str, str], preflighted: bool
) -> None:
    app = Fixed(
        open_to(**{"Access-Control-Allow-Methods": "PUT, DELETE", "Access-Control-Allow-Headers": "*"})
    )
    result = Browser(app).fetch("/", origin=PAGE, method=method, headers=headers)
    assert app.methods[:-1] == (["OPTIONS"] if preflighted else [])
    assert (result.preflight is not None) is preflighted


def test_the_preflight_asks_like_a_browser() -> None:
    app = Fixed(
        open_to(**{"Access-Control-Allow-Methods": "PUT", "Access-Control-Allow-Headers": "x-b, x-a"})
    )
    Browser(app).fetch(
        "https://api.example/v1?q=1", origin=PAGE, method="put", headers={"X-B": "1", "x-a": "2"}
    )
    (_, asked), (_, sent) = app.requests
    assert asked["access-control-request-method"] == "PUT"
    assert asked["access-control-request-headers"] == "x-a,x-b"  # Fetch: sorted, lower case
    assert asked["host"] == "api.example" and "x-a" not in asked
    assert sent["x-b"] == "1" and sent["origin"] == PAGE


def test_unsafe_header_names() -> None:
    safe = {"Accept": "a" * 128, "Accept-Language": "b" * 128, "Content-Language": "c" * 128}
    assert unsafe_header_names(safe) == []
    assert unsafe_header_names({**safe, "Content-Type": "text/plain; charset=utf-8"}) == []
    assert unsafe_header_names({"Content-Type": 'text/plain; x="y"'}) == ["content-type"]
    assert unsafe_header_names({"Content-Language": "de_CH"}) == ["content-language"]
    assert unsafe_header_names({"X-B": "1", "x-a": "1", "Range": "bytes=5-"}) == ["x-a", "x-b"]


def test_methods_compare_case_sensitively() -> None:
    # fetch() upper-cases DELETE, GET, HEAD, OPTIONS, POST and PUT only: "patch" stays "patch".
    app = Fixed(open_to(**{"Access-Control-Allow-Methods": "PATCH"}))
    result = Browser(app).fetch("/", origin=PAGE, method="patch")
    assert not result.allowed
    assert "method 'patch' is not in the preflight's Access-Control-Allow-Methods ('PATCH')" in result.why
    assert Browser(app).fetch("/", origin=PAGE, method="PATCH").allowed


@pytest.mark.parametrize(
    ("allow_headers", "asked", "credentials", "allowed"),
    [
        pytest.param("*", "X-Token", False, True, id="star-covers-a-header"),
        pytest.param("*", "Authorization", False, False, id="star-never-covers-authorization"),
        pytest.param("*, Authorization", "Authorization", False, True, id="authorization-by-name"),
        pytest.param("*", "X-Token", True, False, id="star-is-a-name-with-credentials"),
        pytest.param("x-token", "X-Token", True, True, id="names-compare-case-insensitively"),
    ],
)
def test_allow_headers(allow_headers: str, asked: str, credentials: bool, allowed: bool) -> None:
    answer = open_to(
        **{"Access-Control-Allow-Headers": allow_headers, "Access-Control-Allow-Credentials": "true"}
    )
    result = Browser(Fixed(answer)).fetch("/", origin=PAGE, headers={asked: "1"}, credentials=credentials)
    assert result.allowed is allowed, result.why


@pytest.mark.parametrize(
    ("answer", "credentials", "why"),
    [
        pytest.param({}, False, "has no Access-Control-Allow-Origin header", id="no-acao"),
        pytest.param(open_to("https://other.example"), False, "not the page's origin", id="other-origin"),
        pytest.param(open_to("*"), True, "which a credentialed request never accepts", id="star-credentials"),
        pytest.param(open_to(), True, "has no Access-Control-Allow-Credentials header", id="no-acac"),
        pytest.param(
            open_to(**{"Access-Control-Allow-Credentials": "True"}),
            True,
            "has Access-Control-Allow-Credentials: 'True'",
            id="acac-is-case-sensitive",
        ),
    ],
)
def test_the_cors_check_refuses(answer: dict[str, str], credentials: bool, why: str) -> None:
    result = Browser(Fixed(answer)).fetch("/", origin=PAGE, credentials=credentials)
    assert not result.allowed
    assert why in result.why
    assert result.header("Content-Type") is None and result.readable_headers == {}


def test_two_allow_origin_values_are_refused() -> None:
    class Twice(Fixed):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            acao = b"access-control-allow-origin"
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(acao, b"*"), (acao, PAGE.encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})

    result = Browser(Twice()).fetch("/", origin=PAGE)
    assert not result.allowed
    assert "several Access-Control-Allow-Origin values ('*, https://spa.example')" in result.why


@pytest.mark.parametrize(
    ("preflight", "why"),
    [
        pytest.param((401, open_to()), "status 401 is not ok (2xx)", id="status-401"),
        pytest.param((200, {}), "the preflight response has no Access-Control-Allow-Origin", id="no-acao"),
        pytest.param(
            (204, open_to(**{"Access-Control-Allow-Methods": "GET, PUT(x)"})),
            "lists 'PUT(x)', which is not a method",
            id="bad-token",
        ),
    ],
)
def test_a_refused_preflight_stops_the_request(preflight: Any, why: str) -> None:
    app = Fixed(open_to(), preflight=preflight)
    result = Browser(app).fetch("/", origin=PAGE, method="PUT")
    assert not result.allowed and why in result.why
    assert app.methods == ["OPTIONS"] and result.response is None and result.status is None
    with pytest.raises(ValueError, match="no response to read"):
        result.json()


def test_star_methods_without_credentials_only() -> None:
    app = Fixed(open_to(**{"Access-Control-Allow-Methods": "*", "Access-Control-Allow-Credentials": "true"}))
    assert Browser(app).fetch("/", origin=PAGE, method="DELETE").allowed
    assert not Browser(app).fetch("/", origin=PAGE, method="DELETE", credentials=True).allowed


@pytest.mark.parametrize(
    ("expose", "credentials", "readable"),
    [
        pytest.param(None, False, {"content-type", "cache-control"}, id="safelisted-only"),
        pytest.param("X-Total", False, {"content-type", "cache-control", "x-total"}, id="exposed"),
        pytest.param(
            "*",
            False,
            {
                "content-type",
                "cache-control",
                "x-total",
                "x-internal",
                "access-control-allow-origin",
                "access-control-expose-headers",
                "access-control-allow-credentials",
            },
            id="star",
        ),
        pytest.param("*", True, {"content-type", "cache-control"}, id="star-is-a-name-with-credentials"),
        pytest.param("Set-Cookie", True, {"content-type", "cache-control"}, id="set-cookie-never"),
    ],
)
def test_readable_headers(expose: str | None, credentials: bool, readable: set[str]) -> None:
    answer = open_to(
        **{
            "Access-Control-Allow-Credentials": "true",
            "Content-Type": "text/plain",
            "Cache-Control": "no-store",
        },
        **{"X-Total": "3", "X-Internal": "db-7", "Set-Cookie": "a=1"},
    )
    if expose is not None:
        answer["Access-Control-Expose-Headers"] = expose
    result = Browser(Fixed(answer)).fetch("/", origin=PAGE, credentials=credentials)
    assert result.allowed, result.why
    assert set(result.readable_headers) == readable
    assert result.can_read("X-Total") is ("x-total" in readable)
    assert not result.can_read("X-Absent")


def test_cookies_go_only_with_credentials() -> None:
    app = Fixed(open_to(**{"Access-Control-Allow-Credentials": "true"}))
    Browser(app).fetch("/", origin=PAGE, cookies={"session": "1"})
    Browser(app).fetch("/", origin=PAGE, cookies={"session": "1", "b": "2"}, credentials=True)
    assert "cookie" not in app.requests[0][1]
    assert app.requests[1][1]["cookie"] == "session=1; b=2"


def test_bodies() -> None:
    app = Fixed(
        open_to(**{"Access-Control-Allow-Methods": "PUT", "Access-Control-Allow-Headers": "content-type"})
    )
    Browser(app).fetch("/", origin=PAGE, method="POST", body="hello")
    Browser(app).fetch("/", origin=PAGE, method="PUT", json={"a": 1})
    Browser(app).fetch("/", origin=PAGE, method="POST", body=b"\x00\x01")
    sent = [headers for method, headers in app.requests if method != "OPTIONS"]
    assert sent[0]["content-type"] == "text/plain;charset=UTF-8" and sent[0]["content-length"] == "5"
    assert sent[1]["content-type"] == "application/json"
    assert "content-type" not in sent[2]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_read_as_sent(encoding: str) -> None:
    import zlib

    data = b'{"n": 1}'
    packed = gzip.compress(data) if encoding == "gzip" else zlib.compress(data)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"access-control-allow-origin", b"*"), (b"content-encoding", encoding.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": packed})

    assert Browser(app).fetch("/", origin=PAGE).json() == {"n": 1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"headers": {"Origin": "https://x.example"}}, "a script cannot set 'Origin'", id="origin"
        ),
        pytest.param({"headers": {"Cookie": "a=1"}}, "a script cannot set 'Cookie'", id="cookie"),
        pytest.param({"headers": {"Sec-Fetch-Mode": "cors"}}, "a script cannot set", id="sec"),
        pytest.param({"origin": "https://spa.example/"}, "is not a serialized origin", id="path-in-origin"),
        pytest.param({"origin": "http://testserver"}, "same-origin", id="same-origin"),
        pytest.param({"method": "TRACE"}, "forbidden method", id="trace"),
    ],
)
def test_what_a_browser_never_sends(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("origin", PAGE)
    with pytest.raises(ValueError, match=message):
        Browser(Fixed()).fetch("/", **kwargs)


def test_the_origin_comes_from_the_browser_or_the_call() -> None:
    app = Fixed(open_to())
    assert Browser(app, origin=PAGE).fetch("/").allowed
    assert not Browser(app, origin=PAGE).fetch("/", origin="https://b.example").allowed
    with pytest.raises(TypeError, match="needs the page's origin"):
        Browser(app).fetch("/")
    assert Browser(Fixed(open_to("null")), origin="null").fetch("/").allowed


def test_an_exception_before_the_response_is_the_servers_bare_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise KeyError("tenant")

    inner = CORSMiddleware(app, allow_origins=[PAGE])
    result = Browser(inner).fetch("/", origin=PAGE)
    assert not result.allowed and result.response is not None
    assert (result.status, result.text) == (500, "Internal Server Error")
    assert isinstance(result.response.raised, KeyError)
    assert "the app raised KeyError(\"'tenant'\") before starting a response" in result.why
    assert "corsengine's policy: origin 'https://spa.example' matches an exact entry" in result.why


def test_an_app_that_never_answers_is_a_500_too() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    result = Browser(app).fetch("/", origin=PAGE)
    assert result.status == 500 and result.response is not None and result.response.raised is None


def test_an_exception_mid_body_cuts_the_body() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("stream broke")

    result = Browser(CORSMiddleware(app, allow_origins=[PAGE])).fetch("/", origin=PAGE)
    assert result.allowed and result.response is not None and not result.response.complete
    assert result.body == b"part"
    assert "reading the body fails" in result.why and "in the middle of the body" in result.why


def test_the_app_reads_the_request_body() -> None:
    async def echo(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        headers = [(b"access-control-allow-origin", b"*")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": message["body"]})

    assert Browser(echo).fetch("/", origin=PAGE, method="POST", body="ping").text == "ping"


def test_async_tests_use_afetch() -> None:
    app = Fixed(open_to())

    async def main() -> None:
        assert (await Browser(app).afetch("/", origin=PAGE)).allowed
        with pytest.raises(RuntimeError, match="use 'await Browser"):
            Browser(app).fetch("/", origin=PAGE)

    anyio.run(main)


def test_the_app_hears_the_disconnect_once_the_response_is_complete() -> None:
    heard: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"access-control-allow-origin", b"*")],
            }
        )
        await send({"type": "http.response.body", "body": b"done"})
        heard.append((await receive())["type"])

    assert Browser(app).fetch("/", origin=PAGE).text == "done"
    assert heard == ["http.disconnect"]

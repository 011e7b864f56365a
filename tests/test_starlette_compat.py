"""Every behaviour Starlette's own CORS tests check, run against both middlewares.

The same assertions pass for ``starlette.middleware.cors.CORSMiddleware`` and for
corsengine's drop-in; the deliberate differences are tested at the end of this module.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware as StarletteCORS
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from corsengine import CORSMiddleware as EngineCORS

# Starlette's own suite runs with filterwarnings = error, and so does a migrating project's:
# the drop-in must not warn where Starlette does not.
pytestmark = pytest.mark.filterwarnings("error::UserWarning")

LONG_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"
ALL = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY")

ClientFactory = Callable[..., TestClient]


def homepage(request: Request) -> Response:
    return PlainTextResponse("Homepage")


def homepage_with_vary(request: Request) -> Response:
    response = PlainTextResponse("Homepage", headers={"Vary": "Accept-Encoding"})
    response.headers.append("Vary", "Accept-Language")
    return response


@pytest.fixture(params=["starlette", "corsengine"])
def client(request: pytest.FixtureRequest) -> ClientFactory:
    middleware_class = StarletteCORS if request.param == "starlette" else EngineCORS

    def make(endpoint: Any = homepage, methods: list[str] | None = None, **options: Any) -> TestClient:
        app = Starlette(
            routes=[Route("/", endpoint, methods=methods)],
            middleware=[Middleware(middleware_class, **options)],  # type: ignore[arg-type]
        )
        return TestClient(app)

    return make


PREFLIGHT = {"Origin": "https://example.org", "Access-Control-Request-Method": "GET"}


def test_allow_all_with_credentials_mirrors_the_origin(client: ClientFactory) -> None:
    c = client(
        allow_origins=["*"], allow_headers=["*"], allow_methods=["*"], expose_headers=["X-Status"],
        allow_credentials=True,
    )  # fmt: skip
    response = c.options("/", headers={**PREFLIGHT, "Access-Control-Request-Headers": "X-Example"})
    assert (response.status_code, response.text) == (200, "OK")
    assert response.headers["access-control-allow-origin"] == "https://example.org"
    assert response.headers["access-control-allow-headers"] == "X-Example"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["vary"] == LONG_VARY

    for extra in ({}, {"Cookie": "star_cookie=sugar"}):
        response = c.get("/", headers={"Origin": "https://example.org", **extra})
        assert (response.status_code, response.text) == (200, "Homepage")
        assert response.headers["access-control-allow-origin"] == "https://example.org"
        assert response.headers["access-control-expose-headers"] == "X-Status"
        assert response.headers["access-control-allow-credentials"] == "true"

    response = c.get("/")
    assert (response.status_code, response.text) == (200, "Homepage")
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["vary"] == "Origin"


def test_allow_all_without_credentials_sends_star(client: ClientFactory) -> None:
    c = client(allow_origins=["*"], allow_headers=["*"], allow_methods=["*"], expose_headers=["X-Status"])
    response = c.options("/", headers={**PREFLIGHT, "Access-Control-Request-Headers": "X-Example"})
    assert (response.status_code, response.text) == (200, "OK")
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-headers"] == "X-Example"
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["vary"] == LONG_VARY

    # Without an Origin it is not a preflight: the app answers (405 for OPTIONS here).
    response = c.options("/", headers={"Access-Control-Request-Method": "GET"})
    assert response.status_code == 405

    response = c.get("/", headers={"Origin": "https://example.org"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-expose-headers"] == "X-Status"
    assert "access-control-allow-credentials" not in response.headers

    response = c.get("/")
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"


def test_specific_origin(client: ClientFactory) -> None:
    c = client(allow_origins=["https://example.org"], allow_headers=["X-Example", "Content-Type"])
    response = c.options(
        "/", headers={**PREFLIGHT, "Access-Control-Request-Headers": "X-Example, Content-Type"}
    )
    assert (response.status_code, response.text) == (200, "OK")
    assert response.headers["access-control-allow-origin"] == "https://example.org"
    assert response.headers["access-control-allow-headers"] == (
        "Accept, Accept-Language, Content-Language, Content-Type, X-Example"
    )
    assert "access-control-allow-credentials" not in response.headers

    response = c.get("/", headers={"Origin": "https://example.org"})
    assert response.headers["access-control-allow-origin"] == "https://example.org"
    assert "access-control-allow-credentials" not in response.headers

    response = c.get("/")
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"


def test_disallowed_preflight(client: ClientFactory) -> None:
    c = client(allow_origins=["https://example.org"], allow_headers=["X-Example"])
    response = c.options(
        "/",
        headers={"Origin": "https://another.org", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "X-Nope"},
    )  # fmt: skip
    assert (response.status_code, response.text) == (400, "Disallowed CORS origin, method, headers")
    assert response.headers["vary"] == LONG_VARY
    assert "access-control-allow-origin" not in response.headers

    response = c.options("/", headers={**PREFLIGHT, "Access-Control-Request-Headers": "X-Nope-1, X-Nope-2"})
    assert response.text == "Disallowed CORS headers"


def test_preflight_with_star_and_credentials_mirrors(client: ClientFactory) -> None:
    c = client(allow_origins=["*"], allow_methods=["POST"], allow_credentials=True)
    response = c.options("/", headers={**PREFLIGHT, "Access-Control-Request-Method": "POST"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://example.org"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["vary"] == LONG_VARY


@pytest.mark.parametrize("method", ALL)
def test_preflight_allow_all_methods(client: ClientFactory, method: str) -> None:
    c = client(allow_origins=["*"], allow_methods=["*"])
    response = c.options("/", headers={**PREFLIGHT, "Access-Control-Request-Method": method})
    assert response.status_code == 200
    assert method in response.headers["access-control-allow-methods"]


def test_preflight_refuses_custom_method_with_star(client: ClientFactory) -> None:
    c = client(allow_origins=["*"], allow_methods=["*"])
    response = c.options("/", headers={**PREFLIGHT, "Access-Control-Request-Method": "CUSTOM"})
    assert (response.status_code, response.text) == (400, "Disallowed CORS method")
    assert "Access-Control-Request-Method" in response.headers["vary"].split(", ")


def test_actual_requests_with_every_method_reach_the_app(client: ClientFactory) -> None:
    methods = ["delete", "get", "head", "options", "patch", "post", "put"]
    c = client(allow_origins=["*"], allow_methods=["*"], methods=methods)
    for method in ("patch", "post", "put"):
        assert getattr(c, method)("/", headers={"Origin": "https://example.org"}, json={}).status_code == 200
    for method in ("delete", "get", "head", "options"):
        assert getattr(c, method)("/", headers={"Origin": "https://example.org"}).status_code == 200
    # No Origin: an OPTIONS request is the app's, not a preflight.
    response = c.options("/", headers={"Access-Control-Request-Method": "GET"})
    assert (response.status_code, response.text) == (200, "Homepage")
    assert response.headers["vary"] == "Origin"


def test_origin_regex(client: ClientFactory) -> None:
    c = client(
        allow_headers=["X-Example", "Content-Type"], allow_origin_regex="https://.*", allow_credentials=True
    )
    for extra in ({}, {"Cookie": "star_cookie=sugar"}):
        response = c.get("/", headers={"Origin": "https://example.org", **extra})
        assert response.headers["access-control-allow-origin"] == "https://example.org"
        assert response.headers["access-control-allow-credentials"] == "true"

    response = c.get("/", headers={"Origin": "http://example.org"})
    assert (response.status_code, response.text) == (200, "Homepage")
    assert "access-control-allow-origin" not in response.headers

    response = c.options(
        "/", headers={"Origin": "https://another.com", "Access-Control-Request-Method": "GET",
                      "Access-Control-Request-Headers": "X-Example, content-type"},
    )  # fmt: skip
    assert (response.status_code, response.text) == (200, "OK")
    assert response.headers["access-control-allow-origin"] == "https://another.com"
    assert response.headers["access-control-allow-headers"] == (
        "Accept, Accept-Language, Content-Language, Content-Type, X-Example"
    )
    assert response.headers["access-control-allow-credentials"] == "true"

    response = c.options(
        "/", headers={"Origin": "http://another.com", "Access-Control-Request-Method": "GET",
                      "Access-Control-Request-Headers": "X-Example"},
    )  # fmt: skip
    assert (response.status_code, response.text) == (400, "Disallowed CORS origin")
    assert "access-control-allow-origin" not in response.headers


def test_origin_regex_is_a_full_match(client: ClientFactory) -> None:
    c = client(allow_headers=["X-Example", "Content-Type"], allow_origin_regex=r"https://.*\.example.org")
    response = c.get("/", headers={"Origin": "https://subdomain.example.org"})
    assert response.headers["access-control-allow-origin"] == "https://subdomain.example.org"
    assert "access-control-allow-credentials" not in response.headers
    response = c.get("/", headers={"Origin": "https://subdomain.example.org.hacker.com"})
    assert (response.status_code, response.text) == (200, "Homepage")
    assert "access-control-allow-origin" not in response.headers


def test_vary_defaults_to_origin(client: ClientFactory) -> None:
    response = client(allow_origins=["https://example.org"]).get(
        "/", headers={"Origin": "https://example.org"}
    )
    assert response.headers["vary"] == "Origin"


@pytest.mark.parametrize("credentials", [False, True], ids=["plain", "credentialed"])
def test_vary_is_merged_after_the_apps_values(client: ClientFactory, credentials: bool) -> None:
    c = client(homepage_with_vary, allow_origins=["*"], allow_credentials=credentials)
    response = c.get("/", headers={"Origin": "https://someplace.org"})
    assert response.headers["vary"] == "Accept-Encoding, Accept-Language, Origin"


def test_vary_merged_for_a_specific_origin(client: ClientFactory) -> None:
    def endpoint(request: Request) -> Response:
        return PlainTextResponse("Homepage", headers={"Vary": "Accept-Encoding"})

    response = client(endpoint, allow_origins=["https://example.org"]).get(
        "/", headers={"Origin": "https://example.org"}
    )
    assert response.headers["vary"] == "Accept-Encoding, Origin"


def test_allowed_origin_does_not_leak_between_requests(client: ClientFactory) -> None:
    c = client(allow_origins=["https://example.org"])
    assert c.get("/", headers={"Origin": "https://example.org"}).headers["access-control-allow-origin"]
    response = c.get("/", headers={"Origin": "https://other.org"})
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"
    response = c.get("/", headers={"Origin": "https://example.org"})
    assert response.headers["access-control-allow-origin"] == "https://example.org"


def test_private_network_allowed(client: ClientFactory) -> None:
    c = client(allow_origins=["*"], allow_methods=["*"], allow_private_network=True)
    with_pna = {**PREFLIGHT, "Access-Control-Request-Private-Network": "true"}
    response = c.options("/", headers=with_pna)
    assert (response.status_code, response.text) == (200, "OK")
    assert response.headers["access-control-allow-private-network"] == "true"
    response = c.options("/", headers=PREFLIGHT)
    assert (response.status_code, response.text) == (200, "OK")
    assert "access-control-allow-private-network" not in response.headers
    response = c.get("/", headers=with_pna)
    assert (response.status_code, response.text) == (200, "Homepage")
    assert "access-control-allow-private-network" not in response.headers
    assert "access-control-allow-origin" in response.headers


def test_private_network_refused(client: ClientFactory) -> None:
    c = client(allow_origins=["*"], allow_methods=["*"], allow_private_network=False)
    response = c.options("/", headers=PREFLIGHT)
    assert (response.status_code, response.text) == (200, "OK")
    assert "access-control-allow-private-network" not in response.headers
    response = c.options("/", headers={**PREFLIGHT, "Access-Control-Request-Private-Network": "true"})
    assert (response.status_code, response.text) == (400, "Disallowed CORS private-network")
    assert "access-control-allow-private-network" not in response.headers


@pytest.mark.parametrize("middleware_class", [StarletteCORS, EngineCORS], ids=["starlette", "corsengine"])
def test_vary_with_gzip_outside(middleware_class: Any) -> None:
    def endpoint(request: Request) -> Response:
        return PlainTextResponse("Homepage", headers={"Vary": "Accept-Language"})

    app = GZipMiddleware(
        middleware_class(Starlette(routes=[Route("/", endpoint)]), allow_origins=["https://allowed.example"]),
        minimum_size=0,
    )
    response = TestClient(app).get(
        "/", headers={"Origin": "https://allowed.example", "Accept-Encoding": "gzip"}
    )
    assert (response.status_code, response.text) == (200, "Homepage")
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["access-control-allow-origin"] == "https://allowed.example"
    assert {value.strip() for value in response.headers["vary"].split(",")} == {
        "Accept-Language",
        "Accept-Encoding",
        "Origin",
    }


def test_preflight_response_headers_match_starlette_exactly() -> None:
    options: dict[str, Any] = {
        "allow_origins": ["https://example.org"], "allow_methods": ["GET", "PUT"],
        "allow_headers": ["X-Token"], "allow_credentials": True, "max_age": 99,
    }  # fmt: skip
    headers = {**PREFLIGHT, "Access-Control-Request-Headers": "x-token"}
    answers = []
    for middleware_class in (StarletteCORS, EngineCORS):
        app = Starlette(middleware=[Middleware(middleware_class, **options)])  # type: ignore[arg-type]
        response = TestClient(app).options("/", headers=headers)
        answers.append((response.status_code, response.text, list(response.headers.multi_items())))
    assert answers[0] == answers[1]


# --- deliberate, safer differences (each invisible to Starlette's own tests) ----------


def engine_client(**options: Any) -> TestClient:
    return TestClient(
        Starlette(routes=[Route("/", homepage)], middleware=[Middleware(EngineCORS, **options)])
    )


def starlette_client(**options: Any) -> TestClient:
    return TestClient(
        Starlette(routes=[Route("/", homepage)], middleware=[Middleware(StarletteCORS, **options)])
    )


def test_difference_refused_origin_gets_no_credentials_or_expose_headers() -> None:
    options = {"allow_origins": ["https://example.org"], "allow_credentials": True, "expose_headers": ["X-A"]}
    theirs = TestClient(
        Starlette(routes=[Route("/", homepage)], middleware=[Middleware(StarletteCORS, **options)])
    )
    assert theirs.get("/", headers={"Origin": "https://evil.org"}).headers["access-control-allow-credentials"]
    response = engine_client(**options).get("/", headers={"Origin": "https://evil.org"})
    assert "access-control-allow-credentials" not in response.headers
    assert "access-control-expose-headers" not in response.headers
    assert response.headers["vary"] == "Origin"


def test_difference_the_app_cannot_add_a_second_allow_origin() -> None:
    def endpoint(request: Request) -> Response:
        return PlainTextResponse(
            "x", headers={"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "true"}
        )

    app = Starlette(
        routes=[Route("/", endpoint)], middleware=[Middleware(EngineCORS, allow_origins=["https://a.org"])]
    )
    response = TestClient(app).get("/", headers={"Origin": "https://a.org"})
    assert response.headers.get_list("access-control-allow-origin") == ["https://a.org"]
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize(
    "origin", ["https://example.org/", "HTTPS://EXAMPLE.ORG", "https://example.org\\@evil.com"], ids=repr
)
def test_difference_star_never_blesses_a_malformed_origin(origin: str) -> None:
    response = engine_client(allow_origins=["*"]).get("/", headers={"Origin": origin})
    assert "access-control-allow-origin" not in response.headers


def test_difference_star_with_credentials_is_logged_not_warned(caplog: pytest.LogCaptureFixture) -> None:
    """A migrating suite under filterwarnings=error (Starlette's own setting) keeps passing."""
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="corsengine"):
        warnings.simplefilter("error")
        EngineCORS(homepage, allow_origins=["*"], allow_credentials=True)  # type: ignore[arg-type]
        EngineCORS(homepage, allow_origin_regex="https://.*", allow_credentials=True)  # type: ignore[arg-type]
    assert caplog.text.count("every origin read credentialed responses") == 2


@pytest.mark.parametrize("make", [starlette_client, engine_client], ids=["starlette", "corsengine"])
def test_star_headers_cover_authorization_in_the_drop_in_as_in_starlette(make: Any) -> None:
    """The tutorial's settings with a bearer token: the one-import migration keeps working."""
    c = make(allow_origins=["https://example.org"], allow_headers=["*"], allow_credentials=True)
    response = c.options("/", headers={**PREFLIGHT, "Access-Control-Request-Headers": "authorization"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-headers"].lower() == "authorization"


def test_difference_vary_origin_is_not_repeated() -> None:
    def endpoint(request: Request) -> Response:
        return PlainTextResponse("x", headers={"Vary": "origin"})

    app = Starlette(
        routes=[Route("/", endpoint)], middleware=[Middleware(EngineCORS, allow_origins=["https://a.org"])]
    )
    assert TestClient(app).get("/", headers={"Origin": "https://a.org"}).headers["vary"] == "origin"

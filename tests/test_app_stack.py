"""What a browser reaches through whole applications: the middleware order decides it.

Each row builds a FastAPI app the way users build them (``add_middleware`` in some order, or
corsengine wrapped outside the app, the recipe of docs/production.md) and fetches through it
with `corsengine.testing.Browser`, as a page's script would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import PlainTextResponse

from corsengine import CORSMiddleware
from corsengine.testing import Browser, FetchResult

SPA = "https://spa.example"
EVIL = "https://evil.example"
CORS = {
    "allow_origins": [SPA],
    "allow_methods": ["GET", "PUT"],
    "allow_headers": ["X-Token"],
    "allow_credentials": True,
    "expose_headers": ["X-Total"],
}


class AuthMiddleware:
    """An auth middleware as many apps have one: no token, no entry (OPTIONS included)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (b"x-token", b"secret") not in scope["headers"]:
            await PlainTextResponse("no token", status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def api() -> FastAPI:
    app = FastAPI()

    @app.get("/items")
    @app.put("/items")
    def items() -> Any:
        return PlainTextResponse("x" * 1000, headers={"X-Total": "1000", "X-Internal": "db-7"})

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("database is down")

    return app


def plain() -> Any:
    app = api()
    app.add_middleware(CORSMiddleware, **CORS)
    return app


def gzip_inside() -> Any:
    app = api()
    app.add_middleware(GZipMiddleware)
    app.add_middleware(CORSMiddleware, **CORS)  # added last: outermost of the user middleware
    return app


def gzip_outside() -> Any:
    app = api()
    app.add_middleware(CORSMiddleware, **CORS)
    app.add_middleware(GZipMiddleware)
    return app


def auth_outside() -> Any:
    app = api()
    app.add_middleware(CORSMiddleware, **CORS)
    app.add_middleware(AuthMiddleware)  # added last: it answers before CORS runs
    return app


def auth_inside() -> Any:
    app = api()
    app.add_middleware(AuthMiddleware)
    app.add_middleware(CORSMiddleware, **CORS)
    return app


def starlette_inside() -> Any:
    # A leftover Starlette CORSMiddleware that allows everyone, inside corsengine's.
    app = api()
    app.add_middleware(StarletteCORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
    app.add_middleware(CORSMiddleware, **CORS)
    return app


def starlette_outside() -> Any:
    app = api()
    app.add_middleware(CORSMiddleware, **CORS)
    app.add_middleware(StarletteCORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
    return app


def outermost() -> Any:
    """The recipe for errors: corsengine wraps the built app, outside ServerErrorMiddleware."""
    return CORSMiddleware(api(), **CORS)


def outermost_with_auth() -> Any:
    app = api()
    app.add_middleware(AuthMiddleware)
    return CORSMiddleware(app, **CORS)


def drop_in_star() -> Any:
    app = api()
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=True)
    return app


def starlette_star() -> Any:
    app = api()
    app.add_middleware(StarletteCORSMiddleware, allow_origins=["*"], allow_credentials=True)
    return app


def native_star() -> Any:
    from corsengine import Policy

    app = api()
    app.add_middleware(CORSMiddleware, policy=Policy(["*"]))
    return app


@dataclass(frozen=True)
class Row:
    stack: Callable[[], Any]
    path: str = "/items"
    origin: str = SPA
    method: str = "GET"
    token: bool = True
    credentials: bool = False
    cookies: dict[str, str] | None = None

    def fetch(self) -> FetchResult:
        headers = {"X-Token": "secret"} if self.token else None
        return Browser(self.stack()).fetch(
            self.path,
            origin=self.origin,
            method=self.method,
            headers=headers,
            credentials=self.credentials,
            cookies=self.cookies,
        )


# (row, allowed, status the script reads or None, what `why` says)
TABLE = [
    pytest.param(
        Row(plain, method="PUT", credentials=True), True, 200, "exposed headers: X-Total", id="plain-put"
    ),
    pytest.param(Row(plain, origin=EVIL), False, None, "matches no rule", id="plain-refused-origin"),
    pytest.param(Row(gzip_inside), True, 200, "allowed", id="gzip-inside-cors"),
    pytest.param(Row(gzip_outside), True, 200, "allowed", id="gzip-outside-cors"),
    pytest.param(Row(auth_inside, token=False), True, 401, "allowed", id="auth-inside-cors-401-readable"),
    pytest.param(
        Row(auth_outside, token=False),
        False,
        None,
        "has no Access-Control-Allow-Origin",
        id="auth-outside-cors-401-unreadable",
    ),
    pytest.param(
        Row(auth_outside, method="PUT"),
        False,
        None,
        "preflight response has no Access-Control-Allow-Origin",
        id="auth-outside-cors-preflight-401",
    ),
    pytest.param(
        Row(auth_inside, method="PUT"), True, 200, "allowed", id="auth-inside-cors-preflight-skips-auth"
    ),
    pytest.param(Row(outermost_with_auth, token=False), True, 401, "allowed", id="recipe-auth-401-readable"),
    pytest.param(Row(starlette_inside, origin=EVIL), False, None, "matches no rule", id="second-cors-inside"),
    pytest.param(
        Row(starlette_outside, origin=EVIL),
        True,
        200,
        "matches no rule",
        id="second-cors-outside-widens",
    ),
    pytest.param(
        Row(plain, path="/boom"),
        False,
        None,
        "ServerErrorMiddleware",
        id="500-without-recipe",
    ),
    pytest.param(
        Row(outermost, path="/boom"), True, 500, "RuntimeError('database is down')", id="500-with-recipe"
    ),
    pytest.param(
        Row(drop_in_star, token=False, credentials=True),
        True,
        200,
        "allowed",
        id="drop-in-star-credentials-mirrors",
    ),
    pytest.param(
        Row(starlette_star, token=False, credentials=True),
        True,
        200,
        "allowed",
        id="starlette-star-credentials-mirrors",
    ),
    pytest.param(
        Row(native_star, token=False, credentials=True),
        False,
        None,
        "which a credentialed request never accepts",
        id="native-star-credentialed-fetch",
    ),
    pytest.param(Row(native_star, token=False), True, 200, "allowed", id="native-star-uncredentialed-fetch"),
]


@pytest.mark.parametrize(("row", "allowed", "status", "why"), TABLE)
def test_what_the_browser_reaches(row: Row, allowed: bool, status: int | None, why: str) -> None:
    result = row.fetch()
    assert result.allowed is allowed, result.why
    assert (result.status if result.allowed else None) == status, result.why
    assert why in result.why


def test_the_gzip_order_changes_vary_but_not_the_outcome() -> None:
    inside, outside = Row(gzip_inside).fetch(), Row(gzip_outside).fetch()
    assert inside.response is not None and outside.response is not None
    # Both bodies went out compressed and read as the app wrote them.
    assert inside.response.header("Content-Encoding") == outside.response.header("Content-Encoding") == "gzip"
    assert inside.text == outside.text == "x" * 1000
    assert inside.response.header("Vary") == "Accept-Encoding, Origin"
    assert outside.response.header("Vary") == "Origin, Accept-Encoding"
    assert inside.can_read("X-Total") and outside.can_read("X-Total")
    assert not inside.can_read("X-Internal")


def test_a_refusal_names_the_policy_when_the_policy_allowed() -> None:
    result = Row(plain, path="/boom").fetch()
    assert result.decision is not None and result.decision.allowed
    assert result.response is not None and isinstance(result.response.raised, RuntimeError)
    assert "the policy allows it, so an error handler outside corsengine's middleware" in result.why
    assert "the app raised RuntimeError('database is down') after an error handler answered" in result.why


def test_without_corsengine_the_explanation_says_which_header() -> None:
    app = api()
    result = Browser(app).fetch("/items", origin=SPA)
    assert not result.allowed
    assert result.decision is None
    assert result.why == (
        "refused: the response (200) has no Access-Control-Allow-Origin header\n"
        "no corsengine middleware was found in the app's stack"
    )


def test_a_request_aware_policy_explains_with_the_request() -> None:
    from corsengine import Policy
    from corsengine.providers import PredicateProvider

    def tenant_site(origin: str, scope: Any) -> bool:
        # The tenant's API host decides which site may call it.
        host = dict(scope["headers"])[b"host"].decode()
        return origin == "https://" + host.removeprefix("api.")

    app = api()
    policy = Policy(PredicateProvider(tenant_site), allow_headers=["X-Token"], allow_methods=["GET", "PUT"])
    app.add_middleware(CORSMiddleware, policy=policy)
    put = {"method": "PUT", "headers": {"X-Token": "1"}}
    allowed = Browser(app, base_url="https://api.acme.example").fetch(
        "/items", origin="https://acme.example", **put
    )
    assert allowed.allowed, allowed.why
    assert allowed.decision is not None and allowed.decision.allowed
    refused = Browser(app, base_url="https://api.other.example").fetch(
        "/items", origin="https://acme.example", **put
    )
    assert not refused.allowed
    assert (
        "corsengine's policy: preflight refused: origin 'https://acme.example' matches no rule" in refused.why
    )


def test_a_predicate_reading_a_custom_header_refuses_preflights() -> None:
    # A browser never sends the script's headers on a preflight: a predicate that needs one
    # refuses every preflighted request. The emulation shows it as Chromium would.
    from corsengine import Policy
    from corsengine.providers import PredicateProvider

    def tenant_site(origin: str, scope: Any) -> bool:
        return (b"x-tenant", b"acme") in scope["headers"]

    app = api()
    app.add_middleware(
        CORSMiddleware, policy=Policy(PredicateProvider(tenant_site), allow_headers=["X-Tenant"])
    )
    result = Browser(app).fetch("/items", origin="https://acme.example", headers={"X-Tenant": "acme"})
    assert not result.allowed
    assert result.preflight is not None and result.preflight.status == 400


def test_an_outer_auth_middleware_is_named_in_the_explanation() -> None:
    result = Row(auth_outside, token=False).fetch()
    assert "so a layer outside corsengine's middleware (an auth middleware added after" in result.why


def test_the_route_policy_explains_a_routed_request() -> None:
    from corsengine import Policy

    app = api()
    partners = Policy(["https://partner.example"], allow_methods=["GET", "PUT"], allow_headers=["X-Token"])
    app.add_middleware(CORSMiddleware, policy=Policy([SPA]), routes={"/items": partners})
    browser = Browser(app)
    partner = browser.fetch(
        "/items", origin="https://partner.example", method="PUT", headers={"X-Token": "secret"}
    )
    assert partner.allowed, partner.why
    assert partner.decision is not None and partner.decision.rule == "https://partner.example"
    spa = browser.fetch("/items", origin=SPA)
    assert not spa.allowed
    assert "corsengine's policy: origin 'https://spa.example' matches no rule" in spa.why


def test_a_mounted_sub_apps_own_middleware_explains_its_responses() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route

    from corsengine import Policy

    partner_api = Starlette(routes=[Route("/orders", lambda request: PlainTextResponse("orders"))])
    partner_policy = Policy(["https://partner.example"])
    outer = Starlette(
        routes=[
            Route("/", lambda request: PlainTextResponse("home")),
            Mount("/partners", app=CORSMiddleware(partner_api, policy=partner_policy)),
        ]
    )
    app = CORSMiddleware(outer, policy=Policy([SPA]))
    result = Browser(app).fetch("/partners/orders", origin="https://partner.example")
    assert result.allowed, result.why
    assert "matches an exact entry" in result.why
    home = Browser(app).fetch("/", origin="https://partner.example")
    assert not home.allowed and "matches no rule" in home.why


def test_a_shadow_policy_is_asked_once_per_request() -> None:
    from corsengine import Policy

    candidate = Policy(["https://new.example"])
    policy = Policy([SPA], shadow=candidate)
    app = api()
    app.add_middleware(CORSMiddleware, policy=policy)
    result = Browser(app).fetch("/items", origin=SPA)
    assert result.allowed, result.why
    # The explanation asks the enforced policy again, never its shadow: one disagreement.
    assert policy.shadow_report.counts["would refuse"] == 1

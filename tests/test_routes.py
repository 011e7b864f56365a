"""Per-route policies: one middleware, the longest matching path prefix chooses the policy."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from corsengine import ConfigurationError, CORSMiddleware, Policy
from corsengine.providers import CallableProvider

from .asgi import call, lifespan, plain_app

APP, PARTNER, PUBLIC_PAGE = "https://app.example.com", "https://partner.example", "https://anyone.example"

DEFAULT = Policy([APP], allow_credentials=True)
PARTNERS = Policy([PARTNER], allow_methods=["GET", "PUT"], allow_headers=["X-Partner"])
PUBLIC = Policy(["*"])
ROUTES = {"/partners/": PARTNERS, "/public": PUBLIC, "/partners/admin/": DEFAULT}


def allow_origin(app: Any, path: str, origin: str) -> bytes | None:
    _, headers, _ = anyio.run(call, app, "GET", [(b"origin", origin.encode())], path)
    return dict(headers).get(b"access-control-allow-origin")


@pytest.mark.parametrize(
    ("path", "origin", "expected"),
    [
        ("/items", APP, APP.encode()),
        ("/items", PARTNER, None),
        ("/partners", PARTNER, PARTNER.encode()),
        ("/partners/", PARTNER, PARTNER.encode()),
        ("/partners/orders/7", PARTNER, PARTNER.encode()),
        ("/partners/orders/7", APP, None),
        ("/partners/admin/users", APP, APP.encode()),  # the longest prefix wins
        ("/partners/admin/users", PARTNER, None),
        ("/public/feed", PUBLIC_PAGE, b"*"),
        ("/publicity", PUBLIC_PAGE, None),  # whole segments only
        ("/", APP, APP.encode()),
    ],
    ids=lambda value: str(value),
)
def test_the_longest_route_prefix_chooses_the_policy(path: str, origin: str, expected: bytes | None) -> None:
    app = CORSMiddleware(plain_app(), policy=DEFAULT, routes=ROUTES)
    assert allow_origin(app, path, origin) == expected


def test_preflights_are_routed_by_the_same_rule() -> None:
    app = CORSMiddleware(plain_app(), policy=DEFAULT, routes=ROUTES)
    asks = [
        (b"origin", PARTNER.encode()),
        (b"access-control-request-method", b"PUT"),
        (b"access-control-request-headers", b"x-partner"),
    ]
    status, headers, _ = anyio.run(call, app, "OPTIONS", asks, "/partners/orders")
    assert status == 200 and dict(headers)[b"access-control-allow-methods"] == b"GET, PUT"
    status, _, body = anyio.run(call, app, "OPTIONS", asks, "/items")
    assert (status, body) == (400, b"Disallowed CORS origin, method, headers")


def test_a_fastapi_router_gets_its_own_policy() -> None:
    app = FastAPI()
    partners = APIRouter(prefix="/partners")

    @partners.put("/orders")
    def put_order() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/me")
    def me() -> dict[str, str]:
        return {"name": "Ada"}

    app.include_router(partners)
    app.add_middleware(CORSMiddleware, policy=DEFAULT, routes={"/partners/": PARTNERS})
    with TestClient(app) as client:
        preflight = client.options(
            "/partners/orders",
            headers={
                "Origin": PARTNER,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "X-Partner",
            },
        )
        assert preflight.status_code == 200
        put = client.put("/partners/orders", headers={"Origin": PARTNER, "X-Partner": "1"})
        assert put.headers["access-control-allow-origin"] == PARTNER
        me_response = client.get("/me", headers={"Origin": PARTNER})
        assert "access-control-allow-origin" not in me_response.headers
        assert (
            client.get("/me", headers={"Origin": APP}).headers["access-control-allow-credentials"] == "true"
        )


def test_a_mounted_sub_app_keeps_the_headers_its_own_middleware_decided() -> None:
    def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    partner_api = Starlette(routes=[Route("/orders", hello)])
    inner = CORSMiddleware(partner_api, policy=PARTNERS)
    outer_app = Starlette(routes=[Route("/me", hello), Mount("/partners", app=inner)])
    app = CORSMiddleware(outer_app, policy=DEFAULT)  # knows nothing of the partner policy
    with TestClient(app) as client:
        mounted = client.get("/partners/orders", headers={"Origin": PARTNER})
        assert mounted.headers["access-control-allow-origin"] == PARTNER  # not stripped by the outer one
        assert mounted.headers["vary"] == "Origin"
        outside = client.get("/me", headers={"Origin": PARTNER})
        assert "access-control-allow-origin" not in outside.headers


def test_every_route_policy_reloads_in_the_lifespan() -> None:
    lists = {"now": [PARTNER]}
    partners = Policy(CallableProvider(lambda: lists["now"], ttl=30))
    app = CORSMiddleware(plain_app(), policy=DEFAULT, routes={"/partners": partners})

    async def main() -> None:
        async with lifespan(app):
            assert partners._resolver._task_group is not None
            assert DEFAULT._resolver._task_group is not None
        assert partners._resolver._task_group is None

    anyio.run(main)


@pytest.mark.parametrize(
    "routes",
    [["/partners"], {"partners/": PARTNERS}, {"/partners/": [PARTNER]}],
    ids=["a-list", "no-leading-slash", "not-a-policy"],
)
def test_bad_routes_are_a_configuration_error(routes: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CORSMiddleware(plain_app(), policy=DEFAULT, routes=routes)
    assert caught.value.codes == ("corsengine.E027",)

"""CORS headers on error responses, judged by each browser engine (docs/production.md's recipe).

A FastAPI app whose route raises, and one behind an auth middleware, served by uvicorn: with
corsengine added through ``add_middleware`` (inside Starlette's ServerErrorMiddleware) the page's
script cannot read the 500; with corsengine wrapping the built app it reads its status and body.
Each case also runs through ``corsengine.testing.Browser``, which must reach what the engine reached.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytest.importorskip("fastapi")


def error_api(origin: str, *, wrapped: bool, auth: bool = False) -> Any:
    from fastapi import FastAPI
    from starlette.responses import PlainTextResponse

    from corsengine import CORSMiddleware

    api = FastAPI()

    @api.get("/boom")
    def boom() -> None:
        raise RuntimeError("database is down")

    @api.get("/data")
    def data() -> dict[str, bool]:
        return {"ok": True}

    if auth:

        class Auth:
            def __init__(self, app: Any) -> None:
                self.app = app

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] == "http":
                    await PlainTextResponse("sign in first", status_code=401)(scope, receive, send)
                    return
                await self.app(scope, receive, send)

        api.add_middleware(Auth)
    options = {"allow_origins": [origin], "allow_credentials": True}
    if wrapped:
        return CORSMiddleware(api, **options)  # the recipe: outside ServerErrorMiddleware
    api.add_middleware(CORSMiddleware, **options)  # inside ServerErrorMiddleware
    return api


@pytest.mark.parametrize(
    ("wrapped", "auth", "path", "readable", "status", "body"),
    [
        pytest.param(True, False, "/boom", True, 500, "Internal Server Error", id="500-recipe"),
        pytest.param(False, False, "/boom", False, None, None, id="500-add-middleware"),
        pytest.param(True, True, "/data", True, 401, "sign in first", id="auth-401-recipe"),
    ],
)
def test_a_script_reads_the_error_cross_origin(
    servers, open_page, origins, wrapped, auth, path, readable, status, body
):
    from corsengine.testing import Browser

    app = error_api(origins.localhost, wrapped=wrapped, auth=auth)
    server = servers(app)

    result = open_page(origins.localhost).fetch(server.origin() + path, credentials="include")

    assert result.blocked is not readable, result
    if readable:
        assert (result.ok, result.status, result.body) == (False, status, body)
    else:
        assert result.reason_says(
            chromium="Access-Control-Allow-Origin", firefox="Access-Control-Allow-Origin"
        ), result

    # A fresh app, in a thread of its own: Playwright's sync API may keep an event loop running
    # in this one (fetch() refuses to run inside a running loop; async tests use afetch()).
    fresh = error_api(origins.localhost, wrapped=wrapped, auth=auth)
    with ThreadPoolExecutor(1) as pool:
        emulated = pool.submit(
            Browser(fresh).fetch, path, origin=origins.localhost, credentials=True
        ).result()
    assert emulated.allowed is readable, emulated.why
    if readable:
        assert (emulated.status, emulated.text) == (status, body)

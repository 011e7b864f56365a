"""The demo's two apps: the CORS-protected API (with its admin panel) and the frontend."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.applications import Starlette
from starlette.routing import Route

from corsengine import ConfigurationError, CORSMiddleware, DecisionEvent, Policy, providers

STATIC = Path(__file__).parent / "static"

# The request kinds of the grid's columns; probe.html knows how to make each one.
KINDS = [
    {"id": "get", "label": "Simple GET"},
    {"id": "put", "label": "PUT + X-Demo-Token (preflighted)"},
    {"id": "credentialed", "label": "GET with credentials"},
    {"id": "delete", "label": "DELETE (method not allowed)"},
]


@dataclasses.dataclass(frozen=True)
class Sites:
    """Where everything is served; known before any server starts (the sockets are bound first)."""

    api: str  # the API and its admin panel, e.g. http://127.0.0.1:8000
    frontend: str  # the grid page, e.g. http://127.0.0.1:8001
    grid_origins: tuple[str, ...]  # one row of the grid each; all served by the frontend app

    def default_allowlist(self) -> list[str]:
        # Every other row starts allowed, so the first screen shows both verdicts.
        return list(self.grid_origins[::2])


class Reasons:
    """The API's CORS decisions by probe id, for the grid to show next to each blocked cell.

    A page never learns why the browser refused a response (a script sees only a TypeError,
    and no header of the refused response): each probe request carries ``?probe=ID``, the
    API's policy tells this store its decision (`Policy.on_decision`), and the probe asks
    its own origin's ``/demo-reason?id=ID`` afterwards. Bounded: the newest 1,000 are kept.
    """

    SIZE = 1000

    def __init__(self) -> None:
        self._by_probe: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def record(self, event: DecisionEvent) -> None:
        query = parse_qs((event.scope or {}).get("query_string", b"").decode("latin-1"))
        probe = query.get("probe", [None])[0]
        if probe is None:
            return
        self._by_probe[probe] = {
            "allowed": event.allowed,
            "reason": event.reason,
            "request": event.request,
            "detail": event.explain(),
        }
        self._by_probe.move_to_end(probe)
        while len(self._by_probe) > self.SIZE:
            self._by_probe.popitem(last=False)

    def get(self, probe: str) -> dict[str, Any] | None:
        return self._by_probe.get(probe)


def write_allowlist(path: Path, origins: list[str]) -> None:
    """Replace the allowlist file atomically: the file provider never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        json.dump({"origins": origins}, tmp, indent=2)
        tmp.write("\n")
    os.replace(tmp.name, path)


def read_allowlist(path: Path) -> list[str]:
    origins: list[str] = json.loads(path.read_text(encoding="utf-8"))["origins"]
    return origins


def build_api(sites: Sites, allowlist: Path, reasons: Reasons | None = None) -> FastAPI:
    policy = Policy(
        # The file provider watches the file (a hand edit shows within a second); the admin
        # panel refreshes the policy itself, so its changes show at once.
        allow_origins=providers.FileProvider(allowlist),
        allow_methods=["GET", "PUT"],
        allow_headers=["X-Demo-Token"],
        allow_credentials=True,
        expose_headers=["X-Served-By"],
        # No preflight caching, so that a change in the admin panel shows on the very next run
        # instead of after the browser's cached preflight expires.
        max_age=0,
    )
    if reasons is not None:
        policy.on_decision(reasons.record)  # every CORS decision, with its reason code
    app = FastAPI(title="corsengine demo API", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(CORSMiddleware, policy=policy)
    # The responses depend on the allowlist, which changes at runtime: never cache them.
    no_store = {"Cache-Control": "no-store", "X-Served-By": "corsengine-demo"}

    @app.get("/api/hello")
    async def hello() -> Response:
        return JSONResponse({"message": "hello from the API"}, headers=no_store)

    @app.put("/api/items/{item_id}")
    async def put_item(item_id: int, request: Request) -> Response:
        token = request.headers.get("x-demo-token")
        return JSONResponse({"item": item_id, "token": token}, headers=no_store)

    @app.delete("/api/items/{item_id}")
    async def delete_item(item_id: int) -> Response:
        # Reached only by same-origin callers: CORS allows GET and PUT alone.
        return JSONResponse({"deleted": item_id}, headers=no_store)

    @app.get("/api/me")
    async def me(request: Request) -> Response:
        return JSONResponse({"session": request.cookies.get("demo_session")}, headers=no_store)

    # The admin panel is served by the API's own origin: its calls are same-origin, no CORS.
    @app.get("/admin")
    async def admin_page() -> Response:
        return HTMLResponse((STATIC / "admin.html").read_text(encoding="utf-8"))

    @app.get("/admin/allowlist")
    async def get_allowlist() -> Response:
        return JSONResponse(
            {
                "origins": read_allowlist(allowlist),
                "candidates": list(sites.grid_origins),
                "frontend": sites.frontend,
                "file": str(allowlist),
            },
            headers={"Cache-Control": "no-store"},
        )

    @app.put("/admin/allowlist")
    async def put_allowlist(request: Request) -> Response:
        # Every grid origin is a loopback page a visitor could script; only the admin page's
        # own origin may write (a cross-origin PUT carries its Origin header, even a simple one).
        if request.headers.get("origin") != sites.api:
            return JSONResponse({"errors": ["cross-origin writes are refused"]}, status_code=403)
        body: Any = await request.json()
        origins = body.get("origins") if isinstance(body, dict) else None
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            return JSONResponse({"errors": ['expected {"origins": ["https://..."]}']}, status_code=422)
        try:
            # The same validation the file provider applies, reported before anything is written.
            Policy(allow_origins=origins)
        except ConfigurationError as error:
            return JSONResponse({"errors": str(error).splitlines()}, status_code=422)
        write_allowlist(allowlist, origins)
        # The file watcher would notice within its poll interval; refresh() makes it immediate.
        await policy.refresh()
        return JSONResponse({"origins": origins})

    return app


def build_frontend(sites: Sites, reasons: Reasons | None = None) -> Starlette:
    """The grid page and the probe page; the same app answers on every frontend origin.

    ``/demo-reason?id=ID`` says what the API decided for a probe (same origin as the probe:
    no CORS involved in reading it).
    """

    def page(name: str) -> Any:
        async def endpoint(_: Request) -> Response:
            return HTMLResponse((STATIC / name).read_text(encoding="utf-8"))

        return endpoint

    async def config(_: Request) -> Response:
        return JSONResponse(
            {
                "api": sites.api,
                "admin": sites.api + "/admin",
                "frontend": sites.frontend,
                "origins": list(sites.grid_origins),
                "kinds": KINDS,
            }
        )

    async def reason(request: Request) -> Response:
        found = reasons.get(request.query_params.get("id", "")) if reasons is not None else None
        if found is None:
            return JSONResponse({"error": "no decision recorded for this probe"}, status_code=404)
        return JSONResponse(found, headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route("/", page("index.html")),
            Route("/probe", page("probe.html")),
            Route("/demo-config.json", config),
            Route("/demo-reason", reason),
        ]
    )

"""Operating corsengine, judged by real browsers: per-route policies, WebSocket origin checks."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

corsengine = pytest.importorskip("corsengine")

# Runs in the page: open a WebSocket, send one message, report the echo or the refusal.
WEBSOCKET_JS = """
async ({url}) => new Promise((resolve) => {
  const socket = new WebSocket(url);
  let opened = false;
  socket.onopen = () => { opened = true; socket.send("ping"); };
  socket.onmessage = (event) => { resolve("echo: " + event.data); socket.close(); };
  socket.onclose = () => { if (!opened) resolve("refused"); };
  setTimeout(() => resolve("timeout"), 5000);
})
"""


def test_each_route_gets_its_own_policy_in_the_browser(
    corsengine_impl: Any, serve_api: Any, open_page: Any, origins: Any, matrix: Any
) -> None:
    default = corsengine.Policy(
        [origins.ip], allow_methods=["GET", "PUT"], allow_headers=["X-Token"], max_age=0
    )
    partners = corsengine.Policy([origins.localhost])
    api = serve_api(corsengine_impl, policy=default, routes={"/whoami": partners})

    from_ip, from_localhost = open_page(origins.ip), open_page(origins.localhost)
    data = from_ip.fetch(api.url("/data"), method="PUT", headers={"X-Token": "1"})
    routed = from_localhost.fetch(api.url("/whoami"))
    not_routed = from_ip.fetch(api.url("/whoami"))
    other_route = from_localhost.fetch(api.url("/data"))

    matrix.record("Per-route policy: default route, its origin, preflighted PUT", corsengine_impl, data)
    matrix.record("Per-route policy: `/whoami` route, its origin", corsengine_impl, routed)
    matrix.record(
        "Per-route policy: `/whoami` route, the default route's origin", corsengine_impl, not_routed
    )
    assert data.ok and routed.ok, (data, routed)
    assert not_routed.blocked and other_route.blocked, (not_routed, other_route)


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


def test_a_cross_site_websocket_is_refused_and_a_listed_origin_connects(
    corsengine_impl: Any, servers: Any, open_page: Any, origins: Any
) -> None:
    app = Starlette(routes=[WebSocketRoute("/ws", _echo)])
    guarded = corsengine.CORSMiddleware(app, allow_origins=[origins.ip], check_websocket_origin=True)
    server = servers(guarded)
    url = f"ws://127.0.0.1:{server.port}/ws"

    listed = open_page(origins.ip).tab.run(WEBSOCKET_JS, {"url": url})
    cross_site = open_page(origins.localhost).tab.run(WEBSOCKET_JS, {"url": url})

    assert listed == "echo: ping"
    assert cross_site == "refused"


def test_without_the_check_any_site_can_open_the_websocket(
    corsengine_impl: Any, servers: Any, open_page: Any, origins: Any
) -> None:
    app = Starlette(routes=[WebSocketRoute("/ws", _echo)])
    server = servers(corsengine.CORSMiddleware(app, allow_origins=[origins.ip]))
    cross_site = open_page(origins.localhost).tab.run(
        WEBSOCKET_JS, {"url": f"ws://127.0.0.1:{server.port}/ws"}
    )
    assert cross_site == "echo: ping"  # why the check exists: browsers apply no CORS here

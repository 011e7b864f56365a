"""The demo's reasons: the API records each probe's decision, the frontend tells the page."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx

from examples.demo.app import Reasons, Sites, build_api, build_frontend, write_allowlist

SITES = Sites(
    api="http://127.0.0.1:8000",
    frontend="http://127.0.0.1:8001",
    grid_origins=("http://127.0.0.1:8001", "http://localhost:8001"),
)


def test_the_frontend_tells_why_the_api_refused_each_probe(tmp_path: Path) -> None:
    allowlist = tmp_path / "allowlist.json"
    write_allowlist(allowlist, SITES.default_allowlist())
    reasons = Reasons()
    api, frontend = build_api(SITES, allowlist, reasons), build_frontend(SITES, reasons)
    allowed, refused = SITES.grid_origins

    async def main() -> dict[str, dict[str, object]]:
        api_client = httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url=SITES.api)
        page = httpx.AsyncClient(transport=httpx.ASGITransport(frontend), base_url=SITES.frontend)
        async with api_client, page:
            await api_client.get("/api/hello?probe=get", headers={"Origin": refused})
            await api_client.options(
                "/api/items/1?probe=delete",
                headers={"Origin": allowed, "Access-Control-Request-Method": "DELETE"},
            )
            await api_client.get("/api/hello?probe=ok", headers={"Origin": allowed})
            await api_client.get("/api/hello", headers={"Origin": refused})  # not a probe
            found = {}
            for probe in ("get", "delete", "ok", "unknown"):
                response = await page.get("/demo-reason", params={"id": probe})
                found[probe] = response.json() if response.status_code == 200 else {}
            return found

    found = anyio.run(main)
    assert found["get"] == {
        "allowed": False,
        "reason": "no-rule",
        "request": "actual",
        "detail": f"origin '{refused}' matches no rule",
    }
    assert (found["delete"]["reason"], found["delete"]["request"]) == ("method", "preflight")
    assert "method 'DELETE' is not in allow_methods (GET, PUT)" in str(found["delete"]["detail"])
    assert found["ok"]["reason"] == "allowed"
    assert found["unknown"] == {}


def test_the_store_is_bounded() -> None:
    from corsengine import Policy

    reasons = Reasons()
    policy = Policy([])
    for index in range(Reasons.SIZE + 10):
        scope = {"type": "http", "method": "GET", "query_string": f"probe={index}".encode()}
        reasons.record(policy.event("https://evil.example", False, scope))
    assert reasons.get("0") is None and reasons.get(str(Reasons.SIZE + 9)) is not None

"""corsengine's own extensions, judged by three browser engines: patterns, callables, predicates, hot swap."""

from __future__ import annotations

import json
from typing import Any

import pytest

PREFLIGHTED = {"allow_methods": ["GET", "PUT"], "allow_headers": ["X-Custom"]}
PUT = {"method": "PUT", "headers": {"X-Custom": "1"}}


@pytest.fixture
def corsengine() -> Any:
    return pytest.importorskip("corsengine")


@pytest.mark.parametrize(
    ("pattern", "page", "allowed"),
    [
        ("http://localhost:*", "localhost", True),
        ("http://localhost:*", "ip", False),
        ("http://*.localhost:*", "app", True),
        # A subdomain wildcard never covers the apex.
        ("http://*.localhost:*", "localhost", False),
    ],
    ids=["any-port-match", "any-port-other-host", "subdomain-match", "subdomain-apex"],
)
def test_wildcard_patterns(corsengine_impl, serve_api, open_page, origins, matrix, pattern, page, allowed):
    api = serve_api(corsengine_impl, allow_origins=[pattern])

    result = open_page(getattr(origins, page)).fetch(api.url())

    matrix.record(f"Pattern `{pattern}`, page on {page_host(origins, page)}", corsengine_impl, result)
    assert result.ok is allowed, result
    assert result.blocked is not allowed


def page_host(origins: Any, page: str) -> str:
    return {"ip": "127.0.0.1", "localhost": "localhost", "app": "app.localhost"}[page]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_callable_origins_are_called_once_per_ttl_not_per_request(
    corsengine_impl, serve_api, open_page, origins, matrix, kind
):
    calls: list[str] = []

    def sync_origins() -> list[str]:
        calls.append("called")
        return [origins.app]

    async def async_origins() -> list[str]:
        return sync_origins()

    api = serve_api(corsengine_impl, allow_origins=sync_origins if kind == "sync" else async_origins)

    allowed_page = open_page(origins.app)
    first = allowed_page.fetch(api.url())
    second = allowed_page.fetch(api.url())
    refused = open_page(origins.ip).fetch(api.url())

    matrix.record(f"{kind.capitalize()} callable `allow_origins`, returned origin", corsengine_impl, first)
    matrix.record(f"{kind.capitalize()} callable `allow_origins`, other origin", corsengine_impl, refused)
    assert first.ok and second.ok, (first, second)
    assert refused.blocked, refused
    # The snapshot is cached for the provider's TTL: three requests, one call.
    assert calls == ["called"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_predicate_decides_per_origin_and_sees_the_request(
    corsengine, corsengine_impl, serve_api, open_page, origins, matrix, kind
):
    asked: list[tuple[str, str]] = []

    def sync_predicate(origin: str, scope: Any) -> bool:
        asked.append((origin, scope["path"]))
        return origin.endswith(f".localhost:{origins.port}")

    async def async_predicate(origin: str, scope: Any) -> bool:
        return sync_predicate(origin, scope)

    predicate = sync_predicate if kind == "sync" else async_predicate
    # The answer depends on the origin and the path: cached under both, never across paths.
    provider = corsengine.providers.PredicateProvider(
        predicate, cache_key=lambda origin, scope: scope["path"]
    )
    api = serve_api(corsengine_impl, allow_origins=provider, **PREFLIGHTED)

    allowed = open_page(origins.app).fetch(api.url(), **PUT)
    allowed_again = open_page(origins.app).fetch(api.url())
    refused = open_page(origins.localhost).fetch(api.url(), **PUT)

    matrix.record(
        f"{kind.capitalize()} predicate, preflighted PUT, origin it accepts", corsengine_impl, allowed
    )
    matrix.record(
        f"{kind.capitalize()} predicate, preflighted PUT, origin it refuses", corsengine_impl, refused
    )
    assert allowed.ok and allowed_again.ok, (allowed, allowed_again)
    assert refused.blocked, refused
    assert api.log.count("PUT") == 1  # the refused origin's PUT was never sent
    # Asked once per origin and path (the answer is cached), with the request's own scope.
    assert sorted(asked) == [(origins.app, "/data"), (origins.localhost, "/data")]


def test_hot_swap_flips_the_browser_outcome_without_a_restart(
    corsengine, corsengine_impl, serve_api, open_page, origins, matrix
):
    # max_age=0: the browser must ask again for every PUT, so it sees each swap at once.
    policy = corsengine.Policy(allow_origins=[origins.ip], max_age=0, **PREFLIGHTED)
    api = serve_api(corsengine_impl, policy=policy)
    page = open_page(origins.ip)

    before = page.fetch(api.url(), **PUT)
    api.server.call(policy.swap, [origins.app])
    after_put = page.fetch(api.url(), **PUT)
    after_get = page.fetch(api.url())
    api.server.call(policy.swap, [origins.ip, origins.app])
    restored = page.fetch(api.url(), **PUT)

    matrix.record("Hot swap: preflighted PUT before `swap()`", corsengine_impl, before)
    matrix.record("Hot swap: preflighted PUT after `swap()` removed the origin", corsengine_impl, after_put)
    matrix.record("Hot swap: simple GET after `swap()` removed the origin", corsengine_impl, after_get)
    matrix.record("Hot swap: preflighted PUT after `swap()` put it back", corsengine_impl, restored)
    assert before.ok, before
    assert after_put.blocked and after_get.blocked, (after_put, after_get)
    assert restored.ok, restored
    # The refused PUT never reached the app; the three allowed ones each had a preflight.
    assert api.log.count("PUT") == 2
    assert api.log.count("OPTIONS") == 3


def test_a_cached_preflight_still_lets_a_revoked_origin_send_puts(
    corsengine, corsengine_impl, serve_api, open_page, origins, matrix, engine
):
    # What max_age=0 in the test above avoids: Chromium and WebKit trust their cached preflight,
    # send the PUT without asking, and only the missing Allow-Origin on the response hides the
    # result. Firefox does not reuse a preflight to an API addressed by IP (as this one is), so
    # it asks again and never sends the PUT.
    policy = corsengine.Policy(allow_origins=[origins.ip], max_age=600, **PREFLIGHTED)
    api = serve_api(corsengine_impl, policy=policy)
    page = open_page(origins.ip)

    before = page.fetch(api.url(), **PUT)
    api.server.call(policy.swap, [origins.app])
    after = page.fetch(api.url(), **PUT)

    note = f"; the PUT reached the app {api.log.count('PUT')} times, {api.log.count('OPTIONS')} preflight(s)"
    matrix.record(
        "Hot swap with max_age=600: PUT after `swap()` removed the origin", corsengine_impl, after, note
    )
    assert before.ok, before
    assert after.blocked, after
    if engine.reuses_preflights_to_ip_hosts:
        assert api.log.count("OPTIONS") == 1
        assert api.log.count("PUT") == 2  # the revoked origin's PUT was executed by the app
    else:
        assert api.log.count("OPTIONS") == 2
        assert api.log.count("PUT") == 1  # refused at the second preflight


def test_refresh_reloads_a_callable_before_its_ttl(
    corsengine, corsengine_impl, serve_api, open_page, origins, matrix
):
    allowlist = [origins.ip]
    provider = corsengine.providers.CallableProvider(lambda: list(allowlist), ttl=3600)
    policy = corsengine.Policy(allow_origins=provider)
    api = serve_api(corsengine_impl, policy=policy)
    page = open_page(origins.ip)

    before = page.fetch(api.url())
    allowlist.clear()
    cached = page.fetch(api.url())
    api.server.call(policy.refresh)
    after = page.fetch(api.url())

    matrix.record("Callable (ttl=3600) emptied, before `refresh()`", corsengine_impl, cached)
    matrix.record("Callable (ttl=3600) emptied, after `refresh()`", corsengine_impl, after)
    assert before.ok and cached.ok, (before, cached)  # within the TTL the snapshot stands
    assert after.blocked, after


def test_a_failing_provider_denies(corsengine_impl, serve_api, open_page, origins, matrix):
    def broken() -> list[str]:
        raise ConnectionError("the tenant database is down")

    api = serve_api(corsengine_impl, allow_origins=broken)

    result = open_page(origins.ip).fetch(api.url())

    matrix.record("Callable `allow_origins` that raises", corsengine_impl, result)
    assert result.blocked, result
    assert api.log.count("GET") == 1  # the request itself still reached the app


def test_refresh_revokes_cached_predicate_answers(
    corsengine, corsengine_impl, serve_api, open_page, origins, matrix
):
    tenants = {origins.app}
    provider = corsengine.providers.PredicateProvider(lambda origin: origin in tenants, cache_ttl=3600)
    policy = corsengine.Policy(allow_origins=provider)
    api = serve_api(corsengine_impl, policy=policy)
    page = open_page(origins.app)

    before = page.fetch(api.url())
    tenants.clear()
    cached = page.fetch(api.url())
    api.server.call(policy.refresh)
    after = page.fetch(api.url())

    matrix.record("Predicate (cache_ttl=3600) now refusing, before `refresh()`", corsengine_impl, cached)
    matrix.record("Predicate (cache_ttl=3600) now refusing, after `refresh()`", corsengine_impl, after)
    assert before.ok and cached.ok, (before, cached)  # the cached answer stands...
    assert after.blocked, after  # ...until a refresh revokes it


class AllowlistDocument:
    """A remote allowlist: a JSON document on its own local server, which the test rewrites."""

    def __init__(self, origins: list[str]) -> None:
        self.body = json.dumps({"origins": origins})
        self.hits = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.hits += 1
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body.encode()})


def test_remote_json_provider(corsengine, corsengine_impl, servers, serve_api, open_page, origins, matrix):
    remote_json = getattr(corsengine.providers, "RemoteJSONProvider", None)
    if remote_json is None:
        pytest.skip("RemoteJSONProvider is not on main yet")
    document = AllowlistDocument([origins.app])
    url = servers(document).origin() + "/allowlist.json"
    policy = corsengine.Policy(allow_origins=remote_json(url, ttl=3600), max_age=0)
    api = serve_api(corsengine_impl, policy=policy)
    page = open_page(origins.app)

    listed = page.fetch(api.url())
    document.body = json.dumps({"origins": [origins.ip]})
    api.server.call(policy.refresh)
    removed = page.fetch(api.url())
    document.body = "{not json"
    api.server.call(policy.refresh)
    still_removed = page.fetch(api.url())
    allowed_elsewhere = open_page(origins.ip).fetch(api.url())

    matrix.record("Remote JSON, listed origin", corsengine_impl, listed)
    matrix.record(
        "Remote JSON, origin removed from the document, after `refresh()`", corsengine_impl, removed
    )
    matrix.record("Remote JSON, broken document: last good list kept", corsengine_impl, allowed_elsewhere)
    assert listed.ok, listed
    assert removed.blocked and still_removed.blocked, (removed, still_removed)
    # The broken document was rejected as a whole; the last good list (origins.ip) stands.
    assert allowed_elsewhere.ok, allowed_elsewhere
    assert document.hits == 3  # once at start, once per refresh: never per request

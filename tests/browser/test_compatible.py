"""Cases that use only Starlette's keyword arguments, run against both middlewares.

The browsers are the judges: each case runs in Chromium, Firefox and WebKit, loads a page from one
loopback origin and calls fetch() on the API served from another. Both middlewares must lead each
browser to the same outcome, except where corsengine is deliberately stricter (marked where it
happens, and listed in docs/browser-matrix.md).
"""

from __future__ import annotations

from typing import Any

import pytest

PREFLIGHTED = {"allow_methods": ["GET", "PUT"], "allow_headers": ["X-Custom"]}


def test_simple_get_from_a_listed_origin_is_readable(impl, serve_api, open_page, origins, matrix):
    api = serve_api(impl, allow_origins=[origins.ip])

    result = open_page(origins.ip).fetch(api.url())

    matrix.record("Simple GET, listed origin", impl, result)
    assert result.ok, result
    assert result.json == {"method": "GET"}


def test_simple_get_from_an_unlisted_origin_is_refused_but_still_reaches_the_app(
    impl, serve_api, open_page, origins, matrix
):
    api = serve_api(impl, allow_origins=[origins.ip])

    result = open_page(origins.localhost).fetch(api.url())

    matrix.record("Simple GET, unlisted origin", impl, result)
    assert result.blocked, result
    assert result.reason_says(
        chromium="Access-Control-Allow-Origin", firefox="Access-Control-Allow-Origin"
    ), result
    # CORS is not authorization: a simple request is sent, only its response is hidden.
    assert api.log.count("GET") == 1


def test_preflighted_put_with_a_listed_custom_header_is_allowed(impl, serve_api, open_page, origins, matrix):
    api = serve_api(impl, allow_origins=[origins.ip], **PREFLIGHTED)

    result = open_page(origins.ip).fetch(api.url(), method="PUT", headers={"X-Custom": "1"})

    matrix.record("Preflighted PUT + listed header, listed origin", impl, result)
    assert result.ok, result
    assert result.json == {"method": "PUT"}
    assert api.log.requests == [("OPTIONS", "/data"), ("PUT", "/data")]


def test_preflighted_put_from_an_unlisted_origin_is_never_sent(impl, serve_api, open_page, origins, matrix):
    api = serve_api(impl, allow_origins=[origins.ip], **PREFLIGHTED)

    result = open_page(origins.app).fetch(api.url(), method="PUT", headers={"X-Custom": "1"})

    matrix.record("Preflighted PUT, unlisted origin", impl, result)
    assert result.blocked, result
    # Fetch: a failed preflight means the actual request is never made.
    assert api.log.requests == [("OPTIONS", "/data")]


@pytest.mark.parametrize(
    ("case", "method", "headers"),
    [
        ("Unlisted method (DELETE)", "DELETE", {}),
        ("Unlisted header (X-Other)", "PUT", {"X-Other": "1"}),
    ],
    ids=["method", "header"],
)
def test_unlisted_method_or_header_is_refused_at_the_preflight(
    impl, serve_api, open_page, origins, matrix, case, method, headers
):
    api = serve_api(impl, allow_origins=[origins.ip], **PREFLIGHTED)

    result = open_page(origins.ip).fetch(api.url(), method=method, headers=headers)

    matrix.record(f"{case}, listed origin", impl, result)
    assert result.blocked, result
    assert api.log.count(method) == 0
    # Both middlewares answer a refused preflight with 400. Starlette still sends the origin's
    # headers, so the browsers report the status (not which part was refused: the response body
    # says which); corsengine's refusal says nothing about the origin, so they report the missing
    # Allow-Origin.
    if impl.name == "corsengine":
        assert result.reason_says(
            chromium="No 'Access-Control-Allow-Origin' header", firefox="Access-Control-Allow-Origin"
        ), result
    else:
        assert result.reason_says(
            chromium="It does not have HTTP ok status", firefox="CORS preflight response did not succeed"
        ), result


@pytest.mark.parametrize("allow_credentials", [True, False], ids=["allowed", "not-allowed"])
def test_credentialed_get(impl, serve_api, open_page, origins, context, matrix, allow_credentials):
    api = serve_api(impl, allow_origins=[origins.ip], allow_credentials=allow_credentials)
    page = open_page(origins.ip)
    # The page (127.0.0.1:P1) and the API (127.0.0.1:P2) are same-site, so the cookie goes along.
    context.add_cookie("session", "s3cret", api.url("/"))

    result = page.fetch(api.url("/whoami"), credentials="include")

    matrix.record(f"`credentials: include`, allow_credentials={allow_credentials}", impl, result)
    if allow_credentials:
        assert result.ok, result
        assert result.json == {"session": "s3cret"}
    else:
        assert result.blocked, result
        assert result.reason_says(
            chromium="Access-Control-Allow-Credentials", firefox="Access-Control-Allow-Credentials"
        ), result
        # The cookie was sent all the same; only the response is hidden from the script.
        assert api.log.count("GET", "/whoami") == 1


@pytest.mark.parametrize(
    ("header", "expected"), [("X-Exposed", "visible"), ("X-Hidden", None)], ids=["exposed", "unexposed"]
)
def test_only_exposed_response_headers_are_readable(
    impl, serve_api, open_page, origins, matrix, header, expected
):
    api = serve_api(impl, allow_origins=[origins.ip], expose_headers=["X-Exposed"])

    result = open_page(origins.ip).fetch(api.url(), read_header=header)

    matrix.record(f"Read {'an exposed' if expected else 'an unexposed'} response header", impl, result)
    assert result.ok, result
    assert result.header_value == expected


@pytest.mark.parametrize(
    ("page", "allowed"), [("app", True), ("ip", False)], ids=["matching", "not-matching"]
)
def test_allow_origin_regex(impl, serve_api, open_page, origins, matrix, page, allowed):
    api = serve_api(impl, allow_origin_regex=r"http://[a-z]+\.localhost:\d+")

    result = open_page(getattr(origins, page)).fetch(api.url())

    matrix.record(f"`allow_origin_regex`, {'matching' if allowed else 'non-matching'} origin", impl, result)
    assert result.ok is allowed, result
    assert result.blocked is not allowed


def test_allow_all_origins_without_credentials(impl, serve_api, open_page, origins, matrix):
    api = serve_api(impl, allow_origins=["*"], **PREFLIGHTED)
    page = open_page(origins.localhost)

    get = page.fetch(api.url())
    put = page.fetch(api.url(), method="PUT", headers={"X-Custom": "1"})

    matrix.record('`allow_origins=["*"]`, simple GET', impl, get)
    matrix.record('`allow_origins=["*"]`, preflighted PUT', impl, put)
    assert get.ok and put.ok, (get, put)


@pytest.mark.parametrize("allow_credentials", [True, False], ids=["allowed", "not-allowed"])
def test_allow_all_origins_with_credentials(impl, serve_api, open_page, origins, matrix, allow_credentials):
    # Starlette mirrors the origin when "*" meets allow_credentials=True; corsengine's drop-in
    # keeps that working and says so in the log (a warning would break filterwarnings=error).
    api = serve_api(impl, allow_origins=["*"], allow_credentials=allow_credentials)

    result = open_page(origins.localhost).fetch(api.url(), credentials="include")

    matrix.record(
        f'`allow_origins=["*"]`, `credentials: include`, allow_credentials={allow_credentials}', impl, result
    )
    assert result.ok is allow_credentials, result
    if not allow_credentials:
        # Fetch: "*" is not a wildcard for credentialed requests.
        assert result.reason_says(chromium="wildcard", firefox="Credential is not supported"), result


def test_allow_all_headers_covers_authorization_in_the_drop_in(impl, serve_api, open_page, origins, matrix):
    api = serve_api(impl, allow_origins=[origins.ip], allow_methods=["GET", "PUT"], allow_headers=["*"])

    page = open_page(origins.ip)
    custom = page.fetch(api.url(), method="PUT", headers={"X-Anything": "1"})
    authorization = page.fetch(api.url(), method="PUT", headers={"Authorization": "Bearer t"})

    matrix.record('`allow_headers=["*"]`, custom header', impl, custom)
    matrix.record('`allow_headers=["*"]`, `Authorization` header', impl, authorization)
    assert custom.ok, custom
    # Starlette mirrors whatever was requested, Authorization included, and so does the
    # drop-in: a single-page app sending bearer tokens keeps working after the migration.
    assert authorization.ok, authorization


def test_native_policy_star_headers_never_cover_authorization(
    corsengine_impl, serve_api, open_page, origins, matrix
):
    corsengine = pytest.importorskip("corsengine")
    # Fetch: "*" in Access-Control-Allow-Headers never covers Authorization; the native Policy
    # applies that rule itself instead of mirroring the request.
    policy = corsengine.Policy([origins.ip], allow_methods=["GET", "PUT"], allow_headers=["*"])
    api = serve_api(corsengine_impl, policy=policy)

    authorization = open_page(origins.ip).fetch(
        api.url(), method="PUT", headers={"Authorization": "Bearer t"}
    )

    matrix.record('`Policy(allow_headers=["*"])`, `Authorization` header', corsengine_impl, authorization)
    assert authorization.blocked, authorization


@pytest.mark.parametrize(
    ("max_age", "api_host"),
    [(600, "127.0.0.1"), (600, "localhost"), (0, "127.0.0.1")],
    ids=["max-age-600", "max-age-600-api-on-localhost", "max-age-0"],
)
def test_preflight_cache_follows_max_age(
    impl, serve_api, open_page, origins, matrix, engine, max_age: int, api_host: str
):
    api = serve_api(impl, allow_origins=[origins.ip], max_age=max_age, **PREFLIGHTED)
    page = open_page(origins.ip)
    url = api.url(host=api_host)

    results: list[Any] = [page.fetch(url, method="PUT", headers={"X-Custom": "1"}) for _ in range(2)]

    note = f"; {api.log.count('OPTIONS')} preflight(s) reached the server"
    where = "" if api_host == "127.0.0.1" else f", API on {api_host}"
    matrix.record(f"Two preflighted PUTs, max_age={max_age}{where}", impl, results[-1], note)
    assert all(r.ok for r in results), results
    assert api.log.count("PUT") == 2
    # With a positive max-age the browser answers the second preflight from its cache, except
    # Firefox for a server addressed by IP, which it asks again.
    cached = max_age > 0 and (api_host == "localhost" or engine.reuses_preflights_to_ip_hosts)
    assert api.log.count("OPTIONS") == (1 if cached else 2)


@pytest.mark.parametrize("listed", [True, False], ids=["null-listed", "null-unlisted"])
def test_sandboxed_iframe_sends_origin_null(impl, serve_api, open_page, origins, matrix, listed):
    allow_origins = [origins.ip, "null"] if listed else [origins.ip]
    api = serve_api(impl, allow_origins=allow_origins)

    result = open_page(origins.ip, sandboxed=True).fetch(api.url())

    matrix.record(
        f'Sandboxed iframe (`Origin: null`), `"null"` {"listed" if listed else "not listed"}', impl, result
    )
    # The iframe's page origin is listed, but a sandboxed frame speaks as "null".
    assert result.ok is listed, result


def test_the_middleware_overrides_cors_headers_the_app_set(impl, serve_api, open_page, origins, matrix):
    api = serve_api(impl, allow_origins=[origins.ip])

    result = open_page(origins.localhost).fetch(api.url("/app-sets-cors"))

    matrix.record("App sets `Access-Control-Allow-Origin: *` itself, unlisted origin", impl, result)
    if impl.name == "corsengine":
        # Deliberate difference: the middleware is authoritative over Access-Control-Allow-*.
        assert result.blocked, result
    else:
        # Starlette leaves the app's "*" on a refused origin's response: the browser allows it.
        assert result.ok, result

"""The pytest plugin, run the way users run it: a tiny test file in a fresh pytest."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
import pytest

from corsengine.providers import CallableProvider


def test_three_lines(cors_policy, cors_assert):
    policy = cors_policy(allow_origins=["https://*.partner.example"])
    cors_assert.allowed(policy, "https://app.partner.example")
    cors_assert.refused(policy, "https://partner.example.evil.net")


def test_preflight_and_decision(cors_policy, cors_assert):
    policy = cors_policy(["https://app.example.com"], allow_methods=["GET", "PUT"], max_age=60)
    decision = cors_assert.allowed(policy, "https://app.example.com", "PUT")
    assert decision.kind == "preflight"
    assert decision.headers["Access-Control-Max-Age"] == "60"
    cors_assert.refused(policy, "https://app.example.com", "DELETE")
    cors_assert.refused(policy, "https://app.example.com", request_headers=["X-Token"], preflight=True)
    cors_assert.allowed(policy, "https://app.example.com", "PUT", preflight=False)


def test_fake_clock_expires_ttls(cors_policy, cors_assert, cors_fake_clock):
    origins = ["https://old.example.com"]
    policy = cors_policy(CallableProvider(lambda: list(origins), ttl=30))
    assert policy.clock is cors_fake_clock
    cors_assert.allowed(policy, "https://old.example.com")
    origins[:] = ["https://new.example.com"]
    cors_fake_clock.advance(29)
    cors_assert.refused(policy, "https://new.example.com")  # still fresh
    cors_fake_clock.advance(2)
    # A sync evaluate() after the TTL waits for the reload (it has no loop to refresh in).
    cors_assert.allowed(policy, "https://new.example.com")
    cors_assert.refused(policy, "https://old.example.com")


def test_from_file(cors_policy, cors_assert, tmp_path):
    path = tmp_path / "cors.toml"
    path.write_text('allow_origins = ["https://app.example.com"]')
    policy = cors_policy.from_file(path)
    assert policy.clock() == 1000.0
    cors_assert.allowed(policy, "https://app.example.com")


def test_failure_message_is_the_reason(cors_policy, cors_assert):
    cors_assert.allowed(cors_policy(["https://app.example.com"]), "https://evil.example")


def test_refused_failure(cors_policy, cors_assert):
    cors_assert.refused(cors_policy(["https://app.example.com"]), "https://app.example.com")
"""


def test_fixtures_in_a_user_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: expected 'https://evil.example' GET to be allowed, "
            "but origin 'https://evil.example' matches no rule",
            "*AssertionError: expected 'https://app.example.com' GET to be refused, "
            "but origin 'https://app.example.com' matches an exact entry",
        ]
    )


APP_TESTS = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from corsengine import CORSMiddleware


def make_app():
    app = Starlette(routes=[Route("/items", lambda request: PlainTextResponse("ok", headers={"X-Total": "1"}))])
    app.add_middleware(CORSMiddleware, allow_origins=["https://spa.example"], expose_headers=["X-Total"])
    return app


def test_allowed(cors_browser):
    result = cors_browser(make_app()).fetch("/items", origin="https://spa.example")
    assert result.allowed, result.why
    assert result.can_read("X-Total")


def test_refused_says_why(cors_browser):
    result = cors_browser(make_app()).fetch("/items", origin="https://evil.example")
    assert result.allowed, result.why
"""


def test_the_browser_fixture_in_a_user_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=APP_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: refused: the response (200) has no Access-Control-Allow-Origin header",
            "*corsengine's policy: origin 'https://evil.example' matches no rule",
        ]
    )


def test_the_plugin_is_registered_by_its_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_x(cors_fake_clock):\n    assert cors_fake_clock() == 1000.0\n")
    result = pytester.runpytest("--fixtures")
    for name in ("cors_fake_clock", "cors_policy", "cors_assert", "cors_browser"):
        result.stdout.fnmatch_lines([f"{name} -- *"])
    assert pytester.runpytest().ret == 0


def test_users_without_the_plugin_are_not_affected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest("-p", "no:corsengine").assert_outcomes(passed=1)


def test_loading_the_plugin_imports_nothing_beyond_the_package() -> None:
    code = (
        "import sys, corsengine\n"
        "before = set(sys.modules)\n"
        "import corsengine.pytest_plugin\n"
        "new = set(sys.modules) - before - {'corsengine.pytest_plugin'}\n"
        "print(sorted(m for m in new if m.split('.')[0] in ('corsengine', 'pydantic')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"

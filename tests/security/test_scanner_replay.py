"""Replay the Origin values that public CORS scanners send, against every kind of policy."""

from __future__ import annotations

from corsengine import Policy
from corsengine.providers import PredicateProvider


def test_null_from_a_callable_never_gets_credentials() -> None:
    # Statically this is corsengine.E011; a dynamic source must not be a way around it.
    policy = Policy(lambda: ["null", "https://app.example.com"], allow_credentials=True)
    decision = policy.evaluate("null")
    assert not decision.allowed
    assert "Access-Control-Allow-Credentials" not in decision.headers
    assert "'null' is refused together with credentials" in decision.reason


def test_null_is_never_asked_of_a_predicate() -> None:
    asked: list[str] = []
    policy = Policy(PredicateProvider(lambda origin, scope: asked.append(origin) is None))
    assert not policy.evaluate("null").allowed
    assert asked == []

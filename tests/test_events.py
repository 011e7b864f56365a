"""Decision events and refusal logs: each reason code and rule kind through the middleware."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from corsengine import ConfigurationError, CORSMiddleware, DecisionEvent, Policy
from corsengine._events import REASONS, RULE_KINDS
from corsengine.providers import CallableProvider, PredicateProvider
from corsengine.testing import FakeClock

from .asgi import call, plain_app

APP = "https://app.example.com"


def send(
    app: Any,
    origin: str | bytes | None,
    *,
    method: str = "GET",
    path: str = "/",
    ask: str | None = None,
    headers: str | None = None,
    private_network: bool = False,
) -> int:
    raw: list[tuple[bytes, bytes]] = []
    if origin is not None:
        raw.append((b"origin", origin if isinstance(origin, bytes) else origin.encode("latin-1")))
    if ask is not None:
        raw.append((b"access-control-request-method", ask.encode()))
        method = "OPTIONS"
    if headers is not None:
        raw.append((b"access-control-request-headers", headers.encode()))
    if private_network:
        raw.append((b"access-control-request-private-network", b"true"))
    status, _, _ = anyio.run(call, app, method, raw, path)
    return status


def recorded(policy: Policy) -> list[DecisionEvent]:
    events: list[DecisionEvent] = []
    policy.on_decision(events.append)
    return events


def test_each_origin_reason_code_and_rule_kind_through_the_middleware() -> None:
    policy = Policy(
        [APP, "https://*.partner.example", "null"],
        allow_origin_regex=r"https://tenant-[0-9]+\.example",
        allow_methods=["GET", "PUT"],
        allow_headers=["X-Token"],
    )
    events = recorded(policy)
    app = CORSMiddleware(plain_app(), policy=policy)
    send(app, APP)
    send(app, "https://eu.partner.example")
    send(app, "https://tenant-7.example")
    send(app, "null")
    send(app, "https://evil.example")
    send(app, "https://evil.example/path")
    send(app, b"https://a.example\r\nX: y")
    send(app, None)  # not a CORS request: no event
    assert [(e.allowed, e.reason, e.rule_kind, e.request) for e in events] == [
        (True, "allowed", "exact", "actual"),
        (True, "allowed", "pattern", "actual"),
        (True, "allowed", "regex", "actual"),
        (True, "allowed", "null", "actual"),
        (False, "no-rule", None, "actual"),
        (False, "malformed-origin", None, "actual"),
        (False, "malformed-origin", None, "actual"),
    ]
    assert events[1].rule == "https://*.partner.example"
    assert events[0].route is None and events[0].method == "GET" and events[0].scope is not None


def test_duplicated_origin_headers_are_malformed() -> None:
    policy = Policy([APP])
    events = recorded(policy)
    app = CORSMiddleware(plain_app(), policy=policy)
    anyio.run(call, app, "GET", [(b"origin", APP.encode()), (b"origin", APP.encode())])
    assert [(e.allowed, e.reason) for e in events] == [(False, "malformed-origin")]


def test_preflight_reason_codes() -> None:
    policy = Policy([APP], allow_methods=["GET", "PUT"], allow_headers=["X-Token"])
    events = recorded(policy)
    app = CORSMiddleware(plain_app(), policy=policy)
    assert send(app, APP, ask="PUT", headers="X-Token") == 200
    assert send(app, APP, ask="DELETE") == 400
    assert send(app, APP, ask="PUT", headers="X-Other") == 400
    assert send(app, APP, ask="PUT", private_network=True) == 400
    assert send(app, "https://evil.example", ask="DELETE") == 400  # the origin's reason comes first
    # The preflight memo answers the second time: the event is the same.
    assert send(app, APP, ask="DELETE") == 400
    assert [(e.allowed, e.reason, e.request, e.rule_kind) for e in events] == [
        (True, "allowed", "preflight", "exact"),
        (False, "method", "preflight", "exact"),
        (False, "headers", "preflight", "exact"),
        (False, "private-network", "preflight", "exact"),
        (False, "no-rule", "preflight", None),
        (False, "method", "preflight", "exact"),
    ]
    assert events[1].method == "DELETE" and events[1].preflight
    assert "method 'DELETE' is not in allow_methods (GET, PUT)" in events[1].explain()
    assert events[2].request_headers == "X-Other" and events[3].private_network


def test_credentials_refusals_name_the_rule_that_matched() -> None:
    # A dynamic source may return '*' or 'null' for a credentialed policy: matched, refused.
    policy = Policy(lambda: ["*"], allow_credentials=True)
    events = recorded(policy)
    app = CORSMiddleware(plain_app(), policy=policy)
    send(app, APP)
    policy.swap(lambda: ["null"])
    send(app, "null")
    assert [(e.allowed, e.reason, e.rule_kind, e.rule) for e in events] == [
        (False, "credentials-star", "star", "*"),
        (False, "credentials-null", "null", "null"),
    ]
    assert "refused together with credentials" in events[0].explain()


def test_star_and_predicate_rule_kinds() -> None:
    star = Policy(["*"])
    predicate = Policy(PredicateProvider(lambda origin: origin.endswith(".tenant.example")))
    events = recorded(star)
    predicate_events = recorded(predicate)
    send(CORSMiddleware(plain_app(), policy=star), APP)
    app = CORSMiddleware(plain_app(), policy=predicate)
    send(app, "https://a.tenant.example")  # asked (I/O): the rule comes from resolve()
    send(app, "https://a.tenant.example")  # the cached answer
    send(app, APP)
    assert [(e.reason, e.rule_kind) for e in events] == [("allowed", "star")]
    assert [(e.allowed, e.reason, e.rule_kind) for e in predicate_events] == [
        (True, "allowed", "predicate"),
        (True, "allowed", "predicate"),
        (False, "no-rule", None),
    ]


def test_a_failing_source_is_the_reason_while_no_list_of_it_is_in_force(clock: FakeClock) -> None:
    state = {"fail": True}

    def origins() -> list[str]:
        if state["fail"]:
            raise RuntimeError("database down")
        return [APP]

    policy = Policy(CallableProvider(origins, ttl=30), clock=clock, max_stale=60)
    events = recorded(policy)
    app = CORSMiddleware(plain_app(), policy=policy)
    send(app, APP)
    state["fail"] = False
    clock.advance(6)  # past the retry delay
    send(app, APP)  # reloads in the background on this request; answered from nothing
    send(app, APP)
    state["fail"] = True
    clock.advance(31)
    send(app, "https://evil.example")  # the last good list is in force: no-rule
    assert [(e.allowed, e.reason) for e in events][:1] == [(False, "source-failing")]
    assert events[-2].allowed and events[-1].reason == "no-rule"
    (health,) = policy.health()
    assert health.loads and health.last_success is not None


def test_a_failing_predicate_is_the_reason() -> None:
    def down(origin: str) -> bool:
        raise RuntimeError("tenant table unreachable")

    policy = Policy(PredicateProvider(down))
    events = recorded(policy)
    send(CORSMiddleware(plain_app(), policy=policy), APP)
    assert [(e.allowed, e.reason) for e in events] == [(False, "source-failing")]


def test_events_name_the_route_whose_policy_decided() -> None:
    default, partners = Policy([APP]), Policy(["https://partner.example"])
    events = recorded(default)
    partner_events = recorded(partners)
    app = CORSMiddleware(plain_app(), policy=default, routes={"/partners/": partners})
    send(app, "https://partner.example", path="/partners/orders/1")
    send(app, "https://partner.example", ask="GET", path="/partners/orders")
    send(app, "https://partner.example", path="/other")
    assert [(e.allowed, e.route, e.request) for e in partner_events] == [
        (True, "/partners", "actual"),
        (True, "/partners", "preflight"),
    ]
    assert [(e.allowed, e.route) for e in events] == [(False, None)]


def test_websocket_handshakes_are_events() -> None:
    policy = Policy([APP])
    events = recorded(policy)
    app = CORSMiddleware(plain_app(), policy=policy, check_websocket_origin=True)

    async def handshake(origin: str) -> None:
        scope = {"type": "websocket", "path": "/ws", "headers": [(b"origin", origin.encode())]}
        messages = [{"type": "websocket.connect"}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "websocket.disconnect"}

        async def send(message: Any) -> None:
            pass

        await app(scope, receive, send)

    anyio.run(handshake, "https://evil.example")
    assert [(e.allowed, e.reason, e.request, e.method) for e in events] == [
        (False, "no-rule", "websocket", "GET")
    ]


def test_a_listener_that_raises_is_logged_and_never_breaks_a_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = Policy([APP])
    seen: list[str] = []

    def broken(event: DecisionEvent) -> None:
        raise ValueError("bug in a metrics hook")

    policy.on_decision(broken)
    policy.on_decision(lambda event: seen.append(event.reason))
    app = CORSMiddleware(plain_app(), policy=policy)
    with caplog.at_level(logging.ERROR, logger="corsengine"):
        for _ in range(50):
            assert send(app, APP) == 200
    assert seen == ["allowed"] * 50  # the next listener still hears every decision
    errors = [record for record in caplog.records if "decision listener" in record.getMessage()]
    assert len(errors) == 1  # once a minute, not once per request
    assert errors[0].exc_info is not None and "broken" in errors[0].getMessage()


def test_unsubscribe_and_bad_listeners() -> None:
    policy = Policy([APP])
    events: list[DecisionEvent] = []
    unsubscribe = policy.on_decision(events.append)
    unsubscribe()
    unsubscribe()  # twice is harmless
    send(CORSMiddleware(plain_app(), policy=policy), APP)
    assert events == [] and policy.decision_listeners == ()
    with pytest.raises(ConfigurationError) as caught:
        policy.on_decision(lambda: None)  # type: ignore[arg-type,misc]
    assert caught.value.codes == ("corsengine.E026",)


def test_refusals_are_logged_at_info_escaped_and_at_a_bounded_rate(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    policy = Policy([APP], allow_methods=["GET"], clock=clock)
    app = CORSMiddleware(plain_app(), policy=policy, routes={"/partners": Policy([APP])})
    with caplog.at_level(logging.INFO, logger="corsengine"):
        for _ in range(5):
            send(app, "https://evil.example\r\nforged line")
            send(app, APP, ask="DELETE")
        send(app, APP)  # allowed: never logged
        lines = [record.getMessage() for record in caplog.records]
        assert lines == [
            "corsengine: refused origin 'https://evil.example\\r\\nforged line' [malformed-origin]: "
            "malformed Origin header 'https://evil.example\\r\\nforged line' (not a canonical serialized "
            "origin)",
            "corsengine: refused a preflight from origin 'https://app.example.com' [method]: preflight "
            "refused: origin 'https://app.example.com' matches an exact entry; method 'DELETE' is not in "
            "allow_methods (GET)",
        ]
        caplog.clear()
        for index in range(100):  # a flood of distinct origins
            send(app, f"https://{index}.evil.example", path="/partners/x")
        assert len(caplog.records) == 18  # 20 lines a minute in all
        first = caplog.records[0].getMessage()
        assert "on route '/partners'" in first and "(8 similar lines suppressed)" in first
        clock.advance(60)
        send(app, "https://evil.example\r\nforged line")
        assert "(82 similar lines suppressed)" in caplog.records[-1].getMessage()
        assert len(caplog.records) == 19


def test_no_refusal_is_logged_below_info(caplog: pytest.LogCaptureFixture) -> None:
    app = CORSMiddleware(plain_app(), allow_origins=[APP])
    with caplog.at_level(logging.WARNING, logger="corsengine"):
        send(app, "https://evil.example")
    assert caplog.records == []


def test_the_vocabularies_are_the_documented_ones() -> None:
    assert set(REASONS) == {
        "allowed",
        "no-rule",
        "malformed-origin",
        "credentials-star",
        "credentials-null",
        "source-failing",
        "method",
        "headers",
        "private-network",
    }
    assert RULE_KINDS == ("exact", "pattern", "regex", "star", "null", "predicate")


def test_the_docs_table_of_reason_codes_is_the_registry() -> None:
    page = (Path(__file__).parents[1] / "docs" / "production.md").read_text()
    table = page.split("| reason | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([a-z-]+)` \| (.+) \|$", table, re.M)
    assert [code for code, _ in rows] == list(REASONS)
    for code, meaning in rows:
        plain = re.sub("[`']", "", meaning)
        assert plain == re.sub("[`']", "", REASONS[code]), code

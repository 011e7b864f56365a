"""The exporters, fed by real decisions the middleware makes: Prometheus and OpenTelemetry."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from corsengine import CORSMiddleware, Policy
from corsengine.metrics import otel, prometheus
from corsengine.providers import CallableProvider
from corsengine.testing import FakeClock

APP, PARTNER, EVIL = "https://app.example.com", "https://partner.example", "https://evil.example"


def endpoint(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


def client_for(default: Policy, partners: Policy) -> TestClient:
    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "PUT"])])
    return TestClient(CORSMiddleware(app, policy=default, routes={"/partners/": partners}))


def traffic(client: TestClient) -> None:
    client.get("/", headers={"Origin": APP})
    client.get("/", headers={"Origin": APP})
    client.get("/", headers={"Origin": EVIL})
    client.get("/", headers={"Origin": "https://evil.example/x"})
    client.get("/")  # no Origin: not a CORS request, not counted
    preflight = {"Origin": PARTNER, "Access-Control-Request-Method": "PUT"}
    client.options("/partners/orders", headers=preflight)
    client.options("/partners/orders", headers={**preflight, "Access-Control-Request-Method": "DELETE"})


class Source:
    """A callable allowlist that fails on demand."""

    def __init__(self) -> None:
        self.failing = False

    def __call__(self) -> list[str]:
        if self.failing:
            raise RuntimeError("tenant table unreachable")
        return [PARTNER]


def policies(clock: FakeClock) -> tuple[Policy, Policy, Source]:
    source = Source()
    partners = Policy(CallableProvider(source, ttl=30), allow_methods=["GET", "PUT"], clock=clock)
    return Policy([APP], clock=clock), partners, source


def test_prometheus_counts_the_middlewares_decisions_and_reports_source_health(clock: FakeClock) -> None:
    default, partners, source = policies(clock)
    registry = CollectorRegistry()
    exporter = prometheus({"default": default, "partners": partners}, registry=registry)
    client = client_for(default, partners)
    traffic(client)

    def count(**labels: str) -> float | None:
        base = {"route": "", "request": "actual", "rule_kind": ""}
        value: float | None = registry.get_sample_value("corsengine_decisions_total", {**base, **labels})
        return value

    assert count(policy="default", outcome="allowed", reason="allowed", rule_kind="exact") == 2
    assert count(policy="default", outcome="refused", reason="no-rule") == 1
    assert count(policy="default", outcome="refused", reason="malformed-origin") == 1
    preflight = {"policy": "partners", "route": "/partners", "request": "preflight", "rule_kind": "exact"}
    assert count(**preflight, outcome="allowed", reason="allowed") == 1
    assert count(**preflight, outcome="refused", reason="method") == 1

    source_labels = {"policy": "partners", "source": partners.health()[0].source}
    gauge = lambda name: registry.get_sample_value(f"corsengine_source_{name}", source_labels)  # noqa: E731
    assert gauge("up") == 1.0
    assert gauge("last_success_timestamp_seconds") == pytest.approx(time.time(), abs=5)
    assert gauge("last_error_timestamp_seconds") is None  # never failed
    assert gauge("age_seconds") == 0.0 and gauge("staleness_seconds") == 0.0
    assert gauge("load_duration_seconds") == 0.0  # the fake clock did not move during the load
    # A static list never loads: it has no health series.
    text = generate_latest(registry).decode()
    assert 'policy="default",source=' not in text

    source.failing = True
    clock.advance(45)  # past the TTL: the next request reloads, and the load fails
    client.get("/partners/x", headers={"Origin": PARTNER})
    client.get("/partners/x", headers={"Origin": PARTNER})
    assert gauge("up") == 0.0
    assert gauge("last_error_timestamp_seconds") == pytest.approx(time.time(), abs=5)
    assert gauge("age_seconds") == 45.0 and gauge("staleness_seconds") == 15.0
    # The last good list stays in force (max_stale): the partner is still allowed.
    assert (
        count(policy="partners", route="/partners", outcome="allowed", reason="allowed", rule_kind="exact")
        == 2
    )

    exporter.close()
    assert default.decision_listeners == () and partners.decision_listeners == ()
    assert "corsengine_decisions_total" not in generate_latest(registry).decode()


def otel_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    if data is None:  # nothing was observed
        return {}
    return {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def test_otel_counts_the_middlewares_decisions_and_observes_source_health(clock: FakeClock) -> None:
    default, partners, source = policies(clock)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    exporter = otel({"default": default, "partners": partners}, meter=provider.get_meter("test"))
    client = client_for(default, partners)
    traffic(client)
    source.failing = True
    clock.advance(45)
    client.get("/partners/x", headers={"Origin": PARTNER})
    client.get("/partners/x", headers={"Origin": PARTNER})

    points = otel_points(reader)
    counts = {
        tuple(
            point.attributes[name] for name in ("policy", "route", "request", "outcome", "reason")
        ): point.value
        for point in points["corsengine.decisions"]
    }
    assert counts == {
        ("default", "", "actual", "allowed", "allowed"): 2,
        ("default", "", "actual", "refused", "no-rule"): 1,
        ("default", "", "actual", "refused", "malformed-origin"): 1,
        ("partners", "/partners", "preflight", "allowed", "allowed"): 1,
        ("partners", "/partners", "preflight", "refused", "method"): 1,
        ("partners", "/partners", "actual", "allowed", "allowed"): 2,
    }
    health = {
        name: [p.value for p in found]
        for name, found in points.items()
        if name.startswith("corsengine.source.")
    }
    assert health["corsengine.source.up"] == [0]
    assert health["corsengine.source.age"] == [45.0] and health["corsengine.source.staleness"] == [15.0]
    assert health["corsengine.source.last_error"][0] == pytest.approx(time.time(), abs=5)
    assert points["corsengine.source.up"][0].attributes == {
        "policy": "partners",
        "source": partners.health()[0].source,
    }

    exporter.close()
    client.get("/", headers={"Origin": APP})
    assert otel_points(reader) == {}  # closed: no more observations
    assert default.decision_listeners == ()


def test_one_policy_is_labelled_default() -> None:
    policy = Policy([APP])
    registry = CollectorRegistry()
    exporter = prometheus(policy, registry=registry)
    client = TestClient(CORSMiddleware(Starlette(routes=[Route("/", endpoint)]), policy=policy))
    client.get("/", headers={"Origin": APP})
    labels = {"policy": "default", "route": "", "request": "actual", "outcome": "allowed"}
    labels |= {"reason": "allowed", "rule_kind": "exact"}
    assert registry.get_sample_value("corsengine_decisions_total", labels) == 1
    exporter.close()
    exporter.close()  # idempotent


def test_a_policy_named_twice_or_not_a_policy_is_refused() -> None:
    policy = Policy([APP])
    with pytest.raises(ValueError, match="named twice"):
        prometheus({"a": policy, "b": policy}, registry=CollectorRegistry())
    with pytest.raises(TypeError, match=r"not a corsengine\.Policy"):
        otel({"a": [APP]})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("exporter", "module", "extra"),
    [(prometheus, "prometheus_client", "prometheus"), (otel, "opentelemetry.metrics", "otel")],
)
def test_a_missing_extra_says_what_to_install(
    exporter: Any, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an absent package looks like to import
    with pytest.raises(ImportError, match=rf"pip install 'corsengine\[{extra}\]'"):
        exporter(Policy([APP]))


def test_the_package_imports_no_exporter_library() -> None:
    import subprocess

    code = (
        "import sys, corsengine, corsengine.metrics; "
        "print(sorted(m for m in sys.modules if m.startswith(('prometheus', 'opentelemetry'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""Decision counters and source health for Prometheus and OpenTelemetry (optional extras).

Both exporters are built on `Policy.on_decision` and `Policy.health`: a counter of
decisions by policy, route, request kind, outcome, reason code and rule kind, and gauges of
each loading source's health, read when the metrics are collected. Their libraries are
imported only when an exporter is made: ``pip install 'corsengine[prometheus]'`` or
``pip install 'corsengine[otel]'``.

Examples:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from corsengine import Policy
    >>> from corsengine.metrics import prometheus
    >>> policy = Policy(["https://app.example.com"])
    >>> registry = CollectorRegistry()
    >>> exporter = prometheus(policy, registry=registry)
    >>> policy.notify(policy.event("https://evil.example", False))  # what the middleware does
    >>> for line in generate_latest(registry).decode().splitlines():
    ...     if line.startswith("corsengine_decisions_total"):
    ...         print(line.replace(",", ", "))
    corsengine_decisions_total{outcome="refused", policy="default", reason="no-rule",
        request="actual", route="", rule_kind=""} 1.0
    >>> exporter.close()
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any

from ._events import DecisionEvent
from ._policy import Policy
from ._resolver import SourceHealth

__all__ = ["Exporter", "otel", "prometheus"]

Policies = Policy | Mapping[str, Policy]
DECISION_LABELS = ("policy", "route", "request", "outcome", "reason", "rule_kind")
# (metric suffix, description, unit, what of a SourceHealth it reports)
HEALTH_GAUGES: tuple[tuple[str, str, str, Callable[[SourceHealth], float | None]], ...] = (
    ("up", "1 while the source's last load succeeded, 0 while it fails", "1", lambda h: float(h.ok)),
    (
        "last_success_timestamp_seconds",
        "when the source last loaded its list (seconds since the epoch)",
        "s",
        lambda h: h.last_success,
    ),
    (
        "last_error_timestamp_seconds",
        "when a load of the source last failed (seconds since the epoch)",
        "s",
        lambda h: h.last_error_at,
    ),
    ("age_seconds", "how old the source's list in force is", "s", lambda h: h.age),
    ("staleness_seconds", "how far past its TTL the source's list in force is", "s", lambda h: h.staleness),
    ("load_duration_seconds", "how long the source's last good load took", "s", lambda h: h.load_seconds),
)


def _extra(module: str, extra: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"corsengine.metrics.{extra} needs {package}, which is not installed: "
            f"pip install 'corsengine[{extra}]'"
        ) from error


def _named(policies: Policies) -> dict[str, Policy]:
    named = {"default": policies} if isinstance(policies, Policy) else dict(policies)
    for name, policy in named.items():
        if not isinstance(policy, Policy):
            raise TypeError(f"policy {name!r} is a {type(policy).__name__}, not a corsengine.Policy")
    if len({id(policy) for policy in named.values()}) != len(named):
        raise ValueError("a policy is named twice: its decisions would be counted twice")
    return named


class _Counts:
    """Decisions counted by label tuple: a dict increment per request, read at collection.

    prometheus-client's ``Counter.inc()`` takes a lock and OpenTelemetry's ``Counter.add()``
    hashes the attributes on each call (about 10 µs a request with the SDK); both exporters
    report these totals when collected instead, as cumulative counters. Decisions come from
    the event loop's thread, one at a time.
    """

    def __init__(self) -> None:
        self.totals: dict[tuple[str, ...], int] = {}

    def listener(self, name: str) -> Callable[[DecisionEvent], None]:
        totals = self.totals

        def count(event: DecisionEvent) -> None:
            labels = (
                name,
                event.route or "",
                event.request,
                "allowed" if event.allowed else "refused",
                event.reason,
                event.rule_kind or "",
            )
            totals[labels] = totals.get(labels, 0) + 1

        return count


def _sources(named: Mapping[str, Policy]) -> Iterator[tuple[str, SourceHealth]]:
    """The sources that load (a static list or a predicate never fails), per policy."""
    for name, policy in named.items():
        for health in policy.health():
            if health.loads:
                yield name, health


class Exporter:
    """What `prometheus` and `otel` return: ``close()`` stops counting and reporting.

    Examples:
        >>> from prometheus_client import CollectorRegistry
        >>> from corsengine import Policy
        >>> from corsengine.metrics import prometheus
        >>> policy = Policy(["https://app.example.com"])
        >>> exporter = prometheus(policy, registry=CollectorRegistry())
        >>> len(policy.decision_listeners)
        1
        >>> exporter.close()
        >>> policy.decision_listeners
        ()
    """

    def __init__(self, unsubscribes: Iterable[Callable[[], None]], on_close: Callable[[], None]) -> None:
        self._unsubscribes = list(unsubscribes)
        self._on_close = on_close
        self.closed = False

    def close(self) -> None:
        """Unsubscribe from every policy and stop reporting health (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._on_close()


def prometheus(policies: Policies, *, registry: Any = None, namespace: str = "corsengine") -> Exporter:
    """Count decisions and report source health in a ``prometheus_client`` registry.

    ``policies`` is one `Policy` (labelled ``policy="default"``) or a mapping of names to
    policies (the default one and each route's). Metrics: ``corsengine_decisions_total``
    (labels ``policy``, ``route``, ``request``, ``outcome``, ``reason``, ``rule_kind``; an
    empty ``route`` is the middleware's own ``policy=``, an empty ``rule_kind`` means no
    rule matched), and per loading source (labels ``policy``, ``source``):
    ``corsengine_source_up``, ``_last_success_timestamp_seconds``,
    ``_last_error_timestamp_seconds``, ``_age_seconds``, ``_staleness_seconds`` and
    ``_load_duration_seconds``, read at each scrape. ``registry`` defaults to
    ``prometheus_client.REGISTRY``. Needs ``pip install 'corsengine[prometheus]'``.

    Examples:
        >>> from prometheus_client import CollectorRegistry
        >>> from corsengine import Policy
        >>> from corsengine.metrics import prometheus
        >>> from corsengine.testing import FakeClock
        >>> policy = Policy(allow_origins=lambda: ["https://app.example.com"], clock=FakeClock())
        >>> registry = CollectorRegistry()
        >>> exporter = prometheus({"api": policy}, registry=registry)
        >>> policy.evaluate("https://app.example.com").allowed  # the first load
        True
        >>> registry.get_sample_value(
        ...     "corsengine_source_up", {"policy": "api", "source": "CallableProvider(<lambda>, ttl=30.0)"}
        ... )
        1.0
        >>> exporter.close()
    """
    client = _extra("prometheus_client", "prometheus", "prometheus-client")
    core = _extra("prometheus_client.core", "prometheus", "prometheus-client")
    named = _named(policies)
    registry = client.REGISTRY if registry is None else registry
    counts = _Counts()

    class Collector:
        def collect(self) -> Iterator[Any]:
            decisions = core.CounterMetricFamily(
                f"{namespace}_decisions", "CORS decisions made by the middleware", labels=DECISION_LABELS
            )
            for labels, total in list(counts.totals.items()):
                decisions.add_metric(labels, total)
            yield decisions
            families = {
                suffix: core.GaugeMetricFamily(
                    f"{namespace}_source_{suffix}", help_text, labels=("policy", "source")
                )
                for suffix, help_text, _, _ in HEALTH_GAUGES
            }
            for name, health in _sources(named):
                for suffix, _, _, read in HEALTH_GAUGES:
                    value = read(health)
                    if value is not None:
                        families[suffix].add_metric((name, health.source[:200]), value)
            yield from families.values()

    collector = Collector()
    registry.register(collector)
    listeners = [policy.on_decision(counts.listener(name)) for name, policy in named.items()]
    return Exporter(listeners, lambda: registry.unregister(collector))


def otel(policies: Policies, *, meter: Any = None) -> Exporter:
    """Count decisions and observe source health as OpenTelemetry metrics on ``meter``.

    The same data as `prometheus`: a cumulative counter ``corsengine.decisions``
    (an observable counter, so that a request costs a dict increment; attributes
    ``policy``, ``route``, ``request``, ``outcome``, ``reason``, ``rule_kind``) and
    observable gauges ``corsengine.source.up``, ``.last_success``, ``.last_error`` (seconds
    since the epoch), ``.age``, ``.staleness`` and ``.load_duration`` (seconds), attributes
    ``policy`` and ``source``. ``meter`` defaults to the global meter provider's
    ``corsengine`` meter. Needs ``pip install 'corsengine[otel]'`` (and an SDK to export).

    Examples:
        >>> from opentelemetry.sdk.metrics import MeterProvider
        >>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        >>> from corsengine import Policy
        >>> from corsengine.metrics import otel
        >>> reader = InMemoryMetricReader()
        >>> meter = MeterProvider(metric_readers=[reader]).get_meter("myapp")
        >>> policy = Policy(["https://app.example.com"])
        >>> exporter = otel(policy, meter=meter)
        >>> policy.notify(policy.event("https://app.example.com", True))  # what the middleware does
        >>> (metric,) = reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics
        >>> metric.name, [(p.value, p.attributes["reason"]) for p in metric.data.data_points]
        ('corsengine.decisions', [(1, 'allowed')])
        >>> exporter.close()
    """
    api = _extra("opentelemetry.metrics", "otel", "opentelemetry-api")
    from . import __version__

    if meter is None:
        meter = api.get_meter("corsengine", __version__)
    named = _named(policies)
    counts = _Counts()
    closed = False

    def observe_decisions(_options: Any) -> Iterator[Any]:
        if closed:
            return
        for labels, total in list(counts.totals.items()):
            yield api.Observation(total, dict(zip(DECISION_LABELS, labels, strict=True)))

    meter.create_observable_counter(
        "corsengine.decisions",
        callbacks=[observe_decisions],
        unit="{decision}",
        description="CORS decisions made by the middleware",
    )

    def observing(read: Callable[[SourceHealth], float | None]) -> Callable[[Any], Iterator[Any]]:
        def observe(_options: Any) -> Iterator[Any]:
            if closed:
                return
            for name, health in _sources(named):
                value = read(health)
                if value is not None:
                    yield api.Observation(value, {"policy": name, "source": health.source[:200]})

        return observe

    for suffix, help_text, unit, read in HEALTH_GAUGES:
        name = suffix.removesuffix("_seconds").removesuffix("_timestamp")
        meter.create_observable_gauge(
            f"corsengine.source.{name}", callbacks=[observing(read)], unit=unit, description=help_text
        )

    def stop() -> None:
        nonlocal closed
        closed = True  # OpenTelemetry has no way to remove an instrument: it reports nothing

    return Exporter([policy.on_decision(counts.listener(name)) for name, policy in named.items()], stop)

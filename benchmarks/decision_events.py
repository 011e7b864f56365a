"""``python -m benchmarks.decision_events``: what decision listeners cost per request, in process.

The in-process harness of ``benchmarks.asgi`` (prebuilt scopes, no-op send, CPU time), for the
scenarios with an Origin, with the same policy and nothing else changed between targets:
no listener; one no-op listener; the Prometheus exporter; the OpenTelemetry exporter (SDK
with an in-memory reader). Every target runs in each round, in a rotating order, and each
figure is the median over rounds of (target - bare app). With no listener the middleware
checks one attribute; the rest is the cost of building the event and of the listener.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.apps import CORS_OPTIONS, bare_app, make_origins
from benchmarks.asgi import SCENARIOS, _batch, build_scope
from corsengine import CORSMiddleware, Policy

ORIGINS = 100


def _policy() -> Policy:
    return Policy(make_origins(ORIGINS), starlette_compatible=True, **CORS_OPTIONS)


def _targets() -> dict[str, Callable[[], Any]]:
    def none() -> Any:
        return CORSMiddleware(bare_app, policy=_policy())

    def noop() -> Any:
        policy = _policy()
        policy.on_decision(lambda event: None)
        return CORSMiddleware(bare_app, policy=policy)

    def prometheus() -> Any:
        from prometheus_client import CollectorRegistry

        from corsengine.metrics import prometheus as export

        policy = _policy()
        export(policy, registry=CollectorRegistry())
        return CORSMiddleware(bare_app, policy=policy)

    def otel() -> Any:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        from corsengine.metrics import otel as export

        policy = _policy()
        export(policy, meter=MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench"))
        return CORSMiddleware(bare_app, policy=policy)

    return {"no listener": none, "no-op listener": noop, "prometheus": prometheus, "otel": otel}


def run(rounds: int, count: int) -> dict[str, dict[str, float]]:
    loop = asyncio.new_event_loop()
    apps = {name: make() for name, make in _targets().items()}
    results: dict[str, dict[str, float]] = {}
    for scenario in SCENARIOS:
        if scenario.origin_allowed is None:
            continue
        scope = build_scope(scenario, make_origins(ORIGINS))
        targets = {"bare": bare_app, **apps}
        for app in targets.values():  # warm: first loads, memos
            loop.run_until_complete(_batch(app, dict(scope), 200))
        samples: dict[str, list[float]] = {name: [] for name in apps}
        names = list(targets)
        for index in range(rounds):
            order = names[index % len(names) :] + names[: index % len(names)]
            gc.collect()
            timings = {
                name: loop.run_until_complete(_batch(targets[name], scope, count)) / count for name in order
            }
            for name in apps:
                samples[name].append(timings[name] - timings["bare"])
        results[scenario.name] = {name: statistics.median(values) for name, values in samples.items()}
    loop.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.decision_events", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--count", type=int, default=5000, help="requests per target per round")
    args = parser.parse_args(argv)
    results = run(args.rounds, args.count)
    names = list(next(iter(results.values())))
    print(f"Overhead over the bare app, ns per request ({ORIGINS} origins; median of {args.rounds} rounds)\n")
    print("| scenario | " + " | ".join(names) + " |")
    print("|---|" + "--:|" * len(names))
    for scenario, row in results.items():
        base = row["no listener"]
        cells = [
            f"{row[name]:,.0f}" + ("" if name == "no listener" else f" (+{row[name] - base:,.0f})")
            for name in names
        ]
        print(f"| {scenario} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

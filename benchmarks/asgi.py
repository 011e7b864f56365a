"""In-process benchmark: what each CORS middleware adds to a bare ASGI app, per request.

No server and no network: prebuilt scope dicts, a no-op ``receive``/``send`` and ``N`` calls inside
one coroutine, so the harness adds as little as possible to what is measured. Targets run in
interleaved rounds (bare, Starlette, corsengine, ... in a rotating order) and every figure is the
median over rounds, so drift in CPU frequency or a noisy neighbour hits all targets alike.
Overhead is ``middleware - bare`` computed within each round, then the median of those.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.apps import (
    REFUSED_ORIGIN,
    ASGIApp,
    Message,
    Scope,
    bare_app,
    corsengine_cors,
    make_origins,
    starlette_cors,
)
from corsengine import Policy, providers

SIZES = (1, 100, 10_000)
# Dynamic providers are compared with a static list at this size, the size of the Starlette target.
DYNAMIC_SIZE = 100

# What a browser sends besides Origin: the middlewares scan the raw header list, so its length
# is part of their cost.
_BROWSER_HEADERS = [
    (b"host", b"api.example.com"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"),
    (b"accept", b"*/*"),
    (b"accept-language", b"en-US,en;q=0.9"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"referer", b"https://app.example.com/"),
    (b"connection", b"keep-alive"),
]


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    # Either None (no Origin header) or whether the request's origin is on the allowlist.
    origin_allowed: bool | None
    preflight: bool = False


SCENARIOS = (
    Scenario("no Origin", "GET", None),
    Scenario("allowed", "GET", True),
    Scenario("refused", "GET", False),
    Scenario("preflight allowed", "OPTIONS", True, preflight=True),
    Scenario("preflight refused", "OPTIONS", False, preflight=True),
)


def build_scope(scenario: Scenario, origins: Sequence[str]) -> Scope:
    headers = list(_BROWSER_HEADERS)
    if scenario.origin_allowed is not None:
        origin = origins[-1] if scenario.origin_allowed else REFUSED_ORIGIN
        headers.append((b"origin", origin.encode("latin-1")))
    if scenario.preflight:
        headers.append((b"access-control-request-method", b"POST"))
        headers.append((b"access-control-request-headers", b"content-type,x-custom"))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": scenario.method,
        "scheme": "https",
        "path": "/items",
        "raw_path": b"/items",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 54321),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    pass


async def _batch(app: ASGIApp, scope: Scope, count: int) -> int:
    # The loop body is the request and nothing else; one coroutine for the whole batch.
    receive, send = _receive, _send
    start = time.perf_counter_ns()
    for _ in range(count):
        await app(scope, receive, send)
    return time.perf_counter_ns() - start


@dataclass
class Settings:
    # Many short rounds rather than a few long ones: on a shared machine, the median of many
    # rounds shrugs off the ones another process interrupted.
    rounds: int = 15
    # Each batch runs for about this long; calibrated per target so slow and fast targets get
    # an equally precise measurement.
    batch_ns: int = 5_000_000
    sizes: tuple[int, ...] = SIZES
    flood_origins: int = 1_000_000
    flood_cache_size: int = 10_000
    # A full collection before each batch, so that no target pays for another's garbage;
    # it costs milliseconds each, which only matters for the smoke run.
    collect: bool = True


QUICK = Settings(
    rounds=2, batch_ns=100_000, sizes=(1, 100), flood_origins=2_000, flood_cache_size=200, collect=False
)


@dataclass
class Cell:
    """One scenario at one allowlist size: ns per request for each target, one sample per round."""

    size: int
    scenario: str
    samples: dict[str, list[float]] = field(default_factory=dict)

    def median(self, target: str) -> float:
        return statistics.median(self.samples[target])

    def overhead(self, target: str) -> float:
        pairs = zip(self.samples[target], self.samples["bare"], strict=True)
        return statistics.median(t - b for t, b in pairs)


class Runner:
    """Owns the event loop every call runs on; dynamic providers keep state tied to it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _calibrate(self, app: ASGIApp, scope: Scope) -> int:
        count = 16
        while True:
            elapsed = self.run(_batch(app, scope, count))
            if elapsed >= self.settings.batch_ns / 4 or count >= 1 << 22:
                return max(1, int(count * self.settings.batch_ns / max(elapsed, 1)))
            count *= 4

    def measure(self, size: int, scenario: Scenario, apps: dict[str, ASGIApp], scope: Scope) -> Cell:
        counts = {name: self._calibrate(app, scope) for name, app in apps.items()}
        cell = Cell(size, scenario.name, {name: [] for name in apps})
        names = list(apps)
        for round_ in range(self.settings.rounds):
            # Rotate the order so that no target always runs right after the same other one.
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                if self.settings.collect:
                    gc.collect()
                elapsed = self.run(_batch(apps[name], scope, counts[name]))
                cell.samples[name].append(elapsed / counts[name])
        return cell

    def probe(self, app: ASGIApp, scope: Scope) -> tuple[int, dict[str, str]]:
        """One request's status and response headers, to check a target does what it is timed for."""
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        self.run(app(scope, _receive, send))
        start = sent[0]
        return start["status"], {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}


def check_behaviour(runner: Runner, name: str, app: ASGIApp, scenario: Scenario, scope: Scope) -> None:
    """Refuse to time a target that is misconfigured: a 'preflight allowed' that answers 400 would
    make every number about it meaningless."""
    status, headers = runner.probe(app, scope)
    allow_origin = headers.get("access-control-allow-origin")
    if scenario.preflight:
        expected_status = 200 if scenario.origin_allowed else 400
        ok = status == expected_status and (allow_origin is not None) == scenario.origin_allowed
    elif scenario.origin_allowed is None:
        ok = status == 200 and allow_origin is None
    else:
        ok = status == 200 and (allow_origin is not None) == scenario.origin_allowed
    if not ok:
        raise RuntimeError(f"{name} misbehaves on {scenario.name!r}: status {status}, headers {headers}")


@dataclass
class AsgiResults:
    static: list[Cell]
    dynamic: list[Cell]
    flood: FloodResult | None = None


def run_static(runner: Runner) -> list[Cell]:
    cells = []
    for size in runner.settings.sizes:
        origins = make_origins(size)
        apps = {
            "bare": bare_app,
            "starlette": starlette_cors(bare_app, origins),
            "corsengine": corsengine_cors(bare_app, origins),
        }
        for scenario in SCENARIOS:
            scope = build_scope(scenario, origins)
            for name, app in apps.items():
                if name != "bare":
                    check_behaviour(runner, name, app, scenario, scope)
            cells.append(runner.measure(size, scenario, apps, scope))
    return cells


def dynamic_targets(origins: list[str]) -> dict[str, Any]:
    """Each dynamic provider kind serving the same allowlist as the static list."""
    allowed = frozenset(origins)
    targets: dict[str, Any] = {
        "callable": providers.CallableProvider(lambda: origins),
        "predicate": providers.PredicateProvider(lambda origin, scope: origin in allowed),
    }
    remote = getattr(providers, "RemoteJSONProvider", None)
    if remote is not None:
        # httpx's in-memory transport: the fetch is real httpx, the network is not involved.
        transport = httpx.MockTransport(lambda request: httpx.Response(200, json=origins))
        client = httpx.AsyncClient(transport=transport)
        targets["remote"] = remote("https://config.example.com/cors.json", client=client)
    return targets


def run_dynamic(runner: Runner) -> list[Cell]:
    origins = make_origins(DYNAMIC_SIZE)
    apps: dict[str, ASGIApp] = {"bare": bare_app, "static": corsengine_cors(bare_app, origins)}
    for name, provider in dynamic_targets(origins).items():
        apps[name] = corsengine_cors(bare_app, provider)
    cells = []
    for scenario in SCENARIOS:
        scope = build_scope(scenario, origins)
        for name, app in apps.items():
            if name != "bare":
                # The probe is also the warm-up: the first request fills the provider's cache.
                check_behaviour(runner, name, app, scenario, scope)
        cells.append(runner.measure(DYNAMIC_SIZE, scenario, apps, scope))
    return cells


@dataclass
class FloodResult:
    origins: int
    cache_size: int
    cache_len: int
    # Traced peak once a tenth of the flood has gone by (the cache long full), and overall.
    early_peak_bytes: int
    peak_bytes: int
    seconds: float


async def _flood(policy: Policy, count: int) -> tuple[int, int]:
    resolver = policy._resolver
    state = resolver.state
    tracemalloc.start()
    early_peak = 0
    for i in range(count):
        # Distinct by construction (the counter), random-looking like a scanner's; one in two
        # is allowed, so the cache holds both answers.
        tld = "partner.example" if i & 1 else "attacker.example"
        origin = f"https://h{random.getrandbits(32):08x}{i:x}.{tld}"
        # The resolver's predicate path, without building a Decision: what the middleware
        # does for an origin it has not seen, and what fills the decision cache.
        await resolver.ask_predicates(state, origin, None)
        if not i % 1000:
            # A server's loop turns between requests; without this, anyio's cancelled
            # timeout handles would pile up in the loop's heap and be measured as a leak.
            await asyncio.sleep(0)
        if i == count // 10:
            early_peak = tracemalloc.get_traced_memory()[1]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return early_peak, peak


def run_flood(runner: Runner) -> FloodResult:
    count, cache_size = runner.settings.flood_origins, runner.settings.flood_cache_size
    predicate = providers.PredicateProvider(
        lambda origin, scope: origin.endswith(".partner.example"), cache_size=cache_size
    )
    policy = Policy(allow_origins=predicate)
    gc.collect()
    start = time.perf_counter()
    early_peak, peak = runner.run(_flood(policy, count))
    seconds = time.perf_counter() - start
    ((_, cache),) = policy._resolver.state.predicates
    return FloodResult(count, cache_size, len(cache), early_peak, peak, seconds)


def run(settings: Settings | None = None) -> AsgiResults:
    runner = Runner(settings or Settings())
    try:
        static = run_static(runner)
        dynamic = run_dynamic(runner)
        flood = run_flood(runner)
    finally:
        runner.close()
    return AsgiResults(static, dynamic, flood)

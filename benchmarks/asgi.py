"""In-process benchmark: what each CORS middleware adds to a bare ASGI app, per request.

No server and no network: prebuilt scope dicts, a no-op ``receive``/``send`` and ``N`` calls inside
one coroutine, so the harness adds as little as possible to what is measured. For each scenario,
every target (the bare app, Starlette and corsengine at each allowlist size, the dynamic
providers) runs in the same interleaved rounds, in a rotating order, and every figure is the
median over rounds: drift in CPU speed or a noisy neighbour hits all targets alike. Overhead is
``middleware - bare`` computed within each round, then the median of those.

The rounds are split between a few fresh interpreters, run one after another, and pooled. Within
one process, three instances of the same target agree to 1 %; between processes, one target can
shift by 5-10 % against another for the whole run (object addresses and hash seeds change), so
a single process could call a 1.1 x line by luck. Pooled, a process that drew such a layout is
outvoted by the others.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import random
import statistics
import time
import tracemalloc
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.apps import (
    REFUSED_ORIGIN,
    ASGIApp,
    Message,
    Scope,
    bare_app,
    browser_headers,
    corsengine_cors,
    floor_cors,
    make_origins,
    raw_headers,
    starlette_cors,
    vary_app,
)
from corsengine import Policy, providers
from corsengine._memo import MEMO_SIZE
from corsengine._policy import PENDING

SIZES = (1, 100, 10_000)
# Dynamic providers are compared with a static list at this size, the size of the Starlette target.
DYNAMIC_SIZE = 100


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    # Either None (no Origin header) or whether the request's origin is on the allowlist.
    origin_allowed: bool | None
    preflight: bool = False
    # Every target (the bare app included) wraps an app that sets its own Vary.
    app_vary: bool = False


SCENARIOS = (
    Scenario("no Origin", "GET", None),
    Scenario("allowed", "GET", True),
    Scenario("refused", "GET", False),
    Scenario("preflight allowed", "OPTIONS", True, preflight=True),
    Scenario("preflight refused", "OPTIONS", False, preflight=True),
    Scenario("allowed, app sets Vary", "GET", True, app_vary=True),
)


def build_scope(scenario: Scenario, origins: Sequence[str]) -> Scope:
    # The headers Chromium sends, in its order: the middlewares scan the raw list, so its length
    # and where Origin sits in it are part of their cost.
    origin = None
    if scenario.origin_allowed is not None:
        origin = origins[-1] if scenario.origin_allowed else REFUSED_ORIGIN
    headers = raw_headers(browser_headers(origin, preflight=scenario.preflight))
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
    # CPU time of this process, not wall time: the work is single-threaded and never waits,
    # and time spent descheduled by other processes on a shared machine is not ours.
    receive, send = _receive, _send
    start = time.process_time_ns()
    for _ in range(count):
        await app(scope, receive, send)
    return time.process_time_ns() - start


@dataclass
class Settings:
    # Many short rounds rather than a few long ones: on a shared machine, the median of many
    # rounds shrugs off the ones another process interrupted. ``rounds`` in each of
    # ``processes`` fresh interpreters.
    rounds: int = 7
    processes: int = 3
    # Each batch runs for about this long; calibrated per target so slow and fast targets get
    # an equally precise measurement.
    batch_ns: int = 4_000_000
    sizes: tuple[int, ...] = SIZES
    # Twenty times the cache: once it is full, 95 % of the flood is evictions.
    flood_origins: int = 200_000
    flood_cache_size: int = 10_000
    # A full collection before each batch, so that no target pays for another's garbage;
    # it costs milliseconds each, which only matters for the smoke run.
    collect: bool = True


QUICK = Settings(
    rounds=1,
    processes=2,
    batch_ns=100_000,
    sizes=(1, 100),
    flood_origins=2_000,
    flood_cache_size=200,
    collect=False,
)

# A target is an implementation at an allowlist size: ("starlette", 100), ("predicate", 100).
Target = tuple[str, int]
BARE: Target = ("bare", 0)


@dataclass
class Cell:
    """One scenario: ns per request for every target, one sample per round."""

    scenario: str
    samples: dict[Target, list[float]] = field(default_factory=dict)

    def median(self, target: Target) -> float:
        return statistics.median(self.samples[target])

    def overhead(self, target: Target) -> float:
        # Paired within each round, so a slow round slows both sides of the subtraction.
        pairs = zip(self.samples[target], self.samples[BARE], strict=True)
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

    def measure(self, scenario: Scenario, targets: dict[Target, tuple[ASGIApp, Scope]]) -> Cell:
        """Every target of a scenario in the same interleaved rounds: all comparisons (to
        Starlette, across sizes, against the static list) are between neighbours in time."""
        counts = {target: self._calibrate(app, scope) for target, (app, scope) in targets.items()}
        cell = Cell(scenario.name, {target: [] for target in targets})
        order = list(targets)
        for round_ in range(self.settings.rounds):
            # Rotate the order so that no target always runs right after the same other one.
            shift = round_ % len(order)
            for target in order[shift:] + order[:shift]:
                app, scope = targets[target]
                if self.settings.collect:
                    gc.collect()
                elapsed = self.run(_batch(app, scope, counts[target]))
                cell.samples[target].append(elapsed / counts[target])
        return cell

    def probe(self, app: ASGIApp, scope: Scope) -> tuple[int, dict[str, str]]:
        """One request's status and response headers, to check a target does what it is timed for."""
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        self.run(app(scope, _receive, send))
        start = sent[0]
        return start["status"], {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}


def check_behaviour(runner: Runner, target: Target, app: ASGIApp, scenario: Scenario, scope: Scope) -> None:
    """Refuse to time a target that is misconfigured: a 'preflight allowed' that answers 400 would
    make every number about it meaningless. The first request also warms dynamic providers."""
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
        raise RuntimeError(f"{target} misbehaves on {scenario.name!r}: status {status}, headers {headers}")


@dataclass
class AsgiResults:
    settings: Settings
    cells: list[Cell]
    dynamic: list[str]
    flood: FloodResult | None = None


def dynamic_targets(origins: list[str]) -> dict[str, Any]:
    """Each dynamic provider kind serving the same allowlist as the static list."""
    allowed = frozenset(origins)
    targets: dict[str, Any] = {
        "callable": providers.CallableProvider(lambda: origins),
        "predicate": providers.PredicateProvider(lambda origin: origin in allowed),
    }
    remote = getattr(providers, "RemoteJSONProvider", None)
    if remote is not None:
        # httpx's in-memory transport: the fetch is real httpx, the network is not involved.
        transport = httpx.MockTransport(lambda request: httpx.Response(200, json=origins))
        client = httpx.AsyncClient(transport=transport)
        targets["remote"] = remote("https://config.example.com/cors.json", client=client)
    return targets


# The implementations measured at every allowlist size; "floor" is the minimal class middleware.
STATIC = ("starlette", "floor", "corsengine")


def build_apps(
    settings: Settings, app: ASGIApp = bare_app
) -> tuple[dict[Target, ASGIApp], dict[int, list[str]]]:
    allowlists = {size: make_origins(size) for size in {*settings.sizes, DYNAMIC_SIZE}}
    apps: dict[Target, ASGIApp] = {BARE: app}
    for size in settings.sizes:
        apps["starlette", size] = starlette_cors(app, allowlists[size])
        apps["floor", size] = floor_cors(app, allowlists[size])
        apps["corsengine", size] = corsengine_cors(app, allowlists[size])
    apps.setdefault(("corsengine", DYNAMIC_SIZE), corsengine_cors(app, allowlists[DYNAMIC_SIZE]))
    apps.setdefault(("floor", DYNAMIC_SIZE), floor_cors(app, allowlists[DYNAMIC_SIZE]))
    for name, provider in dynamic_targets(allowlists[DYNAMIC_SIZE]).items():
        apps[name, DYNAMIC_SIZE] = corsengine_cors(app, provider)
    return apps, allowlists


def run_cells(runner: Runner) -> list[Cell]:
    plain, allowlists = build_apps(runner.settings)
    with_vary, _ = build_apps(runner.settings, vary_app)
    cells = []
    for scenario in SCENARIOS:
        targets = {}
        apps = with_vary if scenario.app_vary else plain
        for target, app in apps.items():
            # Each size has its own last origin; the bare app ignores headers altogether.
            scope = build_scope(scenario, allowlists[target[1] or DYNAMIC_SIZE])
            if target != BARE:
                check_behaviour(runner, target, app, scenario, scope)
            targets[target] = (app, scope)
        cells.append(runner.measure(scenario, targets))
    return cells


@dataclass
class FloodResult:
    origins: int
    cache_size: int
    cache_len: int
    memo_size: int
    memo_len: int
    # Traced peak once a tenth of the flood has gone by (the caches long full), and overall.
    early_peak_bytes: int
    peak_bytes: int
    seconds: float


async def _flood(policy: Policy, count: int) -> tuple[int, int]:
    tracemalloc.start()
    early_peak = 0
    for i in range(count):
        # Distinct by construction (the counter), random-looking like a scanner's; one in two
        # is allowed, so the caches hold both answers.
        tld = "partner.example" if i & 1 else "attacker.example"
        origin = f"https://h{random.getrandbits(32):08x}{i:x}.{tld}"
        # The middleware's own two steps for an origin it has not seen, without the ASGI
        # plumbing around them: the rule memo, then the predicate and its decision cache.
        if policy.lookup(origin) is PENDING:
            await policy.resolve(origin)
        if not i % 1000:
            # A server's loop turns between requests; let it, as it would under load.
            await asyncio.sleep(0)
        if i == count // 10:
            early_peak = tracemalloc.get_traced_memory()[1]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return early_peak, peak


def run_flood(runner: Runner) -> FloodResult:
    count, cache_size = runner.settings.flood_origins, runner.settings.flood_cache_size

    # An async predicate: a sync one runs in a worker thread, which costs the flood a thread hop
    # per origin (a million of them took ten minutes on a busy machine) and changes nothing in
    # what is measured here, the caches' bounds.
    async def partner(origin: str) -> bool:
        return origin.endswith(".partner.example")

    predicate = providers.PredicateProvider(partner, cache_size=cache_size)
    policy = Policy(allow_origins=predicate)
    gc.collect()
    start = time.perf_counter()
    early_peak, peak = runner.run(_flood(policy, count))
    seconds = time.perf_counter() - start
    state = policy._resolver.state
    (asker,) = state.predicates
    return FloodResult(
        count, cache_size, len(asker.answers), MEMO_SIZE, len(state.memos.verdicts), early_peak, peak, seconds
    )


def _cells_in_this_process(settings: Settings) -> list[Cell]:
    runner = Runner(settings)
    try:
        return run_cells(runner)
    finally:
        runner.close()


def _pool(cells: list[Cell], more: list[Cell]) -> list[Cell]:
    for cell, extra in zip(cells, more, strict=True):
        for target, samples in extra.samples.items():
            cell.samples[target] += samples
    return cells


def run(settings: Settings | None = None) -> AsgiResults:
    settings = settings or Settings()
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, not a fork of this one
    cells: list[Cell] = []
    for _ in range(settings.processes):
        # One process at a time: two at once would compete for the CPU they measure.
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            part = pool.submit(_cells_in_this_process, settings).result()
        cells = _pool(cells, part) if cells else part
    runner = Runner(settings)
    try:
        flood = run_flood(runner)
    finally:
        runner.close()
    dynamic = [name for name, _ in cells[0].samples if name not in ("bare", *STATIC)]
    return AsgiResults(settings, cells, dynamic, flood)

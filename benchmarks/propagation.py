"""How long a change at the source takes to be in force in every worker of a fleet.

Two uvicorn servers of two workers each (``benchmarks.fleet_app``) serve one allowlist, from a
real redis-server or from a file. Each change adds or removes one origin: in Redis with
``add_origins``/``remove_origins`` (what ``corsengine redis add|remove`` runs), in the file by
writing a temporary file and renaming it over the old one (the documented way). Every worker
stamps its answers with the moment its allowlist last changed (``time.monotonic()``, one clock
for the whole machine); the propagation of a change to a worker is that moment minus the
moment the change call returned (0 when the worker had it before the call returned). The
client asks on new connections until every worker answers with the change; when it asks does
not enter the figures, only the workers' own stamps do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.fleet import Fleet, FleetError, free_port

CHANGES = 100
QUICK_CHANGES = 4
SERVERS, WORKERS = 2, 2
FILE_POLL_INTERVAL = 0.1
TARGET_P99_MS = 250.0  # Redis, on loopback
GIVE_UP_S = 10.0  # one change not in force everywhere after this: the run fails
REDIS_SERVER = shutil.which("redis-server")


@dataclass(frozen=True)
class PropagationResult:
    source: str
    changes: int
    workers: int
    seconds: list[float]  # one per change per worker

    def percentile(self, share: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.seconds) * 1e3

    @property
    def p99_ms(self) -> float:
        return self.percentile(0.99) * 1e3

    @property
    def max_ms(self) -> float:
        return max(self.seconds) * 1e3


@contextlib.contextmanager
def _redis() -> Iterator[str]:
    if REDIS_SERVER is None:
        raise FleetError("redis-server is not installed (make system-deps)")
    port = free_port()
    directory = tempfile.mkdtemp(prefix="corsengine-bench-redis-")
    command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _pong(port):
            if time.monotonic() > deadline:
                raise FleetError(f"redis-server did not start on port {port}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def _pong(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _measure(
    fleet: Fleet, changes: int, change: Callable[[str, bool], float], expected: float
) -> list[float]:
    """Make ``changes`` changes (add, remove, add...); each worker's delay for each.

    The client first waits ``expected`` seconds, then asks every 20 ms: asking all the time
    would take CPU from the workers it measures (two cores for four workers here).
    """
    seconds: list[float] = []
    for number in range(changes):
        origin = f"https://partner-{number // 2}.example"
        allowed = number % 2 == 0
        returned = change(origin, allowed)
        deadline = returned + GIVE_UP_S
        time.sleep(expected)
        while True:
            first, _ = fleet.sweep(origin)
            if all(answer.allowed is allowed for answer in first.values()):
                break
            if time.monotonic() > deadline:
                state = "allowed" if allowed else "refused"
                raise FleetError(f"{origin} not {state} everywhere after {GIVE_UP_S:g} s")
            time.sleep(0.02)
        seconds += [max(0.0, answer.changed_at - returned) for answer in first.values()]
    return seconds


def _subscribed(url: str, channel: str, count: int) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while int(client.pubsub_numsub(channel)[0][1]) < count:
            if time.monotonic() > deadline:
                raise FleetError("not every worker subscribed to the channel")
            time.sleep(0.02)
    finally:
        client.close()


def run_redis(changes: int, servers: int = SERVERS, workers: int = WORKERS) -> PropagationResult:
    from corsengine.providers.redis import add_origins, connect, remove_origins

    key, channel = "bench:origins", "bench:changes"
    with _redis() as url:
        env = {
            "CORSENGINE_FLEET_SOURCE": "redis",
            "CORSENGINE_FLEET_REDIS_URL": url,
            "CORSENGINE_FLEET_REDIS_KEY": key,
            "CORSENGINE_FLEET_REDIS_CHANNEL": channel,
        }
        with Fleet(env, servers=servers, workers=workers) as fleet:
            _subscribed(url, channel, fleet.size)
            loop = asyncio.new_event_loop()
            client = connect(url)

            def change(origin: str, allowed: bool) -> float:
                edit = add_origins if allowed else remove_origins
                loop.run_until_complete(edit(client, [origin], key=key, channel=channel))
                return time.monotonic()

            try:
                seconds = _measure(fleet, changes, change, 0.05)
            finally:
                loop.run_until_complete(client.aclose())
                loop.close()
    return PropagationResult("Redis (pub/sub)", changes, servers * workers, seconds)


def run_file(changes: int, servers: int = SERVERS, workers: int = WORKERS) -> PropagationResult:
    directory = Path(tempfile.mkdtemp(prefix="corsengine-bench-file-"))
    path = directory / "cors.json"
    origins = ["https://app.example"]

    def write(entries: list[str]) -> None:
        temporary = directory / ".cors.json.tmp"
        temporary.write_text(json.dumps(entries))
        os.replace(temporary, path)  # by rename: accepted at the first poll that sees it

    write(origins)
    env = {
        "CORSENGINE_FLEET_SOURCE": "file",
        "CORSENGINE_FLEET_FILE": str(path),
        "CORSENGINE_FLEET_POLL_INTERVAL": str(FILE_POLL_INTERVAL),
    }
    try:
        with Fleet(env, servers=servers, workers=workers) as fleet:
            time.sleep(2 * FILE_POLL_INTERVAL)  # every watcher running

            def change(origin: str, allowed: bool) -> float:
                write([*origins, origin] if allowed else origins)
                return time.monotonic()

            seconds = _measure(fleet, changes, change, FILE_POLL_INTERVAL)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    label = f"file (poll_interval {FILE_POLL_INTERVAL:g} s, renamed into place)"
    return PropagationResult(label, changes, servers * workers, seconds)


def run(quick: bool = False) -> list[PropagationResult]:
    if quick:
        return [run_redis(QUICK_CHANGES, 1, 1), run_file(QUICK_CHANGES, 1, 1)]
    return [run_redis(CHANGES), run_file(CHANGES)]


def table(results: list[PropagationResult]) -> str:
    lines = [
        "| source | changes x workers | p50 | p99 | max |",
        "|---|--:|--:|--:|--:|",
    ]
    for result in results:
        lines.append(
            f"| {result.source} | {result.changes} x {result.workers} | {result.p50_ms:.1f} ms "
            f"| {result.p99_ms:.1f} ms | {result.max_ms:.1f} ms |"
        )
    return "\n".join(lines)


def verdict_line(results: list[PropagationResult]) -> str:
    redis = next(result for result in results if result.source.startswith("Redis"))
    met = redis.p99_ms < TARGET_P99_MS
    return (
        f"- **{'MET' if met else 'MISSED'}**: Redis propagation p99 < {TARGET_P99_MS:g} ms on loopback "
        f"({redis.p99_ms:.1f} ms over {redis.changes} changes x {redis.workers} workers)"
    )


if __name__ == "__main__":
    outcome = run()
    print(table(outcome))
    print(verdict_line(outcome))

"""A fleet: a real redis-server, two uvicorn servers of two workers each, changes made with
the CLI, a Redis crash and restart in the middle.

After each ``corsengine redis add|remove`` the test asks every worker on new connections until
each has answered with the change, and a worker that has never answers without it again. No
time window is asserted: a busy machine only makes the test slower. What is asserted is the
path: the workers' ttl (60 s) is far beyond the test's patience (LOST_AFTER), so a change can
only arrive through the watcher (a pub/sub message, or the reload on resubscribe after Redis
comes back), and a change the watcher missed fails the test. How fast it arrives is measured,
not asserted: every worker stamps its answers with the moment its allowlist last changed
(``time.monotonic()``, one clock for every process of the machine), the test subtracts the
moment the command returned and prints the figures; the speed target is checked by
``make bench`` (benchmarks/propagation.py).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis as redis_py

from benchmarks.fleet import Answer, Fleet
from corsengine import _cli_redis

from .servers import RedisServer, redis_server, wait_until

pytestmark = pytest.mark.redis

SERVERS = 2
WORKERS = 2  # per server: uvicorn --workers 2
ROUNDS = 10  # before the Redis restart; each round adds an origin, then removes it
ROUNDS_AFTER_RESTART = 3
SCRIPT_ROUNDS = 2  # of each: the real console script (a Python start-up each); the rest in-process
# The watchers' longest backoff wait while Redis is down (small here, so that they are back soon).
RECONNECT_MAX = 1.0
# Not a timing bound: how long the test waits for a change before calling it lost. Far below
# RedisProvider's default ttl (60 s, the workers'), so that no ttl reload can bring a change the
# watcher missed, and far above what a change takes even on a loaded machine (530 ms seen).
LOST_AFTER = 20.0
KEY = "fleet:origins"
CHANNEL = "fleet:changes"
STANDING = "https://standing.example"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server(persist=True) as server:
        yield server


@pytest.fixture(scope="module")
def fleet(redis: RedisServer) -> Iterator[Fleet]:
    env = {
        "CORSENGINE_FLEET_SOURCE": "redis",
        "CORSENGINE_FLEET_REDIS_URL": redis.url,
        "CORSENGINE_FLEET_REDIS_KEY": KEY,
        "CORSENGINE_FLEET_REDIS_CHANNEL": CHANNEL,
        "CORSENGINE_FLEET_RECONNECT_MAX": str(RECONNECT_MAX),
    }
    with Fleet(env, servers=SERVERS, workers=WORKERS) as running:
        yield running


def _console_script() -> str | None:
    """The installed ``corsengine`` command, when it has the redis subcommands."""
    script = Path(sys.executable).with_name("corsengine")
    if not script.exists():
        return None
    probe = subprocess.run([script, "redis", "--help"], capture_output=True, timeout=30)
    return str(script) if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def cli(redis: RedisServer) -> Callable[..., float]:
    """Runs ``corsengine redis ...`` and returns the moment it returned: the installed console
    script (``script_wanted=True``, when it has the redis commands), else the same parser and
    handlers in-process."""
    script = _console_script()
    options = ["--url", redis.url, "--key", KEY, "--channel", CHANNEL]
    parser = argparse.ArgumentParser(prog="corsengine")
    _cli_redis.add_subcommands(parser.add_subparsers(dest="command", required=True))

    def run(command: str, origin: str, *, script_wanted: bool = False) -> float:
        argv = ["redis", command, origin, *options]
        if script_wanted and script is not None:
            done = subprocess.run([script, *argv], capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, done.stderr
        else:
            args = parser.parse_args(argv)
            assert args.func(args) == 0
        return time.monotonic()

    return run


def _subscribers(redis: RedisServer) -> int:
    client = redis_py.Redis.from_url(redis.url, socket_timeout=1)
    try:
        return int(client.pubsub_numsub(CHANNEL)[0][1])
    except redis_py.RedisError:
        return 0
    finally:
        client.close()


def _every_answer(fleet: Fleet, origin: str, allowed: bool) -> None:
    """Every worker answers, and every answer is ``allowed`` (no change is under way)."""
    first, answers = fleet.sweep(origin)
    for answer in answers:
        assert answer.status == 200  # CORS never blocks the request itself
        assert answer.allowed is allowed, f"worker {answer.worker} of {answer.server}: {answer}"
    assert len(first) == fleet.size


def _until_every_worker_has(fleet: Fleet, origin: str, allowed: bool, returned: float) -> list[float]:
    """Ask every worker until each has answered with the change; once a worker has, it never
    answers without it again. Returns how long after the command's return each worker's
    allowlist changed (0 if before)."""
    lost_at = time.monotonic() + LOST_AFTER
    changed: dict[int, Answer] = {}
    while len(changed) < fleet.size:
        assert time.monotonic() < lost_at, (
            f"{fleet.size - len(changed)} of {fleet.size} workers still "
            f"{'refuse' if allowed else 'allow'} {origin} {LOST_AFTER:g} s after the command: "
            "the watcher missed the change"
        )
        for answer in fleet.sweep(origin)[1]:
            assert answer.status == 200  # CORS never blocks the request itself
            if answer.allowed is allowed:
                changed.setdefault(answer.worker, answer)
            else:
                assert answer.worker not in changed, f"worker {answer.worker} went back after the change"
    return [max(0.0, answer.changed_at - returned) for answer in changed.values()]


def _round(fleet: Fleet, cli: Callable[..., float], origin: str, *, script: bool, times: list[float]) -> None:
    for command, allowed in (("add", True), ("remove", False)):
        returned = cli(command, origin, script_wanted=script)
        times += _until_every_worker_has(fleet, origin, allowed, returned)


def _stats(label: str, times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"  {label}: {len(ordered)} worker-changes, p50 {statistics.median(ordered) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )


def test_every_worker_gets_every_change_through_its_watcher(
    redis: RedisServer, fleet: Fleet, cli: Callable[..., float]
) -> None:
    # Every worker has loaded (the fleet heard from each) and subscribes to the channel.
    assert wait_until(lambda: _subscribers(redis) == fleet.size, LOST_AFTER), "not every worker subscribed"
    returned = cli("add", STANDING)
    _until_every_worker_has(fleet, STANDING, True, returned)

    before: list[float] = []
    for round_ in range(ROUNDS):
        _round(fleet, cli, f"https://partner-{round_}.example", script=round_ < SCRIPT_ROUNDS, times=before)

    # Redis crashes: every worker keeps serving the last good list, and no request fails.
    redis.kill()
    _every_answer(fleet, STANDING, True)
    time.sleep(RECONNECT_MAX + 0.5)  # the watchers' backoff reaches its cap meanwhile
    _every_answer(fleet, STANDING, True)
    _every_answer(fleet, "https://partner-0.example", False)

    # Redis is back on the same port, with its data. A change made at once is published
    # before the workers resubscribe, so the message is lost: the reload on resubscribe,
    # on a fresh connection, covers it.
    redis.start()
    returned = cli("add", "https://after-restart.example")
    restart = _until_every_worker_has(fleet, "https://after-restart.example", True, returned)
    assert _subscribers(redis) == fleet.size

    after: list[float] = []
    for round_ in range(ROUNDS_AFTER_RESTART):
        _round(fleet, cli, f"https://again-{round_}.example", script=round_ == 0, times=after)

    print(
        "\n".join(
            [
                "",
                f"fleet propagation: {SERVERS} uvicorn servers x {WORKERS} workers, from the command's return "
                "to the change in force in each worker",
                _stats(f"{ROUNDS} rounds before the Redis restart", before),
                _stats("a change made as Redis restarted", restart),
                _stats(f"{ROUNDS_AFTER_RESTART} rounds after it", after),
                _stats("all", before + restart + after),
            ]
        )
    )

"""A fleet: real redis-server, two uvicorn worker processes, changes made with the CLI.

An origin added with ``corsengine redis add`` must be allowed by every worker within 1 s,
and refused by every worker within 1 s of ``corsengine redis remove``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corsengine import _cli_redis

from .servers import RedisServer, free_port, redis_server, wait_until

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
ROUNDS = 20
BOUND = 1.0
KEY = "fleet:origins"
CHANNEL = "fleet:changes"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def workers(redis: RedisServer) -> Iterator[list[str]]:
    env = {
        **os.environ,
        "CORSENGINE_TEST_REDIS_URL": redis.url,
        "CORSENGINE_TEST_REDIS_KEY": KEY,
        "CORSENGINE_TEST_REDIS_CHANNEL": CHANNEL,
    }
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for _ in range(WORKERS):
            port = free_port()
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "tests.providers.fleet_app:app",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                    ],
                    cwd=ROOT,
                    env=env,
                )
            )
            urls.append(f"http://127.0.0.1:{port}/")
        for url in urls:
            assert wait_until(lambda url=url: _up(url), 20), f"worker {url} did not start"
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _console_script() -> str | None:
    """The installed ``corsengine`` command, when it has the redis subcommands."""
    script = Path(sys.executable).with_name("corsengine")
    if not script.exists():
        return None
    probe = subprocess.run([script, "redis", "--help"], capture_output=True, timeout=30)
    return str(script) if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def cli(redis: RedisServer) -> object:
    script = _console_script()
    options = ["--url", redis.url, "--key", KEY]

    def run(command: str, *origins: str) -> None:
        argv = ["redis", command, *origins, *options, "--channel", CHANNEL]
        if script is not None:
            done = subprocess.run([script, *argv], capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, done.stderr
            return
        # Until the main CLI wires the redis commands: the same parser and handlers, in-process.
        parser = argparse.ArgumentParser(prog="corsengine")
        _cli_redis.add_subcommands(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        assert args.func(args) == 0

    run.uses_console_script = script is not None  # type: ignore[attr-defined]
    return run


def _allows(client: httpx.Client, url: str, origin: str) -> bool:
    response = client.get(url, headers={"Origin": origin})
    assert response.status_code == 200  # CORS never blocks the request itself
    return response.headers.get("access-control-allow-origin") == origin


def _propagation(client: httpx.Client, urls: list[str], origin: str, allowed: bool) -> float:
    """Seconds until every worker answers ``origin`` as ``allowed`` (polled, bounded)."""
    start = time.perf_counter()
    pending = set(urls)
    while pending and time.perf_counter() - start < 5 * BOUND:
        pending = {url for url in pending if _allows(client, url, origin) != allowed}
        if pending:
            time.sleep(0.002)
    assert not pending, f"{sorted(pending)} still {'refuse' if allowed else 'allow'} {origin}"
    return time.perf_counter() - start


def test_a_change_made_with_the_cli_reaches_every_worker_within_a_second(workers: list[str], cli) -> None:
    origin = "https://partner-{}.example"
    added: list[float] = []
    removed: list[float] = []
    with httpx.Client(timeout=2) as client:
        for url in workers:
            assert not _allows(client, url, origin.format(0))
        for round_ in range(ROUNDS):
            name = origin.format(round_)
            cli("add", name)
            added.append(_propagation(client, workers, name, allowed=True))
            cli("remove", name)
            removed.append(_propagation(client, workers, name, allowed=False))
    both = sorted(added + removed)
    p50 = statistics.median(both)
    p99 = both[min(len(both) - 1, round(0.99 * (len(both) - 1)))]
    print(
        f"\nfleet propagation over {ROUNDS} rounds x {WORKERS} workers "
        f"({'console script' if cli.uses_console_script else 'in-process CLI handlers'}): "
        f"add p50={statistics.median(added) * 1000:.1f} ms max={max(added) * 1000:.1f} ms; "
        f"remove p50={statistics.median(removed) * 1000:.1f} ms max={max(removed) * 1000:.1f} ms; "
        f"all p50={p50 * 1000:.1f} ms p99={p99 * 1000:.1f} ms"
    )
    assert max(both) < BOUND

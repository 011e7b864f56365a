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
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from corsengine import _cli_redis

from .servers import RedisServer, free_port, redis_server, wait_until

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
ROUNDS = 20
SCRIPT_ROUNDS = 3
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
def cli(redis: RedisServer) -> Callable[..., None]:
    """Runs ``corsengine redis ...``: the installed console script when it has the redis
    commands (``script=True``), else the same parser and handlers in-process."""
    script = _console_script()
    options = ["--url", redis.url, "--key", KEY, "--channel", CHANNEL]
    parser = argparse.ArgumentParser(prog="corsengine")
    _cli_redis.add_subcommands(parser.add_subparsers(dest="command", required=True))

    def run(command: str, origin: str, *, script_wanted: bool = False) -> None:
        argv = ["redis", command, origin, *options]
        if script_wanted and script is not None:
            done = subprocess.run([script, *argv], capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, done.stderr
            return
        args = parser.parse_args(argv)
        assert args.func(args) == 0

    run.has_script = script is not None  # type: ignore[attr-defined]
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


def _stats(label: str, added: list[float], removed: list[float]) -> str:
    both = sorted(added + removed)
    p99 = both[min(len(both) - 1, round(0.99 * (len(both) - 1)))]
    return (
        f"{label}: {len(added)} rounds x {WORKERS} workers, "
        f"add p50={statistics.median(added) * 1000:.1f} ms max={max(added) * 1000:.1f} ms; "
        f"remove p50={statistics.median(removed) * 1000:.1f} ms max={max(removed) * 1000:.1f} ms; "
        f"all p50={statistics.median(both) * 1000:.1f} ms p99={p99 * 1000:.1f} ms"
    )


def test_a_change_made_with_the_cli_reaches_every_worker_within_a_second(
    workers: list[str], cli: Callable[..., None]
) -> None:
    origin = "https://partner-{}.example"
    # The console script costs a Python start-up (~1 s here) per change: a few rounds prove
    # the real command end to end, the rest run its handlers in-process to keep the suite fast.
    scripted = SCRIPT_ROUNDS if cli.has_script else 0  # type: ignore[attr-defined]
    timings: dict[bool, tuple[list[float], list[float]]] = {True: ([], []), False: ([], [])}
    with httpx.Client(timeout=2) as client:
        for url in workers:
            assert not _allows(client, url, origin.format(0))
        for round_ in range(ROUNDS):
            name = origin.format(round_)
            via_script = round_ < scripted
            added, removed = timings[via_script]
            cli("add", name, script_wanted=via_script)
            added.append(_propagation(client, workers, name, allowed=True))
            cli("remove", name, script_wanted=via_script)
            removed.append(_propagation(client, workers, name, allowed=False))
    lines = ["", "fleet propagation, from the command's return until every worker agrees:"]
    if scripted:
        lines.append(_stats("  console script", *timings[True]))
    lines.append(_stats("  in-process handlers", *timings[False]))
    lines.append(_stats("  all", timings[True][0] + timings[False][0], timings[True][1] + timings[False][1]))
    print("\n".join(lines))
    assert max(timings[True][0] + timings[True][1] + timings[False][0] + timings[False][1]) < BOUND

"""A fleet on this machine: uvicorn servers of several worker processes each, all serving
``benchmarks.fleet_app`` with one allowlist source, and a client that reaches every worker.

``--workers`` processes share their server's port and the kernel hands each new connection to
one of them, so the client opens a new connection per request and reads which worker answered
(``x-worker``) until it has heard from every worker of every server. Used by the fleet test
(tests/providers/test_fleet.py) and the propagation benchmark (benchmarks/propagation.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parent.parent
APP = "benchmarks.fleet_app:app"
# How long to keep opening connections to reach every worker of a server: the kernel spreads
# connections over a server's workers unevenly, but never leaves one out for this long.
REACH_WITHIN = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Answer:
    """What one worker answered to one request on a new connection."""

    server: str
    worker: int
    status: int
    allowed: bool
    changed_at: float  # time.monotonic() in that worker when its allowlist last changed
    at: float  # time.monotonic() here when the answer came


class FleetError(RuntimeError):
    pass


class Fleet:
    """``servers`` uvicorn processes of ``workers`` workers each; a context manager."""

    def __init__(self, env: Mapping[str, str], *, servers: int = 2, workers: int = 2) -> None:
        self.env = {**os.environ, **env}
        self.servers = servers
        self.workers = workers
        self.urls: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.pids: dict[str, set[int]] = {}  # url -> its workers
        self.client = httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0))

    def __enter__(self) -> Fleet:
        try:
            for _ in range(self.servers):
                port = free_port()
                command = [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)]
                command += ["--workers", str(self.workers), "--log-level", "warning", "--no-access-log"]
                # uvicorn's supervisor replaces a worker that has not answered its health check
                # within 5 s, which a loaded two-core machine can delay: a replaced worker has a
                # new pid, and the old one would never answer again.
                command += ["--timeout-worker-healthcheck", "60"]
                self.processes.append(subprocess.Popen(command, cwd=ROOT, env=self.env))
                self.urls.append(f"http://127.0.0.1:{port}/")
            for url in self.urls:
                self._wait_up(url, 30)
                self.pids[url] = self._discover(url)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()
        self.client.close()

    @property
    def size(self) -> int:
        return self.servers * self.workers

    def _wait_up(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise FleetError(f"{url} did not start within {timeout:g} s")

    def _discover(self, url: str, timeout: float = 30) -> set[int]:
        # The workers start one after another: the first may answer long before the last.
        pids: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids.add(self.ask(url, "https://probe.invalid").worker)
            if len(pids) == self.workers:
                return pids
            time.sleep(0.01)
        raise FleetError(f"{url}: heard from {len(pids)} of {self.workers} workers in {timeout:g} s")

    def ask(self, url: str, origin: str) -> Answer:
        """One GET with ``Origin`` on a new connection."""
        response = self.client.get(url, headers={"Origin": origin})
        return Answer(
            url,
            int(response.headers["x-worker"]),
            response.status_code,
            response.headers.get("access-control-allow-origin") == origin,
            float(response.headers["x-changed-at"]),
            time.monotonic(),
        )

    def sweep(self, origin: str) -> tuple[dict[int, Answer], list[Answer]]:
        """Ask on new connections until every worker of every server has answered.

        Returns each worker's first answer, and every answer in order.
        """
        first: dict[int, Answer] = {}
        answers: list[Answer] = []
        for url, pids in self.pids.items():
            deadline = time.monotonic() + REACH_WITHIN
            tries = 0
            while not pids <= first.keys():
                if time.monotonic() > deadline:
                    seen = Counter(answer.worker for answer in answers if answer.server == url)
                    missing = sorted(pids - first.keys())
                    raise FleetError(
                        f"{url}: workers {missing} never answered in {REACH_WITHIN:g} s "
                        f"({tries} connections, answered by {dict(seen)})"
                    )
                answer = self.ask(url, origin)
                answers.append(answer)
                first.setdefault(answer.worker, answer)
                tries += 1
                if tries % 8 == 0:
                    # The worker that just answered is often the first to accept the next
                    # connection too; a pause lets a busy one come back to its accept loop.
                    time.sleep(0.002 * tries / 8)
        return first, answers

"""Over the wire: uvicorn on loopback, loaded by wrk, bare app versus each middleware.

Each target gets its own uvicorn process (one worker, no access log, a free port), all started
up front; then short wrk runs alternate between them over several rounds, so that every round
compares the targets under the same load, and the median is kept. Every process is stopped by
the harness, and every wrk run is bounded by a timeout, so a hung server cannot hang the run.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.apps import HTTP_ORIGINS, make_origins

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "bare": "benchmarks.apps:http_bare",
    "headers only": "benchmarks.apps:http_headers_only",
    "starlette": "benchmarks.apps:http_starlette",
    "corsengine": "benchmarks.apps:http_corsengine",
}


@dataclass
class Settings:
    # Short runs, many rounds: on a shared machine the load changes from second to second.
    rounds: int = 6
    duration_s: int = 2
    threads: int = 2
    connections: int = 50


@dataclass
class HttpResults:
    settings: Settings
    server: str
    # req/s per target, one sample per round.
    samples: dict[str, list[float]] = field(default_factory=dict)
    skipped: str | None = None

    def median(self, target: str) -> float:
        return statistics.median(self.samples[target])

    def ratio(self, target: str) -> float:
        """Median over rounds of target / bare: rounds run back to back, so a round's ratio is
        measured under one load, even when the machine's load drifts between rounds."""
        pairs = zip(self.samples[target], self.samples["bare"], strict=True)
        return statistics.median(t / b for t, b in pairs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"uvicorn did not listen on {port} within {timeout_s} s")


@contextlib.contextmanager
def serve(factory: str) -> Iterator[int]:
    """uvicorn serving ``factory`` on a free loopback port, stopped on exit whatever happens."""
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
    # The bare app does not speak the lifespan protocol; the middlewares have nothing to start.
    command += ["--lifespan", "off"]
    proc = subprocess.Popen(command, cwd=ROOT)
    try:
        _wait_listening(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_REQUESTS_PER_SEC = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)


def parse_wrk(output: str) -> float:
    match = _REQUESTS_PER_SEC.search(output)
    if match is None:
        raise ValueError(f"no Requests/sec in wrk output:\n{output}")
    return float(match.group(1))


def wrk(port: int, settings: Settings) -> float:
    # An allowed cross-origin GET: the request a browser app sends most.
    origin = make_origins(HTTP_ORIGINS)[-1]
    command = ["wrk", f"-t{settings.threads}", f"-c{settings.connections}", f"-d{settings.duration_s}s"]
    command += ["-H", f"Origin: {origin}", f"http://127.0.0.1:{port}/items"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=settings.duration_s + 30, check=True
    )
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"wrk saw errors; the numbers would not be comparable:\n{done.stdout}")
    return parse_wrk(done.stdout)


def _server_description() -> str:
    import uvicorn

    # uvicorn picks httptools/uvloop when installed and h11/asyncio otherwise; the server's own
    # per-request cost is the denominator of every ratio, so say which one was measured.
    extras = [name for name in ("httptools", "uvloop") if _importable(name)]
    return f"uvicorn {uvicorn.__version__} ({', '.join(extras) or 'h11, asyncio'})"


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def run(settings: Settings | None = None) -> HttpResults:
    settings = settings or Settings()
    results = HttpResults(settings, _server_description(), {name: [] for name in TARGETS})
    if shutil.which("wrk") is None:
        results.skipped = "wrk is not installed (`make system-deps` installs it)"
        return results
    with contextlib.ExitStack() as servers:
        ports = {name: servers.enter_context(serve(factory)) for name, factory in TARGETS.items()}
        names = list(TARGETS)
        for round_ in range(settings.rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                results.samples[name].append(wrk(ports[name], settings))
    return results

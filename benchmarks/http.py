"""Over the wire: uvicorn on loopback, loaded by wrk, the bare app against each middleware.

Every target gets its own uvicorn process (one worker, no access log, a free port), and all of
them are loaded *at the same time*, each by its own wrk, over a few short rounds. Loading them
one after another compared them under different machines: on a shared VM the bare app alone
moved between 25,000 and 40,000 req/s from one second to the next, so a 0.9 x line was met or
missed by the order of the runs. Loaded together on one core, the targets share every instant;
the scheduler gives each an equal share of that core (the CPU time read from /proc shows it),
so each one's req/s is inversely proportional to its CPU cost per request, and the ratios hold
to a few percent from run to run. The rounds are split between two sets of freshly started
servers and pooled, so that no single server process's memory layout decides a ratio.

With two cores or more, the servers run on one core and the wrk processes on the others, so that
the load generator never takes CPU from the servers it measures. Every process is stopped by the
harness and every wrk run is bounded by a timeout, so a hung server cannot hang the run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.apps import HTTP_ORIGINS, browser_headers, make_origins

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "bare": "benchmarks.apps:http_bare",
    "headers only": "benchmarks.apps:http_headers_only",
    "floor": "benchmarks.apps:http_floor",
    "starlette": "benchmarks.apps:http_starlette",
    "corsengine": "benchmarks.apps:http_corsengine",
}
# Served by the instruction count only (benchmarks.instructions): the same middlewares around an
# app that sets its own Vary.
VARY_TARGETS = {
    "bare, app sets Vary": "benchmarks.apps:http_bare_vary",
    "floor, app sets Vary": "benchmarks.apps:http_floor_vary",
    "corsengine, app sets Vary": "benchmarks.apps:http_corsengine_vary",
}
FLOOR = "floor"
PATH = "/items"
# uvicorn's two HTTP stacks: the pure-Python one it always has, and the one `uvicorn[standard]`
# installs (what FastAPI's own `fastapi[standard]` deploys). Each is measured when importable.
SERVERS = {
    "h11, asyncio": (("h11",), ["--http", "h11", "--loop", "asyncio"]),
    "httptools, uvloop": (("httptools", "uvloop"), ["--http", "httptools", "--loop", "uvloop"]),
}


@dataclass
class Settings:
    # ``rounds`` with each of ``sessions`` sets of freshly started servers, pooled: like the
    # in-process benchmark, a server process can draw a layout that is a few percent off.
    rounds: int = 4
    sessions: int = 2
    duration_s: int = 2
    connections: int = 25  # per target


@dataclass
class HttpResults:
    settings: Settings
    server: str
    # req/s and server CPU µs per request, per target, one sample per round.
    samples: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    skipped: str | None = None

    def median(self, target: str) -> float:
        return statistics.median(self.samples[target])

    def ratio(self, target: str, base: str = "bare") -> float:
        """Median over rounds of target / base, both measured in the same seconds."""
        pairs = zip(self.samples[target], self.samples[base], strict=True)
        return statistics.median(t / b for t, b in pairs)

    def cpu_per_request(self, target: str) -> float | None:
        samples = self.cpu_us.get(target)
        return statistics.median(samples) if samples else None


def _cores() -> tuple[set[int], set[int]] | None:
    """(the servers' core, wrk's cores), or None when there is only one core to share."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return {cores[0]}, set(cores[1:])


def _pinned(cores: set[int] | None) -> list[str]:
    if not cores or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", ",".join(map(str, sorted(cores)))]


def _cpu_seconds(pid: int) -> float | None:
    """CPU time of a process (all its threads) in seconds, from /proc; None elsewhere.

    schedstat counts nanoseconds; stat's utime + stime count 10 ms ticks, too coarse for the
    fraction of a second each server runs in a round, and is only the fallback.
    """
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
def serve(
    factory: str, server_options: list[str], cores: set[int] | None = None
) -> Iterator[tuple[int, int]]:
    """uvicorn serving ``factory`` on a free loopback port: (port, pid), stopped on exit."""
    port = _free_port()
    command = [*_pinned(cores), sys.executable, "-m", "uvicorn", factory, "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # The bare app does not speak the lifespan protocol; the middlewares have nothing to start.
    command += ["--no-access-log", "--log-level", "warning", "--lifespan", "off", *server_options]
    # taskset execs uvicorn: the pid is the server's own.
    proc = subprocess.Popen(command, cwd=ROOT)
    try:
        _wait_listening(port, proc)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_REQUESTS_PER_SEC = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*([0-9]+) requests in", re.MULTILINE)


def parse_wrk(output: str) -> float:
    match = _REQUESTS_PER_SEC.search(output)
    if match is None:
        raise ValueError(f"no Requests/sec in wrk output:\n{output}")
    return float(match.group(1))


def parse_requests(output: str) -> int:
    match = _REQUESTS.search(output)
    if match is None:
        raise ValueError(f"no request count in wrk output:\n{output}")
    return int(match.group(1))


def request_headers() -> list[tuple[str, str]]:
    """An allowed credentialed cross-origin GET, with every header Chromium sends: the request
    a browser app sends most, and what every server-side benchmark loads the servers with."""
    return browser_headers(make_origins(HTTP_ORIGINS)[-1])


def wrk_script() -> str:
    """A wrk Lua script sending :func:`request_headers` byte for byte, in Chromium's order
    (``-H`` flags go through a Lua table, which loses the order)."""
    lines = [f"GET {PATH} HTTP/1.1", *(f"{name}: {value}" for name, value in request_headers())]
    raw = "".join(f"{line}\r\n" for line in lines) + "\r\n"
    literal = raw.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")
    return f'local req = "{literal}"\nrequest = function() return req end\n'


def _wrk_command(port: int, settings: Settings, cores: set[int] | None, script: Path) -> list[str]:
    command = [*_pinned(cores), "wrk", "-t1", f"-c{settings.connections}", f"-d{settings.duration_s}s"]
    return [*command, "-s", str(script), f"http://127.0.0.1:{port}{PATH}"]


def load_together(
    ports: dict[str, int], settings: Settings, cores: set[int] | None, script: Path
) -> dict[str, str]:
    """One wrk per target, all started at once; their outputs once all have finished."""
    runs = {
        name: subprocess.Popen(_wrk_command(port, settings, cores, script), stdout=subprocess.PIPE, text=True)
        for name, port in ports.items()
    }
    outputs = {}
    try:
        for name, run in runs.items():
            outputs[name], _ = run.communicate(timeout=settings.duration_s + 30)
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()
    for name, output in outputs.items():
        if "Non-2xx" in output or "Socket errors" in output:
            raise RuntimeError(f"wrk saw errors on {name}; the numbers would not be comparable:\n{output}")
    return outputs


def _server_description(name: str) -> str:
    import uvicorn

    return f"uvicorn {uvicorn.__version__} ({name})"


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def run_server(name: str, options: list[str], settings: Settings) -> HttpResults:
    results = HttpResults(settings, _server_description(name))
    results.samples = {target: [] for target in TARGETS}
    results.cpu_us = {target: [] for target in TARGETS}
    for _ in range(settings.sessions):
        _run_session(options, settings, results)
    return results


def _run_session(options: list[str], settings: Settings, results: HttpResults) -> None:
    server_cores, wrk_cores = _cores() or (None, None)
    with contextlib.ExitStack() as servers:
        script = Path(servers.enter_context(tempfile.TemporaryDirectory())) / "request.lua"
        script.write_text(wrk_script())
        started = {
            target: servers.enter_context(serve(factory, options, server_cores))
            for target, factory in TARGETS.items()
        }
        ports = {target: port for target, (port, _) in started.items()}
        for _ in range(settings.rounds):
            before = {target: _cpu_seconds(pid) for target, (_, pid) in started.items()}
            outputs = load_together(ports, settings, wrk_cores, script)
            for target, (_, pid) in started.items():
                results.samples[target].append(parse_wrk(outputs[target]))
                cpu_before, cpu_after = before[target], _cpu_seconds(pid)
                if cpu_before is not None and cpu_after is not None:
                    requests = parse_requests(outputs[target])
                    results.cpu_us[target].append((cpu_after - cpu_before) / requests * 1e6)


def run(settings: Settings | None = None) -> list[HttpResults]:
    """One result per uvicorn HTTP stack installed (h11 always)."""
    settings = settings or Settings()
    if shutil.which("wrk") is None:
        skipped = HttpResults(settings, _server_description("h11, asyncio"))
        skipped.skipped = "wrk is not installed (`make system-deps` installs it)"
        return [skipped]
    return [
        run_server(name, options, settings)
        for name, (modules, options) in SERVERS.items()
        if all(_importable(module) for module in modules)
    ]

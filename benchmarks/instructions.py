"""Instructions per request behind uvicorn, counted by valgrind: a cost that load cannot move.

    python -m benchmarks.instructions [--h11] [--quick] [app ...]

Each app (see ``APPS``) is served by uvicorn (httptools and uvloop, or h11 and asyncio with
``--h11``) under ``valgrind --tool=callgrind --instr-atstart=no``, with ``PYTHONHASHSEED=0``. One
keep-alive client sends the same request as the wrk benchmark (an allowed credentialed GET with
the 15 headers Chromium sends): ``WARMUP`` requests uninstrumented, then callgrind's counters
are switched on and zeroed (``callgrind_control -i on``, ``--zero``), ``REQUESTS`` requests are
sent, the counters are switched off and dumped (``-i off``, ``--dump``). Start-up, imports,
warm-up and shutdown are outside the count, so it is the same from run to run whatever else the
machine does, and reads to a few instructions per request: the measure to use when a throughput
ratio is close to a line. What remains besides the requests is uvicorn's own 0.1 s timer while
the window is open (a few hundred instructions a turn, under ten per request).

Instructions are not time (a server's instructions run slower than a tight loop's, with colder
caches), so read the count next to the req/s of ``make bench``, which runs the default set.
Two apps are counted at once (one per core: the count does not depend on the load).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.http import FLOOR, PATH, ROOT, SERVERS, TARGETS, VARY_TARGETS, _free_port, request_headers

APPS = {**TARGETS, **VARY_TARGETS}
DEFAULT_APPS = ("bare", "floor", "corsengine", "starlette", *VARY_TARGETS)
QUICK_APPS = ("floor", "corsengine")
# Each app without the Vary its counterpart sets: the pairs of the Vary target.
WITHOUT_VARY = {name: name.removesuffix(", app sets Vary") for name in VARY_TARGETS}
WARMUP, REQUESTS = 300, 1000
FIRST = 20
QUICK_WARMUP, QUICK_REQUESTS = 20, 50
_TOTALS = re.compile(r"^totals:\s+([0-9]+)", re.MULTILINE)


@dataclass
class Settings:
    stack: str = "httptools, uvloop"
    warmup: int = WARMUP
    requests: int = REQUESTS
    apps: tuple[str, ...] = DEFAULT_APPS
    parallel: int = 2


QUICK = Settings(warmup=QUICK_WARMUP, requests=QUICK_REQUESTS, apps=QUICK_APPS)


@dataclass
class InstructionResults:
    settings: Settings
    server: str
    per_request: dict[str, float] = field(default_factory=dict)
    skipped: str | None = None

    def over(self, name: str, base: str) -> float | None:
        if name not in self.per_request or base not in self.per_request:
            return None
        return self.per_request[name] - self.per_request[base]


class Client:
    """One keep-alive connection sending the benchmark's request, headers in Chromium's order."""

    def __init__(self, port: int, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:  # valgrind takes seconds to start the server
            try:
                self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
                self.connection.connect()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.headers = request_headers()

    def send(self, count: int) -> None:
        connection = self.connection
        for _ in range(count):
            # No Host or Accept-Encoding of http.client's own: the request carries Chromium's.
            connection.putrequest("GET", PATH, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers:
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")

    def close(self) -> None:
        self.connection.close()


def _control(pid: int, *args: str) -> None:
    # Synchronous: callgrind has applied the command when this returns (uvicorn's 0.1 s timer
    # wakes an idle server, so the command never waits for a request).
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def _server(factory: str, server_options: list[str], out: Path) -> Iterator[tuple[int, int]]:
    port = _free_port()
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    command += [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning", "--lifespan", "off"]
    command += server_options
    # The hash seed changes set and dict layouts, and with them a few hundred instructions.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield port, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def count(factory: str, settings: Settings) -> float:
    """Instructions the server executes per request, warm, start-up and shutdown excluded."""
    _, server_options = SERVERS[settings.stack]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        with _server(factory, server_options, out) as (port, pid):
            client = Client(port)
            try:
                client.send(settings.warmup)
                _control(pid, "--instr=on")
                # Switching on costs a few hundred thousand instructions once, whatever follows:
                # a first dump (which also zeroes the counters) takes them out with a few requests.
                _control(pid, "--zero")
                client.send(FIRST)
                _control(pid, "--dump")
                client.send(settings.requests)
                _control(pid, "--instr=off")
                _control(pid, "--dump")
            finally:
                client.close()
        dumps = sorted(Path(tmp).glob("callgrind.out.*"), key=lambda path: int(path.suffix[1:]))
        if len(dumps) != 2:
            raise RuntimeError(f"callgrind wrote {len(dumps)} dumps for {factory}, not 2")
        match = _TOTALS.search(dumps[-1].read_text(errors="replace"))
        if match is None:
            raise RuntimeError(f"no totals in {dumps[-1]}")
        return int(match.group(1)) / settings.requests


def run(settings: Settings | None = None) -> InstructionResults:
    settings = settings or Settings()
    from benchmarks.http import _server_description

    results = InstructionResults(settings, _server_description(settings.stack))
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        results.skipped = "valgrind is not installed (apt-get install valgrind)"
        return results
    with ThreadPoolExecutor(max_workers=settings.parallel) as pool:
        counts = {name: pool.submit(count, APPS[name], settings) for name in settings.apps}
        results.per_request = {name: future.result() for name, future in counts.items()}
    return results


def _difference(results: InstructionResults, name: str, base: str) -> str:
    value = results.over(name, base)
    return "" if value is None or name == base else f"{value:+,.0f}"


def table(results: InstructionResults) -> str:
    if results.skipped:
        return f"Instruction count skipped: {results.skipped}."
    lines = [
        "| app | instructions per request | over the bare app | over the floor |",
        "|---|--:|--:|--:|",
    ]
    for name, value in results.per_request.items():
        # An app that sets Vary is compared with the bare app and the floor that set it too.
        bare, floor = ("bare", FLOOR) if name not in VARY_TARGETS else tuple(VARY_TARGETS)[:2]
        cells = [_difference(results, name, base) for base in (bare, floor)]
        lines.append(f"| {name} | {value:,.0f} | {' | '.join(cells)} |")
    vary = [name for name in VARY_TARGETS if results.over(name, WITHOUT_VARY[name]) is not None]
    if vary:
        lines += ["", "| app | what its app's own Vary costs it |", "|---|--:|"]
        for name in vary:
            lines.append(f"| {WITHOUT_VARY[name]} | {results.over(name, WITHOUT_VARY[name]):+,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("--h11", action="store_true", help="uvicorn's h11 and asyncio stack")
    parser.add_argument("--quick", action="store_true", help="few requests, two apps: checks it runs")
    parser.add_argument("apps", nargs="*", metavar="app", help="any of: " + "; ".join(APPS))
    args = parser.parse_args(argv)
    unknown = [name for name in args.apps if name not in APPS]
    if unknown:
        parser.error(f"unknown app {unknown[0]!r}; choose from: {'; '.join(APPS)}")
    settings = Settings(**vars(QUICK)) if args.quick else Settings()
    if args.h11:
        settings.stack = "h11, asyncio"
    if args.apps:
        settings.apps = tuple(args.apps)
    results = run(settings)
    if results.skipped:
        print(results.skipped, file=sys.stderr)
        return 1
    print(
        f"{results.server}: {settings.requests:,} requests counted after {settings.warmup:,} warm-up requests"
    )
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Instructions per request behind uvicorn, counted by valgrind: a cost that load cannot move.

    python -m benchmarks.instructions [--h11] [--quick] [--keep DIR] [app ...]

Each app (see ``APPS``) is served by uvicorn (httptools and uvloop, or h11 and asyncio with
``--h11``) under ``valgrind --tool=callgrind --instr-atstart=no``, with ``PYTHONHASHSEED=0``. One
keep-alive client sends the same request as the wrk benchmark (an allowed credentialed GET with
the 15 headers Chromium sends): ``WARMUP`` requests uninstrumented; then callgrind's counters are
switched on and zeroed (``callgrind_control --instr=on``, ``--zero``), ``FIRST`` requests and a
``--dump`` take out what switching on costs, ``REQUESTS`` requests are sent, and the counters are
switched off and dumped again. Start-up, imports, warm-up and shutdown are outside the count.

The server is uvicorn without its 0.1 s timer (``benchmarks.quiet_uvicorn``): under callgrind
that timer costs about 230,000 instructions a second, which the window would charge to the
requests in proportion to how long they took, that is to the machine's load. What remains is
the layout of a few sets keyed by object address (uvicorn's tasks, uvloop's timers), which one
server keeps for its life: one server's count can read up to 500 instructions a request off
another's. Each app is therefore counted in ``servers`` fresh servers and the median kept; every
count is printed.

Instructions are not time (a server's instructions run slower than a tight loop's, with colder
caches), so read the count next to the req/s of ``make bench``, which runs the default set.
Two servers are counted at once (one per core: the count does not depend on the load).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.http import FLOOR, PATH, ROOT, SERVERS, TARGETS, VARY_TARGETS, request_headers

APPS = {**TARGETS, **VARY_TARGETS}
DEFAULT_APPS = ("bare", "headers only", "floor", "corsengine", "starlette", *VARY_TARGETS)
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
    # Each app is counted in this many fresh servers and the median kept (see the module's doc).
    servers: int = 3
    parallel: int = 2
    # Where to keep each server's dump, for callgrind_annotate; None: nowhere.
    keep: Path | None = None


QUICK = Settings(warmup=QUICK_WARMUP, requests=QUICK_REQUESTS, apps=QUICK_APPS, servers=1)


@dataclass
class InstructionResults:
    settings: Settings
    server: str
    per_request: dict[str, float] = field(default_factory=dict)
    # Every server's count, per app: the median is per_request.
    samples: dict[str, list[float]] = field(default_factory=dict)
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
    # The socket is bound here and handed down: a port chosen here and bound by the server
    # seconds later (valgrind starts slowly) was taken by another process in between once.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    # uvicorn without its 0.1 s timer, whose cost would depend on how long the requests took.
    command += [sys.executable, "-m", "benchmarks.quiet_uvicorn", factory, "--fd", str(listener.fileno())]
    command += server_options
    # The hash seed changes set and dict layouts, and with them a few hundred instructions.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with listener:
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            pass_fds=[listener.fileno()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        yield port, server.pid
    finally:
        server.terminate()  # the counts are dumped already
        try:
            server.wait(timeout=30)
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
        if settings.keep is not None:
            settings.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(dumps[-1], settings.keep / f"callgrind.out.{factory.rpartition(':')[2]}.{pid}")
        return int(match.group(1)) / settings.requests


def run(settings: Settings | None = None) -> InstructionResults:
    settings = settings or Settings()
    from benchmarks.http import _server_description

    results = InstructionResults(settings, _server_description(settings.stack))
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        results.skipped = "valgrind is not installed (apt-get install valgrind)"
        return results
    with ThreadPoolExecutor(max_workers=settings.parallel) as pool:
        counts = {
            name: [pool.submit(count, APPS[name], settings) for _ in range(settings.servers)]
            for name in settings.apps
        }
        results.samples = {name: [future.result() for future in futures] for name, futures in counts.items()}
    results.per_request = {name: statistics.median(samples) for name, samples in results.samples.items()}
    return results


def _difference(results: InstructionResults, name: str, base: str) -> str:
    value = results.over(name, base)
    return "" if value is None or name == base else f"{value:+,.0f}"


def table(results: InstructionResults) -> str:
    if results.skipped:
        return f"Instruction count skipped: {results.skipped}."
    lines = [
        "| app | instructions per request (median) | over the bare app | over the floor | per server |",
        "|---|--:|--:|--:|---|",
    ]
    for name, value in results.per_request.items():
        # An app that sets Vary is compared with the bare app and the floor that set it too.
        bare, floor = ("bare", FLOOR) if name not in VARY_TARGETS else tuple(VARY_TARGETS)[:2]
        cells = [_difference(results, name, base) for base in (bare, floor)]
        each = ", ".join(f"{sample:,.0f}" for sample in results.samples.get(name, ()))
        lines.append(f"| {name} | {value:,.0f} | {' | '.join(cells)} | {each} |")
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
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the dumps here (callgrind_annotate)")
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
    settings.keep = args.keep
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

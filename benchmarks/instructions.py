"""Instructions per request behind uvicorn, counted by valgrind: a cost that load cannot move.

    python -m benchmarks.instructions [--h11] [target ...]

Each target (see ``benchmarks.http.TARGETS``) is served by uvicorn (httptools and uvloop, or
h11 and asyncio with ``--h11``) under
``valgrind --tool=callgrind``, and one keep-alive client sends a fixed number of allowed
cross-origin GETs, twice: with ``FEW`` requests and with ``MANY``. The difference between the two
totals, divided by ``MANY - FEW``, is the instructions per request, start-up excluded. The count
is the same from run to run whatever else the machine does, which makes it the measure to read
when a throughput ratio is close to a line. Instructions are not time (a server's instructions
run slower than a tight loop's, with colder caches), so read it next to ``make bench``.

Not part of ``make bench``: it needs valgrind, and takes about 20 s per target and count.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.apps import HTTP_ORIGINS, make_origins
from benchmarks.http import ROOT, SERVERS, TARGETS, _free_port

FEW, MANY = 1000, 3000
_SUMMARY = re.compile(r"^summary:\s+([0-9]+)", re.MULTILINE)


def _send(port: int, count: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:  # valgrind takes seconds to start the server
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
            connection.connect()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    origin = make_origins(HTTP_ORIGINS)[-1]
    try:
        for _ in range(count):
            connection.request("GET", "/items", headers={"Origin": origin})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
    finally:
        connection.close()


def count(factory: str, requests: int, server_options: list[str]) -> int:
    """Instructions the server executed, from start to exit, serving ``requests`` requests."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        port = _free_port()
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
        command += ["-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--no-access-log", "--log-level", "warning", "--lifespan", "off"]
        command += server_options
        server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _send(port, requests)
        finally:
            server.terminate()  # uvicorn exits cleanly on SIGTERM; callgrind then writes its file
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        match = _SUMMARY.search(out.read_text(errors="replace"))
        if match is None:
            raise RuntimeError(f"no summary in {out}")
        return int(match.group(1))


def main(argv: list[str]) -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 1
    stack = "h11, asyncio" if "--h11" in argv else "httptools, uvloop"
    _, server_options = SERVERS[stack]
    names = [arg for arg in argv if arg != "--h11"] or [
        "bare",
        "minimal middleware",
        "corsengine",
        "starlette",
    ]
    per_request = {}
    for name in names:
        few = count(TARGETS[name], FEW, server_options)
        many = count(TARGETS[name], MANY, server_options)
        per_request[name] = (many - few) / (MANY - FEW)
        print(f"{name}: {per_request[name]:,.0f} instructions per request", file=sys.stderr)
    base = per_request.get("bare")
    print(f"uvicorn ({stack})")
    print("| app | instructions per request | over the bare app |")
    print("|---|--:|--:|")
    for name, value in per_request.items():
        extra = "" if base is None else f"{value - base:+,.0f}"
        print(f"| {name} | {value:,.0f} | {extra} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

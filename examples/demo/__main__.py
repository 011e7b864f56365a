"""python -m examples.demo [--host 127.0.0.1] [--port 8000] [--state-dir demo-state]

Serves the API on --port and the frontend on the next two ports (--port 0: free ports), all on
--host only, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from .app import Reasons, Sites, build_api, build_frontend, write_allowlist

STARTUP_TIMEOUT = 10.0


class _Server(uvicorn.Server):
    """uvicorn's Server minus its signal handling (main() stops all servers on one Ctrl-C),
    plus an event for "listening", so main() prints the URLs only once they work."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def _bind(host: str, port: int) -> socket.socket:
    try:
        return socket.create_server((host, port))
    except OSError as error:
        sys.exit(f"cannot listen on {host}:{port}: {error} (try --port 0 for free ports)")


def _grid_origins(host: str, frontend_ports: tuple[int, int]) -> tuple[str, ...]:
    main, second = frontend_ports
    names = [host]
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            # Chromium resolves localhost and *.localhost to loopback itself: more origins
            # for the grid from the one loopback address the demo listens on.
            names = [host, "localhost", "app.localhost"]
    return (*(f"http://{name}:{main}" for name in names), f"http://{host}:{second}")


async def serve(apps: list[tuple[Any, socket.socket]], banner: str) -> int:
    servers = [_Server(uvicorn.Config(app, log_level="warning")) for app, _ in apps]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    tasks = [asyncio.create_task(s.serve(sockets=[sock])) for s, (_, sock) in zip(servers, apps, strict=True)]

    async def all_ready() -> None:
        for server in servers:
            await server.ready.wait()

    ready = asyncio.create_task(all_ready())
    # Whichever comes first: every server listening, or one of them ending (a failed startup).
    await asyncio.wait({ready, *tasks}, timeout=STARTUP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        print("the demo could not start (see the errors above)", file=sys.stderr)
        return 1
    print(banner, flush=True)
    await asyncio.gather(*tasks)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="the only address served (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="the API's port; the frontend uses the next two (0: free ports)",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=Path("demo-state"), help="where the allowlist file lives"
    )
    args = parser.parse_args(argv)

    ports = (args.port, args.port + 1, args.port + 2) if args.port else (0, 0, 0)
    api_socket, frontend_socket, second_socket = (_bind(args.host, port) for port in ports)
    url_host = f"[{args.host}]" if ":" in args.host else args.host
    api_port, frontend_port, second_port = (
        s.getsockname()[1] for s in (api_socket, frontend_socket, second_socket)
    )
    sites = Sites(
        api=f"http://{url_host}:{api_port}",
        frontend=f"http://{url_host}:{frontend_port}",
        grid_origins=_grid_origins(url_host, (frontend_port, second_port)),
    )
    allowlist = args.state_dir / "allowlist.json"
    # A fresh file each start: the ports, and so the origins, may differ from the last run.
    write_allowlist(allowlist, sites.default_allowlist())
    reasons = Reasons()  # the API records why it refused each probe; the frontend tells the page
    frontend = build_frontend(sites, reasons)

    banner = "\n".join(
        [
            "corsengine demo",
            f"Frontend: {sites.frontend}/  (the grid and the admin panel)",
            f"API: {sites.api}/  (admin panel alone: {sites.api}/admin)",
            f"Allowlist file: {allowlist}  (edits by hand are picked up too)",
            "Ctrl-C to stop.",
        ]
    )
    api = build_api(sites, allowlist, reasons)
    apps = [(api, api_socket), (frontend, frontend_socket), (frontend, second_socket)]
    return asyncio.run(serve(apps, banner))


if __name__ == "__main__":
    sys.exit(main())

"""Real local servers for provider tests: redis-server and a misbehaving HTTP server."""

from __future__ import annotations

import contextlib
import inspect
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass (a bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class RedisServer:
    """A throwaway redis-server on a free loopback port; restartable on the same port."""

    def __init__(self, *, persist: bool = False) -> None:
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="corsengine-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        # With persist, every write is in the append-only file before Redis answers, so a
        # restart after kill() keeps the data, as a production Redis would.
        self.persist = persist

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persist else "no",
                "--appendfsync",
                "always",
            ],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(self.ping, 10):
            self.stop()
            raise RuntimeError(f"redis-server did not answer PING on port {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill: no goodbye to the clients."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def redis_server(*, persist: bool = False) -> Iterator[RedisServer]:
    if not Path(REDIS_SERVER).exists():
        import pytest

        pytest.skip("redis-server is not installed (make system-deps)")
    server = RedisServer(persist=persist)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


class Behaviour:
    """What the document server does next; tests change it between requests."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.body = b'["https://good.example"]'
        self.etag: str | None = '"v1"'
        self.cache_control: str | None = None
        self.delay = 0.0
        self.requests: list[dict[str, str]] = []
        self.stop = threading.Event()


class _HangUpTolerantServer(ThreadingHTTPServer):
    """Clients hanging up (a timeout, a pool closed with idle connections) are part of the
    tests, not errors: no traceback for them; any other error is still printed."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class DocumentServer:
    """A threaded HTTP server on a free port serving one JSON document, told how to misbehave.

    Modes: ok (200, honours If-None-Match with 304), 500, slow (waits ``delay`` before
    answering), dribble (headers at once, then one byte per ``delay``), huge (10 MB),
    close (closes the connection without an answer).
    """

    def __init__(self) -> None:
        self.behaviour = behaviour = Behaviour()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                behaviour.requests.append(dict(self.headers.items()))
                mode = behaviour.mode
                if mode == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "slow" and behaviour.stop.wait(behaviour.delay):
                    return
                if mode == "500":
                    self._send(500, b"oops")
                    return
                if mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if mode == "huge":
                    self._send(200, b"[" + b'"https://a.example",' * 600_000 + b'"https://b.example"]')
                    return
                if mode == "dribble":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(behaviour.body)))
                    self.end_headers()
                    for byte in behaviour.body:
                        if behaviour.stop.wait(behaviour.delay):
                            return
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:
                            return
                    return
                if behaviour.etag is not None and self.headers.get("If-None-Match") == behaviour.etag:
                    self._send(304, b"")
                    return
                self._send(200, behaviour.body)

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                if behaviour.etag is not None:
                    self.send_header("ETag", behaviour.etag)
                if behaviour.cache_control is not None:
                    self.send_header("Cache-Control", behaviour.cache_control)
                self.send_header("Content-Type", "application/json")
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    with contextlib.suppress(OSError):
                        self.wfile.write(body)

        self.server = _HangUpTolerantServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/origins.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> DocumentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.behaviour.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


async def eventually(condition: Callable[[], Awaitable[bool] | bool], within: float = 5.0) -> None:
    """Await until ``condition()`` holds, checking every few ms; fails after ``within`` seconds.

    Polling is the point: the condition is observed from outside (a policy answer, a
    Redis counter), there is no event to wait on.
    """
    with anyio.fail_after(within):
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await anyio.sleep(0.005)

"""Fixtures for the real-browser suite: loopback servers in threads and one headless Chromium.

Every server binds 127.0.0.1 on a free port chosen by the kernel. The page server is reached under
several host names (127.0.0.1, localhost, app.localhost): Chromium resolves `localhost` and
`*.localhost` to loopback by itself, which gives the suite several distinct origins without
touching /etc/hosts or any other interface.

The suite writes nothing into the repository unless CORSENGINE_UPDATE_DOCS=1: then the outcomes
it recorded replace the table between the matrix markers of docs/browser-matrix.md, and the demo
test saves its screenshot as docs/demo.png.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import inspect
import json
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

playwright_sync = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

from starlette.applications import Starlette  # noqa: E402  (after the importorskips on purpose)
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import HTMLResponse, JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

CHROMIUM = os.environ.get("CORSENGINE_CHROMIUM", "/usr/bin/chromium")
# Everything that could make Chromium talk to anything but loopback is switched off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
STARTUP_TIMEOUT = 10.0  # seconds; a loopback server starts in milliseconds
FETCH_TIMEOUT_MS = 5_000
DOCS = Path(__file__).resolve().parents[2] / "docs"
UPDATE_DOCS = os.environ.get("CORSENGINE_UPDATE_DOCS") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


# --------------------------------------------------------------------------- servers


class _Uvicorn(uvicorn.Server):
    """uvicorn's Server with a threading.Event for "startup finished", so nothing polls."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            # Set on failure too (uvicorn raises SystemExit when the lifespan fails), so that
            # start() can report the failure instead of waiting for its timeout.
            self.ready.set()


class LoopbackServer:
    """One ASGI app served by uvicorn on 127.0.0.1 in a daemon thread with its own event loop."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1") -> None:
        # Binding before the thread starts makes the port known (and reserved) up front.
        self._socket = socket.create_server((host, 0))
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="auto", timeout_graceful_shutdown=1)
        self._server = _Uvicorn(config)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._socket])

    def start(self) -> LoopbackServer:
        self._thread.start()
        if not self._server.ready.wait(STARTUP_TIMEOUT) or not self._server.started:
            raise RuntimeError(f"uvicorn did not start on {self.host}:{self.port}")
        return self

    def origin(self, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}"

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) (awaited if it returns an awaitable) on the server's event loop.

        Hot swaps and refreshes touch state the server's requests use; running them on that
        loop is what an admin endpoint of a real app would do, and avoids anyio primitives
        being used from a foreign thread.
        """
        assert self._loop is not None

        async def run() -> Any:
            result = fn(*args)
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=STARTUP_TIMEOUT)

    def stop(self) -> None:
        self._server.should_exit = True

    def join(self) -> None:
        self._thread.join(timeout=STARTUP_TIMEOUT)


@pytest.fixture(scope="package")
def servers() -> Iterator[Callable[[Any], LoopbackServer]]:
    """Start servers on demand; all of them are stopped together when the browser suite ends.

    uvicorn needs ~0.2 s to wind down (one tick of its main loop plus a grace period); stopping
    them all at once instead of one per test keeps that cost paid once.
    """
    started: list[LoopbackServer] = []

    def start(app: Any) -> LoopbackServer:
        server = LoopbackServer(app).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        server.join()


# --------------------------------------------------------------------------- origins and pages

BLANK_PAGE = '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>page</title>'


@dataclasses.dataclass(frozen=True)
class Origins:
    """The page origins the suite loads pages from; all are the same loopback server."""

    ip: str  # http://127.0.0.1:P
    localhost: str  # http://localhost:P
    app: str  # http://app.localhost:P
    port: int


@pytest.fixture(scope="package")
def origins(servers: Callable[[Any], LoopbackServer]) -> Origins:
    page_app = Starlette(routes=[Route("/", lambda _: HTMLResponse(BLANK_PAGE))])
    server = servers(page_app)
    return Origins(
        ip=server.origin("127.0.0.1"),
        localhost=server.origin("localhost"),
        app=server.origin("app.localhost"),
        port=server.port,
    )


# --------------------------------------------------------------------------- the API under test


class RequestLog:
    """Outermost ASGI layer: records every request that reaches the server, preflights included.

    The browser's behaviour is visible here: whether it sent a preflight at all, and whether it
    sent the actual request after the preflight.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)

    def count(self, method: str, path: str = "/data") -> int:
        return self.requests.count((method, path))


async def _data(request: Request) -> Response:
    # Cache-Control: no-store so that no HTTP cache ever answers for the server.
    headers = {"X-Exposed": "visible", "X-Hidden": "secret", "Cache-Control": "no-store"}
    return JSONResponse({"method": request.method}, headers=headers)


async def _whoami(request: Request) -> Response:
    return JSONResponse({"session": request.cookies.get("session")}, headers={"Cache-Control": "no-store"})


async def _app_sets_cors(_: Request) -> Response:
    # An app (or a proxy, or another middleware) that writes its own CORS header.
    return JSONResponse({"data": "public?"}, headers={"Access-Control-Allow-Origin": "*"})


def api_app() -> Starlette:
    """The app behind the CORS middleware: every method is routed, so CORS is the only gate."""
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route("/data", _data, methods=methods),
            Route("/whoami", _whoami),
            Route("/app-sets-cors", _app_sets_cors),
        ]
    )


@dataclasses.dataclass
class Api:
    server: LoopbackServer
    log: RequestLog
    middleware: Any

    def url(self, path: str = "/data") -> str:
        return self.server.origin() + path


@dataclasses.dataclass(frozen=True)
class Impl:
    """A CORS middleware implementation under test."""

    name: str
    cls: Any
    extension: bool = False  # a corsengine-only case, with no Starlette counterpart


def _corsengine_available() -> bool:
    # find_spec, not a try/import: once the package exists, an import error must fail loudly.
    return importlib.util.find_spec("corsengine") is not None


@pytest.fixture(params=["corsengine", "starlette"])
def impl(request: pytest.FixtureRequest) -> Impl:
    """Both middlewares, for the cases that use only Starlette's keyword arguments."""
    if request.param == "starlette":
        return Impl("starlette", StarletteCORSMiddleware)
    if not _corsengine_available():
        pytest.skip("corsengine's core is not merged into this branch yet")
    import corsengine

    return Impl("corsengine", corsengine.CORSMiddleware)


@pytest.fixture
def corsengine_impl() -> Impl:
    """corsengine alone, for its own extensions (callables, providers, patterns, hot swap)."""
    if not _corsengine_available():
        pytest.skip("corsengine's core is not merged into this branch yet")
    import corsengine

    return Impl("corsengine", corsengine.CORSMiddleware, extension=True)


@pytest.fixture
def serve_api(servers: Callable[[Any], LoopbackServer]) -> Callable[..., Api]:
    """Start the API behind impl's middleware configured with **options, on a fresh port.

    A fresh server per test gives every test its own origin for the API, so neither the
    browser's preflight cache nor its connection pool carries anything from one test to another.
    """

    def start(impl: Impl, **options: Any) -> Api:
        middleware = impl.cls(api_app(), **options)
        log = RequestLog(middleware)
        return Api(servers(log), log, middleware)

    return start


# --------------------------------------------------------------------------- the browser

# Runs in the page: one fetch, reported as plain data. A CORS refusal rejects the promise with a
# TypeError ("Failed to fetch"); the reason is only on the console, which BrowserPage collects.
FETCH_JS = """
async ({url, init, readHeader}) => {
  try {
    const response = await fetch(url, init);
    const body = await response.text();
    return {
      ok: response.ok,
      status: response.status,
      error: null,
      headerValue: readHeader ? response.headers.get(readHeader) : null,
      body,
    };
  } catch (error) {
    return {ok: false, status: 0, error: String(error), headerValue: null, body: null};
  }
}
"""

_CORS_CONSOLE = re.compile(r"has been blocked by CORS policy: (?P<reason>.*)")


@dataclasses.dataclass(frozen=True)
class FetchResult:
    ok: bool
    status: int
    error: str | None
    header_value: str | None
    body: str | None
    cors_reason: str | None  # Chromium's console message, when it refused the response
    read_header: str | None = None  # the response header the script tried to read

    @property
    def json(self) -> Any:
        assert self.body is not None, f"no body: {self}"
        return json.loads(self.body)

    @property
    def blocked(self) -> bool:
        """Refused by the browser: the promise rejected with a TypeError."""
        return self.error is not None and self.error.startswith("TypeError")

    def outcome(self) -> str:
        """One line for the matrix."""
        if self.blocked:
            return f"blocked: {self.cors_reason or self.error}"
        text = f"allowed, {self.status}"
        if self.read_header is None:
            return text
        return f"{text}, `{self.read_header}` reads as {json.dumps(self.header_value)}"


class BrowserPage:
    """A page loaded from one origin, which runs fetch() as that origin's script would.

    frame: run the fetches in this frame of the page instead (e.g. a sandboxed iframe, whose
    origin is opaque and is sent as `Origin: null`).
    """

    def __init__(self, page: Any, frame: Any = None) -> None:
        self.page = page
        self.target = frame or page
        self._cors_messages: list[str] = []
        page.on("console", self._on_console)

    def _on_console(self, message: Any) -> None:
        match = _CORS_CONSOLE.search(message.text)
        if match:
            self._cors_messages.append(match["reason"])

    def fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        credentials: str | None = None,
        read_header: str | None = None,
    ) -> FetchResult:
        init: dict[str, Any] = {"method": method, "headers": headers or {}}
        if credentials is not None:
            init["credentials"] = credentials
        seen = len(self._cors_messages)
        raw = self.target.evaluate(FETCH_JS, {"url": url, "init": init, "readHeader": read_header})
        reason = None
        if raw["error"] is not None:
            # Chromium logs the reason right after rejecting the promise; wait for it (bounded)
            # only when there is one to wait for.
            if len(self._cors_messages) == seen:
                with contextlib.suppress(playwright_sync.TimeoutError):
                    self.page.wait_for_event(
                        "console", lambda m: _CORS_CONSOLE.search(m.text) is not None, timeout=2_000
                    )
            reason = self._cors_messages[-1] if len(self._cors_messages) > seen else None
        return FetchResult(
            ok=raw["ok"],
            status=raw["status"],
            error=raw["error"],
            header_value=raw["headerValue"],
            body=raw["body"],
            cors_reason=reason,
            read_header=read_header,
        )


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in the main
# thread while it is open, and every later test calling asyncio.run() or anyio.run() would fail
# with "cannot be called from a running event loop". One browser for the whole browser suite,
# closed as soon as the suite is done.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (set CORSENGINE_CHROMIUM)")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context per test: its own cookies, HTTP cache and preflight cache."""
    context = browser.new_context()
    context.set_default_timeout(FETCH_TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def open_page(context: Any) -> Callable[..., BrowserPage]:
    """open_page(origin) -> a page loaded from that origin, in this test's browser context.

    open_page(origin, sandboxed=True): the fetches run in a sandboxed iframe of that page.
    """

    def open_(origin: str, *, sandboxed: bool = False) -> BrowserPage:
        page = context.new_page()
        page.goto(origin + "/")
        if not sandboxed:
            return BrowserPage(page)
        # Scripts allowed, same-origin not: the frame's origin is opaque.
        page.set_content('<iframe sandbox="allow-scripts" srcdoc="<title>sandboxed</title>"></iframe>')
        frame = page.locator("iframe").element_handle().content_frame()
        return BrowserPage(page, frame)

    return open_


# --------------------------------------------------------------------------- the matrix


class Matrix:
    """Outcomes per case and implementation, written to docs/browser-matrix.md on request."""

    START = "<!-- matrix:start -->"
    END = "<!-- matrix:end -->"
    IMPLS = ("corsengine", "starlette")

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, tuple[FetchResult, str]]] = {}
        self.extensions: dict[str, tuple[FetchResult, str]] = {}

    def record(self, case: str, impl: Impl, result: FetchResult, note: str = "") -> None:
        """Record one outcome; note adds what the server saw (e.g. how many preflights)."""
        if impl.extension:
            self.extensions[case] = (result, note)
        else:
            self.rows.setdefault(case, {})[impl.name] = (result, note)

    def table(self) -> str:
        lines = [
            "### Starlette-compatible arguments, both middlewares",
            "",
            "| Case | corsengine | Starlette | Same for the script? |",
            "| --- | --- | --- | --- |",
        ]
        for case, results in self.rows.items():
            cells = [_cell(*results[name]) if name in results else "not run" for name in self.IMPLS]
            if len(results) < len(self.IMPLS):
                same = "n/a"
            else:
                # What the page's script can observe; the console wording of a refusal may differ.
                seen = {(r.ok, r.status, r.blocked, r.header_value, r.body, n) for r, n in results.values()}
                same = "yes" if len(seen) == 1 else "**no**"
            lines.append(f"| {case} | {' | '.join(cells)} | {same} |")
        lines += ["", "### corsengine extensions", "", "| Case | corsengine |", "| --- | --- |"]
        lines += [f"| {case} | {_cell(*outcome)} |" for case, outcome in self.extensions.items()]
        return "\n".join(lines)

    def write_into(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        before, start, rest = text.partition(self.START)
        _, end, after = rest.partition(self.END)
        if not (start and end):
            raise RuntimeError(f"{path} has no {self.START} ... {self.END} section")
        path.write_text(f"{before}{self.START}\n{self.table()}\n{self.END}{after}", encoding="utf-8")


def _cell(result: FetchResult, note: str) -> str:
    return (result.outcome() + note).replace("|", "/")


@pytest.fixture(scope="session")
def matrix() -> Iterator[Matrix]:
    recorded = Matrix()
    yield recorded
    if UPDATE_DOCS and (recorded.rows or recorded.extensions):
        recorded.write_into(DOCS / "browser-matrix.md")


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    """Where a test saves documentation artifacts: docs/ when updating them, else a temp dir."""
    return DOCS if UPDATE_DOCS else tmp_path

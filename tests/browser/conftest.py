"""Fixtures for the real-browser suite: loopback servers in threads and three browser engines.

Every server binds 127.0.0.1 on a free port chosen by the kernel. The page server is reached under
several host names (127.0.0.1, localhost, app.localhost): Chromium, Firefox and WebKitGTK all
resolve `localhost` and `*.localhost` to loopback by themselves, which gives the suite several
distinct origins without touching /etc/hosts or any other interface.

Every test that takes `engine` (through `open_page` or `context`) runs once per engine: Chromium
(Playwright), Firefox (WebDriver BiDi) and WebKit (WebKitWebDriver on Xvfb), see engines.py.
A missing browser is an error, never a skip: `make system-deps` installs all three.

The suite writes nothing into the repository unless CORSENGINE_UPDATE_DOCS=1: then the outcomes
it recorded replace the tables between the matrix markers of docs/browser-matrix.md, and the demo
test saves its screenshot as docs/demo.png.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import inspect
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .engines import Chromium, Context, Engine, Firefox, Tab, WebKit

STARTUP_TIMEOUT = 10.0  # seconds; a loopback server starts in milliseconds
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
def server_pool() -> Iterator[list[LoopbackServer]]:
    """Every server the browser suite started; all of them are joined when it ends.

    uvicorn needs ~0.2 s to wind down (one tick of its main loop plus a grace period); joining
    them all at once instead of one per test keeps that cost paid once.
    """
    started: list[LoopbackServer] = []
    yield started
    for server in started:
        server.stop()
    for server in started:
        server.join()


@pytest.fixture
def servers(server_pool: list[LoopbackServer]) -> Iterator[Callable[[Any], LoopbackServer]]:
    """Start servers on demand for one test; they are told to stop when it ends.

    Telling costs nothing (they wind down in their own threads, joined by server_pool), and it
    keeps the idle servers of earlier tests, three engines' worth, from ticking all along.
    """
    started: list[LoopbackServer] = []

    def start(app: Any) -> LoopbackServer:
        server = LoopbackServer(app).start()
        server_pool.append(server)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


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
def origins(server_pool: list[LoopbackServer]) -> Origins:
    page_app = Starlette(routes=[Route("/", lambda _: HTMLResponse(BLANK_PAGE))])
    server = LoopbackServer(page_app).start()
    server_pool.append(server)
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

    def url(self, path: str = "/data", *, host: str | None = None) -> str:
        return self.server.origin(host) + path


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


# --------------------------------------------------------------------------- the browsers

# Runs in the page: one fetch, reported as plain data. A CORS refusal rejects the promise with a
# TypeError (its message differs per engine); the reason is only on the console, which
# BrowserPage collects where the engine lets us read it.
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


@dataclasses.dataclass(frozen=True)
class FetchResult:
    ok: bool
    status: int
    error: str | None
    header_value: str | None
    body: str | None
    cors_reason: str | None  # the engine's console message, when it refused the response
    engine: str
    read_header: str | None = None  # the response header the script tried to read

    @property
    def json(self) -> Any:
        assert self.body is not None, f"no body: {self}"
        return json.loads(self.body)

    @property
    def blocked(self) -> bool:
        """Refused by the browser: the promise rejected with a TypeError (in every engine)."""
        return self.error is not None and self.error.startswith("TypeError")

    def reason_says(self, **expected: str) -> bool:
        """Whether the console reason contains expected[engine] (the wording is each engine's).

        An engine whose console the suite cannot read (WebKit) must have recorded no reason.
        """
        if self.engine not in expected:
            return self.cors_reason is None
        return expected[self.engine] in (self.cors_reason or "")

    def outcome(self) -> str:
        """What the page's script observed, in a few words for the matrix."""
        if self.blocked:
            return "blocked"
        text = f"allowed, {self.status}"
        if self.read_header is None:
            return text
        return f"{text}, `{self.read_header}` reads as {json.dumps(self.header_value)}"

    def observed(self) -> tuple[Any, ...]:
        """Everything a script can observe; console wording is not part of it."""
        return (self.ok, self.status, self.blocked, self.header_value, self.body)


class BrowserPage:
    """A page loaded from one origin, which runs fetch() as that origin's script would."""

    CONSOLE_WAIT = 5.0  # seconds, at most; engines log the reason right after rejecting the promise

    def __init__(self, tab: Tab, engine: Engine) -> None:
        self.tab = tab
        self.engine = engine

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
        seen = len(self.tab.console_messages())
        raw = self.tab.run(FETCH_JS, {"url": url, "init": init, "readHeader": read_header})
        reason = None
        if raw["error"] is not None and self.engine.CORS_CONSOLE is not None:
            # Wait for the reason (bounded) only when there is one to wait for.
            self.tab.wait_for_console(self.engine.CORS_CONSOLE, seen, self.CONSOLE_WAIT)
            reasons = [self.engine.cors_reason(text) for text in self.tab.console_messages()[seen:]]
            # The first: an engine writes one reason per refusal (see Engine.CORS_CONSOLE).
            reason = next((r for r in reasons if r is not None), None)
        return FetchResult(
            ok=raw["ok"],
            status=raw["status"],
            error=raw["error"],
            header_value=raw["headerValue"],
            body=raw["body"],
            cors_reason=reason,
            engine=self.engine.name,
            read_header=read_header,
        )


ENGINE_TYPES: dict[str, type[Engine]] = {cls.name: cls for cls in (Chromium, Firefox, WebKit)}
ENGINES = tuple(ENGINE_TYPES)


def _binary(variable: str, default: str) -> str:
    path = os.environ.get(variable, default)
    if shutil.which(path) is None:
        # An error, not a skip: a suite that skips a missing browser would pass without judging.
        raise RuntimeError(f"{path} not found: `make system-deps` installs it (or set {variable})")
    return path


def _minibrowser() -> str:
    # MiniBrowser is not on PATH: it ships in the WebKitGTK library package.
    found = sorted(Path("/usr/lib").glob("*/webkit2gtk-4.*/MiniBrowser"))
    return os.environ.get("CORSENGINE_MINIBROWSER") or (str(found[-1]) if found else "MiniBrowser")


def launch(name: str) -> Engine:
    if name == "chromium":
        return Chromium(_binary("CORSENGINE_CHROMIUM", "/usr/bin/chromium"))
    if name == "firefox":
        return Firefox(_binary("CORSENGINE_FIREFOX", "firefox-esr"))
    if name == "webkit":
        driver = _binary("CORSENGINE_WEBKITWEBDRIVER", "WebKitWebDriver")
        return WebKit(
            driver, _binary("CORSENGINE_MINIBROWSER", _minibrowser()), _binary("CORSENGINE_XVFB", "Xvfb")
        )
    raise ValueError(name)


# Package scope, one engine at a time (pytest runs every test of one engine before it starts
# the next). Not session: Playwright's sync API keeps an asyncio loop running in the main thread
# while it is open, and every later test calling asyncio.run() or anyio.run() would fail with
# "cannot be called from a running event loop"; each engine is closed as soon as its share of
# the suite is done.
@pytest.fixture(scope="package", params=ENGINES)
def engine(request: pytest.FixtureRequest, matrix: Matrix) -> Iterator[Engine]:
    started = launch(request.param)
    try:
        matrix.engines[started.name] = started.product.format(version=started.version)
        yield started
    finally:
        started.close()


@pytest.fixture
def context(engine: Engine) -> Iterator[Context]:
    """A fresh browser context per test: its own cookies (and, in Chromium, its own caches)."""
    context = engine.new_context()
    yield context
    context.close()


@pytest.fixture
def open_page(context: Context, engine: Engine) -> Callable[..., BrowserPage]:
    """open_page(origin) -> a page loaded from that origin, in this test's browser context.

    open_page(origin, sandboxed=True): the fetches run in a sandboxed iframe of that page (its
    origin is opaque and is sent as `Origin: null`).
    """

    def open_(origin: str, *, sandboxed: bool = False) -> BrowserPage:
        tab = context.open(origin + "/")
        return BrowserPage(tab.sandboxed_frame() if sandboxed else tab, engine)

    return open_


@pytest.fixture
def chromium(engine: Engine) -> Any:
    """Playwright's Browser, for the demo tests that drive a UI (parametrize engine=chromium)."""
    assert isinstance(engine, Chromium), f"{engine.name}: this test drives Chromium's UI"
    return engine.browser


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    # Wall time per engine (browser start included), for the terminal summary.
    started = time.monotonic()
    try:
        return (yield)
    finally:
        name = getattr(item, "callspec", None) and item.callspec.params.get("engine")  # type: ignore[attr-defined]
        if name:
            seconds, count = _ENGINE_TIMES.get(name, (0.0, 0))
            _ENGINE_TIMES[name] = (seconds + time.monotonic() - started, count + 1)


_ENGINE_TIMES: dict[str, tuple[float, int]] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _ENGINE_TIMES:
        times = ", ".join(f"{name} {s:.1f} s ({n} tests)" for name, (s, n) in _ENGINE_TIMES.items())
        terminalreporter.write_line(f"browser suite per engine: {times}")


# --------------------------------------------------------------------------- the matrix


class Matrix:
    """Outcomes per case, engine and implementation, written to docs/browser-matrix.md on request."""

    START = "<!-- matrix:start -->"
    END = "<!-- matrix:end -->"
    IMPLS = ("corsengine", "starlette")
    LABELS: ClassVar[dict[str, str]] = {
        **{name: cls.label for name, cls in ENGINE_TYPES.items()},
        "corsengine": "corsengine",
        "starlette": "Starlette",
    }

    def __init__(self) -> None:
        self.engines: dict[str, str] = {}  # name -> "Firefox 153.8.0"
        self.rows: dict[str, dict[tuple[str, str], tuple[FetchResult, str]]] = {}
        self.extensions: dict[str, dict[str, tuple[FetchResult, str]]] = {}

    def record(self, case: str, impl: Impl, result: FetchResult, note: str = "") -> None:
        """Record one outcome; note adds what the server saw (e.g. how many preflights)."""
        if impl.extension:
            self.extensions.setdefault(case, {})[result.engine] = (result, note)
        else:
            self.rows.setdefault(case, {})[(result.engine, impl.name)] = (result, note)

    def table(self) -> str:
        import playwright
        import starlette

        versions = [self.engines.get(name, f"{self.LABELS[name]} (not run)") for name in ENGINES]
        lines = [
            f"Recorded with {', '.join(versions)}; Starlette {starlette.__version__}, "
            f"Playwright {_version(playwright)}.",
            "",
            "### Starlette-compatible arguments, both middlewares",
            "",
            "| Case | "
            + " | ".join(f"{self.LABELS[e]}: {self.LABELS[i]}" for e in ENGINES for i in self.IMPLS)
            + " | Same for the script? |",
            "| --- " * (2 + len(ENGINES) * len(self.IMPLS)) + "|",
        ]
        for case, results in self.rows.items():
            cells = [
                _cell(*results[(e, i)]) if (e, i) in results else "not run"
                for e in ENGINES
                for i in self.IMPLS
            ]
            lines.append(f"| {case} | {' | '.join(cells)} | {_same(results)} |")
        lines += [
            "",
            "### corsengine extensions",
            "",
            "| Case | " + " | ".join(self.LABELS[e] for e in ENGINES) + " | Same in every engine? |",
            "| --- " * (2 + len(ENGINES)) + "|",
        ]
        for case, by_engine in self.extensions.items():
            cells = [_cell(*by_engine[e]) if e in by_engine else "not run" for e in ENGINES]
            if len(by_engine) < len(ENGINES):
                same = "n/a"
            else:
                differ = _engines_differ({e: (r.observed(), n) for e, (r, n) in by_engine.items()})
                same = "**no**: " + "; ".join(differ) if differ else "yes"
            lines.append(f"| {case} | {' | '.join(cells)} | {same} |")
        lines += self._reasons()
        return "\n".join(lines)

    def _reasons(self) -> list[str]:
        """The console reason of every blocked case, per engine that reports one."""
        reporting = [e for e in ENGINES if ENGINE_TYPES[e].CORS_CONSOLE is not None]
        silent = [self.LABELS[e] for e in ENGINES if e not in reporting]
        lines = [
            "",
            "### Why the browser blocked: the console reason",
            "",
            f"Left out: {', '.join(silent)} (the suite cannot read its console)." if silent else "",
            "",
            "| Case | " + " | ".join(self.LABELS[e] for e in reporting) + " |",
            "| --- " * (1 + len(reporting)) + "|",
        ]
        cases: list[tuple[str, dict[str, list[tuple[str, FetchResult]]]]] = []
        for case, results in self.rows.items():
            by_engine: dict[str, list[tuple[str, FetchResult]]] = {}
            for (e, i), (result, _) in results.items():
                by_engine.setdefault(e, []).append((i, result))
            cases.append((case, by_engine))
        for case, by_engine_ext in self.extensions.items():
            cases.append((case, {e: [("corsengine", r)] for e, (r, _) in by_engine_ext.items()}))
        for case, by_engine in cases:
            if not any(r.blocked for pairs in by_engine.values() for _, r in pairs):
                continue
            cells = [_reason_cell(by_engine.get(e, [])) for e in reporting]
            lines.append(f"| {case} | {' | '.join(cells)} |")
        return lines

    def write_into(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        before, start, rest = text.partition(self.START)
        _, end, after = rest.partition(self.END)
        if not (start and end):
            raise RuntimeError(f"{path} has no {self.START} ... {self.END} section")
        path.write_text(f"{before}{self.START}\n{self.table()}\n{self.END}{after}", encoding="utf-8")


def _version(module: Any) -> str:
    from importlib.metadata import version

    return version(module.__name__)


def _cell(result: FetchResult, note: str) -> str:
    return (result.outcome() + note).replace("|", "/")


def _same(results: dict[tuple[str, str], tuple[FetchResult, str]]) -> str:
    """Compare what scripts observed: between the middlewares, then between the engines."""
    if len(results) < len(ENGINES) * len(Matrix.IMPLS):
        return "n/a"
    seen = {key: (result.observed(), note) for key, (result, note) in results.items()}
    by_engine = {e: tuple(seen[(e, i)] for i in Matrix.IMPLS) for e in ENGINES}
    notes = []
    impls_differ = [e for e in ENGINES if len(set(by_engine[e])) > 1]
    if impls_differ:
        where = (
            "every engine"
            if len(impls_differ) == len(ENGINES)
            else ", ".join(Matrix.LABELS[e] for e in impls_differ)
        )
        notes.append(f"corsengine ≠ Starlette ({where})")
    notes += _engines_differ(by_engine)
    return "**no**: " + "; ".join(notes) if notes else "yes"


def _engines_differ(by_engine: dict[str, Any]) -> list[str]:
    """Which engines saw something else than Chromium did (the first engine is the reference)."""
    reference, *others = ENGINES
    differing = [Matrix.LABELS[e] for e in others if by_engine[e] != by_engine[reference]]
    return [f"{' and '.join(differing)} ≠ {Matrix.LABELS[reference]}"] if differing else []


def _reason_cell(pairs: list[tuple[str, FetchResult]]) -> str:
    reasons = {impl: r.cors_reason or ("(none)" if r.blocked else "(allowed)") for impl, r in pairs}
    if not reasons:
        return "not run"
    if len(set(reasons.values())) == 1:
        text = next(iter(reasons.values()))
    else:
        text = "; ".join(f"{Matrix.LABELS[i]}: {reason}" for i, reason in reasons.items())
    return text.replace("|", "/")


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

"""Three browser engines behind one small interface, for the browser suite.

- Chromium: Debian's chromium, through Playwright (as the suite always did).
- Firefox: Debian's firefox-esr, over WebDriver BiDi spoken directly on its websocket (no
  geckodriver): it reports why it blocked a response through `log.entryAdded`.
- WebKit: Debian's WebKitGTK MiniBrowser, through WebKitWebDriver (W3C WebDriver over HTTP) on a
  private Xvfb display, since WebKitGTK has no headless mode. Classic WebDriver has no console
  access, so WebKit's reasons are not recorded; what the script sees is.

An engine is started once for the suite; every test gets a fresh `Context` (cookies of its own),
opens `Tab`s on page origins in it, and runs async functions in them with `Tab.run`.
"""

from __future__ import annotations

import abc
import collections
import concurrent.futures
import contextlib
import itertools
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

STARTUP_TIMEOUT = 30.0  # seconds; a browser starts in about one, on a busy 2-core machine more
COMMAND_TIMEOUT = 20.0  # seconds; every fetch in the suite is against loopback
# A page load from loopback takes milliseconds, but a new site can mean a new renderer process,
# which a 2-core machine busy with other work may take seconds to start.
NAVIGATION_TIMEOUT = 15.0  # seconds
STOP_TIMEOUT = 10.0


class EngineError(RuntimeError):
    """A browser did not start, or a protocol command failed."""


class JavaScriptError(EngineError):
    """The function run in the page threw (the suite's own scripts catch fetch's errors)."""


# Runs the caller's async function on a JSON argument and hands back its result as JSON, so the
# three protocols only ever carry strings (BiDi and WebDriver serialize values differently).
def _wrap(function: str) -> str:
    return f"async (json) => JSON.stringify((await ({function})(JSON.parse(json))) ?? null)"


class Tab(abc.ABC):
    """A page loaded from one origin (or a frame in it): runs scripts as that origin's would."""

    @abc.abstractmethod
    def run(self, function: str, arg: Any = None) -> Any:
        """Call the JavaScript (async) function with arg (JSON) in the page; its awaited result."""

    @abc.abstractmethod
    def console_messages(self) -> list[str]:
        """Everything the page (and its frames) logged to the console so far, oldest first."""

    @abc.abstractmethod
    def wait_for_console(self, pattern: re.Pattern[str], seen: int, timeout: float) -> None:
        """Return once a console message after the first `seen` matches pattern, or at timeout."""

    @abc.abstractmethod
    def sandboxed_frame(self) -> Tab:
        """Replace the page by a sandboxed iframe (scripts, no same-origin) and return the frame."""


class Context(abc.ABC):
    """One test's share of the browser: its own tabs and cookies, all gone at close()."""

    @abc.abstractmethod
    def open(self, url: str) -> Tab: ...

    @abc.abstractmethod
    def add_cookie(self, name: str, value: str, url: str) -> None:
        """Set a cookie for url's host. WebKit needs a tab of this context on that host."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Engine(abc.ABC):
    name: ClassVar[str]  # "chromium", the pytest id
    label: ClassVar[str]  # "Chromium", for the docs
    product: ClassVar[str]  # what exactly runs, for the docs' "recorded with"; {version} filled in
    # The console message an engine writes when it blocks a response, with the reason in a
    # "reason" group; None when the suite cannot read the engine's console.
    CORS_CONSOLE: ClassVar[re.Pattern[str] | None]
    # Whether a later request to a server addressed by IP (http://127.0.0.1:P, the suite's API)
    # reuses a preflight answered with a positive Access-Control-Max-Age.
    reuses_preflights_to_ip_hosts: ClassVar[bool] = True
    version: str

    @abc.abstractmethod
    def new_context(self) -> Context: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def cors_reason(self, message: str) -> str | None:
        """The reason in a console message about a CORS refusal, None for any other message."""
        match = self.CORS_CONSOLE.search(message) if self.CORS_CONSOLE else None
        return match["reason"] if match else None


# --------------------------------------------------------------------------- processes


class _Process:
    """A child process in its own process group, stopped (group and all) at stop().

    Browsers fork helpers (content processes, web processes); signalling the group reaches
    them too without looking anything up by name.
    """

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        self.argv = argv
        self.popen = subprocess.Popen(argv, start_new_session=True, **kwargs)

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=STOP_TIMEOUT)
        # Helpers that outlived their parent are still in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)


class _LineReader:
    """Drains a child's output in a thread (a full pipe would block the child) and keeps the
    last lines for error messages; wait_for() returns the first match of a pattern."""

    def __init__(self, stream: Any, pattern: re.Pattern[str]) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=40)
        self._pattern = pattern
        self.match: re.Match[str] | None = None
        self._found = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            if self.match is None and (match := self._pattern.search(line)):
                self.match = match
                self._found.set()
        self._found.set()  # end of output: wake the waiter, which sees no match

    def wait_for(self, timeout: float) -> re.Match[str] | None:
        self._found.wait(timeout)
        return self.match

    def tail(self) -> str:
        return "\n".join(self.lines)


# --------------------------------------------------------------------------- Chromium


class _PlaywrightTab(Tab):
    def __init__(self, page: Any, frame: Any = None, messages: list[str] | None = None) -> None:
        self.page = page
        self.target = frame or page
        # A frame shares its page's list: the page's console carries its frames' messages.
        self._messages: list[str] = [] if messages is None else messages
        if messages is None:
            page.on("console", lambda message: self._messages.append(message.text))

    def run(self, function: str, arg: Any = None) -> Any:
        return self.target.evaluate(function, arg)

    def console_messages(self) -> list[str]:
        return self._messages

    def wait_for_console(self, pattern: re.Pattern[str], seen: int, timeout: float) -> None:
        if any(pattern.search(text) for text in self._messages[seen:]):
            return
        with contextlib.suppress(PlaywrightTimeoutError):
            self.page.wait_for_event(
                "console", lambda m: pattern.search(m.text) is not None, timeout=timeout * 1000
            )

    def sandboxed_frame(self) -> Tab:
        # Scripts allowed, same-origin not: the frame's origin is opaque.
        self.page.set_content('<iframe sandbox="allow-scripts" srcdoc="<title>sandboxed</title>"></iframe>')
        frame = self.page.locator("iframe").element_handle().content_frame()
        return _PlaywrightTab(self.page, frame, self._messages)


class _PlaywrightContext(Context):
    def __init__(self, context: Any) -> None:
        self.context = context

    def open(self, url: str) -> Tab:
        page = self.context.new_page()
        page.goto(url)
        return _PlaywrightTab(page)

    def add_cookie(self, name: str, value: str, url: str) -> None:
        self.context.add_cookies([{"name": name, "value": value, "url": url}])

    def close(self) -> None:
        self.context.close()


class Chromium(Engine):
    name = "chromium"
    label = "Chromium"
    product = "Chromium {version} (Debian, through Playwright)"
    # Everything that could make Chromium talk to anything but loopback is switched off.
    ARGS: ClassVar[list[str]] = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ]
    CORS_CONSOLE = re.compile(r"has been blocked by CORS policy: (?P<reason>.*)")

    def __init__(self, binary: str) -> None:
        # Playwright's sync API keeps an asyncio loop running in this thread while it is open:
        # the engine must be closed before any later test calls asyncio.run().
        self._playwright_cm = sync_playwright()
        playwright = self._playwright_cm.__enter__()
        try:
            self.browser = playwright.chromium.launch(executable_path=binary, args=self.ARGS)
        except BaseException:
            self._playwright_cm.__exit__(None, None, None)
            raise
        self.version = self.browser.version

    def new_context(self) -> Context:
        context = self.browser.new_context()
        context.set_default_timeout(NAVIGATION_TIMEOUT * 1000)
        return _PlaywrightContext(context)

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self._playwright_cm.__exit__(None, None, None)


# --------------------------------------------------------------------------- Firefox (BiDi)


class _BiDi:
    """A WebDriver BiDi connection: commands wait for their own answer; events are kept.

    A reader thread owns the socket's receiving side, so events (console messages) arrive while
    the test is busy elsewhere, and each command's answer is routed to its caller by id.
    """

    def __init__(self, url: str) -> None:
        self._stack = contextlib.ExitStack()
        self._ws: ClientConnection = self._stack.enter_context(
            connect(url, max_size=None, open_timeout=STARTUP_TIMEOUT)
        )
        self._ids = itertools.count(1)
        self._pending: dict[int, concurrent.futures.Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.new_event = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="bidi-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for raw in self._ws:
                message = json.loads(raw)
                if message.get("id") is not None:
                    with self._lock:
                        future = self._pending.pop(message["id"], None)
                    if future is not None:
                        future.set_result(message)
                elif message.get("type") == "event":
                    with self.new_event:
                        self.events.append(message)
                        self.new_event.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                pending, self._pending = self._pending, {}
            for future in pending.values():
                future.set_exception(EngineError("the BiDi connection closed"))

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        with self._lock:
            command_id = next(self._ids)
            self._pending[command_id] = future
        self._ws.send(json.dumps({"id": command_id, "method": method, "params": params}))
        try:
            message = future.result(timeout=COMMAND_TIMEOUT)
        except concurrent.futures.TimeoutError:
            raise EngineError(f"BiDi {method}: no answer in {COMMAND_TIMEOUT} s") from None
        if message.get("type") == "error":
            raise EngineError(f"BiDi {method}: {message['error']}: {message.get('message')}")
        result: dict[str, Any] = message["result"]
        return result

    def forget(self, contexts: set[str]) -> None:
        """Drop the events of closed browsing contexts (the list would grow for the whole run)."""
        with self.new_event:
            self.events = [
                e for e in self.events if e["params"].get("source", {}).get("context") not in contexts
            ]

    def close(self) -> None:
        self._stack.close()
        self._reader.join(timeout=STOP_TIMEOUT)


class _BiDiTab(Tab):
    def __init__(self, engine: Firefox, context_id: str, frame_of: _BiDiTab | None = None) -> None:
        self._engine = engine
        self.context_id = context_id
        # A frame's messages are its page's too (as in Chromium's console).
        self.contexts: set[str] = frame_of.contexts if frame_of else set()
        self.contexts.add(context_id)

    def run(self, function: str, arg: Any = None) -> Any:
        result = self._engine.bidi.command(
            "script.callFunction",
            functionDeclaration=_wrap(function),
            arguments=[{"type": "string", "value": json.dumps(arg)}],
            awaitPromise=True,
            target={"context": self.context_id},
        )
        if result["type"] == "exception":
            raise JavaScriptError(result["exceptionDetails"]["text"])
        return json.loads(result["result"]["value"])

    def console_messages(self) -> list[str]:
        with self._engine.bidi.new_event:
            events = list(self._engine.bidi.events)
        return [
            event["params"]["text"]
            for event in events
            if event["method"] == "log.entryAdded"
            and event["params"].get("source", {}).get("context") in self.contexts
        ]

    def wait_for_console(self, pattern: re.Pattern[str], seen: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._engine.bidi.new_event:
            while not any(pattern.search(text) for text in self.console_messages()[seen:]):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._engine.bidi.new_event.wait(remaining)

    def sandboxed_frame(self) -> Tab:
        self.run(_SANDBOXED_FRAME_JS)
        tree = self._engine.bidi.command("browsingContext.getTree", root=self.context_id)
        (frame,) = tree["contexts"][0]["children"]
        return _BiDiTab(self._engine, frame["context"], frame_of=self)


# Replaces the page's content by a sandboxed iframe (scripts, no same-origin) and waits for it.
_SANDBOXED_FRAME_JS = """
async () => {
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts");
  frame.srcdoc = "<title>sandboxed</title>";
  const loaded = new Promise((resolve) => { frame.onload = resolve; });
  document.body.replaceChildren(frame);
  await loaded;
}
"""


class _BiDiContext(Context):
    def __init__(self, engine: Firefox) -> None:
        self._engine = engine
        # A user context is Firefox's container: cookies and storage of its own.
        self.user_context = engine.bidi.command("browser.createUserContext")["userContext"]
        self._tabs: list[_BiDiTab] = []

    def open(self, url: str) -> Tab:
        bidi = self._engine.bidi
        context_id = bidi.command("browsingContext.create", type="tab", userContext=self.user_context)[
            "context"
        ]
        tab = _BiDiTab(self._engine, context_id)
        self._tabs.append(tab)
        bidi.command("browsingContext.navigate", context=context_id, url=url, wait="complete")
        return tab

    def add_cookie(self, name: str, value: str, url: str) -> None:
        self._engine.bidi.command(
            "storage.setCookie",
            cookie={
                "name": name,
                "value": {"type": "string", "value": value},
                "domain": _host(url),
                "path": "/",
            },
            partition={"type": "storageKey", "userContext": self.user_context},
        )

    def close(self) -> None:
        # Closes its tabs too.
        self._engine.bidi.command("browser.removeUserContext", userContext=self.user_context)
        self._engine.bidi.forget(set().union(*(tab.contexts for tab in self._tabs)))


# Everything that could make Firefox talk to anything but loopback is switched off, and a proxy
# that refuses every connection catches whatever a pref missed: Firefox never proxies loopback
# (localhost, 127.0.0.1, *.localhost), so the suite's own traffic goes direct.
FIREFOX_PREFS: dict[str, bool | int | str] = {
    # updates
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "app.update.checkInstallTime": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "browser.search.update": False,
    # telemetry and studies
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "",
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "app.normandy.enabled": False,
    "app.normandy.api_url": "",
    "app.shield.optoutstudies.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "services.settings.server": "data:,#remote-settings-dummy/v1",
    "browser.newtabpage.activity-stream.feeds.telemetry": False,
    "browser.newtabpage.activity-stream.telemetry": False,
    # captive portal and connectivity checks
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    # safe browsing
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    # certificates, DNS over HTTPS, location, speculative connections, home page
    "security.OCSP.enabled": 0,
    "security.remote_settings.crlite_filters.enabled": False,
    "security.remote_settings.intermediates.enabled": False,
    "network.trr.mode": 5,
    "geo.provider.network.url": "",
    "browser.region.network.url": "",
    "browser.region.update.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.predictor.enabled": False,
    "network.http.speculative-parallel-limit": 0,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.newtabpage.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "identity.fxaccounts.enabled": False,
    # the catch-all: port 9 (discard) on loopback, where nothing listens
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.ssl_port": 9,
    "network.proxy.no_proxies_on": "",
    "network.proxy.failover_direct": False,
}


class Firefox(Engine):
    name = "firefox"
    label = "Firefox"
    product = "Firefox ESR {version} (Debian, over WebDriver BiDi)"
    # Observed with Debian's Firefox 153 ESR, in a default profile without automation too: a
    # preflight before every request to http://127.0.0.1:P, whatever Access-Control-Max-Age
    # says, while the same server addressed as http://localhost:P has its preflight reused.
    reuses_preflights_to_ip_hosts = False
    _LISTENING = re.compile(r"WebDriver BiDi listening on (?P<url>ws://\S+)")
    # "Cross-Origin Request Blocked: The Same Origin Policy disallows reading the remote resource
    # at URL. (Reason: CORS header 'Access-Control-Allow-Origin' missing). Status code: 200."
    # (with curly quotes around the header name); the status is part of the reason here.
    # Not "(Reason: CORS request did not succeed)": Firefox follows every refused preflight with
    # that line, a consequence rather than a reason, and it may arrive after the script has moved
    # on to its next fetch, whose reason it would then pass for. (It is also what a server that
    # cannot be reached gets; every server of the suite can be.)
    CORS_CONSOLE = re.compile(
        r"^Cross-Origin Request Blocked: .*?\(Reason: (?!CORS request did not succeed\))"
        r"(?P<reason>.*)\)(?P<status>\. Status code: .*)?\.?$"
    )

    def __init__(self, binary: str) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="corsengine-firefox-"))
        self._process: _Process | None = None
        self._bidi: _BiDi | None = None
        try:
            self._start(binary)
        except BaseException:
            self.close()
            raise

    def _start(self, binary: str) -> None:
        profile = self._tmp / "profile"
        profile.mkdir()
        prefs = "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in FIREFOX_PREFS.items())
        (profile / "user.js").write_text(prefs, encoding="utf-8")
        env = dict(os.environ, MOZ_CRASHREPORTER_DISABLE="1")
        argv = [binary, "--headless", "--remote-debugging-port=0", "--profile", str(profile), "--no-remote"]
        self._process = _Process(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._stderr = _LineReader(self._process.popen.stderr, self._LISTENING)
        listening = self._stderr.wait_for(STARTUP_TIMEOUT)
        if listening is None:
            raise EngineError(f"{binary} did not start WebDriver BiDi:\n{self._stderr.tail()}")
        self._bidi = _BiDi(listening["url"] + "/session")
        capabilities = self.bidi.command("session.new", capabilities={})["capabilities"]
        self.version = capabilities["browserVersion"]
        self.bidi.command("session.subscribe", events=["log.entryAdded"])

    @property
    def bidi(self) -> _BiDi:
        if self._bidi is None:
            raise EngineError("Firefox is not connected")
        return self._bidi

    def new_context(self) -> Context:
        return _BiDiContext(self)

    def close(self) -> None:
        try:
            if self._bidi is not None:
                with contextlib.suppress(EngineError, ConnectionClosed):
                    self._bidi.command("browser.close")
                self._bidi.close()
        finally:
            if self._process is not None:
                self._process.stop()
            shutil.rmtree(self._tmp, ignore_errors=True)

    def cors_reason(self, message: str) -> str | None:
        match = self.CORS_CONSOLE.search(message)
        if match is None:
            return None
        return match["reason"] + (match["status"] or "")


# --------------------------------------------------------------------------- WebKit (WebDriver)


class _WebDriver:
    """W3C WebDriver over HTTP: one session, commands on its current window and frame."""

    def __init__(self, base_url: str) -> None:
        self.port = urlsplit(base_url).port
        self._http = httpx.Client(base_url=base_url, timeout=COMMAND_TIMEOUT)
        self.session_id: str | None = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        prefix = f"/session/{self.session_id}" if self.session_id and path != "/session" else ""
        response = self._http.request(method, prefix + path, json=body)
        payload = response.json()
        if response.status_code != 200:
            error = payload.get("value", {})
            raise EngineError(f"WebDriver {method} {path}: {error.get('error')}: {error.get('message')}")
        return payload["value"]

    def wait_until_ready(self, process: _Process) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise EngineError(f"{process.argv[0]} exited with {process.popen.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if self._http.get("/status", timeout=1.0).json()["value"]["ready"]:
                    return
            time.sleep(0.05)  # the driver binds its port within milliseconds
        raise EngineError(f"{process.argv[0]} did not answer /status")

    def close(self) -> None:
        self._http.close()


class _WebDriverTab(Tab):
    def __init__(self, engine: WebKit, handle: str, url: str, *, frame: bool = False) -> None:
        self._engine = engine
        self.handle = handle
        self.url = url
        self.frame = frame

    def run(self, function: str, arg: Any = None) -> Any:
        self._engine.switch_to(self)
        # Async script: the last argument is the callback that ends it.
        script = (
            "const [json, done] = arguments;"
            f"({_wrap(function)})(json).then((ok) => done({{ok}}), (error) => done({{error: String(error)}}));"
        )
        outcome = self._engine.driver.request(
            "POST", "/execute/async", {"script": script, "args": [json.dumps(arg)]}
        )
        if "error" in outcome:
            raise JavaScriptError(outcome["error"])
        return json.loads(outcome["ok"])

    def console_messages(self) -> list[str]:
        return []  # classic WebDriver has no console

    def wait_for_console(self, pattern: re.Pattern[str], seen: int, timeout: float) -> None:
        return

    def sandboxed_frame(self) -> Tab:
        self.run(_SANDBOXED_FRAME_JS)
        return _WebDriverTab(self._engine, self.handle, self.url, frame=True)


class _WebDriverContext(Context):
    def __init__(self, engine: WebKit) -> None:
        self._engine = engine
        self._tabs: list[_WebDriverTab] = []
        self._cookies: list[tuple[_WebDriverTab, str]] = []

    def open(self, url: str) -> Tab:
        driver = self._engine.driver
        handle = driver.request("POST", "/window/new", {"type": "tab"})["handle"]
        tab = _WebDriverTab(self._engine, handle, url)
        self._tabs.append(tab)
        self._engine.switch_to(tab)
        driver.request("POST", "/url", {"url": url})
        return tab

    def add_cookie(self, name: str, value: str, url: str) -> None:
        # WebDriver's Add Cookie sets a cookie for the current document's host only.
        tab = next((tab for tab in self._tabs if _host(tab.url) == _host(url)), None)
        if tab is None:
            raise EngineError(f"WebKit sets cookies through a page: open one on {_host(url)} first")
        self._engine.switch_to(tab, frame=False)
        self._engine.driver.request(
            "POST", "/cookie", {"cookie": {"name": name, "value": value, "path": "/"}}
        )
        self._cookies.append((tab, name))

    def close(self) -> None:
        # One WebKit session serves every test: forget this test's cookies, close its tabs.
        driver = self._engine.driver
        for tab, name in self._cookies:
            self._engine.switch_to(tab, frame=False)
            driver.request("DELETE", f"/cookie/{name}")
        for tab in self._tabs:
            self._engine.switch_to(tab, frame=False)
            driver.request("DELETE", "/window")
        self._engine.switch_home()


class WebKit(Engine):
    name = "webkit"
    label = "WebKit"
    product = "WebKitGTK {version} MiniBrowser (Debian, through WebKitWebDriver)"
    CORS_CONSOLE = None  # classic WebDriver has no console

    def __init__(self, driver_binary: str, browser_binary: str, xvfb_binary: str) -> None:
        self._processes: list[_Process] = []
        self.driver = _WebDriver(f"http://127.0.0.1:{_free_port()}")
        self._current: tuple[str, bool] | None = None
        try:
            self._start(driver_binary, browser_binary, xvfb_binary)
        except BaseException:
            self.close()
            raise

    def _start(self, driver_binary: str, browser_binary: str, xvfb_binary: str) -> None:
        display = self._start_xvfb(xvfb_binary)
        # GTK on our X display whatever the desktop around the test run uses; no accessibility bus.
        env = dict(os.environ, DISPLAY=f":{display}", GDK_BACKEND="x11", NO_AT_BRIDGE="1")
        env.pop("WAYLAND_DISPLAY", None)
        driver = _Process(
            [driver_binary, f"--port={self.driver.port}", "--host=local"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._processes.append(driver)
        self.driver.wait_until_ready(driver)
        options = {"binary": browser_binary, "args": ["--automation"]}
        created = self.driver.request(
            "POST", "/session", {"capabilities": {"alwaysMatch": {"webkitgtk:browserOptions": options}}}
        )
        self.driver.session_id = created["sessionId"]
        self.version = created["capabilities"]["browserVersion"]
        self.driver.request(
            "POST",
            "/timeouts",
            {"script": int(COMMAND_TIMEOUT * 1000), "pageLoad": int(NAVIGATION_TIMEOUT * 1000)},
        )
        # The session's first window stays on about:blank: closing a session's last window
        # would end the session, so tests only ever close the tabs they opened.
        self._home = self.driver.request("GET", "/window")

    def _start_xvfb(self, binary: str) -> str:
        # -displayfd: Xvfb picks a free display itself and writes its number and a newline to
        # the pipe once it accepts clients (in two writes: closing the pipe after the first one
        # makes Xvfb exit with "Cannot write display number").
        read_end, write_end = os.pipe()
        try:
            xvfb = _Process(
                [binary, "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                pass_fds=(write_end,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._processes.append(xvfb)
            os.close(write_end)
            write_end = -1
            display = b""
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not display.endswith(b"\n"):
                ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(read_end, 64) if ready else b""
                if not chunk:
                    break  # timed out, or Xvfb exited
                display += chunk
        finally:
            os.close(read_end)
            if write_end != -1:
                os.close(write_end)
        if not display.strip().isdigit():
            raise EngineError(f"{binary} did not report a display")
        return display.decode().strip()

    def switch_to(self, tab: _WebDriverTab, *, frame: bool | None = None) -> None:
        want = (tab.handle, tab.frame if frame is None else frame)
        if self._current == want:
            return
        self.driver.request("POST", "/window", {"handle": tab.handle})
        if want[1]:
            self.driver.request("POST", "/frame", {"id": 0})
        self._current = want

    def switch_home(self) -> None:
        self.driver.request("POST", "/window", {"handle": self._home})
        self._current = (self._home, False)

    def new_context(self) -> Context:
        return _WebDriverContext(self)

    def close(self) -> None:
        try:
            if self.driver.session_id is not None:
                with contextlib.suppress(EngineError, httpx.HTTPError):
                    self.driver.request("DELETE", "")  # ends the session: MiniBrowser quits
            self.driver.close()
        finally:
            for process in reversed(self._processes):
                process.stop()


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _free_port() -> int:
    # WebKitWebDriver takes a port, not a socket; the kernel's pick is free a moment later too.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

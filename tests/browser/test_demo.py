"""`make demo` end to end: start it as a user would, flip an origin in its admin panel, watch the grid."""

from __future__ import annotations

import dataclasses
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .engines import Context, Tab

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0  # seconds; importing FastAPI on a busy 2-core machine is the slow part


@dataclasses.dataclass(frozen=True)
class Demo:
    frontend: str
    api: str
    allowlist: Path
    output: list[str]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    pytest.importorskip("corsengine")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.demo",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # A reader thread turns the blocking pipe into a queue, so that every wait has a deadline.
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()
    output: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        while not output or output[-1] != "Ctrl-C to stop.":
            try:
                output.append(lines.get(timeout=max(0.0, deadline - time.monotonic())).rstrip("\n"))
            except queue.Empty:
                pytest.fail("the demo did not start:\n" + "\n".join(output))
        text = "\n".join(output)
        frontend = re.search(r"^Frontend: (\S+)", text, re.M)
        api = re.search(r"^API: (\S+?)/? ", text, re.M)
        assert frontend and api, text
        yield Demo(frontend[1], api[1], tmp_path / "allowlist.json", output)
    finally:
        # Ctrl-C, as a user stops it: it must shut down cleanly and promptly.
        process.send_signal(signal.SIGINT)
        try:
            returncode = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert returncode == 0, "\n".join(output)


READ_GRID_JS = """
() => Object.fromEntries([...document.querySelectorAll("#grid tbody tr")].map((row) => [
  row.querySelector("th").textContent,
  Object.fromEntries([...row.querySelectorAll("td")].map((td) => [td.dataset.kind, td.dataset.outcome])),
]))
"""


# Resolves once an element matches the selector (a MutationObserver, no polling), or rejects at
# the timeout: the engine-neutral counterpart of Playwright's locator(...).wait_for().
WAIT_FOR_JS = """
async ({selector, timeout}) => {
  if (document.querySelector(selector)) return;
  await new Promise((resolve, reject) => {
    const observer = new MutationObserver(() => {
      if (document.querySelector(selector)) { clearTimeout(timer); observer.disconnect(); resolve(); }
    });
    const timer = setTimeout(() => {
      observer.disconnect();
      reject(new Error(`nothing matched ${selector} within ${timeout} ms`));
    }, timeout);
    observer.observe(document, {subtree: true, childList: true, attributes: true});
  });
}
"""

GRID_TIMEOUT_MS = 10_000


def grid_selector(run: int) -> str:
    # The grid marks itself complete once every origin's iframe has reported for this run.
    return f'#grid[data-run="{run}"][data-complete="true"]'


def read_grid(page: Any, run: int) -> dict[str, dict[str, str]]:
    """Playwright's page, for the Chromium-only test."""
    page.locator(grid_selector(run)).wait_for(timeout=GRID_TIMEOUT_MS)
    grid: dict[str, dict[str, str]] = page.evaluate(READ_GRID_JS)
    return grid


def read_grid_in(tab: Tab, run: int) -> dict[str, dict[str, str]]:
    """Any engine's tab."""
    tab.run(WAIT_FOR_JS, {"selector": grid_selector(run), "timeout": GRID_TIMEOUT_MS})
    grid: dict[str, dict[str, str]] = tab.run(READ_GRID_JS)
    return grid


def expected(allowed: bool) -> dict[str, str]:
    outcome = "allowed" if allowed else "blocked"
    # DELETE is outside allow_methods: refused whatever the origin.
    return {"get": outcome, "put": outcome, "credentialed": outcome, "delete": "blocked"}


# Chromium only: this test drives the admin panel, a cross-origin iframe, through Playwright's
# frame locators (a script of the grid page may not touch it, so the engine-neutral Tab cannot),
# and saves the screenshot of the docs. The two tests below run in every engine.
@pytest.mark.parametrize("engine", ["chromium"], indirect=True)
def test_demo_grid_follows_the_admin_panel(demo: Demo, chromium: Any, docs_dir: Path) -> None:
    context = chromium.new_context(viewport={"width": 1180, "height": 900})
    page = context.new_page()
    page.goto(demo.frontend)
    origins = json.loads(demo.allowlist.read_text())["origins"]
    grid_origins = list(read_grid(page, run=1))
    revoked = grid_origins[1]  # starts refused: the demo allows every other row
    assert revoked not in origins

    assert read_grid(page, run=1) == {origin: expected(origin in origins) for origin in grid_origins}

    admin = page.frame_locator("#admin")
    admin.get_by_label(revoked).check()
    admin.get_by_role("button", name="Save allowlist").click()
    # The admin panel tells the grid, which runs every probe again (run 2).
    after = read_grid(page, run=2)

    assert after == {origin: expected(origin in origins or origin == revoked) for origin in grid_origins}
    assert set(json.loads(demo.allowlist.read_text())["origins"]) == {*origins, revoked}
    assert admin.locator("#message").inner_text() == f"Saved {len(origins) + 1} entries."
    page.screenshot(path=docs_dir / "demo.png", full_page=True)
    context.close()


def test_admin_panel_refuses_writes_from_other_origins(demo: Demo, context: Context) -> None:
    # The grid page's own origin is allowed by CORS for PUT + JSON, so the browser lets this
    # request through: only the admin endpoint's Origin check stands between it and the file.
    page = context.open(demo.frontend)
    before = demo.allowlist.read_text()

    status = page.run(
        """async (url) => (await fetch(url, {
            method: "PUT", headers: {"Content-Type": "application/json"}, body: '{"origins": []}',
        })).status""",
        demo.api + "/admin/allowlist",
    )

    assert status == 403
    assert demo.allowlist.read_text() == before


def test_demo_grid_follows_a_hand_edit_of_the_file(demo: Demo, context: Context) -> None:
    page = context.open(demo.frontend)
    origins = json.loads(demo.allowlist.read_text())["origins"]
    allowed = origins[0]
    grid = read_grid_in(page, run=1)
    assert grid == {origin: expected(origin in origins) for origin in grid}

    page.run("async () => document.getElementById('auto').click()")  # "re-run every second"
    # As an editor would: write a new file and rename it over the old one.
    tmp = demo.allowlist.with_suffix(".new")
    tmp.write_text(json.dumps({"origins": []}))
    tmp.replace(demo.allowlist)

    # The file provider's watcher notices, and a later run of the grid shows it; bounded wait.
    blocked = f'td[data-origin="{allowed}"][data-kind="get"][data-outcome="blocked"]'
    page.run(WAIT_FOR_JS, {"selector": blocked, "timeout": GRID_TIMEOUT_MS})

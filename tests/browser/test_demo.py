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

# Chromium only: these tests drive the demo's UI through Playwright (clicks, labels, frame
# locators, a screenshot for the docs), which the suite's engine-neutral Tab does not offer; what
# the demo's grid shows is a fetch() like any other, and the matrix already runs those everywhere.
pytestmark = pytest.mark.parametrize("engine", ["chromium"], indirect=True)

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


def read_grid(page: Any, run: int) -> dict[str, dict[str, str]]:
    # The grid marks itself complete once every origin's iframe has reported for this run.
    page.locator(f'#grid[data-run="{run}"][data-complete="true"]').wait_for(timeout=10_000)
    grid: dict[str, dict[str, str]] = page.evaluate(READ_GRID_JS)
    return grid


def expected(allowed: bool) -> dict[str, str]:
    outcome = "allowed" if allowed else "blocked"
    # DELETE is outside allow_methods: refused whatever the origin.
    return {"get": outcome, "put": outcome, "credentialed": outcome, "delete": "blocked"}


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


def test_admin_panel_refuses_writes_from_other_origins(demo: Demo, chromium: Any) -> None:
    context = chromium.new_context()
    page = context.new_page()
    # The grid page's own origin is allowed by CORS for PUT + JSON, so the browser lets this
    # request through: only the admin endpoint's Origin check stands between it and the file.
    page.goto(demo.frontend)
    before = demo.allowlist.read_text()

    status = page.evaluate(
        """async (url) => (await fetch(url, {
            method: "PUT", headers: {"Content-Type": "application/json"}, body: '{"origins": []}',
        })).status""",
        demo.api + "/admin/allowlist",
    )

    assert status == 403
    assert demo.allowlist.read_text() == before
    context.close()


def test_demo_grid_follows_a_hand_edit_of_the_file(demo: Demo, chromium: Any) -> None:
    context = chromium.new_context()
    page = context.new_page()
    page.goto(demo.frontend)
    allowed = json.loads(demo.allowlist.read_text())["origins"][0]
    cell = page.locator(f'td[data-origin="{allowed}"][data-kind="get"]')
    assert read_grid(page, run=1)[allowed]["get"] == "allowed"

    page.get_by_label("re-run every second").check()
    # As an editor would: write a new file and rename it over the old one.
    tmp = demo.allowlist.with_suffix(".new")
    tmp.write_text(json.dumps({"origins": []}))
    tmp.replace(demo.allowlist)

    # The file provider's watcher notices, and a later run of the grid shows it; bounded wait.
    page.wait_for_function(
        "(td) => td.dataset.outcome === 'blocked'", arg=cell.element_handle(), timeout=10_000
    )
    context.close()

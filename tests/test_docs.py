"""Docs cannot drift: every Python example in the README and docs/ runs here."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from .doc_examples import ROOT, python_blocks, run_blocks

# Pages whose examples need files and fixtures run in tests/test_docs_cli.py instead.
OWN_RUNNER = {"cli.md", "testing.md"}
DOCS = [ROOT / "README.md", *(p for p in sorted((ROOT / "docs").glob("*.md")) if p.name not in OWN_RUNNER)]


@pytest.mark.parametrize("path", [p for p in DOCS if python_blocks(p)], ids=lambda p: p.name)
def test_examples_run(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an example that warns teaches the wrong thing
        run_blocks(path)


def test_the_blog_snippet_opens_the_readme_and_serves() -> None:
    """The tutorial's snippet, verbatim but for the import, is the README's first example."""
    first = python_blocks(ROOT / "README.md")[0]
    assert "from corsengine import CORSMiddleware" in first
    assert "allow_origins=custom_origins" in first
    namespace: dict[str, object] = {}
    exec(compile(first, "README.md[block 0]", "exec"), namespace)

    with TestClient(namespace["app"]) as client:  # type: ignore[arg-type]
        allowed = client.get("/", headers={"Origin": "http://localhost:3000"})
        assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        refused = client.get("/", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in refused.headers
        preflight = client.options(
            "/",
            headers={
                "Origin": "https://example.com",
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "X-Custom",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-headers"] == "X-Custom"


def test_the_same_snippet_crashes_with_starlettes_middleware() -> None:
    """Why the project exists: Starlette's middleware cannot take a function."""
    from starlette.middleware.cors import CORSMiddleware as StarletteCORS

    def custom_origins() -> list[str]:
        return ["https://example.com"]

    with pytest.raises(TypeError, match="not iterable"):
        StarletteCORS(lambda scope, receive, send: None, allow_origins=custom_origins)  # type: ignore[arg-type]

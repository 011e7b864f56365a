"""Docs cannot drift: every Python example in the README and docs/ runs here."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify
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


# Links in the README: inline links and images, reference definitions, HTML attributes.
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)")
_REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)", re.MULTILINE)
_HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)""", re.IGNORECASE)
_FENCED = re.compile(r"^(`{3,}|~{3,}).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def readme_links() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    text = _CODE_SPAN.sub("", _FENCED.sub("", text))
    return [m for pattern in (_INLINE_LINK, _REFERENCE_LINK, _HTML_LINK) for m in pattern.findall(text)]


def docs_site_url() -> str:
    (url,) = re.findall(
        r"^site_url:\s*(\S+)", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.MULTILINE
    )
    return url


def test_readme_links_work_on_a_package_index() -> None:
    """PyPI shows the README without the repository around it: every link must be absolute."""
    links = readme_links()
    assert len(links) >= 10
    relative = [link for link in links if not link.startswith(("https://", "#"))]
    assert relative == [], "use absolute URLs (the docs site) instead of relative links"


def test_readme_links_to_the_docs_site_name_real_pages() -> None:
    site = docs_site_url()
    checked = 0
    for link in readme_links():
        if not link.startswith(site):
            continue
        path, _, anchor = link.removeprefix(site).partition("#")
        if not path:
            page = ROOT / "docs" / "index.md"
        elif path.endswith("/"):
            page = ROOT / "docs" / f"{path.rstrip('/')}.md"
        else:
            page = ROOT / "docs" / path  # an image or another file copied into the site
        assert page.is_file(), f"{link}: no {page.relative_to(ROOT)}"
        if anchor:
            headings = re.findall(r"^#+\s+(.*)$", page.read_text(encoding="utf-8"), re.MULTILINE)
            assert anchor in {slugify(heading, "-") for heading in headings}, link
        checked += 1
    assert checked >= 10


def test_the_changelog_has_the_released_version() -> None:
    """Keep a Changelog: an Unreleased section on top, this version's, and their link references."""
    import corsengine

    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    version = corsengine.__version__
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE)
    assert headings[:1] == ["Unreleased"] and version in headings
    for heading in headings:
        assert re.search(rf"^\[{re.escape(heading)}\]: https://", text, re.MULTILINE), heading

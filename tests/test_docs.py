"""Docs cannot drift: every Python example in the README and docs/ runs here, each on its own."""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import cast

import anyio
import pytest
from markdown.extensions.toc import slugify
from starlette.testclient import TestClient

from corsengine import Policy
from corsengine._codes import CODES
from corsengine.providers import RedisProvider

from .doc_examples import ROOT, CodeBlock, Example, examples, python_blocks
from .providers.servers import RedisServer, redis_server

# Pages whose examples need files and fixtures run in tests/test_docs_cli.py instead.
OWN_RUNNER = {"cli.md", "testing.md"}
DOCS = [ROOT / "README.md", *(p for p in sorted((ROOT / "docs").glob("*.md")) if p.name not in OWN_RUNNER)]
EXAMPLES = [example for path in DOCS for example in examples(path)]

# Functions that an example defines for the reader to call (so it never calls them itself),
# and the test below that calls them, more than once where a reader would.
CALLED_BY = {
    "index.md:me": "test_the_start_page_app_serves_its_route_cross_origin",
    "production.md:put_order": "test_the_per_route_recipe_routes_partners_to_their_policy",
    "production.md:report": "test_the_error_recipe_answers_the_500_with_cors_headers",
    "providers.md:onboard_partner": "test_onboarding_a_partner_twice_against_a_real_redis",
    "providers.md:offboard_partner": "test_onboarding_a_partner_twice_against_a_real_redis",
}


def example_defining(name: str) -> Example:
    (found,) = (example for example in EXAMPLES if f"def {name}(" in example.block.code)
    return found


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_each_example_runs_on_its_own(example: Example) -> None:
    """As a reader would paste it: a fresh namespace, so it needs its own imports and app."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an example that warns teaches the wrong thing
        example.run()


def test_every_function_an_example_leaves_to_the_reader_is_called_by_a_test() -> None:
    uncalled = {
        f"{example.path.name}:{name}" for example in EXAMPLES for name in example.uncalled_functions()
    }
    assert uncalled == set(CALLED_BY)
    assert all(name in globals() for name in CALLED_BY.values())


def test_the_readme_examples_stand_alone() -> None:
    assert not [str(example) for example in examples(ROOT / "README.md") if example.block.continues]


def test_a_block_runs_alone_unless_it_says_it_continues(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n\n```python continues\ny = x + 1\n```\n\n"
        "```python continues\nz = y + 1\n```\n\n```python\nw = x\n```\n"
    )
    found = examples(page)
    assert [str(example) for example in found] == ["page.md:1", "page.md:5", "page.md:9", "page.md:13"]
    assert [len(example.blocks) for example in found] == [1, 2, 3, 1]
    assert found[2].run()["z"] == 3
    with pytest.raises(NameError, match="'x'"):
        found[3].run()
    assert found[1].block == CodeBlock("python", "y = x + 1\n", 5, None, continues=True)

    page.write_text("```python continues\nx = 1\n```\n")
    with pytest.raises(ValueError, match="no python block comes before it"):
        examples(page)


def test_uncalled_functions_are_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\ndef used(): ...\nasync def left(url): ...\ndef called(): ...\n"
        "handler = used\ncalled()\n```\n"
    )
    (example,) = examples(page)
    assert example.uncalled_functions() == ["left"]


def test_the_readme_runtime_swap_serves_the_swapped_allowlist(capsys: pytest.CaptureFixture[str]) -> None:
    namespace = example_defining("is_tenant").run()
    assert capsys.readouterr().out.splitlines() == [
        "added ['https://partner.example'] removed []",
        "added [] removed ['https://partner.example']",  # a predicate lists nothing
    ]
    with TestClient(namespace["app"]) as client:  # type: ignore[arg-type]
        for origin, allowed in [
            ("https://acme.tenant.example", True),
            ("https://app.example.com", True),
            ("https://partner.example", False),  # the last swap replaced the list
        ]:
            response = client.get("/", headers={"Origin": origin})
            assert ("access-control-allow-origin" in response.headers) is allowed, origin


def test_the_start_page_app_serves_its_route_cross_origin() -> None:
    namespace = example_defining("me").run()
    with TestClient(namespace["app"]) as client:  # type: ignore[arg-type]
        for _ in range(2):
            response = client.get("/me", headers={"Origin": "https://eu.partner.example"})
            assert response.json() == {"name": "Ada"}
            assert response.headers["access-control-allow-origin"] == "https://eu.partner.example"
            assert response.headers["access-control-allow-credentials"] == "true"


def test_the_per_route_recipe_routes_partners_to_their_policy() -> None:
    namespace = example_defining("put_order").run()
    with TestClient(namespace["app"]) as client:  # type: ignore[arg-type]
        for _ in range(2):
            partner = client.put("/partners/orders", headers={"Origin": "https://partner.example"})
            assert partner.json() == {"ok": True}
            assert partner.headers["access-control-allow-origin"] == "https://partner.example"
            app_origin = client.put("/partners/orders", headers={"Origin": "https://app.example.com"})
            assert "access-control-allow-origin" not in app_origin.headers


def test_the_error_recipe_answers_the_500_with_cors_headers() -> None:
    namespace = example_defining("report").run()
    with TestClient(namespace["app"], raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        response = client.get("/report", headers={"Origin": "https://spa.example"})
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert response.headers["access-control-allow-origin"] == "https://spa.example"
    assert response.headers["access-control-allow-credentials"] == "true"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:  # its own server: the example uses the default key
        yield server


@pytest.mark.redis
def test_onboarding_a_partner_twice_against_a_real_redis(redis: RedisServer) -> None:
    namespace = example_defining("onboard_partner").run()
    onboard = cast(Callable[[str, str], Awaitable[list[str]]], namespace["onboard_partner"])
    offboard = cast(Callable[[str, str], Awaitable[int]], namespace["offboard_partner"])
    policy = Policy(allow_origins=RedisProvider(redis.url))

    async def scenario() -> None:
        assert await onboard(redis.url, "https://partner.example") == ["https://partner.example"]
        # Again, and in another spelling of the same origin: nothing changes.
        assert await onboard(redis.url, "HTTPS://Partner.Example:443") == ["https://partner.example"]
        assert await onboard(redis.url, "https://b.example") == [
            "https://b.example",
            "https://partner.example",
        ]
        await policy.refresh()
        assert (await policy.aevaluate("https://b.example")).allowed
        assert await offboard(redis.url, "https://partner.example") == 1
        assert await offboard(redis.url, "https://partner.example") == 0
        await policy.refresh()
        assert not (await policy.aevaluate("https://partner.example")).allowed
        assert (await policy.aevaluate("https://b.example")).allowed
        await policy.aclose()

    anyio.run(scenario)


def code_table(page: str, severity: str) -> list[tuple[str, str]]:
    """The rows (code, text) of a page's table of codes of one severity."""
    letter = "E" if severity == "error" else "W"
    text = (ROOT / "docs" / page).read_text()
    return re.findall(rf"^\| `(corsengine\.{letter}\d{{3}})` \| (.*) \|$", text, re.MULTILINE)


@pytest.mark.parametrize(("page", "severity"), [("configuration.md", "error"), ("cli.md", "warning")])
def test_the_code_tables_are_the_registry(page: str, severity: str) -> None:
    """Each docs table lists the registry's codes of its severity, in order, with their titles."""
    registered = [(code, about.title) for code, about in CODES.items() if about.severity == severity]
    assert code_table(page, severity) == registered


def test_the_package_raises_every_registered_code_and_writes_none_out() -> None:
    """A code is written once, in the registry; the rest of the package names its constant."""
    used: set[str] = set()
    for path in (ROOT / "corsengine").rglob("*.py"):
        if path.name == "_codes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not re.fullmatch(r"corsengine\.[EW]\d{3}", node.value), (path, node.lineno)
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("_codes"):
                used.update(f"corsengine.{alias.name}" for alias in node.names if alias.name != "CODES")
    assert used == set(CODES)


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

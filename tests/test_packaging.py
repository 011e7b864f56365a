"""The distributions: what `python -m build` makes of the tree, checked as PyPI would check it.

The sdist is what distributions build and test from, so it carries the tests and the docs;
the wheel is what users install, so it carries the package and nothing else.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import corsengine

from .doc_examples import ROOT

pytest.importorskip("build", reason="needs the dev extra (build)")
pytest.importorskip("twine", reason="needs the dev extra (twine)")

NAME = f"corsengine-{corsengine.__version__}"


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Build both once: the sdist from the tree, then the wheel from the sdist (build's default)."""
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: hatchling from the dev extra, so the build needs no network (about 1 s).
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def sdist_members(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert all(name.startswith(f"{NAME}/") for name in names)
    return {name.removeprefix(f"{NAME}/") for name in names}


def tracked(directory: str) -> set[str]:
    """The files under ``directory`` that the archives should carry: git's, or (in an unpacked
    sdist, which has no .git) every file but bytecode."""
    if (ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "--", directory], cwd=ROOT, check=True, capture_output=True, text=True
        )
        return set(listed.stdout.split())
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / directory).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_versions_agree(distributions: tuple[Path, Path]) -> None:
    sdist, wheel = distributions
    assert sdist.name == f"{NAME}.tar.gz"
    assert wheel.name == f"{NAME}-py3-none-any.whl"


def test_the_sdist_carries_the_tests_and_the_docs(distributions: tuple[Path, Path]) -> None:
    members = sdist_members(distributions[0])
    for directory in ("corsengine", "tests", "docs", "examples", "benchmarks"):
        missing = tracked(directory) - members
        assert not missing, f"missing from the sdist: {sorted(missing)}"
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", "mkdocs.yml", "Makefile"):
        assert name in members
    assert {"tests/conftest.py", "tests/test_docs.py", "docs/index.md", "docs/api.md"} <= members
    assert not [m for m in members if m.startswith((".venv/", "site/", "dist/")) or "__pycache__" in m]


def test_the_wheel_holds_only_the_package(distributions: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(distributions[1]) as archive:
        members = set(archive.namelist())
        metadata = Parser().parsestr(archive.read(f"{NAME}.dist-info/METADATA").decode())
    package = {m for m in members if not m.startswith(f"{NAME}.dist-info/")}
    assert package == tracked("corsengine")
    assert "corsengine/py.typed" in package
    assert f"{NAME}.dist-info/entry_points.txt" in members  # the console script and the pytest plugin

    urls = dict(value.split(", ", 1) for value in metadata.get_all("Project-URL"))
    assert set(urls) == {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}
    assert metadata["Description-Content-Type"] == "text/markdown"


def test_twine_accepts_both(distributions: tuple[Path, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, distributions)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr

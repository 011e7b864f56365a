"""docs/cli.md and docs/testing.md: every example is run, every console transcript compared."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from corsengine import Policy
from corsengine._cli import main
from corsengine.testing import assert_allowed

from .doc_examples import CodeBlock, Example, code_blocks, examples

pytest_plugins = ["pytester"]

DOCS = Path(__file__).parent.parent / "docs"
CLI = DOCS / "cli.md"
TESTING = DOCS / "testing.md"


def write_titled_files(path: Path, directory: Path) -> list[str]:
    """Write every block with a title (```toml title="cors.toml") into ``directory``."""
    titles = []
    for block in code_blocks(path, language=None):
        if block.title is not None:
            (directory / block.title).write_text(block.code)
            titles.append(block.title)
    return titles


@pytest.fixture
def cli_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert write_titled_files(CLI, tmp_path) == [
        "cors.toml",
        "cors.json",
        "broken.toml",
        "origins.txt",
        "candidate.toml",
    ]
    monkeypatch.chdir(tmp_path)
    # The examples call the installed console script, as a user would.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return tmp_path


def transcripts() -> list[tuple[str, str]]:
    found = []
    for block in code_blocks(CLI, language="console"):
        command, *output = block.code.rstrip("\n").split("\n")
        assert command.startswith("$ corsengine "), block
        found.append((command.removeprefix("$ "), "\n".join(output) + "\n"))
    return found


@pytest.mark.parametrize(("command", "expected"), transcripts(), ids=[c for c, _ in transcripts()])
def test_cli_transcripts(
    capsys: pytest.CaptureFixture[str], cli_files: Path, command: str, expected: str
) -> None:
    main(shlex.split(command)[1:])
    out, err = capsys.readouterr()
    assert out + err == expected


@pytest.mark.parametrize("example", examples(CLI), ids=str)
def test_cli_python_examples(cli_files: Path, example: Example) -> None:
    example.run()  # on its own, in a fresh namespace


def test_the_json_example_is_the_toml_example(cli_files: Path) -> None:
    from corsengine import load_policy

    toml, json = load_policy("cors.toml"), load_policy("cors.json")
    for origin in ("https://app.example.com", "https://eu.partner.example", "https://partner.example"):
        for method in ("GET", "PUT", "DELETE"):
            assert toml.evaluate(origin, method, preflight=True) == json.evaluate(
                origin, method, preflight=True
            )


def test_testing_examples_pass_under_pytest(pytester: pytest.Pytester) -> None:
    # Each block is a test module of its own, as a reader would paste it (its own imports).
    write_titled_files(TESTING, pytester.path)
    blocks = code_blocks(TESTING)
    assert not [str(block) for block in blocks if block.continues]
    pytester.makepyfile(**{f"test_docs_line_{block.line}": block.code for block in blocks})
    result = pytester.runpytest("-p", "no:cacheprovider")
    tests = sum(block.code.count("\ndef test_") + block.code.startswith("def test_") for block in blocks)
    parametrized = 7  # the decision table has 8 rows: one test function, 8 tests
    result.assert_outcomes(passed=tests + parametrized)


def test_testing_failure_message_is_real() -> None:
    (shown,) = (block.code for block in code_blocks(TESTING, language="text"))
    with pytest.raises(AssertionError) as caught:
        assert_allowed(Policy(allow_origins=["https://*.partner.example"]), "https://partner.example")
    assert shown == f"AssertionError: {caught.value}\n"


def test_code_blocks_reads_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        'Intro\n\n```python\nx = 1\n```\n\n- item\n\n    ~~~toml title="a.toml"\n    k = 1\n    ~~~\n\n````console\n$ x\n````\n'
    )
    assert code_blocks(page) == [CodeBlock("python", "x = 1\n", 3)]
    assert [(b.language, b.code, b.title) for b in code_blocks(page, None)] == [
        ("python", "x = 1\n", None),
        ("toml", "k = 1\n", "a.toml"),
        ("console", "$ x\n", None),
    ]
    assert str(code_blocks(page, "toml")[0]) == "toml block at line 9 (a.toml)"

"""Extract the code examples of a Markdown file, so that tests can run them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# An opening fence: ``` or ~~~, a language, and mkdocs-style attributes such as title="cors.toml".
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<language>[\w+-]*)(?P<info>[^\n]*)$")
_TITLE = re.compile(r'title="([^"]*)"')


@dataclass(frozen=True)
class CodeBlock:
    language: str
    code: str
    line: int  # the line of the opening fence, for failure messages
    title: str | None = None

    def __str__(self) -> str:
        return f"{self.language} block at line {self.line}" + (f" ({self.title})" if self.title else "")


def code_blocks(path: str | Path, language: str | None = "python") -> list[CodeBlock]:
    """The fenced code blocks of a markdown file, in order; only ``language`` unless None."""
    blocks: list[CodeBlock] = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        start = index
        while index < len(lines) and not lines[index].strip().startswith(fence):
            index += 1
        body = "\n".join(line[indent:] for line in lines[start:index]) + "\n"
        index += 1  # the closing fence
        title = _TITLE.search(opening["info"])
        block = CodeBlock(opening["language"], body, start, title.group(1) if title else None)
        if language is None or block.language == language:
            blocks.append(block)
    return blocks


def python_blocks(path: Path) -> list[str]:
    """Every fenced ```python block of ``path``, in order."""
    return [block.code for block in code_blocks(path, "python")]


def run_blocks(path: Path) -> dict[str, object]:
    """Run the blocks of one file in order, in one namespace (later blocks build on earlier)."""
    namespace: dict[str, object] = {"__name__": f"doc_{path.stem}"}
    for index, block in enumerate(python_blocks(path)):
        code = compile(block, f"{path.name}[block {index}]", "exec")
        exec(code, namespace)
    return namespace

"""Extract the code examples of a Markdown file, so that tests can run them.

Each ```python block is an example a reader pastes on its own: it runs in a fresh namespace,
with its own imports and its own ``app``. A block that genuinely builds on the one before it
says so in its fence (```python continues); it then runs after that block (and whatever that
one continues), in one namespace.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# An opening fence: ``` or ~~~, a language, and mkdocs-style attributes such as title="cors.toml".
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<language>[\w+-]*)(?P<info>[^\n]*)$")
_TITLE = re.compile(r'title="([^"]*)"')
_CONTINUES = re.compile(r"(?:^|\s)continues(?:\s|$)")


@dataclass(frozen=True)
class CodeBlock:
    language: str
    code: str
    line: int  # the line of the opening fence, for failure messages
    title: str | None = None
    continues: bool = False  # ```python continues: runs after the block before it

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
        continues = _CONTINUES.search(opening["info"]) is not None
        block = CodeBlock(opening["language"], body, start, title.group(1) if title else None, continues)
        if language is None or block.language == language:
            blocks.append(block)
    return blocks


def python_blocks(path: Path) -> list[str]:
    """Every fenced ```python block of ``path``, in order."""
    return [block.code for block in code_blocks(path, "python")]


@dataclass(frozen=True)
class Example:
    """One ```python block as a reader runs it: alone, or after the blocks it continues."""

    path: Path
    blocks: tuple[CodeBlock, ...]  # the blocks it continues, then the block itself

    @property
    def block(self) -> CodeBlock:
        return self.blocks[-1]

    @property
    def code(self) -> str:
        return "".join(block.code for block in self.blocks)

    def __str__(self) -> str:
        return f"{self.path.name}:{self.block.line}"

    def run(self, namespace: dict[str, object] | None = None) -> dict[str, object]:
        """Run in a fresh namespace (or ``namespace``) and return it."""
        namespace = {"__name__": "doc_example"} if namespace is None else namespace
        for block in self.blocks:
            exec(compile(block.code, f"{self.path.name}:{block.line}", "exec"), namespace)
        return namespace

    def uncalled_functions(self) -> list[str]:
        """Top-level functions the example defines and never names again (so never runs)."""
        tree = ast.parse(self.code)
        defined = [
            node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        used = {
            node.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
        }
        return [name for name in defined if name not in used]


def examples(path: Path) -> list[Example]:
    """Every ```python block of ``path`` as an example to run on its own."""
    found: list[Example] = []
    for block in code_blocks(path, "python"):
        if not block.continues:
            found.append(Example(path, (block,)))
        elif not found:
            raise ValueError(f"{path.name}:{block.line} continues, but no python block comes before it")
        else:
            found.append(Example(path, (*found[-1].blocks, block)))
    return found

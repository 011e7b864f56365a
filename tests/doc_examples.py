"""Extract the Python examples of a Markdown file, so that tests can run them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(path: Path) -> list[str]:
    """Every fenced ```python block of ``path``, in order."""
    return _FENCE.findall(path.read_text(encoding="utf-8"))


def run_blocks(path: Path) -> dict[str, object]:
    """Run the blocks of one file in order, in one namespace (later blocks build on earlier)."""
    namespace: dict[str, object] = {"__name__": f"doc_{path.stem}"}
    for index, block in enumerate(python_blocks(path)):
        code = compile(block, f"{path.name}[block {index}]", "exec")
        exec(code, namespace)
    return namespace

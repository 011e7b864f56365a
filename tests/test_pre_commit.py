"""`.pre-commit-config.yaml` runs what `make lint` and `make typecheck` run (CONTRIBUTING)."""

from __future__ import annotations

import re

import yaml

from .doc_examples import ROOT


def _make_commands(*targets: str) -> set[str]:
    """The command lines of the Makefile's ``targets``, with $(BIN) spelled .venv/bin."""
    text = (ROOT / "Makefile").read_text()
    commands = set()
    for target in targets:
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
        assert recipe, target
        commands |= {line.strip().replace("$(BIN)", ".venv/bin") for line in recipe.group(1).splitlines()}
    return commands


def test_the_hooks_run_the_makefile_checks_on_the_same_tree() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert {hook["entry"] for hook in hooks} == _make_commands("lint", "typecheck")
    for hook in hooks:
        # The Makefile's directories, not the staged files: a change to the configuration
        # (pyproject.toml) is checked against the whole tree, as `make lint` checks it.
        assert hook["pass_filenames"] is False, hook["id"]
        assert re.search(hook["files"], "pyproject.toml"), hook["id"]

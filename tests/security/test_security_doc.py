"""docs/security.md states the suites' vector counts; they must not drift."""

from __future__ import annotations

from pathlib import Path

from .test_scanner_replay import POLICIES, SPECIAL_CHARACTERS, THIRD_PARTY_HOSTS, VECTORS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text(encoding="utf-8")


def test_the_doc_states_the_scanner_vector_counts() -> None:
    assert f"{len(VECTORS)} Origin values" in DOC
    assert f"{len(SPECIAL_CHARACTERS)} special characters" in DOC
    assert f"{len(THIRD_PARTY_HOSTS)} third-party hosting domains" in DOC
    assert f"against {len(POLICIES)} policies" in DOC

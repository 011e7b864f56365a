"""The allowlist document shared by the remote and file providers."""

from __future__ import annotations

import pytest

from corsengine.exceptions import ProviderError
from corsengine.providers._document import parse_document


def test_a_bare_list_of_origins_and_patterns() -> None:
    document = parse_document(
        ["https://app.example.com", "https://*.example.org"], "doc", allow_regexes=False
    )
    assert document.rules.entries == {"https://app.example.com", "https://*.example.org"}
    assert document.version is None


def test_the_object_form_with_every_key() -> None:
    document = parse_document(
        {
            "origins": ["https://app.example.com"],
            "patterns": ["http://localhost:*"],
            "regexes": [r"https://pr-\d+\.preview\.example"],
            "version": 7,
        },
        "doc",
        allow_regexes=True,
    )
    assert document.version == "7"
    assert document.rules.entries == {
        "https://app.example.com",
        "http://localhost:*",
        r"https://pr-\d+\.preview\.example",
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            {"origins": ["https://a.example"], "regexes": ["https://.*"]}, "refuses", id="regexes-not-allowed"
        ),
        pytest.param({"origin": ["https://a.example"]}, "origins: Field required", id="typo-in-a-key"),
        pytest.param(
            {"origins": "https://a.example"}, "origins: Input should be a valid list", id="string-not-list"
        ),
        pytest.param({"origins": [1]}, "origins.0", id="number-in-object"),
        pytest.param({"origins": [], "version": 1.5}, "version", id="float-version"),
        pytest.param({"origins": [], **{f"x{i}": 1 for i in range(7)}}, "and 2 more", id="many-errors"),
        pytest.param(42, "is a JSON int, expected a list", id="not-a-list"),
        pytest.param([42], "E017", id="number-in-list"),
        pytest.param(["https://a.example", "https://a.example/path"], "E001", id="one-bad-entry"),
    ],
)
def test_a_bad_document_is_rejected_as_a_whole(data: object, message: str) -> None:
    with pytest.raises(ProviderError, match=message) as caught:
        parse_document(data, "doc", allow_regexes=False)
    assert "doc" in str(caught.value)


def test_invalid_entries_are_located_by_line() -> None:
    text = (
        '{\n  "origins": [\n    "https://ok.example",\n    "https://bad.example/path",\n    "ftp://*"\n  ]\n}'
    )
    data = {"origins": ["https://ok.example", "https://bad.example/path", "ftp://*"]}
    with pytest.raises(ProviderError, match=r"\(lines 4, 5\)$"):
        parse_document(data, "doc", allow_regexes=False, text=text)
    # One line, and entries that cannot be found in the text (no line to name).
    with pytest.raises(ProviderError, match=r"\(line 4\)$"):
        parse_document(["https://bad.example/path", 3], "doc", allow_regexes=False, text=text)
    with pytest.raises(ProviderError, match=r"has a path \(hint: [^)]*\)$"):
        parse_document(["https://other.example/path"], "doc", allow_regexes=False, text=text)


def test_invalid_entries_of_a_toml_document_are_located_by_line() -> None:
    # A literal string and a bad regex: the line comes from where the text holds each entry.
    text = "origins = [\n  'https://ok.example',\n  'https://bad.example/path',\n]\nregexes = [\n  '(x',\n]\n"
    data = {"origins": ["https://ok.example", "https://bad.example/path"], "regexes": ["(x"]}
    with pytest.raises(ProviderError, match=r"\(lines 3, 6\)$"):
        parse_document(data, "doc", allow_regexes=True, text=text, format="toml")

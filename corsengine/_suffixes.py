"""Which wildcard parents are public suffixes, from the Public Suffix List.

``https://*.P`` is only safe when one owner controls every name under ``P``. That is false
when ``P`` is a public suffix (``co.uk``, ``github.io``) and when the list has a suffix below
``P`` (``*.amazonaws.com`` covers every S3 bucket under ``s3.amazonaws.com``). The list comes
from the ``publicsuffixlist`` package, ICANN and PRIVATE sections both: hosting platforms,
where anyone can get a subdomain, are in the PRIVATE section. It is read once, on the first
wildcard compiled, and never on the request path.
"""

from __future__ import annotations

from functools import cache

from publicsuffixlist import PSLFILE, PublicSuffixList

__all__ = ["is_loaded", "public_suffix_under"]


class _List:
    def __init__(self, lines: list[str]) -> None:
        # only_icann=False keeps the PRIVATE section; accept_unknown=True treats an unlisted
        # TLD (".internal", ".test") as public, so "*.internal" is refused like "*.com".
        self.psl = PublicSuffixList(lines, accept_unknown=True, only_icann=False)
        # Every proper parent of a rule -> the shortest rule under it, to name in the message
        # ("amazonaws.com" -> "s3.amazonaws.com"). Exception rules ("!www.ck") make a name
        # registrable, not public, so they are skipped.
        below: dict[str, str] = {}
        for line in lines:
            rule = line.strip().split(" ")[0].lower()
            if not rule or rule.startswith(("//", "!")):
                continue
            name = rule.removeprefix("*.")
            # Hosts are compared in punycode; the package encodes every rule the same way.
            forms = {name} if name.isascii() else {name, name.encode("idna").decode("ascii")}
            for form in forms:
                labels = form.split(".")
                shown = rule if form == name else f"{form} ({rule})"
                for start in range(1, len(labels)):
                    parent = ".".join(labels[start:])
                    known = below.get(parent)
                    if known is None or _order(shown) < _order(known):
                        below[parent] = shown
        self.below = below


def _order(rule: str) -> tuple[int, int, str]:
    return rule.count("."), len(rule), rule


@cache
def _public_suffix_list() -> _List:
    with open(PSLFILE, encoding="utf-8") as file:
        return _List(file.read().splitlines())


def is_loaded() -> bool:
    """Whether the list has been read (reading it takes about 120 ms, once per process)."""
    return _public_suffix_list.cache_info().currsize > 0


def public_suffix_under(parent: str) -> str | None:
    """The public suffix a wildcard over ``parent`` covers, or None if it covers none.

    ``parent`` is a normalized (lower-case, punycode) host name. Returns ``parent`` itself
    when it is a public suffix, or the shortest listed suffix below it.
    """
    found = _public_suffix_list()
    if found.psl.is_public(parent):
        return parent
    return found.below.get(parent)

"""A snapshot's prepared answers: plain dicts, each entry until its time, bounded."""

from __future__ import annotations

import math

from corsengine._decide import PreflightAnswer
from corsengine._memo import MEMO_SIZE, PREFLIGHT_MEMO_SIZE, Prepared

ANSWER = PreflightAnswer(200, (), b"OK", ())


def test_entries_that_never_expire_cost_no_time() -> None:
    prepared = Prepared()
    prepared.keep_answer(b"https://a.example", [])
    prepared.keep_preflight((b"https://a.example", b"GET", None, False), ANSWER)
    assert prepared.until == math.inf
    prepared.expire(now=1e12)
    assert len(prepared) == 2


def test_each_entry_goes_at_its_own_time_and_until_follows() -> None:
    prepared = Prepared()
    key = (b"https://b.example", b"GET", None, False)
    prepared.keep_answer(b"https://a.example", [], until=30.0)
    prepared.keep_preflight(key, ANSWER, until=10.0)
    prepared.keep_answer(b"https://c.example", [], until=20.0)
    assert prepared.until == 10.0
    prepared.expire(now=9.999)
    assert len(prepared) == 3 and prepared.until == 10.0
    prepared.expire(now=10.0)  # at its time exactly: gone
    assert key not in prepared.preflights and prepared.until == 20.0
    prepared.expire(now=25.0)
    assert list(prepared.answers) == [b"https://a.example"] and prepared.until == 30.0


def test_an_entry_kept_again_lives_until_its_new_time() -> None:
    prepared = Prepared()
    prepared.keep_answer(b"https://a.example", [], until=10.0)
    prepared.expire(now=10.0)
    prepared.keep_answer(b"https://a.example", [], until=20.0)
    prepared.keep_answer(b"https://a.example", [], until=25.0)  # two threads kept it
    prepared.expire(now=20.0)  # the stale time of the first keep does not drop the entry
    assert b"https://a.example" in prepared.answers
    prepared.expire(now=25.0)
    assert not prepared.answers and prepared.until == math.inf


def test_a_flood_clears_everything_the_times_included() -> None:
    prepared = Prepared()
    for i in range(MEMO_SIZE * 3):
        prepared.keep_answer(f"https://{i}.example".encode(), [], until=100.0 + i)
    assert len(prepared.answers) <= MEMO_SIZE
    assert len(prepared._heap) <= MEMO_SIZE and len(prepared._untils) <= MEMO_SIZE
    assert prepared.until >= 100.0 + MEMO_SIZE  # the times of what was cleared went with it
    for i in range(PREFLIGHT_MEMO_SIZE * 3):
        prepared.keep_preflight((f"https://{i}.example".encode(), b"GET", None, False), ANSWER, until=1.0)
    assert len(prepared.preflights) <= PREFLIGHT_MEMO_SIZE and len(prepared._heap) <= MEMO_SIZE

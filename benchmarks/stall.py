"""How long a refresh of a large allowlist stalls the event loop.

A callable returns N origins; after its first load, the TTL passes and one request triggers the
background reload (the next list has one more origin, so the change is published). Meanwhile a
ticker task yields to the loop over and over; the longest gap between two of its turns is the
worst stall every other request in flight would have seen. Only public API is used, so the
same script measures any version of corsengine.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from corsengine import Policy
from corsengine.providers import CallableProvider
from corsengine.testing import FakeClock

SIZES = (20_000, 100_000)
QUICK_SIZES = (2_000, 5_000)
# "A few milliseconds at 100,000 entries". Any work in a worker thread costs the loop up to
# CPython's GIL switch interval (5 ms) whenever the loop wants the GIL back.
MAX_STALL_MS = 10.0


@dataclass(frozen=True)
class StallResult:
    size: int
    first_load_ms: float  # the first load is waited for: reported, not a target
    worst_stall_ms: float
    refresh_ms: float


async def _measure(size: int) -> StallResult:
    clock = FakeClock()
    lists = [[f"https://t{index}.example" for index in range(size + extra)] for extra in (0, 1)]
    calls = {"count": 0}

    def origins() -> list[str]:
        calls["count"] += 1
        return lists[min(calls["count"] - 1, 1)]

    policy = Policy(CallableProvider(origins, ttl=30), clock=clock)
    started = time.perf_counter()
    await policy.aevaluate("https://t0.example")
    first_load = time.perf_counter() - started
    before = policy.rules

    worst = 0.0

    async def ticker() -> None:
        # A request's worth of work per turn: the list in force is read until the new one lands.
        nonlocal worst
        last = time.perf_counter()
        while policy.rules is before:
            await asyncio.sleep(0)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    clock.advance(31)
    started = time.perf_counter()
    await policy.aevaluate("https://t1.example")  # stale: the reload starts in the background
    await task
    refresh = time.perf_counter() - started
    await policy.aclose()
    return StallResult(size, first_load * 1e3, worst * 1e3, refresh * 1e3)


def run(sizes: tuple[int, ...] = SIZES) -> list[StallResult]:
    return [asyncio.run(_measure(size)) for size in sizes]


def table(results: list[StallResult]) -> str:
    lines = [
        "| origins | first load (waited for) | refresh, start to published "
        "| worst loop stall during the refresh |",
        "|--:|--:|--:|--:|",
    ]
    for result in results:
        lines.append(
            f"| {result.size:,} | {result.first_load_ms:.0f} ms | {result.refresh_ms:.0f} ms "
            f"| {result.worst_stall_ms:.1f} ms |"
        )
    return "\n".join(lines)


def verdict_line(results: list[StallResult]) -> str:
    worst = max(results, key=lambda result: result.size)
    met = worst.worst_stall_ms <= MAX_STALL_MS
    return (
        f"- **{'MET' if met else 'MISSED'}**: a refresh of {worst.size:,} origins stalls the event loop "
        f"at most {MAX_STALL_MS:g} ms ({worst.worst_stall_ms:.1f} ms)"
    )


if __name__ == "__main__":
    print(table(run()))

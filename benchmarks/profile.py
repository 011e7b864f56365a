"""Where corsengine's per-request time goes: cProfile over many raw ASGI calls, per scenario.

    python -m benchmarks.profile [scenario ...]

Same scopes and configuration as benchmarks/asgi.py, 100 origins. cProfile inflates the cost
of small functions, so read it for *where* the time goes, and benchmarks/asgi.py for how much.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys

from benchmarks.apps import bare_app, corsengine_cors, make_origins
from benchmarks.asgi import SCENARIOS, _batch, build_scope

CALLS = 20_000


def main(argv: list[str]) -> int:
    wanted = set(argv) or {s.name for s in SCENARIOS}
    origins = make_origins(100)
    app = corsengine_cors(bare_app, origins)
    loop = asyncio.new_event_loop()
    for scenario in SCENARIOS:
        if scenario.name not in wanted:
            continue
        scope = build_scope(scenario, origins)
        loop.run_until_complete(_batch(app, scope, 100))
        profile = cProfile.Profile()
        profile.enable()
        loop.run_until_complete(_batch(app, scope, CALLS))
        profile.disable()
        print(f"=== {scenario.name}: {CALLS:,} calls ===")
        pstats.Stats(profile).sort_stats("tottime").print_stats(12)
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

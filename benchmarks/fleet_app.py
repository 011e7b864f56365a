"""One worker of a fleet (the fleet test and the propagation benchmark).

Run as ``uvicorn benchmarks.fleet_app:app --workers N`` with the source in the environment:
``CORSENGINE_FLEET_SOURCE=redis`` (the default) with ``CORSENGINE_FLEET_REDIS_URL``, ``_KEY``,
``_CHANNEL`` and ``_RECONNECT_MAX``, or ``CORSENGINE_FLEET_SOURCE=file`` with
``CORSENGINE_FLEET_FILE`` and ``_POLL_INTERVAL``.

Every response names the worker that answered (``x-worker``: its pid, since ``--workers``
processes share one port) and when that worker's allowlist last changed (``x-changed-at``:
``time.monotonic()``, one clock for every process of the machine), so that a client tells the
workers apart and measures propagation without polling for it.
"""

from __future__ import annotations

import os
import time

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from corsengine import Change, CORSMiddleware, Policy
from corsengine.providers import FileProvider, RedisProvider
from corsengine.types import Provider

ENV = "CORSENGINE_FLEET_"


def _provider() -> Provider:
    if os.environ.get(f"{ENV}SOURCE", "redis") == "file":
        return FileProvider(
            os.environ[f"{ENV}FILE"], poll_interval=float(os.environ.get(f"{ENV}POLL_INTERVAL", "1"))
        )
    return RedisProvider(
        os.environ[f"{ENV}REDIS_URL"],
        key=os.environ.get(f"{ENV}REDIS_KEY", "corsengine:origins"),
        channel=os.environ.get(f"{ENV}REDIS_CHANNEL", "corsengine:changes"),
        reconnect_max=float(os.environ.get(f"{ENV}RECONNECT_MAX", "10")),
    )


policy = Policy(allow_origins=_provider())
changed_at = {"last": 0.0}


def _changed(change: Change) -> None:
    changed_at["last"] = time.monotonic()


policy.on_change(_changed)


async def index(request: Request) -> PlainTextResponse:
    headers = {"x-worker": str(os.getpid()), "x-changed-at": repr(changed_at["last"])}
    return PlainTextResponse("ok", headers=headers)


app = Starlette(routes=[Route("/", index)], middleware=[Middleware(CORSMiddleware, policy=policy)])

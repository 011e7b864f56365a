"""One worker of the fleet test: a Starlette app behind corsengine with a RedisProvider.

Run as ``uvicorn tests.providers.fleet_app:app`` with CORSENGINE_TEST_REDIS_URL set.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from corsengine import CORSMiddleware, Policy
from corsengine.providers import RedisProvider


async def index(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"worker {os.getpid()}")


provider = RedisProvider(
    os.environ["CORSENGINE_TEST_REDIS_URL"],
    key=os.environ.get("CORSENGINE_TEST_REDIS_KEY", "corsengine:origins"),
    channel=os.environ.get("CORSENGINE_TEST_REDIS_CHANNEL", "corsengine:changes"),
)
app = Starlette(
    routes=[Route("/", index)],
    middleware=[Middleware(CORSMiddleware, policy=Policy(allow_origins=provider))],
)

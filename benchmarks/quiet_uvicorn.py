"""uvicorn for the instruction count: the same server, without its ten wake-ups a second.

    python -m benchmarks.quiet_uvicorn module:factory --fd N [--http h11] [--loop asyncio]

uvicorn's main loop wakes every 0.1 s to look for a shutdown request and, once a second, to
refresh its ``Date`` header: about 230,000 instructions a second under callgrind, which a count
window of a few seconds charges to the requests in proportion to how long they took, that is to
the machine's load (1,000 requests counted 1,500 instructions more each on a busy machine than
on a quiet one). Here the main loop sets the ``Date`` header once and sleeps until a signal asks
it to stop. Requests are served by uvicorn's own protocol classes, unchanged: a request costs
what it costs under ``uvicorn``, whose prepared default headers are copied the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from types import FrameType

import uvicorn


class QuietServer(uvicorn.Server):
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        await self.on_tick(0)  # the Date header, once
        if not self.should_exit:
            await self._stop.wait()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._stop is not None:
            # A signal handler runs between two bytecodes of whatever the loop was doing.
            self._loop.call_soon_threadsafe(self._stop.set)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quiet_uvicorn", description=__doc__)
    parser.add_argument("factory", help="module:function returning the ASGI app")
    # A listening socket the caller bound and passed down: no other process can take its port
    # between the caller choosing it and the server (slow to start under valgrind) binding it.
    parser.add_argument("--fd", type=int, required=True, help="an inherited listening socket")
    parser.add_argument("--http", default="httptools", choices=("h11", "httptools"))
    parser.add_argument("--loop", default="uvloop", choices=("asyncio", "uvloop"))
    args = parser.parse_args(argv)
    config = uvicorn.Config(
        args.factory,
        factory=True,
        http=args.http,
        loop=args.loop,
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    QuietServer(config).run(sockets=[socket.socket(fileno=args.fd)])
    return 0


if __name__ == "__main__":
    sys.exit(main())

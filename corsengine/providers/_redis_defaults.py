"""Where a fleet's allowlist lives in Redis by default: shared by `RedisProvider` and the
``corsengine redis`` commands, and free of redis-py so that the CLI can build its help
without the ``redis`` extra."""

from __future__ import annotations

from typing import Final

DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"
DEFAULT_KEY: Final = "corsengine:origins"
DEFAULT_CHANNEL: Final = "corsengine:changes"

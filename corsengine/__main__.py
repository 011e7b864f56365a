"""``python -m corsengine``: the console script."""

from ._cli import main

raise SystemExit(main())

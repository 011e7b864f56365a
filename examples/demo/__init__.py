"""A live demo of corsengine: run ``make demo`` (or ``python -m examples.demo``).

It serves, in one process and on loopback only:

- the API, a FastAPI app behind ``corsengine.CORSMiddleware`` whose allowlist is a JSON file the
  demo creates (``demo-state/allowlist.json``), watched by corsengine's file provider;
- the frontend, on two more ports: a page with a grid of real ``fetch()`` calls made from several
  origins (each row is an iframe served from that origin), and an admin panel that rewrites the
  allowlist file and refreshes the policy, so the browser's verdicts flip without a restart.
"""

"""Side-by-side benchmarks of corsengine and Starlette's CORSMiddleware; run with ``python -m benchmarks``."""

"""polystream's benchmark suite: each component measured side by side with a raw-client baseline.

Run from the repository root (the real stack must be up)::

    .venv/bin/python -m bench.run            # full suite, a few minutes
    .venv/bin/python -m bench.run --quick    # smaller sizes (the smoke test)
    .venv/bin/python -m bench.run --only kafka --only redis

See docs/benchmarks.md.
"""

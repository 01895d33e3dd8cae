"""The whole pipeline measured end to end: ``polystream simulate`` publishing, the workers
started as users start them draining, per-sink rates, freshness under open-loop load, the
workers' memory and CPU, next to naive and raw-client baselines. See docs/benchmarks.md."""

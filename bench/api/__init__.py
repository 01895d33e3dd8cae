"""The write API under load: closed-loop maximum (wrk) and open-loop latency at a fixed rate,
each command next to ``/healthz`` of the same process. See docs/benchmarks.md."""

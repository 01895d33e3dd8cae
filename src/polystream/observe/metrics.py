"""Prometheus metrics of the API, and the /metrics server of the workers.

The consumer and sink counters live next to the code that moves them (`runtime.loop`,
`sinks.worker`, `audit.worker`); this module adds the API's and starts the servers.
"""

from __future__ import annotations

import errno
import logging

from prometheus_client import Counter, Histogram, start_http_server

log = logging.getLogger("polystream.metrics")

HTTP_SECONDS = Histogram(
    "polystream_http_request_seconds",
    "HTTP request latency by route template (never the raw path), method and status",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
COMMANDS = Counter(
    "polystream_api_commands_total",
    "Commands by event type and outcome: accepted (published), refused (invalid, too large) "
    "or failed (the bus did not acknowledge)",
    ["event_type", "outcome"],
)

#: The label of requests no route matched (404s): one series, whatever paths clients probe.
NOT_ROUTED = "(not routed)"


def start_worker_metrics(host: str, port: int) -> bool:
    """Serve /metrics of this process on ``host:port``; False when off (port 0) or when the
    port is taken. A taken port must not stop a worker: several `worker` processes on one
    host (the backlog drill runs four) share the default port, and the first one serves."""
    if port == 0:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        log.warning("metrics port %s:%d is taken; this worker runs without /metrics "
                    "(give each worker its own --metrics-port)", host, port)
        return False
    log.info("metrics on http://%s:%d/metrics", host, port)
    return True

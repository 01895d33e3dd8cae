"""Seeing the platform run.

* The operators' dashboard: `Observatory` reads the bus (produced offsets, consumer lag), each
  store (health, size), the live rankings, the catalogue and the audit trail through small
  ports; `embedded.py` and `stack.py` give it the in-memory or the real adapters.
  `history.Recorder` turns successive snapshots into rates and stall warnings. Nothing there
  knows about HTTP.
* Operations: Prometheus metrics of the API and the workers' /metrics server (`metrics.py`),
  consumer-lag gauges and `polystream lag` (`lag.py`), structlog set-up (`logs.py`), the W3C
  trace context carried from the HTTP request through Kafka and the spans (`tracing.py`),
  exported over OTLP when an endpoint is set (`otlp.py`).
"""

"""Span export over OTLP/HTTP (protobuf): the OpenTelemetry SDK, loaded only when
``observability.otlp_endpoint`` is set (see `observe.tracing` for what is traced).

HTTP/protobuf rather than gRPC: the same collectors accept it (port 4318) and it needs no
native gRPC wheel. The provider is this process's own, not the OpenTelemetry global one: the
spans are ours, and a process that configures twice (tests) replaces it cleanly.
"""

from __future__ import annotations

import atexit
import logging
from urllib.parse import urlsplit

from polystream.observe import tracing
from polystream.settings import ObservabilitySettings

log = logging.getLogger("polystream.trace")

TRACES_PATH = "/v1/traces"
#: A batch span links every distinct trace context of its batch; the SDK keeps 128 by default,
#: the largest batch a worker reads is 10,000 records.
MAX_LINKS = 10_000


def traces_url(endpoint: str) -> str:
    """The collector's traces URL from its base URL (``http://host:4318``) or the full one."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def parse_headers(raw: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` into a dict; a pair without ``=`` is a configuration error."""
    headers: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError("observability.otlp_headers: expected key=value pairs separated "
                             "by commas")
        headers[key.strip()] = value.strip()
    return headers


def configure(settings: ObservabilitySettings, role: str) -> bool:
    """Start exporting this process's spans when an endpoint is set; False (and nothing
    loaded) otherwise. ``role`` names the process: ``api``, ``sink-postgres``, ``auditor``."""
    if not settings.otlp_endpoint:
        return False
    # Imported here: a process without an endpoint never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from polystream import __version__

    headers = (parse_headers(settings.otlp_headers.get_secret_value())
               if settings.otlp_headers is not None else None)
    tracing.shutdown()  # a previous configuration's spans go out first
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: f"{settings.otlp_service_name}-{role}",
                                  "service.version": __version__}),
        span_limits=SpanLimits(max_links=MAX_LINKS),
        # `tracing.shutdown` flushes: the workers leave through os._exit, past atexit.
        shutdown_on_exit=False,
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=traces_url(settings.otlp_endpoint), headers=headers,
        timeout=settings.otlp_timeout_s)))
    tracing.install(provider.get_tracer("polystream", __version__), provider.shutdown,
                    settings.otlp_timeout_s)
    # uvicorn leaves through the interpreter's exit; the workers call `tracing.shutdown`
    # themselves before os._exit. A second call is a no-op.
    atexit.register(tracing.shutdown)
    log.info("tracing: spans exported over OTLP to %s as %s-%s",
             urlsplit(settings.otlp_endpoint).hostname, settings.otlp_service_name, role)
    return True

"""`polystream worker SINK`: run one sink (or all) until SIGTERM/SIGINT.

Exit codes: 0 stopped on request, 1 a sink failed, 3 the settings cannot work (one line says
why), 4 stopping took longer than ``--shutdown-timeout`` and the process left anyway.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Annotated

import typer

from polystream import bootstrap
from polystream.audit.ports import AuditIndexUnavailable
from polystream.audit.worker import AuditConfig
from polystream.bus.admin import ensure_topics
from polystream.bus.ports import BusError
from polystream.bus.topology import topic_specs
from polystream.domain.events import Sink
from polystream.observe import logs
from polystream.observe.lag import LagGauges
from polystream.observe.metrics import start_worker_metrics
from polystream.runtime.retry import ConfigurationError
from polystream.runtime.supervisor import (
    ExitCode,
    Role,
    Runnable,
    Supervisor,
    exit_process,
)
from polystream.settings import Settings, load_settings
from polystream.sinks.ports import TransientStoreError
from polystream.sinks.worker import WorkerConfig

#: What a start-up attempt may run into while servers start, restart or the process was
#: frozen; retried until it works.
START_UP_TRANSIENT = (TransientStoreError, BusError, AuditIndexUnavailable)


class SinkChoice(StrEnum):
    postgres = "postgres"
    mongo = "mongo"
    redis = "redis"
    audit = "audit"
    all = "all"


def _role(sink: Sink, settings: Settings, config: WorkerConfig) -> Role:
    def build() -> Runnable:
        # Every attempt checks the topics too: they may not exist until Kafka is back.
        ensure_topics(settings.kafka, topic_specs(settings.kafka))
        if sink is Sink.AUDIT:
            return bootstrap.audit_worker(
                settings, AuditConfig(batch_size=config.batch_size, linger_s=config.linger_s))
        return bootstrap.sink_worker(sink, settings, config)

    return Role(f"sink {sink.value}" if sink is not Sink.AUDIT else "auditor", build)


def worker(
    sink: Annotated[SinkChoice, typer.Argument(help="which store's sink to run; all = every "
                                               "sink in one process, one thread each")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
    linger_ms: Annotated[int, typer.Option(min=0, max=10_000,
                                           help="wait this long to fill a batch")] = 50,
    metrics_port: Annotated[int | None, typer.Option(
        min=0, max=65535, help="Prometheus /metrics port; 0 = off. Default: "
        "POLYSTREAM_OBSERVABILITY__METRICS_PORT (9464)")] = None,
    shutdown_timeout: Annotated[float, typer.Option(
        min=1, max=600, help="seconds the sinks get to close once stopping starts")] = 20.0,
) -> None:
    """Consume the topics of a sink in its own consumer group and persist the events."""
    try:
        settings = load_settings()
    except ValueError as exc:  # pydantic's ValidationError is one
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(3) from exc
    obs = settings.observability
    logs.configure(obs.log_level, settings.log_format())
    config = WorkerConfig(batch_size=batch_size, linger_s=linger_ms / 1000)
    sinks = [Sink(sink.value)] if sink is not SinkChoice.all else [
        s for s in Sink if s is not Sink.AUDIT or settings.opensearch.enabled]
    port = obs.metrics_port if metrics_port is None else metrics_port
    if start_worker_metrics(obs.metrics_host, port) and obs.lag_refresh_s > 0:
        # Only a process that serves metrics pays for the lag queries.
        LagGauges(settings, sinks, obs.lag_refresh_s).start()
    supervisor = Supervisor([_role(s, settings, config) for s in sinks],
                            transient=START_UP_TRANSIENT, shutdown_timeout_s=shutdown_timeout)
    supervisor.install_signal_handlers()
    logging.getLogger("polystream.worker").info(
        "workers starting: %s (Ctrl-C stops)", ", ".join(s.value for s in sinks))
    try:
        code = supervisor.run()
    except ConfigurationError as exc:
        typer.echo(str(exc), err=True)
        code = ExitCode.CONFIGURATION
    exit_process(code)

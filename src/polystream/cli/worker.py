"""`polystream worker SINK`: run one sink (or all) until SIGTERM/SIGINT.

`worker all` starts one child process per sink (`--in-process`: one thread each instead) and
exits as soon as one child fails, after stopping the others (see
`runtime.process_supervisor`).

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
from polystream.observe import logs, otlp
from polystream.observe.lag import LagGauges
from polystream.observe.metrics import start_worker_metrics
from polystream.runtime.logs import quiet_client_logs
from polystream.runtime.process_supervisor import ChildSpec, ProcessSupervisor, worker_argv
from polystream.runtime.retry import ConfigurationError
from polystream.runtime.supervisor import (
    ExitCode,
    Role,
    Runnable,
    Supervisor,
    exit_process,
)
from polystream.settings import Settings, load_settings
from polystream.sinks.worker import WorkerConfig
from polystream.store_errors import TransientStoreError

#: What a start-up attempt may run into while servers start, restart or the process was
#: frozen; retried until it works.
START_UP_TRANSIENT = (TransientStoreError, BusError, AuditIndexUnavailable)


class SinkChoice(StrEnum):
    postgres = "postgres"
    mongo = "mongo"
    redis = "redis"
    audit = "audit"
    all = "all"


def _role(sink: Sink, settings: Settings, config: WorkerConfig, fold_s: float) -> Role:
    def build() -> Runnable:
        # Every attempt checks the topics too: they may not exist until Kafka is back.
        ensure_topics(settings.kafka, topic_specs(settings.kafka))
        if sink is Sink.AUDIT:
            return bootstrap.audit_worker(
                settings, AuditConfig(batch_size=config.batch_size, linger_s=config.linger_s,
                                      fold_window_s=fold_s))
        return bootstrap.sink_worker(sink, settings, config)

    return Role(f"sink {sink.value}" if sink is not Sink.AUDIT else "auditor", build)


def _trace_role(sinks: list[Sink]) -> str:
    """The process's name in the traces (``<service name>-sink-postgres``)."""
    if len(sinks) > 1:
        return "workers"
    return "auditor" if sinks[0] is Sink.AUDIT else f"sink-{sinks[0].value}"


def _child_options(batch_size: int, linger_ms: int, fold_ms: int, metrics_port: int,
                   shutdown_timeout: float, index: int) -> list[str]:
    # Each child serves its own /metrics: the parent's port plus the child's position.
    return ["--batch-size", str(batch_size), "--linger-ms", str(linger_ms),
            "--fold-ms", str(fold_ms),
            "--metrics-port", str(metrics_port + index if metrics_port else 0),
            "--shutdown-timeout", str(shutdown_timeout)]


def worker(
    sink: Annotated[SinkChoice, typer.Argument(help="which store's sink to run; all = every "
                                               "sink, one child process each")],
    batch_size: Annotated[int, typer.Option(
        min=1, max=10_000, help="records per batch: each batch costs a few serial round trips "
        "(store, receipts, commit), so a backlog drains faster in bigger ones")] = 1000,
    linger_ms: Annotated[int, typer.Option(min=0, max=10_000,
                                           help="wait this long to fill a batch")] = 50,
    fold_ms: Annotated[int, typer.Option(
        min=0, max=60_000, help="auditor: hold a new event's document this long for its "
        "stores' receipts, to write it once (0 = write at once)")] = 2000,
    metrics_port: Annotated[int | None, typer.Option(
        min=0, max=65535, help="Prometheus /metrics port; 0 = off. Default: "
        "POLYSTREAM_OBSERVABILITY__METRICS_PORT (9464). With `all`, sink N of postgres, "
        "mongo, redis, audit serves on this port + N")] = None,
    shutdown_timeout: Annotated[float, typer.Option(
        min=1, max=600, help="seconds the sinks get to close once stopping starts")] = 20.0,
    in_process: Annotated[bool, typer.Option(
        "--in-process", help="with `all`: every sink in this process, one thread each "
        "(embedding, tests); they then share one interpreter lock")] = False,
    supervised: Annotated[bool, typer.Option(
        "--supervised", hidden=True,
        help="started by `worker all`: a repeated stop signal does not force the exit")] = False,
) -> None:
    """Consume the topics of a sink in its own consumer group and persist the events."""
    try:
        settings = load_settings()
    except ValueError as exc:  # pydantic's ValidationError is one
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(3) from exc
    obs = settings.observability
    logs.configure(obs.log_level, settings.log_format())
    quiet_client_logs()
    port = obs.metrics_port if metrics_port is None else metrics_port
    config = WorkerConfig(batch_size=batch_size, linger_s=linger_ms / 1000)
    sinks = [Sink(sink.value)] if sink is not SinkChoice.all else [
        s for s in Sink if s is not Sink.AUDIT or settings.opensearch.enabled]
    if sink is SinkChoice.all and not in_process:
        children = ProcessSupervisor(
            [ChildSpec(f"sink {s.value}" if s is not Sink.AUDIT else "auditor",
                       worker_argv(s.value, _child_options(batch_size, linger_ms, fold_ms,
                                                          port, shutdown_timeout, i)))
             for i, s in enumerate(sinks)],
            shutdown_timeout_s=shutdown_timeout)
        children.install_signal_handlers()
        logging.getLogger("polystream.worker").info(
            "workers starting, one process each: %s (Ctrl-C stops)",
            ", ".join(s.value for s in sinks))
        exit_process(children.run())
    otlp.configure(obs, _trace_role(sinks))
    if start_worker_metrics(obs.metrics_host, port) and obs.lag_refresh_s > 0:
        # Only a process that serves metrics pays for the lag queries.
        LagGauges(settings, sinks, obs.lag_refresh_s).start()
    supervisor = Supervisor([_role(s, settings, config, fold_ms / 1000) for s in sinks],
                            transient=START_UP_TRANSIENT, shutdown_timeout_s=shutdown_timeout)
    supervisor.install_signal_handlers(escalate=not supervised)
    logging.getLogger("polystream.worker").info(
        "workers starting: %s (Ctrl-C stops)", ", ".join(s.value for s in sinks))
    try:
        code = supervisor.run()
    except ConfigurationError as exc:
        typer.echo(str(exc), err=True)
        code = ExitCode.CONFIGURATION
    exit_process(code)

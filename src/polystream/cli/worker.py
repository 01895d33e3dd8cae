"""`polystream worker SINK`: run one sink (or all) until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from enum import StrEnum
from typing import Annotated

import typer
from prometheus_client import start_http_server
from rich.console import Console

from polystream import bootstrap
from polystream.bus.admin import ensure_topics
from polystream.bus.topology import topic_specs
from polystream.domain.events import Sink
from polystream.settings import Settings, load_settings
from polystream.sinks.worker import WorkerConfig

console = Console(stderr=True)


class SinkChoice(StrEnum):
    postgres = "postgres"
    mongo = "mongo"
    redis = "redis"
    audit = "audit"
    all = "all"


def _run_sink(sink: Sink, settings: Settings, config: WorkerConfig,
              stop: threading.Event) -> None:
    if sink is Sink.AUDIT:
        from polystream.audit.worker import run_audit_worker

        run_audit_worker(settings, stop, config.batch_size, config.linger_s)
        return
    bootstrap.sink_worker(sink, settings, config).run(stop)


def worker(
    sink: Annotated[SinkChoice, typer.Argument(help="which store's sink to run; all = every "
                                               "sink in one process, one thread each")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
    linger_ms: Annotated[int, typer.Option(min=0, max=10_000,
                                           help="wait this long to fill a batch")] = 50,
    metrics_port: Annotated[int, typer.Option(help="Prometheus /metrics port; 0 = off")] = 0,
) -> None:
    """Consume the topics of a sink in its own consumer group and persist the events."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    config = WorkerConfig(batch_size=batch_size, linger_s=linger_ms / 1000)
    sinks = [Sink(sink.value)] if sink is not SinkChoice.all else [
        s for s in Sink if s is not Sink.AUDIT or settings.opensearch.enabled]
    ensure_topics(settings.kafka, topic_specs(settings.kafka))
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    errors: list[BaseException] = []

    def guarded(s: Sink) -> None:
        try:
            _run_sink(s, settings, config, stop)
        except BaseException as exc:  # a dead sink thread must stop the process, loudly
            errors.append(exc)
            logging.getLogger("polystream.worker").exception("sink %s failed", s.value)
            stop.set()

    threads = [threading.Thread(target=guarded, args=(s,), name=f"sink-{s.value}")
               for s in sinks]
    for t in threads:
        t.start()
    console.print(f"workers running: {', '.join(s.value for s in sinks)} (Ctrl-C stops)")
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.5)
    if errors:
        raise typer.Exit(1)

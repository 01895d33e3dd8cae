"""Consumer lag of the deployment's groups: the `polystream lag` table and the workers' gauges.

Lag is read from the broker (end offsets minus the group's committed offsets), so it is the
group's lag, whichever member reports it: every worker process exports it for its own sinks'
groups, and Prometheus queries should take ``max`` over instances.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import Gauge

from polystream.bus.admin import group_lag
from polystream.bus.ports import BusError
from polystream.bus.topology import topics_for
from polystream.domain.events import Sink
from polystream.settings import Settings

log = logging.getLogger("polystream.lag")

LAG = Gauge("polystream_consumer_lag",
            "Records of a partition the consumer group has not committed yet",
            ["group", "topic", "partition"])


@dataclass(frozen=True, slots=True)
class GroupLag:
    sink: str
    group: str
    #: (topic, partition) -> records not committed yet
    partitions: Mapping[tuple[str, int], int]

    def per_topic(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (topic, _partition), lag in sorted(self.partitions.items()):
            totals[topic] = totals.get(topic, 0) + lag
        return totals


def deployment_sinks(settings: Settings) -> list[Sink]:
    return [s for s in Sink if s is not Sink.AUDIT or settings.opensearch.enabled]


def read_lag(settings: Settings, sinks: Iterable[Sink]) -> list[GroupLag]:
    """The lag of each sink's group over its topics. Raises BusError when Kafka cannot say."""
    result = []
    for sink in sinks:
        group = settings.kafka.consumer_group(sink.value)
        lag = group_lag(settings.kafka, group, [t.value for t in topics_for(sink)])
        result.append(GroupLag(sink.value, group, lag))
    return result


class LagGauges:
    """A daemon thread refreshing `LAG` for some sinks every ``interval_s`` seconds."""

    def __init__(self, settings: Settings, sinks: Iterable[Sink], interval_s: float) -> None:
        self._settings = settings
        self._sinks = list(sinks)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-gauges", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def refresh(self) -> None:
        for group in read_lag(self._settings, self._sinks):
            for (topic, partition), lag in group.partitions.items():
                LAG.labels(group.group, topic, str(partition)).set(lag)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except BusError as exc:  # Kafka restarting: the gauges keep their last values
                log.warning("consumer lag not refreshed: %s", exc)
            except Exception:  # a metrics thread must never take the worker down
                log.exception("consumer lag refresh failed")
            self._stop.wait(self._interval_s)

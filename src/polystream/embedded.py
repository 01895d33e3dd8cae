"""The embedded mode: the whole platform in one process, with no server at all.

Every port gets its in-memory implementation (the same ones the contract tests check against
the real adapters): an in-memory broker with partitions and consumer groups, the three stores,
the receipt log and the audit index. The sinks run the same `SinkWorker` loop as in
production, each in a thread. `polystream demo` drives it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from polystream.audit.memory import InMemoryAuditIndex
from polystream.audit.worker import AuditWorker
from polystream.bus.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from polystream.bus.ports import TopicSpec
from polystream.bus.topology import CONSUMER_GROUPS, TOPIC_PARTITIONS, Topic, topics_for
from polystream.domain.events import Sink
from polystream.reads.invalidation import CacheInvalidatingStore
from polystream.receipts import InMemoryReceiptLog
from polystream.sinks.memory_accounts import InMemoryAccountStore
from polystream.sinks.memory_catalog import InMemoryCatalogStore
from polystream.sinks.memory_live import InMemoryLiveStore
from polystream.sinks.ports import EventStore
from polystream.sinks.worker import SinkWorker, WorkerConfig

if TYPE_CHECKING:
    from polystream.reads.service import ReadService
    from polystream.settings import ReadSettings

# Not a secret: the embedded mode keeps nothing beyond the process.
_EMBEDDED_AUDIT_KEY = b"polystream-embedded-demo"


@dataclass
class EmbeddedPlatform:
    config: WorkerConfig = field(default_factory=lambda: WorkerConfig(batch_size=1000,
                                                                      linger_s=0.02))

    def __post_init__(self) -> None:
        self.broker = InMemoryBroker(auto_create_topics=False)
        self.broker.ensure_topics([TopicSpec(t.value, TOPIC_PARTITIONS[t]) for t in Topic])
        self.accounts = InMemoryAccountStore()
        self.catalog = InMemoryCatalogStore()
        self.live = InMemoryLiveStore()
        self.receipts = InMemoryReceiptLog()
        self.audit = InMemoryAuditIndex()
        self.publisher = InMemoryEventPublisher(self.broker)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.workers: dict[Sink, SinkWorker] = {}
        stores: dict[Sink, EventStore] = {
            Sink.POSTGRES: self.accounts,
            Sink.MONGO: CacheInvalidatingStore(self.catalog, self.live),
            Sink.REDIS: self.live}
        for sink, store in stores.items():
            self.workers[sink] = SinkWorker(
                sink=sink, consumer=self._consumer(sink), store=store,
                publisher=InMemoryEventPublisher(self.broker), receipts=self.receipts,
                config=self.config)
        self.auditor = AuditWorker(
            consumer=self._consumer(Sink.AUDIT), index=self.audit,
            publisher=InMemoryEventPublisher(self.broker), secret=_EMBEDDED_AUDIT_KEY,
            claims=self.receipts)

    def _consumer(self, sink: Sink) -> InMemoryEventConsumer:
        return InMemoryEventConsumer(self.broker, CONSUMER_GROUPS[sink],
                                     [t.value for t in topics_for(sink)], client_id=sink.value)

    def read_service(self, settings: ReadSettings) -> ReadService:
        """The public reads over this platform's in-memory stores (what ``demo --serve``
        serves; the same service the real stack runs on MongoDB and Redis)."""
        from polystream.reads.catalog import MemoryCatalogReads
        from polystream.reads.live import LiveReads
        from polystream.reads.service import ReadService

        return ReadService(MemoryCatalogReads(self.catalog), LiveReads.in_memory(self.live),
                           settings)

    def start(self) -> None:
        runners: list[tuple[str, SinkWorker | AuditWorker]] = [
            (s.value, w) for s, w in self.workers.items()]
        runners.append(("audit", self.auditor))
        for name, runner in runners:
            thread = threading.Thread(target=runner.run, args=(self._stop,),
                                      name=f"sink-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def publish_all(self, events: Iterable[tuple[str, str, bytes]]) -> int:
        """Publish (topic, key, value) triples; returns how many."""
        n = 0
        for topic, key, value in events:
            self.publisher.publish_fire(topic, key, value)
            n += 1
        self.publisher.flush()
        return n

    def lag(self) -> dict[Sink, int]:
        return {sink: sum(self.broker.group_lag(CONSUMER_GROUPS[sink],
                                                [t.value for t in topics_for(sink)]).values())
                for sink in Sink}

    def wait_drained(self, timeout_s: float = 300.0) -> bool:
        """True once every sink has committed everything (deferred events settled)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not any(self.lag().values()) and not any(
                    w.deferred for w in self.workers.values()):
                return True
            time.sleep(0.05)
        return False

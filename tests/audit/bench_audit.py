"""Throughput of the auditor on the real stack (not a test; run by hand).

    .venv/bin/python -m tests.audit.bench_audit --events 20000 --batch 1000

Publishes ``--events`` events of every small type to a fresh topic (plus, with ``--receipts``,
one receipt per event, as the S2 sinks would), then runs one auditor from offset 0 until its
lag is 0 and reports documents/s. Topics, group and index prefix are unique and deleted after.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from datetime import UTC, datetime

from polystream.audit.documents import event_document
from polystream.audit.opensearch import OpenSearchAuditIndex
from polystream.audit.worker import AuditBatchStats, AuditConfig, AuditWorker
from polystream.bus import admin
from polystream.bus.kafka import KafkaEventConsumer, KafkaEventPublisher
from polystream.bus.ports import TopicSpec
from polystream.domain.events import EVENT_TYPES, Receipt, ReceiptStatus, Sink, encode
from polystream.domain.examples import example_event
from polystream.settings import load_settings

SECRET = b"bench-secret"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--receipts", action="store_true")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()

    settings = load_settings()
    unique = uuid.uuid4().hex[:8]
    base = f"audit-bench-{unique}"
    topics = [f"{base}-events", f"{base}-receipts", f"{base}-deadletter"]
    admin.ensure_topics(settings.kafka, [TopicSpec(t, args.partitions) for t in topics])
    index = OpenSearchAuditIndex(settings.opensearch.model_copy(
        update={"index_prefix": f"bench-audit-{unique}"}))
    index.ensure()
    publisher = KafkaEventPublisher(settings.kafka, client_id=base)
    try:
        types = [t for t in EVENT_TYPES if t not in {"user.erased", "catalog.asset_uploaded"}]
        events = [example_event(types[i % len(types)]) for i in range(args.events)]
        t0 = time.perf_counter()
        for env in events:
            publisher.publish_fire(topics[0], env.key, encode(env))
            if args.receipts:
                rc = Receipt(event_id=env.event_id, event_type=env.type, sink=Sink.POSTGRES,
                             status=ReceiptStatus.STORED, processed_at=datetime.now(UTC))
                publisher.publish_fire(topics[1], str(env.event_id),
                                       rc.model_dump_json().encode())
        publisher.flush(60)
        print(f"published {len(events)} events in {time.perf_counter() - t0:.1f}s")

        t0 = time.perf_counter()
        for env in events[:5000]:
            event_document(env, None, secret=SECRET)
        per_doc = (time.perf_counter() - t0) / min(5000, len(events))
        print(f"building a document (decode excluded): {per_doc * 1e6:.0f} µs "
              f"-> {1 / per_doc:,.0f} docs/s on one core")

        group = f"{base}-group"
        consumer = KafkaEventConsumer(settings.kafka, group_id=group, topics=topics,
                                      client_id=base)
        worker = AuditWorker(consumer=consumer, index=index, publisher=publisher, secret=SECRET,
                             config=AuditConfig(batch_size=args.batch, linger_s=0.05,
                                                receipts_topic=topics[1],
                                                deadletter_topic=topics[2]))
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        # Time from the first record read, so the group join does not count.
        first = threading.Event()
        step = worker.step

        def timed_step() -> AuditBatchStats:
            stats = step()
            if stats.records:
                first.set()
            return stats

        worker.step = timed_step  # type: ignore[method-assign]  # a timing hook, bench only
        thread.start()
        first.wait(60)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        total = len(events) * (2 if args.receipts else 1)
        while worker.totals.records < total:
            time.sleep(0.05)
        took = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        stop.set()
        thread.join(30)
        index.refresh()
        assert index.count() == len(events), index.count()
        print(f"auditor: {len(events)} events"
              f"{' + ' + str(len(events)) + ' receipts' if args.receipts else ''} in {took:.1f}s"
              f" -> {len(events) / took:,.0f} events/s, {total / took:,.0f} records/s "
              f"(batch {args.batch}); the auditor process used {cpu / took:.0%} of a core")
    finally:
        publisher.close(10)
        index.drop_everything()
        index.close()
        admin.delete_topics(settings.kafka, topics)


if __name__ == "__main__":
    main()

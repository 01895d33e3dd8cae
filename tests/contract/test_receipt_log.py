"""The receipt log on the real Redis: a batch's receipts in one script call, read back per
event, with their TTL; and the in-memory log answering the same."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import uuid4

import pytest
import redis

from polystream.domain.events import Receipt, ReceiptStatus, Sink
from polystream.receipts import CLAIM_TTL_S, ClaimHeld, InMemoryReceiptLog, ReceiptLog
from polystream.receipts.redis_log import RedisReceiptLog
from polystream.settings import Settings


def _receipts(n: int) -> list[Receipt]:
    at = datetime.now(UTC)
    return [Receipt(event_id=event_id, event_type="playback.progress", sink=sink,
                    status=ReceiptStatus.STORED, processed_at=at)
            for event_id in [uuid4() for _ in range(n)] for sink in (Sink.REDIS, Sink.AUDIT)]


@pytest.mark.stack
def test_a_batch_of_receipts_is_written_in_bulk_and_read_per_event(settings: Settings,
                                                                   unique: str) -> None:
    client = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    log = RedisReceiptLog(client, prefix=f"t{unique}", ttl_s=600)
    batch = _receipts(1200)  # 2,400 receipts: more than one script call
    encoded = [rc.model_dump_json() for rc in batch]
    try:
        log.record(batch, encoded)
        log.record(batch[:4])  # without the JSON: made here, same keys
        for rc in (batch[0], batch[1], batch[-1]):
            assert rc in log.get(rc.event_id)
        assert sorted(r.sink.value for r in log.get(batch[0].event_id)) == ["audit", "redis"]
        ttl = client.ttl(f"t{unique}:receipt:{batch[-1].event_id}:audit")
        assert 0 < ttl <= 600
        assert len(list(client.scan_iter(f"t{unique}:receipt:*", count=1000))) == 2400
        # A flushed script cache is reloaded, not a lost batch.
        client.script_flush()
        log.record(_receipts(1))
    finally:
        keys = list(client.scan_iter(f"t{unique}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def test_the_in_memory_log_takes_the_same_arguments() -> None:
    log = InMemoryReceiptLog()
    batch = _receipts(2)
    log.record(batch, [rc.model_dump_json() for rc in batch])
    assert {r.sink for r in log.get(batch[0].event_id)} == {Sink.REDIS, Sink.AUDIT}


@pytest.mark.stack
def test_a_claim_is_a_lease_until_confirmed_then_taken_until_given_back(
        settings: Settings, unique: str) -> None:
    client = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    logs: list[ReceiptLog] = [RedisReceiptLog(client, prefix=f"t{unique}", lease_s=1),
                              InMemoryReceiptLog(lease_s=1)]
    try:
        for log in logs:
            assert log.claim("dlq:users:0:7") is True
            with pytest.raises(ClaimHeld):
                log.claim("dlq:users:0:7")  # leased, its effect not confirmed yet
            log.confirm(["dlq:users:0:7"])
            assert log.claim("dlq:users:0:7") is False
            log.release("dlq:users:0:7")
            log.release("dlq:users:0:8")  # never claimed: nothing to give back, no error
            assert log.claim("dlq:users:0:7") is True
            log.confirm(["dlq:users:0:7"])
            assert log.claim("dlq:users:0:7") is False
            assert log.claim("dlq:users:0:9") is True  # its holder dies: never confirmed
        assert 1 < client.ttl(f"t{unique}:claim:dlq:users:0:7") <= CLAIM_TTL_S
        time.sleep(1.2)
        for log in logs:
            assert log.claim("dlq:users:0:9") is True  # the lease ended: free again
            assert log.claim("dlq:users:0:7") is False
    finally:
        keys = list(client.scan_iter(f"t{unique}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.stack
def test_a_claim_taken_before_leases_existed_counts_as_confirmed(settings: Settings,
                                                               unique: str) -> None:
    client = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    try:
        client.set(f"t{unique}:claim:dlq:users:0:7", 1, ex=60)  # as the earlier release wrote
        assert RedisReceiptLog(client, prefix=f"t{unique}").claim("dlq:users:0:7") is False
    finally:
        client.delete(f"t{unique}:claim:dlq:users:0:7")
        client.close()

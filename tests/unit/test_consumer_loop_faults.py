"""Regression tests for the consumer loop shared by the sink workers and the auditor (issue
12): a rewind that fails mid-rebalance must not kill the thread, and the backoff after a batch
that was not durable must end as soon as `stop` is set."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from polystream.audit.worker import AuditWorker
from polystream.bus.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from polystream.bus.ports import BusError, Record
from polystream.runtime.loop import TP, BatchContext, ConsumerLoop, LoopConfig, NotDurable
from polystream.sinks.worker import SinkWorker


class NeverDurable:
    """A handler whose stores never acknowledge: every batch is rewound."""

    def __init__(self) -> None:
        self.resets = 0

    def handle(self, records: Sequence[Record], ctx: BatchContext) -> None:
        raise NotDurable("the store is down")

    def settle(self) -> None:
        pass

    def held(self) -> Mapping[TP, int]:
        return {}

    def wants_idle_call(self) -> bool:
        return False

    def forget(self, owned: set[TP]) -> None:
        pass

    def reset(self, ctx: BatchContext) -> None:
        self.resets += 1

    def close(self) -> None:
        pass


def make_loop(backoff_s: float) -> tuple[ConsumerLoop, NeverDurable, InMemoryEventConsumer]:
    broker = InMemoryBroker(partitions_default=1)
    publisher = InMemoryEventPublisher(broker)
    publisher.publish("t", "k", b"{}")
    publisher.flush()
    consumer = InMemoryEventConsumer(broker, "g", ["t"])
    handler = NeverDurable()
    loop = ConsumerLoop(name="test", consumer=consumer, publisher=publisher, handler=handler,
                        config=LoopConfig(linger_s=0.01, backoff_initial_s=backoff_s,
                                          backoff_max_s=backoff_s))
    return loop, handler, consumer


def test_the_auditor_and_the_sinks_share_the_guarded_loop() -> None:
    # The guard lives in ConsumerLoop._rewind; both workers must be that loop, not a copy.
    assert issubclass(AuditWorker, ConsumerLoop) and issubclass(SinkWorker, ConsumerLoop)
    assert "_rewind" not in vars(AuditWorker) and "_rewind" not in vars(SinkWorker)


def test_a_rewind_refused_mid_rebalance_does_not_kill_the_thread() -> None:
    loop, handler, consumer = make_loop(0.01)

    def rebalancing() -> None:
        raise BusError("UNKNOWN_MEMBER_ID: rebalance in progress")

    consumer.seek_to_committed = rebalancing  # type: ignore[method-assign]
    result = loop.step()  # must not raise
    assert result.records == 1 and not result.committed
    assert handler.resets == 1
    result = loop.step()  # and the loop goes on
    assert not result.committed


def test_the_backoff_ends_when_stop_is_set() -> None:
    loop, _, _ = make_loop(60.0)  # a minute of backoff if stop were not watched
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(0.3)  # it is now sleeping in its backoff
    asked = time.monotonic()
    stop.set()
    thread.join(5.0)
    assert not thread.is_alive()
    assert time.monotonic() - asked < 2.0

"""Which partition a key lands in: Kafka's default (Java) partitioner.

Our Kafka producer is configured with librdkafka's ``murmur2_random`` partitioner, which hashes
like Java clients do, and the in-memory broker uses the same function; so a key's partition is
known to every part of the system without asking the broker (the sink worker relies on it to
find where an event's prerequisites live on another topic).
"""

from __future__ import annotations

import struct

_WORDS = struct.Struct("<I")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``) as an unsigned 32-bit
    int; librdkafka's ``murmur2_random`` partitioner, which our Kafka producer uses, is the same."""
    m = 0x5BD1E995
    length = len(data)
    h = 0x9747B28C ^ length
    tail = length & ~3
    for (k,) in _WORDS.iter_unpack(data[:tail]):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length - tail
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (Java) partitioner picks for a non-null key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions

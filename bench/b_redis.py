"""4. Redis sink: ``RedisLiveStore.apply`` against a pipeline of one HSET + one ZADD per event."""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

import redis
from redis.typing import EncodableT, FieldT

from bench import data
from bench.core import Sample, Stopwatch, Variant, batches
from polystream.domain.events import Envelope
from polystream.domain.live import to_ms
from polystream.settings import Settings
from polystream.sinks.redis_live import RedisLiveStore

BATCH: Final = 1_000
#: Events per script call in the Lua reference, as in the store.
EVENTS_PER_CALL: Final = 100

#: The reference's script: for each event ``hkey n field value ... zkey score member``, one
#: HSET and one ZADD, nothing else (no marker, no guard, no ranking).
_LUA_WRITES: Final = """
local i, n = 1, #ARGV
while i <= n do
  local count = tonumber(ARGV[i + 1])
  redis.call('HSET', ARGV[i], unpack(ARGV, i + 2, i + 1 + 2 * count))
  i = i + 2 + 2 * count
  redis.call('ZADD', ARGV[i], ARGV[i + 1], ARGV[i + 2])
  i = i + 3
end
return n
"""

Fields = dict[FieldT, EncodableT]
Writes = tuple[str, Fields, str, str, int]


def _writes(prefix: str, event: Envelope[Any]) -> Writes:
    """The baseline's two writes for one event: (hash key, fields, sorted-set key, member,
    score). Playback: the viewing session's fields, and the session in the user's streams by
    time. Rating: the user's rating of the title, and the title in a ranking by stars."""
    p = event.payload
    t = to_ms(event.occurred_at)
    if event.type.startswith("playback."):
        fields: Fields = {
            "user": p.user_id,
            "title": p.title_id,
            "episode": p.episode_id or "",
            "position": p.position_seconds,
            "duration": p.duration_seconds,
            "device": p.device.device_id,
            "t": t,
            "eid": str(event.event_id),
        }
        return (
            f"{prefix}:viewing:{p.viewing_session_id}",
            fields,
            (f"{prefix}:streams:{p.user_id}"),
            p.viewing_session_id,
            t,
        )
    stars = int(getattr(p, "stars", 0))
    return (
        f"{prefix}:rating:{p.user_id}",
        {p.title_id: f"{stars}|{t}|{event.event_id}"},
        f"{prefix}:rank:top_rated",
        p.title_id,
        stars,
    )


class RedisBench:
    name = "redis"
    title = "Redis sink (playback + ratings)"
    unit = "events/s"

    def __init__(self, settings: Settings, run_id: str, quick: bool) -> None:
        self.settings = settings
        self.prefix = f"bench:{run_id}"
        self.count = 5_000 if quick else 30_000
        self.context: list[Envelope[Any]] = []
        self.events: list[Envelope[Any]] = []
        self.client: redis.Redis | None = None

    def describe(self) -> str:
        return (
            "The playback and rating events of the default simulator mix (heartbeats, starts, "
            f"stops, ratings; stream order) applied in batches of {BATCH} by "
            "RedisLiveStore.apply: per event one step of a Lua script (100 events per EVALSHA, "
            "50 calls per pipeline) that checks and writes the idempotency marker (heartbeats: the "
            "viewing session's last event instead), the viewing "
            "session, stream limit, continue-watching, daily views and rating rankings. The "
            "sink's other events that precede them (subscriptions, titles, login sessions, "
            "flags) are applied first, untimed, so starts find their plan. Baseline: a "
            f"redis-py pipeline (no MULTI) per batch of {BATCH} with one HSET (the event's "
            "fields) and one ZADD per event. Reference: the same two writes per event made by "
            f"a trivial Lua script, {EVENTS_PER_CALL} events per EVALSHA (the store's calling "
            "pattern without its logic), the commands packed before the clock and written "
            "straight to the socket: close to what the server itself can do. Own key prefix "
            "per repetition, deleted with SCAN + DEL."
        )

    def size(self) -> dict[str, Any]:
        return {"events_per_rep": self.count, "batch": BATCH}

    def setup(self) -> None:
        self.context, self.events = data.redis_events(self.count)
        self.client = redis.Redis.from_url(self.settings.redis.url, decode_responses=True)
        self.client.ping()

    def variants(self) -> list[Variant]:
        return [
            Variant("ours", "ours", self._ours, f"RedisLiveStore.apply, {BATCH}/batch"),
            Variant(
                "baseline",
                "baseline",
                self._baseline,
                f"pipeline HSET + ZADD per event, {BATCH}/round trip",
            ),
            Variant(
                "lua raw",
                "reference",
                self._lua,
                f"the same HSET + ZADD in one EVALSHA per {EVENTS_PER_CALL} events, pre-packed",
            ),
        ]

    def _ours(self, rep: int) -> Sample:
        assert self.client is not None
        prefix = f"{self.prefix}:{rep}:ours"
        client = self.client
        store = RedisLiveStore(client, prefix=prefix)
        outcomes: Counter[str] = Counter()
        try:
            for batch in batches(self.context, BATCH):  # also loads the script
                store.apply(batch)
            cpu0 = _server_cpu(client)
            with Stopwatch() as watch:
                for batch in batches(self.events, BATCH):
                    for outcome in store.apply(batch):
                        outcomes[outcome.status.value] += 1
            server_cpu = _server_cpu(client) - cpu0
            keys = _count(client, prefix)
        finally:
            _delete(client, prefix)
        problems = [] if outcomes["stored"] else ["nothing stored"]
        return Sample.of(
            len(self.events),
            watch,
            problems,
            outcomes=dict(outcomes),
            keys=keys,
            context_events=len(self.context),
            redis_cpu_s=server_cpu,
        )

    def _baseline(self, rep: int) -> Sample:
        assert self.client is not None
        prefix = f"{self.prefix}:{rep}:base"
        client = self.client
        try:
            cpu0 = _server_cpu(client)
            with Stopwatch() as watch:
                for batch in batches(self.events, BATCH):
                    pipe = client.pipeline(transaction=False)
                    for event in batch:
                        hkey, mapping, zkey, member, score = _writes(prefix, event)
                        pipe.hset(hkey, mapping=mapping)
                        pipe.zadd(zkey, {member: score})
                    pipe.execute()
            server_cpu = _server_cpu(client) - cpu0
            keys = _count(client, prefix)
        finally:
            _delete(client, prefix)
        return Sample.of(len(self.events), watch, keys=keys, redis_cpu_s=server_cpu)

    def _lua(self, rep: int) -> Sample:
        assert self.client is not None
        prefix = f"{self.prefix}:{rep}:lua"
        client = self.client
        sha = str(client.script_load(_LUA_WRITES))
        # Commands built and packed before the clock, then written to the socket as they are:
        # this measures what the server does with the two writes per event when the client
        # costs almost nothing.
        calls: list[list[list[EncodableT]]] = []
        for batch in batches(self.events, BATCH):
            calls.append([])
            for chunk in batches(batch, EVENTS_PER_CALL):
                args: list[EncodableT] = []
                for event in chunk:
                    hkey, mapping, zkey, member, score = _writes(prefix, event)
                    args += (hkey, len(mapping))
                    for pair in mapping.items():
                        args += pair
                    args += (zkey, score, member)
                calls[-1].append(args)
        pool = client.connection_pool
        conn: Any = pool.get_connection()  # redis-py's packing methods are untyped
        try:
            packed = [
                (
                    conn.pack_commands([("EVALSHA", sha, 0, *args) for args in batch_calls]),
                    len(batch_calls),
                )
                for batch_calls in calls
            ]
            cpu0 = _server_cpu(client)
            with Stopwatch() as watch:
                for chunks, replies in packed:
                    conn.send_packed_command(chunks)
                    for _ in range(replies):
                        conn.read_response()
            server_cpu = _server_cpu(client) - cpu0
            keys = _count(client, prefix)
        finally:
            pool.release(conn)
            _delete(client, prefix)
        return Sample.of(len(self.events), watch, keys=keys, redis_cpu_s=server_cpu)

    def teardown(self) -> None:
        if self.client is not None:
            _delete(self.client, f"{self.prefix}")
            self.client.close()
            self.client = None
        self.context, self.events = [], []


def _server_cpu(client: redis.Redis) -> float:
    """CPU seconds the Redis server has used since it started (all its clients, not only
    ours: the server is shared)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _keys(client: redis.Redis, prefix: str) -> list[str]:
    return [str(key) for key in client.scan_iter(match=f"{prefix}:*", count=1000)]


def _count(client: redis.Redis, prefix: str) -> int:
    return len(_keys(client, prefix))


def _delete(client: redis.Redis, prefix: str) -> int:
    """SCAN + DEL of every key under ``prefix`` (never FLUSHDB: the server is shared)."""
    keys = _keys(client, prefix)
    deleted = 0
    for start in range(0, len(keys), 1000):
        deleted += int(client.delete(*keys[start : start + 1000]))
    return deleted

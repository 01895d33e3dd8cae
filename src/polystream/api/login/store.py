"""Where login sessions live: Redis on the real stack, a dict in embedded mode and tests.

Keys (``P`` the Redis key prefix):

========================  ======  ==============================================================
key                       type    content (expiry)
========================  ======  ==============================================================
P:auth:{token sha256}     hash    ``sid`` session id, ``uid`` user id, ``role`` (session_ttl_s
                                  after the last use: the sliding expiry)
P:auth:_user:{user_id}    set     the user's token digests, for "log out everywhere"
                                  (session_ttl_s after the user's last login or use)
P:login:{kind}:{bucket}   string  attempts in the current window (see ``ratelimit.py``)
========================  ======  ==============================================================

The session id is the public handle published in ``session.*`` events and shown by
``GET /me/sessions``; only the digest of the bearer token is ever a key, so neither the
events nor Redis let anyone log in.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol, cast

import redis


@dataclass(frozen=True, slots=True)
class LoginSession:
    session_id: str
    user_id: str
    role: str
    #: Unix time (seconds) after which the session ends unless it is used again.
    expires_at: float
    digest: str = ""


class SessionStore(Protocol):
    def create(self, digest: str, session: LoginSession, ttl_s: int) -> None: ...

    def touch(self, digest: str, ttl_s: int) -> LoginSession | None:
        """The live session of a token digest, its expiry pushed ``ttl_s`` ahead; None if
        unknown, expired or revoked."""
        ...

    def revoke(self, digest: str) -> LoginSession | None:
        """End one session; the session it was, or None if it was already over."""
        ...

    def revoke_all(self, user_id: str) -> list[LoginSession]:
        """End every session of a user; those that were live."""
        ...

    def list(self, user_id: str) -> list[LoginSession]: ...


class InMemorySessionStore:
    """The same behaviour on a dict, with expiry checked on read."""

    def __init__(self) -> None:
        self._sessions: dict[str, LoginSession] = {}
        self._lock = threading.Lock()

    def _live(self, digest: str) -> LoginSession | None:
        session = self._sessions.get(digest)
        if session is not None and session.expires_at <= time.time():
            del self._sessions[digest]
            return None
        return session

    def create(self, digest: str, session: LoginSession, ttl_s: int) -> None:
        with self._lock:
            self._sessions[digest] = LoginSession(
                session.session_id, session.user_id, session.role, time.time() + ttl_s, digest
            )

    def touch(self, digest: str, ttl_s: int) -> LoginSession | None:
        with self._lock:
            session = self._live(digest)
            if session is None:
                return None
            session = LoginSession(session.session_id, session.user_id, session.role,
                                   time.time() + ttl_s, digest)
            self._sessions[digest] = session
            return session

    def revoke(self, digest: str) -> LoginSession | None:
        with self._lock:
            session = self._live(digest)
            self._sessions.pop(digest, None)
            return session

    def revoke_all(self, user_id: str) -> list[LoginSession]:
        with self._lock:
            mine = [d for d, s in self._sessions.items() if s.user_id == user_id]
            live = [s for d in mine if (s := self._live(d)) is not None]
            for digest in mine:
                self._sessions.pop(digest, None)
            return live

    def list(self, user_id: str) -> list[LoginSession]:
        with self._lock:
            mine = [d for d, s in self._sessions.items() if s.user_id == user_id]
            return [s for d in mine if (s := self._live(d)) is not None]


# One round trip per authenticated request: read the session, slide its expiry and keep the
# user's index alive as long as it (GT: never shortened below a longer-lived session). The
# index key is derived here because it depends on the user id stored in the session.
_TOUCH = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return fields end
redis.call('EXPIRE', KEYS[1], ARGV[1])
for i = 1, #fields, 2 do
  if fields[i] == 'uid' then
    redis.call('EXPIRE', ARGV[2] .. fields[i + 1], ARGV[1], 'GT')
  end
end
return fields
"""


class RedisSessionStore:
    """``client`` must decode responses (``decode_responses=True``)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._touch = client.register_script(_TOUCH)

    def _token_key(self, digest: str) -> str:
        return f"{self._prefix}:auth:{digest}"

    def _user_key(self, user_id: str) -> str:
        return f"{self._prefix}:auth:_user:{user_id}"

    def create(self, digest: str, session: LoginSession, ttl_s: int) -> None:
        key = self._token_key(digest)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"sid": session.session_id, "uid": session.user_id,
                                "role": session.role})
        pipe.expire(key, ttl_s)
        pipe.sadd(self._user_key(session.user_id), digest)
        pipe.expire(self._user_key(session.user_id), ttl_s)
        pipe.execute()

    def touch(self, digest: str, ttl_s: int) -> LoginSession | None:
        reply = cast(list[str], self._touch(keys=[self._token_key(digest)],
                                            args=[ttl_s, self._user_key("")]))
        fields = dict(zip(reply[::2], reply[1::2], strict=True))
        return self._session(digest, fields, time.time() + ttl_s)

    @staticmethod
    def _session(digest: str, fields: dict[str, str], expires_at: float) -> LoginSession | None:
        if not fields.get("uid"):
            return None
        return LoginSession(fields["sid"], fields["uid"], fields.get("role", "user"),
                            expires_at, digest)

    def revoke(self, digest: str) -> LoginSession | None:
        key = self._token_key(digest)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(key)
        pipe.delete(key)
        fields, _ = pipe.execute()
        session = self._session(digest, cast(dict[str, str], fields), time.time())
        if session is not None:
            self._redis.srem(self._user_key(session.user_id), digest)
        return session

    def _read_all(self, user_id: str) -> list[LoginSession]:
        digests = sorted(cast(set[str], self._redis.smembers(self._user_key(user_id))))
        if not digests:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for digest in digests:
            pipe.hgetall(self._token_key(digest))
            pipe.ttl(self._token_key(digest))
        replies = pipe.execute()
        now = time.time()
        found = []
        for i, digest in enumerate(digests):
            fields, ttl = replies[2 * i], replies[2 * i + 1]
            session = self._session(digest, cast(dict[str, str], fields), now + max(ttl, 0))
            if session is not None:
                found.append(session)
        return found

    def revoke_all(self, user_id: str) -> list[LoginSession]:
        live = self._read_all(user_id)
        digests = cast(set[str], self._redis.smembers(self._user_key(user_id)))
        pipe = self._redis.pipeline(transaction=True)
        for digest in digests:
            pipe.delete(self._token_key(digest))
        pipe.delete(self._user_key(user_id))
        pipe.execute()
        return live

    def list(self, user_id: str) -> list[LoginSession]:
        return self._read_all(user_id)

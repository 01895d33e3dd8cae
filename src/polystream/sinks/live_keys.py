"""The live store's key layout: shared by its Redis adapter and its in-memory twin.

Both write the very same keys (the in-memory one in dictionaries), so their dumps compare key
for key; the contract tests hold them to it.

Key layout (``P`` is the prefix, ``ps`` by default). Ids never contain ``:``, and fixed names
that share a position with ids start with ``_``, which no id can.

=======================================  =========  ===============================================
key                                      type       content (expiry)
=======================================  =========  ===============================================
P:applied:{event_id}                     string     first outcome ``s``/``t<reason>``/``r<reason>``
                                                    (marker_ttl_s); none for playback.progress
P:viewing:{viewing_session_id}           hash       user title episode position duration
                                                    device_kind device_id state reason started t
                                                    eid (viewing_ttl_s after the last event)
P:viewings:{user_id}                     zset       the user's viewing sessions by start, for
                                                    erasure (index_ttl_s after the last start)
P:streams:{user_id}                      zset       playing sessions by last heartbeat; older than
                                                    the heartbeat timeout do not count
                                                    (index_ttl_s after the last start)
P:streams:_all                           zset       every playing session (active total)
P:plan:{user_id}                         hash       plan status ends_at period_end subscription
                                                    t eid
P:continue:{user_id}                     zset       title -> last event time (continue_ttl_s
                                                    after the last start or stop)
P:continue:{user_id}:pos                 hash       title -> ``t|eid|position|duration|episode|vs``
                                                    or ``t|eid|done`` once finished
P:cache:title:{title_id}                 string     cache-aside entry (written by the API)
P:cache:catalog:version                  string     bumped by every catalog change
P:title:version:{title_id}               string     highest catalog version applied
P:title:removed:{title_id}               string     ``1`` while the title is removed
P:title:genres:{title_id}                set        the title's genres
P:genre:{genre}                          set        title ids of the genre
P:rating:{user_id}                       hash       title -> ``stars|t|eid`` (stars 0: retracted)
P:ratings:{title_id}                     hash       sum count of the current ratings
P:ratings:_global                        hash       sum count over all titles (for display)
P:rank:top_rated[:{genre}]               zset       title -> Bayesian average
P:tmp:{random}                           zset/set   scratch: a ranking read's union (deleted in
                                                    its transaction); a batch's waiting users
                                                    (deleted after the batch; 10 min expiry)
P:rank:watched:{YYYY-MM-DD}              zset       title -> sessions started that day
                                                    (ranking_days after its last view)
P:rank:watched:_days                     set        the days above (for title removals)
P:flags / P:flags:user:{user_id}         hash       name -> JSON value
P:flags:at / P:flags:user:{user_id}:at   hash       name -> ``t|eid`` (event-time guard)
P:counter:events:{type}                  string     events processed per type (playback.progress:
                                                    heartbeats applied)
P:counter:{logins|session_refreshes|     string     per UTC day (counter_days)
  session_ends}:{YYYY-MM-DD}
P:sessions:{user_id}                     zset       login session id -> expires_at (as long as
                                                    its longest session had left)
P:session:{session_id}                   (API's)    deleted on ``session.ended``
P:auth:{digest}, P:auth:_user:{user_id}  (API's)    login tokens (api/login/store.py); all of
                                                    the user's deleted on ``user.erased``
P:erased:{user_id}                       string     erasure time; older events of the user are
                                                    stale (heartbeats: rejected, their session
                                                    is gone)
=======================================  =========  ===============================================
"""

from __future__ import annotations

import re
from typing import Final

from polystream.domain.events import Genre

_PREFIX: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def checked_prefix(prefix: str) -> str:
    # No glob characters: the prefix becomes a SCAN pattern in dump() and clear().
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"prefix {prefix!r} must match {_PREFIX.pattern}")
    return prefix


def top_rated_parts(genre: Genre | str | None) -> tuple[str, ...]:
    """Key parts of the top-rated ranking: of all titles, or of one genre's."""
    return ("rank", "top_rated") if genre is None else ("rank", "top_rated", str(genre))


def flags_parts(user: str) -> tuple[str, ...]:
    """Key parts of the flags hash of a scope's user (``""``: the global flags)."""
    return ("flags",) if not user else ("flags", "user", user)


__all__ = ["checked_prefix", "flags_parts", "top_rated_parts"]

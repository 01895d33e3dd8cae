"""Lua source of the Redis live store (the key layout: :mod:`polystream.sinks.live_keys`).

Every event is applied by one step of this script: its idempotency marker, its guards and all
its effects together, atomically, so a crash can never leave an effect without its marker
(which would double it on redelivery) or a marker without its effect (which would lose it).
``playback.progress`` has no marker (``UNMARKED``): its effect and its idempotency are the same
write, the viewing session's last (event time, event id), so they cannot part either.

One call carries a chunk of events (``EVALSHA sha 0 prefix defer_key event event ...``),
applied in order: the fixed cost of a script call and of a client command, which dominated
per event, is paid once per chunk; chunks stay small (``_EVENTS_PER_CALL``) so the server is
never blocked for more than a millisecond or two. Each event is one argument, its fields
joined by the ASCII unit separator (``\x1f``), which no field can contain: ids, codes and
dates have restricted alphabets and the one free-form field, a flag's JSON value, escapes
control characters. Fields: ``type, event_id, occurred_at_ms`` and those of the type, built
by :func:`polystream.domain.live_fields.event_fields` (``A[4]`` onwards below).

The reply is one string, a line per event: its outcome code (:mod:`polystream.domain.live`;
``ds``: a heartbeat the viewing session already holds; ``e<error>``: a failed step, nothing of
it recorded, the caller turns it into an error naming the event).

Deferral (``defer_key`` not empty, the store's ``allow_defer``). A ``playback.started`` of a
user of whom no subscription event was ever applied (no ``plan`` hash, and not erased) waits:
its ``subscription.started`` is on another topic and may simply not have been read yet. Every
later playback event of that user in the batch waits too, so the partition's order holds (a
heartbeat never overtakes the start of its session). A batch spans several calls, so its
waiting users are kept in ``defer_key``, a scratch set deleted after the batch (or expired).

The script is rendered once per :class:`~polystream.domain.live.LiveStoreConfig`: the
durations and plan limits are constants of the source. So are the event types it compares
``TYPE`` with, written ``@{PlaybackStarted}`` in the template and taken from the payload
classes (``PlaybackStarted.event_type``), so the registry stays their one source. The key
prefix is an argument, so the many prefixes of the tests share one cached script.

Keys are derived from the prefix inside the script instead of being declared in ``KEYS``:
several of them depend on data the script reads (a title's genres, a user's viewing
sessions), and one event legitimately touches a user's and a title's keys together. The layout
therefore targets a single Redis primary (with replicas), not Redis Cluster.

Numbers: Redis converts Lua numbers passed to ``redis.call`` with ``%.17g`` (exact), but Lua's
own ``..`` uses ``%.14g``, so values concatenated into strings are taken from the original
argument strings, never from their ``tonumber`` copies.
"""

from __future__ import annotations

import re
from string import Template
from typing import Final

from polystream.domain.events import EVENT_TYPES, Payload
from polystream.domain.events.envelope import EVENT_TYPE_PATTERN
from polystream.domain.live import DAY_MS, STREAM_LIMITS, LiveStoreConfig


class _LuaTemplate(Template):
    # Lua patterns use "$" (end anchor) and "%" (escapes); "@" appears nowhere in Lua.
    delimiter = "@"


_APPLY_TEMPLATE: Final = _LuaTemplate(
    r"""
local P = ARGV[1]

local MARKER_TTL_S = @{marker_ttl_s}
local VIEW_TTL = @{viewing_ttl_ms}
local TIMEOUT = @{heartbeat_timeout_ms}
local CONT_TTL = @{continue_ttl_ms}
local INDEX_TTL = @{index_ttl_ms}
local RANKING_TTL = @{ranking_ttl_ms}
local COUNTER_TTL = @{counter_ttl_ms}
local BAYES_C = @{bayes_c}
local BAYES_M = @{bayes_m}
local FINISHED = @{finished_ratio}
local LIMITS = {@{plan_limits}}

-- The event being applied: its fields, type, id and time (string and number).
local A, TYPE, EID, TS, T

-- Deferral: the batch's scratch set of waiting users ('' = deferral not allowed).
local DK = ARGV[2]
local PLAYBACK = {
  [@{PlaybackStarted}] = true, [@{PlaybackProgress}] = true, [@{PlaybackStopped}] = true,
}
local waiting
local function waiting_users()
  if not waiting then
    waiting = {}
    for _, u in ipairs(redis.call('SMEMBERS', DK)) do waiting[u] = true end
  end
  return waiting
end

local function split(text)
  local fields, n, pos = {}, 0, 1
  while true do
    local stop = string.find(text, '\31', pos, true)
    n = n + 1
    if not stop then
      fields[n] = string.sub(text, pos)
      return fields
    end
    fields[n] = string.sub(text, pos, stop - 1)
    pos = stop + 1
  end
end

-- The event-time guard: (occurred_at, event id) orders all events totally, so two events
-- with the same millisecond still resolve the same way whatever the delivery order.
local function newer(stored_t, stored_eid)
  if not stored_t then return true end
  local st = tonumber(stored_t)
  return T > st or (T == st and EID > stored_eid)
end

-- Events about a user that happened before their erasure must not bring their data back
-- (a replay, or a redelivery after the markers expired).
local function erased(user)
  local at = redis.call('GET', P .. ':erased:' .. user)
  return at and T <= tonumber(at)
end

-- The title's Bayesian average, from its aggregate (sum, n) when the caller has it. A pure
-- function of the title's own ratings (the prior mean is a constant), so the score does not
-- depend on the order in which ratings of different titles, users or topics arrive.
local function rerank(title, sum, n)
  if not n then
    local agg = redis.call('HMGET', P .. ':ratings:' .. title, 'sum', 'count')
    sum, n = tonumber(agg[1]) or 0, tonumber(agg[2]) or 0
  end
  local genres = redis.call('SMEMBERS', P .. ':title:genres:' .. title)
  if n <= 0 or redis.call('EXISTS', P .. ':title:removed:' .. title) == 1 then
    redis.call('ZREM', P .. ':rank:top_rated', title)
    for _, g in ipairs(genres) do redis.call('ZREM', P .. ':rank:top_rated:' .. g, title) end
    return
  end
  local score = (BAYES_C * BAYES_M + sum) / (BAYES_C + n)
  redis.call('ZADD', P .. ':rank:top_rated', score, title)
  for _, g in ipairs(genres) do redis.call('ZADD', P .. ':rank:top_rated:' .. g, score, title) end
end

local function invalidate(title)
  redis.call('DEL', P .. ':cache:title:' .. title)
  redis.call('INCR', P .. ':cache:catalog:version')
end

-- playback: A 4 viewing session, 5 user, 6 title, 7 episode ('' for movies), 8 position,
-- 9 duration, 10 device kind, 11 device id; started: 12 day; stopped: 12 reason.

-- Continue-watching. Heartbeats only refresh the expiry of what they create: a start or a
-- stop comes with every session and refreshes it anyway, and per heartbeat it would cost
-- two extra commands on the hottest path.
local function continue_at(user, vs, refresh)
  local title = A[6]
  local ck = P .. ':continue:' .. user
  local pk = ck .. ':pos'
  local prev = redis.call('HGET', pk, title)
  if prev then
    local pt, pe = string.match(prev, '^(%d+)|([^|]+)')
    if not newer(pt, pe) then return end
  end
  local created
  if tonumber(A[8]) > FINISHED * tonumber(A[9]) then
    -- Finished: it leaves the list, and the tombstone keeps a late heartbeat of an earlier
    -- session of the same title from putting it back.
    redis.call('ZREM', ck, title)
    created = redis.call('HSET', pk, title, TS .. '|' .. EID .. '|done') == 1
  else
    created = redis.call('ZADD', ck, T, title) == 1
    created = redis.call('HSET', pk, title,
      TS .. '|' .. EID .. '|' .. A[8] .. '|' .. A[9] .. '|' .. A[7] .. '|' .. vs) == 1 or created
  end
  if refresh or created then
    redis.call('PEXPIRE', ck, CONT_TTL)
    redis.call('PEXPIRE', pk, CONT_TTL)
  end
end

local function playback_started()
  local vs, user, title = A[4], A[5], A[6]
  if erased(user) then return 'tthe user is erased' end
  local vk = P .. ':viewing:' .. vs
  local cur = redis.call('HMGET', vk, 'user', 't', 'eid')
  local known = cur[1]
  if known then
    if known ~= user then return 'rthe viewing session belongs to another user' end
    if not newer(cur[2], cur[3]) then
      return 'ta newer event of this viewing session is already applied'
    end
  end
  local plan = redis.call('HMGET', P .. ':plan:' .. user, 'plan', 'status', 'ends_at')
  -- No subscription event of this user applied yet (not even a cancellation): it may still
  -- be on its way from the subscriptions topic. An erased user's plan is gone for good.
  if not plan[1] and not plan[2] and DK ~= ''
      and redis.call('EXISTS', P .. ':erased:' .. user) == 0 then
    return 'wno active subscription'
  end
  local limit = plan[1] and LIMITS[plan[1]]
  if not limit or (plan[2] == 'canceled' and T >= tonumber(plan[3])) then
    return 'rno active subscription'
  end
  local sk = P .. ':streams:' .. user
  redis.call('ZREMRANGEBYSCORE', sk, '-inf', T - TIMEOUT - 1)
  local n = redis.call('ZCARD', sk)
  -- A resumed session already holds its own slot.
  if redis.call('ZSCORE', sk, vs) then n = n - 1 end
  if n >= limit then return 'rconcurrent stream limit ' .. limit .. ' reached' end
  if not known then
    redis.call('HSET', vk, 'user', user, 'started', TS)
    -- Only a new session is a view: a resumed one was counted when it began.
    if redis.call('EXISTS', P .. ':title:removed:' .. title) == 0 then
      local wk = P .. ':rank:watched:' .. A[12]
      redis.call('ZINCRBY', wk, 1, title)
      redis.call('PEXPIRE', wk, RANKING_TTL)
      -- Which daily rankings exist, so a removal can find them whatever their dates.
      redis.call('SADD', P .. ':rank:watched:_days', A[12])
    end
    -- The user's sessions, for erasure. Indexed by start: no session outlives the longest
    -- media (a day) plus pauses by much, so INDEX_TTL after its start it is gone anyway.
    local ik = P .. ':viewings:' .. user
    redis.call('ZADD', ik, T, vs)
    redis.call('ZREMRANGEBYSCORE', ik, '-inf', T - INDEX_TTL)
    redis.call('PEXPIRE', ik, INDEX_TTL)
  end
  redis.call('HSET', vk, 'title', title, 'episode', A[7], 'position', A[8], 'duration', A[9],
    'device_kind', A[10], 'device_id', A[11], 'state', 'playing', 'reason', '', 't', TS,
    'eid', EID)
  redis.call('PEXPIRE', vk, VIEW_TTL)
  redis.call('ZADD', sk, T, vs)
  -- Long enough for the longest session: heartbeats then never have to refresh it, and the
  -- timeout, not the key's expiry, decides what counts.
  redis.call('PEXPIRE', sk, INDEX_TTL)
  local ak = P .. ':streams:_all'
  redis.call('ZADD', ak, T, vs)
  redis.call('ZREMRANGEBYSCORE', ak, '-inf', T - TIMEOUT - 1)
  continue_at(user, vs, true)
  return 's'
end

-- progress and stopped. No erasure check: erasure deleted the session, so an older event of
-- an erased user finds nothing to update and is refused as unknown.
--
-- A heartbeat has no marker (see UNMARKED): the session's (t, eid) is its idempotency. The
-- heartbeat that session holds is a duplicate ('ds'), an older one is stale. A refused one
-- writes nothing and is decided again if redelivered (redis_live's docstring: the same way,
-- short of a start of its session, older than it, applied in between).
local function playback_progress(stopping)
  local vs, user = A[4], A[5]
  local vk = P .. ':viewing:' .. vs
  local cur = redis.call('HMGET', vk, 'user', 't', 'eid', 'state')
  if not cur[1] then return 'runknown or expired viewing session' end
  if cur[1] ~= user then return 'rthe viewing session belongs to another user' end
  if cur[3] == EID and cur[2] == TS then return 'ds' end
  if not newer(cur[2], cur[3]) then
    return 'ta newer event of this viewing session is already applied'
  end
  if cur[4] == 'stopped' then return 'tthe viewing session is already stopped' end
  local state, reason = 'playing', ''
  if stopping then state, reason = 'stopped', A[12] end
  redis.call('HSET', vk, 'title', A[6], 'episode', A[7], 'position', A[8], 'duration', A[9],
    'device_kind', A[10], 'device_id', A[11], 'state', state, 'reason', reason, 't', TS,
    'eid', EID)
  redis.call('PEXPIRE', vk, VIEW_TTL)
  local sk = P .. ':streams:' .. user
  local ak = P .. ':streams:_all'
  if stopping then
    redis.call('ZREM', sk, vs)
    redis.call('ZREM', ak, vs)
  else
    -- The start gave the key INDEX_TTL; only an entry the timeout had pruned comes back here.
    if redis.call('ZADD', sk, T, vs) == 1 then redis.call('PEXPIRE', sk, INDEX_TTL) end
    redis.call('ZADD', ak, T, vs)
  end
  continue_at(user, vs, stopping)
  return 's'
end

-- rating: A 4 user, 5 title, 6 stars (0 = retracted)
local function rate()
  local user, title, stars = A[4], A[5], tonumber(A[6])
  if erased(user) then return 'tthe user is erased' end
  local uk = P .. ':rating:' .. user
  local prev = redis.call('HGET', uk, title)
  local old = 0
  if prev then
    local ps, pt, pe = string.match(prev, '^(%d+)|(%d+)|(.+)$')
    if not newer(pt, pe) then
      return 'ta newer rating of this title by this user is already applied'
    end
    old = tonumber(ps)
  end
  -- A retraction leaves a zero-star tombstone: its time still guards against older ratings.
  redis.call('HSET', uk, title, A[6] .. '|' .. TS .. '|' .. EID)
  if stars == old then return 's' end
  local dn = (stars > 0 and 1 or 0) - (old > 0 and 1 or 0)
  local tk = P .. ':ratings:' .. title
  local sum = redis.call('HINCRBY', tk, 'sum', stars - old)
  local n = redis.call('HINCRBY', tk, 'count', dn)
  if n <= 0 then redis.call('DEL', tk) end
  local gk = P .. ':ratings:_global'
  redis.call('HINCRBY', gk, 'sum', stars - old)
  redis.call('HINCRBY', gk, 'count', dn)
  rerank(title, sum, n)
  return 's'
end

-- subscription: A 4 user, 5 subscription, 6 plan, 7 period end ms, 8 ends at ms
local function subscription()
  local user = A[4]
  if erased(user) then return 'tthe user is erased' end
  local pk = P .. ':plan:' .. user
  local cur = redis.call('HMGET', pk, 't', 'eid')
  if not newer(cur[1], cur[2]) then
    return 'ta newer subscription event of this user is already applied'
  end
  if TYPE == @{SubscriptionCanceled} then
    redis.call('HSET', pk, 'status', 'canceled', 'ends_at', A[8])
  elseif TYPE == @{SubscriptionPlanChanged} then
    redis.call('HSET', pk, 'plan', A[6])
  else
    redis.call('HSET', pk, 'plan', A[6], 'status', 'active', 'period_end', A[7])
    redis.call('HDEL', pk, 'ends_at')
  end
  redis.call('HSET', pk, 'subscription', A[5], 't', TS, 'eid', EID)
  return 's'
end

-- session: A 4 user, 5 session, 6 expires at ms ('' when ended), 7 day
local function session()
  local user, sid = A[4], A[5]
  if erased(user) then return 'tthe user is erased' end
  local xk = P .. ':sessions:' .. user
  local counter
  if TYPE == @{SessionLoginStarted} then
    redis.call('ZADD', xk, 'GT', A[6], sid)
    counter = 'logins'
  elseif TYPE == @{SessionRefreshed} then
    -- XX: a refresh never resurrects a session this index does not hold.
    redis.call('ZADD', xk, 'XX', 'GT', A[6], sid)
    counter = 'session_refreshes'
  else
    redis.call('ZREM', xk, sid)
    redis.call('DEL', P .. ':session:' .. sid)
    counter = 'session_ends'
  end
  redis.call('ZREMRANGEBYSCORE', xk, '-inf', T)
  -- The index lives as long as its longest session had left to live at event time.
  local top = redis.call('ZRANGE', xk, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIRE', xk, tonumber(top[2]) - T) end
  local ck = P .. ':counter:' .. counter .. ':' .. A[7]
  redis.call('INCR', ck)
  redis.call('PEXPIRE', ck, COUNTER_TTL)
  return 's'
end

-- catalog: A 4 title, 5 version, then the genres (upserted)
local function title_version_guard()
  local vk = P .. ':title:version:' .. A[4]
  local cur = redis.call('GET', vk)
  if cur and tonumber(A[5]) <= tonumber(cur) then
    return 'tversion ' .. cur .. ' of the title is already applied'
  end
  redis.call('SET', vk, A[5])
  return nil
end

local function title_upserted()
  local id = A[4]
  local stale = title_version_guard()
  if stale then return stale end
  redis.call('DEL', P .. ':title:removed:' .. id)
  local gk = P .. ':title:genres:' .. id
  local wanted = {}
  for i = 6, #A do wanted[A[i]] = true end
  for _, g in ipairs(redis.call('SMEMBERS', gk)) do
    if not wanted[g] then
      redis.call('SREM', P .. ':genre:' .. g, id)
      redis.call('ZREM', P .. ':rank:top_rated:' .. g, id)
    end
  end
  redis.call('DEL', gk)
  for i = 6, #A do
    redis.call('SADD', gk, A[i])
    redis.call('SADD', P .. ':genre:' .. A[i], id)
  end
  rerank(id)
  invalidate(id)
  return 's'
end

local function title_removed()
  local id = A[4]
  local stale = title_version_guard()
  if stale then return stale end
  redis.call('SET', P .. ':title:removed:' .. id, '1')
  local gk = P .. ':title:genres:' .. id
  for _, g in ipairs(redis.call('SMEMBERS', gk)) do
    redis.call('SREM', P .. ':genre:' .. g, id)
    redis.call('ZREM', P .. ':rank:top_rated:' .. g, id)
  end
  redis.call('DEL', gk)
  redis.call('ZREM', P .. ':rank:top_rated', id)
  local dk = P .. ':rank:watched:_days'
  for _, day in ipairs(redis.call('SMEMBERS', dk)) do
    local wk = P .. ':rank:watched:' .. day
    if redis.call('EXISTS', wk) == 1 then
      redis.call('ZREM', wk, id)
    else
      redis.call('SREM', dk, day)
    end
  end
  invalidate(id)
  return 's'
end

-- flag.set: A 4 name, 5 JSON value, 6 user ('' = global)
local function flag_set()
  local name, user = A[4], A[6]
  local hk = P .. ':flags'
  if user ~= '' then
    if erased(user) then return 'tthe user is erased' end
    hk = hk .. ':user:' .. user
  end
  local mk = hk .. ':at'
  local prev = redis.call('HGET', mk, name)
  if prev then
    local pt, pe = string.match(prev, '^(%d+)|(.+)$')
    if not newer(pt, pe) then return 'ta newer value of this flag is already applied' end
  end
  redis.call('HSET', hk, name, A[5])
  redis.call('HSET', mk, name, TS .. '|' .. EID)
  return 's'
end

-- user.erased: A 4 user
local function user_erased()
  local user = A[4]
  local ek = P .. ':erased:' .. user
  local prev = redis.call('GET', ek)
  if prev and T <= tonumber(prev) then return 'tthe user is already erased' end
  redis.call('SET', ek, TS)
  local ik = P .. ':viewings:' .. user
  local ak = P .. ':streams:_all'
  for _, vs in ipairs(redis.call('ZRANGE', ik, 0, -1)) do
    redis.call('DEL', P .. ':viewing:' .. vs)
    redis.call('ZREM', ak, vs)
  end
  local xk = P .. ':sessions:' .. user
  for _, sid in ipairs(redis.call('ZRANGE', xk, 0, -1)) do
    redis.call('DEL', P .. ':session:' .. sid)
  end
  -- The API's login tokens too: an erasure published by an operator (or a DELETE /me whose
  -- own revocation failed half-way) must still end every login session of the person.
  local lk = P .. ':auth:_user:' .. user
  for _, digest in ipairs(redis.call('SMEMBERS', lk)) do
    redis.call('DEL', P .. ':auth:' .. digest)
  end
  redis.call('DEL', lk)
  local uk = P .. ':rating:' .. user
  local ratings = redis.call('HGETALL', uk)
  local fk = P .. ':flags:user:' .. user
  redis.call('DEL', ik, xk, uk, P .. ':streams:' .. user, P .. ':continue:' .. user,
    P .. ':continue:' .. user .. ':pos', P .. ':plan:' .. user, fk, fk .. ':at')
  local gk = P .. ':ratings:_global'
  local rated = {}
  for i = 1, #ratings, 2 do
    local stars = tonumber(string.match(ratings[i + 1], '^(%d+)'))
    if stars > 0 then
      local tk = P .. ':ratings:' .. ratings[i]
      redis.call('HINCRBY', tk, 'sum', -stars)
      if redis.call('HINCRBY', tk, 'count', -1) <= 0 then redis.call('DEL', tk) end
      redis.call('HINCRBY', gk, 'sum', -stars)
      redis.call('HINCRBY', gk, 'count', -1)
      rated[#rated + 1] = ratings[i]
    end
  end
  for _, title in ipairs(rated) do rerank(title) end
  return 's'
end

local handlers = {
  [@{PlaybackStarted}] = playback_started,
  [@{PlaybackProgress}] = function() return playback_progress(false) end,
  [@{PlaybackStopped}] = function() return playback_progress(true) end,
  [@{TitleUpserted}] = title_upserted,
  [@{TitleRemoved}] = title_removed,
  [@{FlagSet}] = flag_set,
  [@{UserErased}] = user_erased,
}
for handler, types in pairs({
  [rate] = {@{RatingSubmitted}, @{RatingRetracted}},
  [subscription] = {@{SubscriptionStarted}, @{SubscriptionPlanChanged},
                    @{SubscriptionRenewed}, @{SubscriptionCanceled}},
  [session] = {@{SessionLoginStarted}, @{SessionRefreshed}, @{SessionEnded}},
}) do
  for _, event_type in ipairs(types) do handlers[event_type] = handler end
end

local function unsupported() return 'rnot consumed by the redis sink' end

-- Types without a per-event marker: their handler answers duplicates from the state itself
-- (a reply 'd...'), and only what it stores counts.
local UNMARKED = { [@{PlaybackProgress}] = true }

local replies, processed = {}, {}
for i = 3, #ARGV do
  A = split(ARGV[i])
  TYPE, EID, TS = A[1], A[2], A[3]
  T = tonumber(TS)
  local marker = not UNMARKED[TYPE] and P .. ':applied:' .. EID
  local outcome
  if marker and not redis.call('SET', marker, 's', 'NX', 'EX', MARKER_TTL_S) then
    outcome = 'd' .. redis.call('GET', marker)
  else
    local ok, result
    if DK ~= '' and PLAYBACK[TYPE] and waiting_users()[A[5]] then
      ok, result = true, 'wwaiting for an earlier event of this user'
    else
      ok, result = pcall(handlers[TYPE] or unsupported)
    end
    if ok and string.sub(result, 1, 1) == 'w' then
      -- Deferred: no marker, no effect (the handler returned before writing anything), and
      -- the user's later playback events of the batch wait behind it.
      if marker then redis.call('DEL', marker) end
      if not waiting_users()[A[5]] then
        waiting[A[5]] = true
        redis.call('SADD', DK, A[5])
        redis.call('PEXPIRE', DK, 600000)
      end
      outcome = result
    elseif ok then
      outcome = result
      if marker then
        -- Every first outcome is recorded, not only "stored": a redelivered refusal must not
        -- be re-decided against a state that has moved on since.
        if result ~= 's' then redis.call('SET', marker, result, 'XX', 'KEEPTTL') end
        processed[TYPE] = (processed[TYPE] or 0) + 1
      elseif result == 's' then
        -- Unmarked: a refusal or a duplicate may be a redelivery, so only a store counts.
        processed[TYPE] = (processed[TYPE] or 0) + 1
      end
    else
      -- A failed step is not recorded, so the event stays retryable; the caller names it.
      if marker then redis.call('DEL', marker) end
      if type(result) == 'table' then result = result.err end
      outcome = 'e' .. string.gsub(tostring(result), '\n', ' ')
    end
  end
  replies[i - 2] = outcome
end
for event_type, n in pairs(processed) do
  redis.call('INCRBY', P .. ':counter:events:' .. event_type, n)
end
return table.concat(replies, '\n')
"""
)


def render_apply_script(config: LiveStoreConfig) -> str:
    """The apply script with the constants of ``config`` (and the plans' limits) filled in."""
    limits = ", ".join(f"[{_lua_string(code)}] = {int(n)}" for code, n in STREAM_LIMITS.items())
    return _APPLY_TEMPLATE.substitute(
        _EVENT_TYPES,
        marker_ttl_s=int(config.marker_ttl_s),
        viewing_ttl_ms=int(config.viewing_ttl_s * 1000),
        heartbeat_timeout_ms=int(config.heartbeat_timeout_s * 1000),
        continue_ttl_ms=int(config.continue_ttl_s * 1000),
        index_ttl_ms=int(config.index_ttl_s * 1000),
        ranking_ttl_ms=int(config.ranking_days * DAY_MS),
        counter_ttl_ms=int(config.counter_days * DAY_MS),
        # repr: the shortest text that reads back as the same double, so Lua computes with
        # exactly the value the in-memory store uses.
        bayes_c=repr(float(config.bayes_c)),
        bayes_m=repr(float(config.bayes_m)),
        finished_ratio=repr(float(config.finished_ratio)),
        plan_limits=limits,
    )


def _lua_string(text: str) -> str:
    if not text.replace("_", "").isalnum():
        raise ValueError(f"plan code {text!r} is not a plain identifier")
    return f"'{text}'"


def _lua_event_type(model: type[Payload]) -> str:
    if not re.fullmatch(EVENT_TYPE_PATTERN, model.event_type):
        raise ValueError(f"event type {model.event_type!r} is not a plain type name")
    return f"'{model.event_type}'"


#: The event types the script may name, from their payload classes: ``@{PlaybackStarted}``
#: in the template becomes ``'playback.started'``.
_EVENT_TYPES: Final = {
    spec.payload_model.__name__: _lua_event_type(spec.payload_model)
    for spec in EVENT_TYPES.values()
}


__all__ = ["render_apply_script"]

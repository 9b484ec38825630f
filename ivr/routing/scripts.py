"""The router's Lua scripts: the only code that writes agent and queue state.

Each script is one atomic step. Every key a step touches carries the ``{route}`` hash
tag, so a step runs unchanged on Redis Cluster (all keys live in one slot). The steps
here are templates for any key prefix (:data:`ALL`); :func:`for_base` makes the scripts
a :class:`~ivr.routing.ledger.Ledger` loads, with the ``<prefix>:{route}:`` base written
into them (:mod:`ivr.routing.prelude`): the CORE keys are constants of the script, and
the keys a step only learns while it runs (RELEASE: the agent holding a call from the
``held`` hash, ROUTE: the best free agent from an index, the end of a call (``finish``):
the caller's sticky key from the call's info) are that base plus a name, so they hash to
the same slot as the declared ones. Each step is sent KEYS[1], which Cluster routes by
and the step checks, and its own keys.

Shared layout of KEYS[1..14] (``CORE``) in every script; the caller sends only KEYS[1]
followed by the step's own keys, which are KEYS[15..] inside the script:
  KEYS[1] calls      hash  sid -> call info JSON (queue, priority, arrived, wrap, ...)
  KEYS[2] waiting    zset  sid scored by ORIGINAL arrival time (overflow/callback keep it)
  KEYS[3] held       hash  sid -> agent id (reserved or on a call)
  KEYS[4] callbacks  hash  sid -> time the caller asked to be called back
  KEYS[5] stats      hash  abandoned:<queue>:<day> counters
  KEYS[6] handled    list  "<queue>|<seconds>" recent handling times, newest first
  KEYS[7] ended      zset  sid -> time the caller hung up (tombstones, trimmed)
  KEYS[8..11] free   zsets of the available agents of the roster, members "<position>:<id>"
                     (position = 6-digit roster order, the tie-break), scored by:
                     [8] ended_at, [9] max(avail_at, ended_at), [10] offered_at, [11] position
  KEYS[12] timers    zset  agent id -> until, for reserved / wrap_up / paused agents
  KEYS[13] presence  zset  agent id -> hb, for available / reserved / wrap_up / paused agents
  KEYS[14] roster    hash  agent id -> roster position (agents of the roster in force)
and ARGV[1] = now (Unix seconds), ARGV[2] = the ops pub/sub channel.
Agent hashes hold: state, since, call, until, hb, ended_at, avail_at, offered_at,
answered_at, misses, reason, calls:<day>, talk:<day>.

The indexes (KEYS[8..13]) are derived data: ``set_agent`` re-files an agent in them in
the same step that changes the agent's hash (``take`` and ``free_again`` do the same for
the two moves of every routed call, reading less), and REINDEX rebuilds them from the
hashes (on every roster adoption). A decision therefore reads only the best few free
agents instead of every agent. Fewest calls / least talk today read a *day index*
(``free:calls:<day>|<idle>``, ``free:talk:<day>|<idle>``, named in the roster's
``~indexes``), scored by the day's count (talk: whole seconds) x 1e10 + idle-since; the
first such ROUTE of a day makes it from the free agents and deletes the earlier day's, and
REINDEX drops it (the next such call makes it again).

Sticky routing: ``sticky:<caller hash>`` holds ``<agent id>|<time the call ended>`` (the
router's clock), written when an answered call ends; ROUTE (and the router, on the
general path) honour it only while that time is within ``sticky.within_hours`` of now.
"""

from __future__ import annotations

from ivr.routing.prelude import CHUNKS, CORE_SUFFIXES, script
from ivr.routing.prelude import for_base as _for_base

__all__ = ["ALL", "CHUNKS", "CORE_SUFFIXES", "for_base"]


RESERVE = script(r"""
-- RESERVE: route a new call: reserve the first candidate agent still free, else queue it.
-- KEYS[1..14] CORE; KEYS[15..] candidate agent hashes, best first.
-- ARGV[1] now, ARGV[2] channel, ARGV[3] sid, ARGV[4] call info JSON, ARGV[5] original arrival,
-- ARGV[6] reservation deadline, ARGV[7] heartbeat cutoff (0 = off), ARGV[8] queue,
-- ARGV[9..] the candidates' agent ids, in KEYS order (ARGV[i - 6] for KEYS[i]).
-- Returns {'agent', id} | {'queued', ''} | {'gone', ''}, with a third element 1 when this step
-- stored ARGV[4] as the call's info. Idempotent for a retried webhook.
""", r"""
local sid = ARGV[3]
local held = redis.call('HGET', KEYS[3], sid)
if held then return {'agent', held} end
if redis.call('ZSCORE', KEYS[2], sid) then return {'queued', ''} end
if redis.call('ZSCORE', KEYS[7], sid) then return {'gone', ''} end
redis.call('HSET', KEYS[1], sid, ARGV[4])
local cutoff = tonumber(ARGV[7])
for i = 15, #KEYS do
  if usable(KEYS[i], cutoff) then
    reserve(KEYS[i], ARGV[i - 6], sid, ARGV[6])
    return {'agent', ARGV[i - 6], 1}
  end
end
redis.call('ZADD', KEYS[2], ARGV[5], sid)
emit_queue('enqueued', sid, ARGV[8])
return {'queued', '', 1}
""")

ASSIGN = script(r"""
-- ASSIGN: give a free agent the best waiting call they can serve.
-- KEYS[1..14] CORE; KEYS[15] the agent's hash.
-- ARGV[1] now, ARGV[2] channel, ARGV[3] agent id, ARGV[4] reservation deadline,
-- ARGV[5] heartbeat cutoff (0 = off), ARGV[6..] sids this agent can serve, highest priority
-- and longest waiting first (so the agent gets that call, not the newest arrival).
-- Returns the sid assigned, or false when the agent is no longer free or no call waits.
""", r"""
if not usable(KEYS[15], tonumber(ARGV[5])) then return false end
for i = 6, #ARGV do
  local sid = ARGV[i]
  if redis.call('ZSCORE', KEYS[2], sid) and redis.call('HEXISTS', KEYS[3], sid) == 0 then
    redis.call('ZREM', KEYS[2], sid)
    reserve(KEYS[15], ARGV[3], sid, ARGV[4])
    local info = info_of(sid) or {}
    emit_queue('assigned', sid, info.queue, ', "agent": ' .. enc(ARGV[3]))
    return sid
  end
end
return false
""")

RELEASE = script(r"""
-- RELEASE: the caller is gone (hang-up) or sent elsewhere (fallback after max wait).
-- In the same step that learns this, the agent reserved for the call is freed (no
-- penalty) or, if they were talking, moved to wrap-up; a waiting entry is removed.
-- KEYS[1..14] CORE.
-- ARGV[1] now, ARGV[2] channel, ARGV[3] sid, ARGV[4] agent key prefix ('...{route}:agent:'),
-- ARGV[5] day (for counters), ARGV[6] 'hangup' | 'fallback', ARGV[7] drop tombstones older than this.
-- The agent key is built here as ARGV[4] .. id: it carries {route}, so it is in this slot.
-- Returns {'released' | 'dequeued' | 'callback_kept' | 'unknown', calls still waiting}.
""", r"""
local sid, day, mode = ARGV[3], ARGV[5], ARGV[6]
local callback = redis.call('HEXISTS', KEYS[4], sid) == 1
if mode == 'hangup' then
  if callback and redis.call('ZSCORE', KEYS[2], sid) then
    return {'callback_kept', redis.call('ZCARD', KEYS[2])}  -- hung up to be called back: keep the place
  end
  redis.call('ZADD', KEYS[7], stamp, sid)
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', ARGV[7])
end
local agent = redis.call('HGET', KEYS[3], sid)
local result = 'unknown'
if agent then
  local akey = ARGV[4] .. agent
  local st = redis.call('HMGET', akey, 'state', 'call', 'answered_at', 'ended_at', 'offered_at')
  if st[2] == sid then
    if st[1] == 'reserved' then
      if not free_again(akey, agent, st[4], st[5]) then
        --@lazy
        index(akey, agent, false)  -- off the roster in force (a reload meanwhile): the general way
        emit_agent(agent, 'available', '', '')
        --@end
      end
    elseif st[1] == 'on_call' then
      --@lazy
      finish(akey, agent, sid, now - tonumber(st[3] or now), day, true)
      --@end
    end
  end
  redis.call('HDEL', KEYS[3], sid)
  result = 'released'
elseif redis.call('ZREM', KEYS[2], sid) == 1 then
  --@lazy
  local info = info_of(sid) or {}
  if mode == 'hangup' then
    redis.call('HINCRBY', KEYS[5], 'abandoned:' .. (info.queue or '?') .. ':' .. day, '1')
  end
  emit_queue((mode == 'hangup') and 'abandoned' or 'fallback', sid, info.queue)
  --@end
  result = 'dequeued'
end
redis.call('HDEL', KEYS[1], sid)
if callback then redis.call('HDEL', KEYS[4], sid) end
return {result, redis.call('ZCARD', KEYS[2])}
""")

DIAL_RESULT = script(r"""
-- DIAL_RESULT: Twilio's <Dial> to the agent ended. completed -> wrap-up; busy, no-answer,
-- failed, canceled -> the agent missed it: paused briefly, or offline (with the reason)
-- after max_missed misses in a row; the call stays known so it can be routed again.
-- KEYS[1..14] CORE; KEYS[15] the agent's hash.
-- ARGV[1] now, ARGV[2] channel, ARGV[3] sid, ARGV[4] agent id, ARGV[5] DialCallStatus,
-- ARGV[6] duration (s), ARGV[7] day, ARGV[8] missed-call pause (s), ARGV[9] max misses.
-- Returns 'completed' | 'missed' | 'gone' (caller already hung up) | 'stale'.
""", r"""
local sid, id, status = ARGV[3], ARGV[4], ARGV[5]
local st = redis.call('HMGET', KEYS[15], 'state', 'call', 'answered_at', 'misses')
if st[2] ~= sid then
  if redis.call('HGET', KEYS[3], sid) == id then redis.call('HDEL', KEYS[3], sid) end
  return 'stale'
end
local gone = redis.call('ZSCORE', KEYS[7], sid)
redis.call('HDEL', KEYS[3], sid)
if status == 'completed' then
  local talk = tonumber(ARGV[6]) or 0
  if talk <= 0 and tonumber(st[3] or 0) > 0 then talk = now - tonumber(st[3]) end
  finish(KEYS[15], id, sid, talk, ARGV[7], true)
  redis.call('HDEL', KEYS[1], sid)
  redis.call('HDEL', KEYS[4], sid)
  return 'completed'
end
if status == 'canceled' and gone then
  -- the caller hung up while it rang: not the agent's fault
  set_agent(KEYS[15], id, 'available', '', '', {'until', '0', 'avail_at', stamp})
else
  local misses = (tonumber(st[4]) or 0) + 1
  if misses >= tonumber(ARGV[9]) then
    set_agent(KEYS[15], id, 'offline', '', 'missed ' .. misses .. ' calls in a row; set status available when back',
              {'misses', misses, 'until', '0'})
  else
    set_agent(KEYS[15], id, 'paused', '', 'missed a call (' .. status .. '); back by itself shortly',
              {'misses', misses, 'until', now + tonumber(ARGV[8])})
  end
end
if gone then
  redis.call('HDEL', KEYS[1], sid)
  return 'gone'
end
return 'missed'
""")

ANSWERED = script(r"""
-- ANSWERED: the agent picked up: reserved -> on_call (the call's end, in RELEASE or
-- DIAL_RESULT, remembers the agent for sticky routing).
-- KEYS[1..14] CORE; KEYS[15] the agent's hash.
-- ARGV[1] now, ARGV[2] channel, ARGV[3] sid, ARGV[4] agent id.
-- Returns 1 when the agent is (now) on this call, 2 when they took it from another agent's
-- unrung offer (that agent is free again: the router hands them a waiting call), 0 when
-- the call is held by someone else who is on it, has ended, or this agent is on another call.
""", r"""
local sid, id = ARGV[3], ARGV[4]
local st = redis.call('HMGET', KEYS[15], 'state', 'call')
if st[1] == 'on_call' and st[2] == sid then return 1 end
local result = 1
if not (st[1] == 'reserved' and st[2] == sid) then
  -- the reservation ran out, or the agent set themselves offline while it rang, but they
  -- took the call anyway: they are talking, whatever their app said (unless they are on
  -- another call, or the caller hung up already: a late or repeated webhook must not put
  -- anyone on it)
  local free = st[1] == 'available' or ((st[1] == 'offline' or st[1] == 'paused') and (st[2] or '') == '')
  if not free or redis.call('ZSCORE', KEYS[7], sid) then return 0 end
  local holder = redis.call('HGET', KEYS[3], sid)
  if holder then
    -- the call, back in line, was offered to another agent meanwhile: that offer never rang
    -- (the caller was in this agent's dial) and goes, so nobody is left reserved for it
    local hkey = '@@agent:' .. holder
    local h = redis.call('HMGET', hkey, 'state', 'call', 'ended_at', 'offered_at')
    if h[1] ~= 'reserved' or h[2] ~= sid then return 0 end
    --@lazy
    if not free_again(hkey, holder, h[3], h[4]) then
      index(hkey, holder, false)  -- off the roster in force (a reload meanwhile)
      emit_agent(holder, 'available', '', '')
    end
    --@end
    result = 2
  end
  redis.call('ZREM', KEYS[2], sid)
  redis.call('HSET', KEYS[3], sid, id)
end
-- one who had set themselves offline goes back offline when the call ends (finish)
local leaving = (st[1] == 'offline' and not (st[2] == sid)) and (redis.call('HGET', KEYS[15], 'reason') or 'logged out') or ''
set_agent(KEYS[15], id, 'on_call', sid, '', {'answered_at', stamp, 'misses', '0', 'until', '0', 'leaving', leaving})
return result
""")

EXPIRE = script(r"""
-- EXPIRE: time-outs, re-checked atomically: a heartbeat that stopped -> offline; a stale
-- reservation -> agent available and the call back in line at its original arrival;
-- a wrap-up or missed-call pause that ran out -> available.
-- KEYS[1..14] CORE; KEYS[15..] agent hashes to check.
-- ARGV[1] now, ARGV[2] channel, ARGV[3] heartbeat cutoff (0 = off), ARGV[4..] agent ids (ARGV[i - 11] for KEYS[i]).
-- Returns the number of agents changed.
""", r"""
local cutoff = tonumber(ARGV[3])
local changed = 0
for i = 15, #KEYS do
  changed = changed + expire_one(KEYS[i], ARGV[i - 11], cutoff)
end
return changed
""")

SET_STATUS = script(r"""
-- SET_STATUS: the agent (API/CLI) says available, offline, wrap_up_done, or sends a heartbeat.
-- KEYS[1..14] CORE; KEYS[15] the agent's hash.
-- ARGV[1] now, ARGV[2] channel, ARGV[3] agent id, ARGV[4] status, ARGV[5] reason (offline).
-- Returns {1|0, state after, message}.
""", r"""
local id, status = ARGV[3], ARGV[4]
local st = redis.call('HMGET', KEYS[15], 'state', 'call')
local state, call = st[1], st[2] or ''
if not state then return {0, 'unknown', 'no such agent on the roster'} end
if status == 'heartbeat' then
  heard(KEYS[15], id)
  return {1, state, ''}
end
if status == 'available' then
  if state == 'reserved' or state == 'on_call' then
    return {0, state, 'the agent has a call; they become available when it ends'}
  end
  if state == 'available' then
    heard(KEYS[15], id)
    return {1, state, 'already available'}
  end
  set_agent(KEYS[15], id, 'available', '', '', {'hb', stamp, 'misses', '0', 'avail_at', stamp, 'until', '0',
                                               'leaving', ''})
  return {1, 'available', ''}
end
if status == 'offline' then
  if state == 'on_call' then return {0, state, 'the agent is on a call; set offline after it ends'} end
  if state == 'reserved' and call ~= '' then requeue(call) end
  set_agent(KEYS[15], id, 'offline', '', ARGV[5], {'until', '0'})
  return {1, 'offline', ''}
end
if status == 'wrap_up_done' then
  if state == 'wrap_up' then
    set_agent(KEYS[15], id, 'available', '', '', {'until', '0', 'avail_at', stamp, 'hb', stamp})
    return {1, 'available', ''}
  end
  if state == 'available' then return {1, state, 'already available'} end
  return {0, state, 'the agent is not in wrap-up'}
end
return {0, state, 'unknown status ' .. status}
""")

MARK_CALLBACK = script(r"""
-- MARK_CALLBACK: a waiting caller takes a callback; the entry keeps its place in line.
-- KEYS[1..14] CORE.  ARGV[1] now, ARGV[2] channel, ARGV[3] sid, ARGV[4] the number to call back.
-- The callbacks hash keeps {"at": asked, "number": N} until an agent has called back.
-- Returns 1 if the call was waiting (now a callback request), else 0.
""", r"""
local sid = ARGV[3]
if not redis.call('ZSCORE', KEYS[2], sid) then return 0 end
if redis.call('HEXISTS', KEYS[4], sid) == 0 then
  redis.call('HSET', KEYS[4], sid, cjson.encode({at = now, number = ARGV[4] or ''}))
  local info = info_of(sid) or {}
  emit_queue('callback', sid, info.queue)
end
return 1
""")

CALLBACK_DONE = script(r"""
-- CALLBACK_DONE: the agent offered a callback request has called the caller back.
-- The request is closed and the agent wraps up (as after any call) or is free.
-- KEYS[1..14] CORE; KEYS[15] the agent's hash.
-- ARGV[1] now, ARGV[2] channel, ARGV[3] sid, ARGV[4] agent id, ARGV[5] talk time (s), ARGV[6] day,
-- ARGV[7] 'reached' | 'unreachable'.
-- Returns {1, ''} or {0, why}.
""", r"""
local sid, id = ARGV[3], ARGV[4]
if redis.call('HEXISTS', KEYS[4], sid) == 0 then return {0, 'no callback request ' .. sid} end
local st = redis.call('HMGET', KEYS[15], 'state', 'call')
if st[1] ~= 'reserved' or st[2] ~= sid then return {0, 'the callback of ' .. sid .. ' is not offered to ' .. id} end
redis.call('HDEL', KEYS[3], sid)
redis.call('ZREM', KEYS[2], sid)
finish(KEYS[15], id, sid, tonumber(ARGV[5]) or 0, ARGV[6], ARGV[7] == 'reached')
local info = info_of(sid) or {}
redis.call('HDEL', KEYS[1], sid)
redis.call('HDEL', KEYS[4], sid)
emit_queue('called_back', sid, info.queue, ', "agent": ' .. enc(id) .. ', "result": ' .. enc(ARGV[7]))
return {1, ''}
""")

REINDEX = script(r"""
-- REINDEX: the roster in force: give agents without state a hash (offline until they log
-- in), record each agent's roster position, and rebuild the indexes from the agent hashes.
-- Run on every adoption of a roster (and to repair); agents off the roster leave the indexes.
-- An agent off the roster who holds an offer (reserved: a call ringing them, a callback
-- request shown in their app) can no longer be dialled nor time out (the timers are the
-- roster's): the call goes back in line at its original arrival and they go offline. One
-- on a call keeps talking; the call ends the usual way (RELEASE, DIAL_RESULT).
-- KEYS[1..14] CORE; KEYS[15..] the roster's agent hashes, in roster order.
-- ARGV[1] now, ARGV[2] channel, ARGV[3] the free indexes the rules use (',ended,order,', ...),
-- ARGV[4] the rules' missed-call policy '<missed_pause_s>|<max_missed>' (kept as '~missed':
-- a callback offer let pass counts as a missed call), ARGV[5..] agent ids in KEYS order
-- (ARGV[i - 10] for KEYS[i]).
-- Returns the number of agent hashes created.
""", r"""
-- the day indexes kept so far go too (the first call of such a strategy makes today's anew)
local old = redis.call('HGET', KEYS[14], '~indexes') or ''
for k in string.gmatch(old, '[^,]+') do
  if string.find(k, '|', 1, true) then redis.call('DEL', '@@free:' .. k) end
end
for i = 8, 14 do redis.call('DEL', KEYS[i]) end
redis.call('HSET', KEYS[14], '~indexes', ARGV[3], '~missed', ARGV[4])
local made = 0
for i = 15, #KEYS do
  local id = ARGV[i - 10]
  redis.call('HSET', KEYS[14], id, i - 15)
  if redis.call('HSETNX', KEYS[i], 'state', 'offline') == 1 then
    redis.call('HSET', KEYS[i], 'since', stamp, 'reason', 'not logged in yet', 'call', '')
    made = made + 1
  end
end
for i = 15, #KEYS do index(KEYS[i], ARGV[i - 10], true) end
-- the calls held by agents off this roster (those who just left it, or left it before)
local kept = {}
for i = 15, #KEYS do kept[ARGV[i - 10]] = true end
local held = redis.call('HGETALL', KEYS[3])
for i = 1, #held, 2 do
  local sid, holder = held[i], held[i + 1]
  if not kept[holder] then
    local hkey = '@@agent:' .. holder
    local h = redis.call('HMGET', hkey, 'state', 'call')
    if h[2] ~= sid then
      requeue(sid)  -- a stale entry: the holder is not on this call at all
    elseif h[1] == 'reserved' then
      requeue(sid)
      set_agent(hkey, holder, 'offline', '', 'removed from the roster', {'until', '0'})
    end
  end
end
return made
""")

SNAPSHOT = script(r"""
-- SNAPSHOT: read everything a routing decision needs, as one JSON string (read-only).
-- One bulk reply parses far faster in Python than hundreds of RESP fields. The agents are
-- those of the roster in force (KEYS[14]), so no agent key needs to be sent. Calls come as
-- sids only: a call's info does not change once written, so the reader fetches the infos it
-- has not seen yet (HMGET) instead of every info at every poll of every waiting caller.
-- KEYS[1..14] CORE; KEYS[15] the caller's sticky key (or any {route} key).
-- ARGV[1] now, ARGV[2] channel (unused), ARGV[3] day, ARGV[4] how many handling times to return,
-- ARGV[5] a sid whose info to return as well ('' = none).
-- Returns JSON {ids: [agent id...], agents: [[state, call, until, hb, ended_at, avail_at, offered_at,
-- answered_at, since, misses, reason, calls today, talk today]...] (in ids order), calls (sids),
-- waiting (sids), held, callbacks, handled, sticky, mine (ARGV[5]'s info)}; ids is empty when the
-- roster was never indexed (or lost).
""", r"""
local day = ARGV[3]
local prefix = '@@agent:'
local out = {ids = {}, agents = {}}
local roster = redis.call('HGETALL', KEYS[14])
for i = 1, #roster, 2 do
  local id = roster[i]
  if string.sub(id, 1, 1) ~= '~' then  -- '~indexes', '~missed' (agent ids never start with '~')
    out.ids[#out.ids + 1] = id
    out.agents[#out.agents + 1] = redis.call('HMGET', prefix .. id, 'state', 'call', 'until', 'hb', 'ended_at',
      'avail_at', 'offered_at', 'answered_at', 'since', 'misses', 'reason', 'calls:' .. day, 'talk:' .. day)
  end
end
out.calls = redis.call('HKEYS', KEYS[1])
if ARGV[5] and ARGV[5] ~= '' then out.mine = redis.call('HGET', KEYS[1], ARGV[5]) end
out.waiting = redis.call('ZRANGE', KEYS[2], '0', '-1')  -- the arrival is in the call's info
out.held = redis.call('HGETALL', KEYS[3])
out.callbacks = redis.call('HKEYS', KEYS[4])
out.handled = redis.call('LRANGE', KEYS[6], 0, tonumber(ARGV[4]) - 1)
out.sticky = redis.call('GET', KEYS[15])
return cjson.encode(out)
""")

ROUTE = script(r"""
-- ROUTE: the common case of a new call in ONE step: expire what ran out, then reserve the
-- best free agent who may take the call (through the free-agent indexes), or queue it.
-- When other calls wait and someone is free, who gets whom needs the whole picture: the
-- step then changes nothing but the time-outs and answers 'slow' (the router plans it).
-- KEYS[1..14] CORE; KEYS[15] the caller's sticky key; KEYS[16] the set of agents who may
-- take this call now (rules version, category, relaxation stage; see Keys.route_eligible).
-- ARGV[1] now, ARGV[2] channel, ARGV[3] sid, ARGV[4] call info JSON object whose last field
-- is "sticky": "" (this step fills it in), ARGV[5] original arrival, ARGV[6] reservation
-- deadline, ARGV[7] heartbeat cutoff (0 = off), ARGV[8] queue,
-- ARGV[9] strategy: 'ended' | 'avail' | 'rr' | 'order' (read that free index in order)
-- or 'calls:<day>' | 'talk:<day>' (the least of that field, then idle, then position),
-- ARGV[10] idle measure for ties: 'ended' | 'avail', ARGV[11] the sticky window (s, 0 = off):
-- the caller's last agent comes first if that call ended at most this long before now.
-- Agent keys are '<base>agent:' .. id (the {route} tag again).
-- Returns {'agent', id} | {'queued', ''} | {'waiting', ''} (already in line) | {'gone', ''}
-- | {'slow', ''} | {'noelig', ''} (the eligible set is missing: write it, run again)
-- | {'reindex', ''} (no roster in Redis: run REINDEX, then this again). 'agent' and 'queued'
-- have a third element, the sticky agent written into the info, when this step stored the info.
""", r"""
local sid, prefix = ARGV[3], '@@agent:'
-- a call held or waiting has its info in KEYS[1]: a new call costs one look, not two
if redis.call('HEXISTS', KEYS[1], sid) == 1 then
  local held = redis.call('HGET', KEYS[3], sid)
  if held then return {'agent', held} end
  if redis.call('ZSCORE', KEYS[2], sid) then return {'waiting', ''} end
elseif redis.call('ZSCORE', KEYS[7], sid) then
  return {'gone', ''}
end
local ids = due_ids(ARGV[7])
if #ids > 0 then
  --@lazy
  expire_all(prefix, ids, tonumber(ARGV[7]))
  --@end
end
-- The free agents are counted only when it matters: calls wait (someone free: 'slow'),
-- the sticky agent is free, or the index this strategy reads is not kept. Else a pick
-- from an index proves someone is free, and finding nobody there that nobody is.
local free
if redis.call('ZCARD', KEYS[2]) > 0 then
  free = redis.call('ZCARD', KEYS[11])
  if free > 0 then return {'slow', ''} end
end
local sticky = ''
local window = tonumber(ARGV[11]) or 0
if window > 0 then sticky = sticky_agent(redis.call('GET', KEYS[15]), window) end
local how = ARGV[9]
local kind = how  -- the index this strategy reads, as '~indexes' names it
local kept  -- '~indexes', when this step has read it
local zkey  -- the free index to read in order (nil: read the free agents one by one)
if how == 'ended' then zkey = KEYS[8] elseif how == 'avail' then zkey = KEYS[9]
elseif how == 'rr' then zkey = KEYS[10] elseif how == 'order' then zkey = KEYS[11]
else
  -- fewest calls / least talk today: the day index of this measure and idle time, made by
  -- the first such call of the day (lazily: the rules may keep none)
  kind = how .. '|' .. ARGV[10]
  kept = redis.call('HGET', KEYS[14], '~indexes')
  if kept and string.find(kept, ',' .. kind .. ',', 1, true) then
    zkey = '@@free:' .. kind
  elseif kept and free ~= 0 then
    --@lazy
    local built = build_day_index(prefix, kind, kept)
    if built then kept, zkey = built, '@@free:' .. kind end
    --@end
  end
end
local pick, member  -- member: the pick's entry in the free indexes, when picked from one
if sticky ~= '' and free ~= 0 and redis.call('SISMEMBER', KEYS[16], sticky) == 1
    and redis.call('HGET', prefix .. sticky, 'state') == 'available' then
  free = free or redis.call('ZCARD', KEYS[11])
  if free > 0 then pick = sticky end
end
if pick or free == 0 then
  -- nothing to look for
elseif zkey then
  local from, size = 0, 4
  local lo, hi = '0', '3'  -- strings: a Lua number handed to redis.call is formatted anew
  while not pick do
    local batch = redis.call('ZRANGE', zkey, lo, hi)
    for i = 1, #batch do
      local id = string.sub(batch[i], 8)
      if redis.call('SISMEMBER', KEYS[16], id) == 1 then pick, member = id, batch[i] break end
    end
    if #batch < size then break end
    from, size = from + size, 32
    lo, hi = from, from + size - 1
  end
else
  -- a day index of a later day is kept (another worker's clock is past midnight, this one's
  -- not yet): the least day score (as the index has it) among the free, in roster order
  local all = redis.call('ZRANGE', KEYS[11], '0', '-1')
  local best
  for i = 1, #all do
    local id = string.sub(all[i], 8)
    if redis.call('SISMEMBER', KEYS[16], id) == 1 then
      local f = redis.call('HMGET', prefix .. id, how, 'ended_at', 'avail_at')
      local score = day_score(f[1], f[2], f[3], ARGV[10])
      if not pick or score < best then pick, member, best = id, all[i], score end
    end
  end
end
if not pick then
  -- Checked only now (a pick proves them): the set of who may take the call exists, the
  -- roster is indexed, and it keeps the index this strategy reads (else another worker put
  -- other rules in force a moment ago: the general path decides by the whole picture).
  if redis.call('EXISTS', KEYS[16]) == 0 then return {'noelig', ''} end
  kept = redis.call('HGET', KEYS[14], '~indexes')
  if not kept then return {'reindex', ''} end  -- the roster and indexes were lost (flushed Redis)
  if zkey and not string.find(kept, ',' .. kind .. ',', 1, true) then
    free = free or redis.call('ZCARD', KEYS[11])
    if free > 0 then return {'slow', ''} end
  end
end
local info = ARGV[4]
if sticky ~= '' then info = string.sub(info, 1, -4) .. enc(sticky) .. '}' end
redis.call('HSET', KEYS[1], sid, info)
if member then
  take(prefix .. pick, pick, member, sid, ARGV[6], kept)
  return {'agent', pick, sticky}
elseif pick then
  --@lazy
  reserve(prefix .. pick, pick, sid, ARGV[6])
  --@end
  return {'agent', pick, sticky}
end
redis.call('ZADD', KEYS[2], ARGV[5], sid)
emit_queue('enqueued', sid, ARGV[8])
return {'queued', '', sticky}
""")

ALL = {
    "reserve": RESERVE, "assign": ASSIGN, "release": RELEASE, "dial_result": DIAL_RESULT,
    "answered": ANSWERED, "expire": EXPIRE, "set_status": SET_STATUS,
    "mark_callback": MARK_CALLBACK, "callback_done": CALLBACK_DONE, "reindex": REINDEX, "snapshot": SNAPSHOT, "route": ROUTE,
}


def for_base(base: str) -> dict[str, str]:
    """Every step, for the routing key base ``<prefix>:{route}:`` (Keys.route_calls() less 'calls')."""
    return _for_base(ALL, base)

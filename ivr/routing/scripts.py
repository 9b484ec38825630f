"""The router's Lua scripts: the only code that writes agent and queue state.

Each script is one atomic step. Every key a step touches carries the ``{route}`` hash
tag, so a step runs unchanged on Redis Cluster (all keys live in one slot). Keys are
declared in KEYS, except those a step only learns while it runs: RELEASE learns the agent
holding a call from the ``held`` hash, ROUTE the best free agent from an index, and the
end of a call (``finish``) the caller's sticky key from the call's info. Those keys are
built from the ``<prefix>:{route}:`` base of KEYS[1] (RELEASE: from an agent key prefix in
ARGV that contains ``{route}``), so they hash to the same slot as the declared ones.

Shared layout of KEYS[1..14] (``CORE``) in every script; the caller sends only KEYS[1]
followed by the step's own keys, and the prelude derives KEYS[2..14] from KEYS[1]
(``CORE_SUFFIXES``), so the step's own keys are KEYS[15..] inside the script:
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
the same step that changes the agent's hash, and REINDEX rebuilds them from the hashes
(on every roster adoption). A decision therefore reads only the best few free agents
instead of every agent.

Sticky routing: ``sticky:<caller hash>`` holds ``<agent id>|<time the call ended>`` (the
router's clock), written when an answered call ends; ROUTE (and the router, on the
general path) honour it only while that time is within ``sticky.within_hours`` of now.
"""

from __future__ import annotations

import re

# Suffixes of KEYS[1..14] after "<prefix>:{route}:" (the names in ivr.keys.Keys).
CORE_SUFFIXES = ("calls", "waiting", "held", "callbacks", "stats", "handled", "ended", "free:ended", "free:avail",
                 "free:rr", "free:order", "timers", "presence", "roster")

_EXPAND = (
    "-- Only KEYS[1] (calls) of CORE is sent (each argument costs the client time): the other\n"
    "-- CORE keys are derived from it, carry the same {route} tag, so they are in the same slot.\n"
    "local BASE = string.sub(KEYS[1], 1, -6)\n"
    "local KEYS = (function(declared)\n"
    "  local k = {declared[1]"
    + "".join(f", BASE .. '{suffix}'" for suffix in CORE_SUFFIXES[1:])
    + "}\n"
    "  for i = 2, #declared do k[#k + 1] = declared[i] end\n"
    "  return k\n"
    "end)(KEYS)\n"
    "-- Likewise ARGV usually comes as ONE string, the arguments joined by \\31 (ledger.pack):\n"
    "-- every step has at least two arguments, so a single one is always a packed list.\n"
    "local ARGV = (function(given)\n"
    "  if #given ~= 1 then return given end\n"
    "  local out, from, s = {}, 1, given[1]\n"
    "  while true do\n"
    "    local at = string.find(s, '\\31', from, true)\n"
    "    if not at then out[#out + 1] = string.sub(s, from) return out end\n"
    "    out[#out + 1] = string.sub(s, from, at - 1)\n"
    "    from = at + 1\n"
    "  end\n"
    "end)(ARGV)\n"
)

_PRELUDE = _EXPAND + r"""
local now = tonumber(ARGV[1])
local chan = ARGV[2]
local function emit(t) t.at = now; redis.call('PUBLISH', chan, cjson.encode(t)) end
local TIMED = {reserved = true, wrap_up = true, paused = true}
-- file the agent in the indexes by their hash (roster agents only). Only the free indexes
-- the rules use are kept (roster field '~indexes', e.g. ',ended,order,'); a write is skipped
-- when the membership already matches (writes cost far more than reads inside a script).
-- hb_changed: the step wrote 'hb' (else a free agent's presence entry is already right).
local function index(key, id, hb_changed)
  local r = redis.call('HMGET', KEYS[14], id, '~indexes')
  local ord, kinds = r[1], r[2] or ''
  local m = ord and (string.format('%06d:', tonumber(ord)) .. id)
  local f = redis.call('HMGET', key, 'state', 'until', 'hb', 'ended_at', 'avail_at', 'offered_at')
  local state = f[1]
  local was_free = m and redis.call('ZSCORE', KEYS[11], m)
  local live = TIMED[state] or state == 'available'
  if m and state == 'available' then
    local ended, avail = f[4] or '0', f[5] or '0'
    if (tonumber(avail) or 0) < (tonumber(ended) or 0) then avail = ended end
    if string.find(kinds, ',ended,', 1, true) then redis.call('ZADD', KEYS[8], ended, m) end
    if string.find(kinds, ',avail,', 1, true) then redis.call('ZADD', KEYS[9], avail, m) end
    if string.find(kinds, ',rr,', 1, true) then redis.call('ZADD', KEYS[10], f[6] or '0', m) end
    if not was_free then redis.call('ZADD', KEYS[11], ord, m) end
  elseif was_free then
    for i, kind in ipairs({'ended', 'avail', 'rr'}) do
      if string.find(kinds, ',' .. kind .. ',', 1, true) then redis.call('ZREM', KEYS[7 + i], m) end
    end
    redis.call('ZREM', KEYS[11], m)
  end
  if m and TIMED[state] then
    redis.call('ZADD', KEYS[12], f[2] or '0', id)
  elseif not was_free then  -- a free agent has no timer
    redis.call('ZREM', KEYS[12], id)
  end
  if was_free and live and not hb_changed then return end  -- presence entry unchanged
  local seen = redis.call('ZSCORE', KEYS[13], id)
  if m and live then
    if tonumber(seen) ~= (tonumber(f[3] or 0) or 0) then redis.call('ZADD', KEYS[13], f[3] or '0', id) end
  elseif seen then
    redis.call('ZREM', KEYS[13], id)
  end
end
local function set_agent(key, id, state, call, reason, extra)
  local args = {'state', state, 'since', now, 'call', call, 'reason', reason}
  local hb_changed = false
  for i = 1, #extra do
    args[#args + 1] = extra[i]
    if i % 2 == 1 and extra[i] == 'hb' then hb_changed = true end
  end
  redis.call('HSET', key, unpack(args))
  index(key, id, hb_changed)
  emit({type = 'agent', id = id, state = state, call = call, reason = reason})
end
local function heard(key, id)  -- a heartbeat
  redis.call('HSET', key, 'hb', now)
  redis.call('ZADD', KEYS[13], 'XX', now, id)
end
-- the agent a sticky entry ('<agent id>|<call ended at>') names if that call ended at most
-- window seconds before now, else ''
local function sticky_agent(raw, window)
  if not raw or window <= 0 then return '' end
  local bar = string.find(raw, '|', 1, true)
  local ended = bar and tonumber(string.sub(raw, bar + 1))
  if ended and now - ended <= window then return string.sub(raw, 1, bar - 1) end
  return ''
end
local function usable(key, cutoff)
  local s = redis.call('HMGET', key, 'state', 'hb')
  return s[1] == 'available' and (cutoff <= 0 or tonumber(s[2] or 0) >= cutoff)
end
local function info_of(sid)
  local raw = redis.call('HGET', KEYS[1], sid)
  if raw then return cjson.decode(raw) end
  return nil
end
local function reserve(key, id, sid, deadline)
  redis.call('HSET', KEYS[3], sid, id)
  set_agent(key, id, 'reserved', sid, '', {'until', deadline, 'offered_at', now})
end
-- reserve() for an agent just picked from the free indexes (``member``: their entry there):
-- what index() would do for this one move, without reading back what is known already
-- (free -> reserved: out of the free indexes, onto the timers; presence stays as it was).
local function take(key, id, member, sid, deadline)
  redis.call('HSET', KEYS[3], sid, id)
  redis.call('HSET', key, 'state', 'reserved', 'since', now, 'call', sid, 'reason', '', 'until', deadline,
             'offered_at', now)
  local kinds = redis.call('HGET', KEYS[14], '~indexes') or ''
  for i, kind in ipairs({'ended', 'avail', 'rr'}) do
    if string.find(kinds, ',' .. kind .. ',', 1, true) then redis.call('ZREM', KEYS[7 + i], member) end
  end
  redis.call('ZREM', KEYS[11], member)
  redis.call('ZADD', KEYS[12], deadline, id)
  emit({type = 'agent', id = id, state = 'reserved', call = sid, reason = ''})
end
-- put a call whose reservation fell through back in line at its original arrival
local function requeue(sid)
  redis.call('HDEL', KEYS[3], sid)
  local info = info_of(sid)
  if info and not redis.call('ZSCORE', KEYS[7], sid) then
    redis.call('ZADD', KEYS[2], info.arrived, sid)
    emit({type = 'queue', event = 'requeued', sid = sid, queue = info.queue})
  end
end
-- an offer nobody answered nor refused in time. A callback request goes back to its place
-- (the agent's app let it pass). A live call goes back in line once; when its next offer
-- lapses too, Twilio has not been heard of it for two reservation timeouts: the call is
-- lost (its caller is gone and the status callback with it) and leaves the router, so no
-- agent is offered a ghost again and again. Should Twilio ask about it after all, the
-- router does not know it and the call flow sends the caller to the fallback number.
local function lapse(sid)
  if redis.call('HEXISTS', KEYS[4], sid) == 1 then requeue(sid) return end
  local raw = redis.call('HGET', KEYS[1], sid)
  if raw and string.find(raw, '"lapsed": 1', 1, true) then
    local info = cjson.decode(raw)
    redis.call('HDEL', KEYS[3], sid)
    redis.call('HDEL', KEYS[1], sid)
    redis.call('ZREM', KEYS[2], sid)
    emit({type = 'queue', event = 'lost', sid = sid, queue = info.queue})
    return
  end
  if raw then redis.call('HSET', KEYS[1], sid, string.sub(raw, 1, -2) .. ', "lapsed": 1}') end
  requeue(sid)
end
-- a call that was answered is over: count it, time the wrap-up, and (talked = true) remember
-- the agent for the caller's next call: sticky routing. The entry keeps the time the call
-- ended by the router's clock, and ROUTE compares it with its own now, so "within N hours"
-- follows the router's clock; the Redis TTL (the window plus a day) only cleans up.
local function finish(key, id, sid, talk, day, talked)
  local info = info_of(sid) or {}
  local wrap = tonumber(info.wrap or 0)
  local window = tonumber(info.sticky_s or 0) or 0
  if talked and window > 0 and (info.caller_hash or '') ~= '' then
    redis.call('SET', BASE .. 'sticky:' .. info.caller_hash, id .. '|' .. ARGV[1], 'EX', math.ceil(window) + 86400)
  end
  redis.call('HINCRBY', key, 'calls:' .. day, 1)
  redis.call('HINCRBYFLOAT', key, 'talk:' .. day, talk)
  redis.call('LPUSH', KEYS[6], (info.queue or '?') .. '|' .. (talk + wrap))
  redis.call('LTRIM', KEYS[6], 0, 499)
  if wrap > 0 then
    set_agent(key, id, 'wrap_up', '', '', {'until', now + wrap, 'ended_at', now, 'misses', 0})
  else
    set_agent(key, id, 'available', '', '', {'until', 0, 'ended_at', now, 'avail_at', now, 'misses', 0})
  end
end
-- time-outs of one agent, re-checked here: returns 1 if the agent changed state
local function expire_one(key, id, cutoff)
  local st = redis.call('HMGET', key, 'state', 'call', 'until', 'hb')
  local state, call = st[1], st[2] or ''
  local deadline, hb = tonumber(st[3] or 0) or 0, tonumber(st[4] or 0) or 0
  local live = state == 'available' or TIMED[state]
  if cutoff > 0 and live and hb < cutoff then
    if state == 'reserved' and call ~= '' then requeue(call) end
    set_agent(key, id, 'offline', '', 'no heartbeat from the agent app; set status available when back', {'until', 0})
    return 1
  elseif state == 'reserved' and deadline <= now then
    if call ~= '' then lapse(call) end
    set_agent(key, id, 'available', '', 'last offer expired unanswered', {'until', 0, 'avail_at', now})
    return 1
  elseif (state == 'wrap_up' or state == 'paused') and deadline <= now then
    set_agent(key, id, 'available', '', '', {'until', 0, 'avail_at', deadline})
    return 1
  end
  return 0
end
-- every time-out that is due, found through the indexes; cutoff_s is the heartbeat cutoff as sent
local function expire_due(prefix, cutoff_s)
  local cutoff = tonumber(cutoff_s)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[12], '-inf', ARGV[1])
  if cutoff > 0 then
    local stale = redis.call('ZRANGEBYSCORE', KEYS[13], '-inf', '(' .. cutoff_s)
    for i = 1, #stale do ids[#ids + 1] = stale[i] end
  end
  local changed, seen = 0, {}
  for i = 1, #ids do
    if not seen[ids[i]] then
      seen[ids[i]] = true
      changed = changed + expire_one(prefix .. ids[i], ids[i], cutoff)
    end
  end
  return changed
end
"""


# The prelude's helpers, one chunk each ("local function NAME" or "local NAME =", with the
# comment above it). A script gets only the helpers its body uses (and theirs): Lua builds
# every local function of a script anew at each call, so unused ones cost every step.
_HELPER = re.compile(r"^(?=(?:--[^\n]*\n)*local (?:function \w+|\w+ =))", re.M)


def _helpers(prelude: str) -> list[tuple[str, str]]:
    starts: list[int] = []
    for m in _HELPER.finditer(prelude):
        block = prelude[starts[-1]:m.start()] if starts else ""
        if starts and block.strip() and all(line.startswith("--") for line in block.splitlines() if line.strip()):
            continue  # still inside the comment that opens the chunk found before
        starts.append(m.start())
    out = []
    for a, b in zip(starts, starts[1:] + [len(prelude)]):
        text = prelude[a:b]
        name = re.search(r"^local (?:function (\w+)|(\w+) =)", text, re.M)
        out.append((name.group(1) or name.group(2), text))
    return out


_CHUNKS = _helpers(_PRELUDE[len(_EXPAND):])


def _needed(body: str) -> str:
    """The prelude's chunks ``body`` uses, directly or through another chunk, in their order."""
    want, todo = {"now", "chan"}, [body]
    while todo:
        code = re.sub(r"--[^\n]*", "", todo.pop())  # a name in a comment is no use
        for name, chunk in _CHUNKS:
            if name not in want and re.search(rf"\b{name}\b", code):
                want.add(name)
                todo.append(chunk)
    return "\n" + "".join(chunk for name, chunk in _CHUNKS if name in want)


def _script(header: str, body: str) -> str:
    return header.strip() + "\n" + _EXPAND + _needed(body) + body


RESERVE = _script(r"""
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
    reserve(KEYS[i], ARGV[i - 6], sid, tonumber(ARGV[6]))
    return {'agent', ARGV[i - 6], 1}
  end
end
redis.call('ZADD', KEYS[2], ARGV[5], sid)
emit({type = 'queue', event = 'enqueued', sid = sid, queue = ARGV[8]})
return {'queued', '', 1}
""")

ASSIGN = _script(r"""
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
    reserve(KEYS[15], ARGV[3], sid, tonumber(ARGV[4]))
    local info = info_of(sid) or {}
    emit({type = 'queue', event = 'assigned', sid = sid, queue = info.queue, agent = ARGV[3]})
    return sid
  end
end
return false
""")

RELEASE = _script(r"""
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
if mode == 'hangup' then
  if redis.call('HEXISTS', KEYS[4], sid) == 1 and redis.call('ZSCORE', KEYS[2], sid) then
    return {'callback_kept', redis.call('ZCARD', KEYS[2])}  -- hung up to be called back: keep the place
  end
  redis.call('ZADD', KEYS[7], now, sid)
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', ARGV[7])
end
local agent = redis.call('HGET', KEYS[3], sid)
local result = 'unknown'
if agent then
  local akey = ARGV[4] .. agent
  local st = redis.call('HMGET', akey, 'state', 'call', 'answered_at')
  if st[2] == sid then
    if st[1] == 'reserved' then
      set_agent(akey, agent, 'available', '', '', {'until', 0, 'avail_at', now})
    elseif st[1] == 'on_call' then
      finish(akey, agent, sid, now - tonumber(st[3] or now), day, true)
    end
  end
  redis.call('HDEL', KEYS[3], sid)
  result = 'released'
elseif redis.call('ZREM', KEYS[2], sid) == 1 then
  local info = info_of(sid) or {}
  if mode == 'hangup' then
    redis.call('HINCRBY', KEYS[5], 'abandoned:' .. (info.queue or '?') .. ':' .. day, 1)
  end
  emit({type = 'queue', event = (mode == 'hangup') and 'abandoned' or 'fallback', sid = sid, queue = info.queue})
  result = 'dequeued'
end
redis.call('HDEL', KEYS[1], sid)
redis.call('HDEL', KEYS[4], sid)
return {result, redis.call('ZCARD', KEYS[2])}
""")

DIAL_RESULT = _script(r"""
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
  set_agent(KEYS[15], id, 'available', '', '', {'until', 0, 'avail_at', now})
else
  local misses = (tonumber(st[4]) or 0) + 1
  if misses >= tonumber(ARGV[9]) then
    set_agent(KEYS[15], id, 'offline', '', 'missed ' .. misses .. ' calls in a row; set status available when back',
              {'misses', misses, 'until', 0})
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

ANSWERED = _script(r"""
-- ANSWERED: the agent picked up: reserved -> on_call (the call's end, in RELEASE or
-- DIAL_RESULT, remembers the agent for sticky routing).
-- KEYS[1..14] CORE; KEYS[15] the agent's hash.
-- ARGV[1] now, ARGV[2] channel, ARGV[3] sid, ARGV[4] agent id.
-- Returns 1 when the agent is (now) on this call, 0 when the call is held by someone else.
""", r"""
local sid, id = ARGV[3], ARGV[4]
local st = redis.call('HMGET', KEYS[15], 'state', 'call')
if st[1] == 'on_call' and st[2] == sid then return 1 end
if not (st[1] == 'reserved' and st[2] == sid) then
  -- the reservation ran out but the agent took the call anyway: they are talking
  if st[1] ~= 'available' or redis.call('HEXISTS', KEYS[3], sid) == 1 then return 0 end
  redis.call('ZREM', KEYS[2], sid)
  redis.call('HSET', KEYS[3], sid, id)
end
set_agent(KEYS[15], id, 'on_call', sid, '', {'answered_at', now, 'misses', 0, 'until', 0})
return 1
""")

EXPIRE = _script(r"""
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

SET_STATUS = _script(r"""
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
  set_agent(KEYS[15], id, 'available', '', '', {'hb', now, 'misses', 0, 'avail_at', now, 'until', 0})
  return {1, 'available', ''}
end
if status == 'offline' then
  if state == 'on_call' then return {0, state, 'the agent is on a call; set offline after it ends'} end
  if state == 'reserved' and call ~= '' then requeue(call) end
  set_agent(KEYS[15], id, 'offline', '', ARGV[5], {'until', 0})
  return {1, 'offline', ''}
end
if status == 'wrap_up_done' then
  if state == 'wrap_up' then
    set_agent(KEYS[15], id, 'available', '', '', {'until', 0, 'avail_at', now, 'hb', now})
    return {1, 'available', ''}
  end
  if state == 'available' then return {1, state, 'already available'} end
  return {0, state, 'the agent is not in wrap-up'}
end
return {0, state, 'unknown status ' .. status}
""")

MARK_CALLBACK = _script(r"""
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
  emit({type = 'queue', event = 'callback', sid = sid, queue = info.queue})
end
return 1
""")

CALLBACK_DONE = _script(r"""
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
emit({type = 'queue', event = 'called_back', sid = sid, queue = info.queue, agent = id, result = ARGV[7]})
return {1, ''}
""")

REINDEX = _script(r"""
-- REINDEX: the roster in force: give agents without state a hash (offline until they log
-- in), record each agent's roster position, and rebuild the indexes from the agent hashes.
-- Run on every adoption of a roster (and to repair); agents off the roster leave the indexes.
-- KEYS[1..14] CORE; KEYS[15..] the roster's agent hashes, in roster order.
-- ARGV[1] now, ARGV[2] channel, ARGV[3] the free indexes the rules use (',ended,order,', ...),
-- ARGV[4..] agent ids in KEYS order (ARGV[i - 11] for KEYS[i]).
-- Returns the number of agent hashes created.
""", r"""
for i = 8, 14 do redis.call('DEL', KEYS[i]) end
redis.call('HSET', KEYS[14], '~indexes', ARGV[3])
local made = 0
for i = 15, #KEYS do
  local id = ARGV[i - 11]
  redis.call('HSET', KEYS[14], id, i - 15)
  if redis.call('HSETNX', KEYS[i], 'state', 'offline') == 1 then
    redis.call('HSET', KEYS[i], 'since', now, 'reason', 'not logged in yet', 'call', '')
    made = made + 1
  end
end
for i = 15, #KEYS do index(KEYS[i], ARGV[i - 11], true) end
return made
""")

SNAPSHOT = _script(r"""
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
local prefix = BASE .. 'agent:'
local out = {ids = {}, agents = {}}
local roster = redis.call('HGETALL', KEYS[14])
for i = 1, #roster, 2 do
  local id = roster[i]
  if id ~= '~indexes' then
    out.ids[#out.ids + 1] = id
    out.agents[#out.agents + 1] = redis.call('HMGET', prefix .. id, 'state', 'call', 'until', 'hb', 'ended_at',
      'avail_at', 'offered_at', 'answered_at', 'since', 'misses', 'reason', 'calls:' .. day, 'talk:' .. day)
  end
end
out.calls = redis.call('HKEYS', KEYS[1])
if ARGV[5] and ARGV[5] ~= '' then out.mine = redis.call('HGET', KEYS[1], ARGV[5]) end
out.waiting = redis.call('ZRANGE', KEYS[2], 0, -1)  -- the arrival is in the call's info
out.held = redis.call('HGETALL', KEYS[3])
out.callbacks = redis.call('HKEYS', KEYS[4])
out.handled = redis.call('LRANGE', KEYS[6], 0, tonumber(ARGV[4]) - 1)
out.sticky = redis.call('GET', KEYS[15])
return cjson.encode(out)
""")

ROUTE = _script(r"""
-- ROUTE: the common case of a new call in ONE step: expire what ran out, then reserve the
-- best free agent who may take the call (through the free-agent indexes), or queue it.
-- When other calls wait and someone is free, who gets whom needs the whole picture: the
-- step then changes nothing but the time-outs and answers 'slow' (the router plans it).
-- KEYS[1..14] CORE; KEYS[15] the caller's sticky key; KEYS[16] the set of agents who may
-- take this call now (rules version, category, relaxation stage; see Keys.route_eligible).
-- ARGV[1] now, ARGV[2] channel, ARGV[3] sid, ARGV[4] call info JSON object (this step adds
-- its "sticky" field), ARGV[5] original arrival, ARGV[6] reservation deadline,
-- ARGV[7] heartbeat cutoff (0 = off), ARGV[8] queue,
-- ARGV[9] strategy: 'ended' | 'avail' | 'rr' | 'order' (read that free index in order)
-- or 'calls:<day>' | 'talk:<day>' (the least of that field, then idle, then position),
-- ARGV[10] idle measure for ties: 'ended' | 'avail', ARGV[11] the sticky window (s, 0 = off):
-- the caller's last agent comes first if that call ended at most this long before now.
-- Agent keys are BASE .. 'agent:' .. id (the {route} tag again).
-- Returns {'agent', id} | {'queued', ''} | {'waiting', ''} (already in line) | {'gone', ''}
-- | {'slow', ''} | {'noelig', ''} (the eligible set is missing: write it, run again)
-- | {'reindex', ''} (no roster in Redis: run REINDEX, then this again). 'agent' and 'queued'
-- have a third element, the sticky agent written into the info, when this step stored the info.
""", r"""
local sid, prefix = ARGV[3], BASE .. 'agent:'
-- a call held or waiting has its info in KEYS[1]: a new call costs one look, not two
if redis.call('HEXISTS', KEYS[1], sid) == 1 then
  local held = redis.call('HGET', KEYS[3], sid)
  if held then return {'agent', held} end
  if redis.call('ZSCORE', KEYS[2], sid) then return {'waiting', ''} end
elseif redis.call('ZSCORE', KEYS[7], sid) then
  return {'gone', ''}
end
expire_due(prefix, ARGV[7])
local free = redis.call('ZCARD', KEYS[11])
if free > 0 and redis.call('ZCARD', KEYS[2]) > 0 then return {'slow', ''} end
local sticky = ''
local window = tonumber(ARGV[11]) or 0
if window > 0 then sticky = sticky_agent(redis.call('GET', KEYS[15]), window) end
local pick, member  -- member: the pick's entry in the free indexes, when picked from one
if free > 0 then
  if sticky ~= '' and redis.call('SISMEMBER', KEYS[16], sticky) == 1
      and redis.call('HGET', prefix .. sticky, 'state') == 'available' then
    pick = sticky
  end
  local how = ARGV[9]
  local zkey = ({ended = KEYS[8], avail = KEYS[9], rr = KEYS[10], order = KEYS[11]})[how]
  if not pick and zkey then
    local from, size = 0, 4
    while not pick do
      local batch = redis.call('ZRANGE', zkey, from, from + size - 1)
      for i = 1, #batch do
        local id = string.sub(batch[i], 8)
        if redis.call('SISMEMBER', KEYS[16], id) == 1 then pick, member = id, batch[i] break end
      end
      if #batch < size then break end
      from, size = from + size, 32
    end
  elseif not pick then
    -- fewest calls / least talk today: the least value, then the longest idle, then position
    local all = redis.call('ZRANGE', KEYS[11], 0, -1)
    local best_v, best_idle
    for i = 1, #all do
      local id = string.sub(all[i], 8)
      if redis.call('SISMEMBER', KEYS[16], id) == 1 then
        local f = redis.call('HMGET', prefix .. id, how, 'ended_at', 'avail_at')
        local v, idle = tonumber(f[1] or 0) or 0, tonumber(f[2] or 0) or 0
        if ARGV[10] == 'avail' then idle = math.max(idle, tonumber(f[3] or 0) or 0) end
        if not pick or v < best_v or (v == best_v and idle < best_idle) then
          pick, member, best_v, best_idle = id, all[i], v, idle
        end
      end
    end
  end
end
if not pick then
  -- Checked only now (a pick proves them): the set of who may take the call exists, the
  -- roster is indexed, and it keeps the index this strategy reads (else another worker put
  -- other rules in force a moment ago: the general path decides by the whole picture).
  if redis.call('EXISTS', KEYS[16]) == 0 then return {'noelig', ''} end
  local kept = redis.call('HGET', KEYS[14], '~indexes')
  if not kept then return {'reindex', ''} end  -- the roster and indexes were lost (flushed Redis)
  local how = ARGV[9]
  if free > 0 and ({ended = 1, avail = 1, rr = 1, order = 1})[how]
      and not string.find(kept, ',' .. how .. ',', 1, true) then
    return {'slow', ''}
  end
end
redis.call('HSET', KEYS[1], sid, string.sub(ARGV[4], 1, -2) .. ', "sticky": ' .. cjson.encode(sticky) .. '}')
if member then
  take(prefix .. pick, pick, member, sid, tonumber(ARGV[6]))
  return {'agent', pick, sticky}
elseif pick then
  reserve(prefix .. pick, pick, sid, tonumber(ARGV[6]))
  return {'agent', pick, sticky}
end
redis.call('ZADD', KEYS[2], ARGV[5], sid)
emit({type = 'queue', event = 'enqueued', sid = sid, queue = ARGV[8]})
return {'queued', '', sticky}
""")

ALL = {
    "reserve": RESERVE, "assign": ASSIGN, "release": RELEASE, "dial_result": DIAL_RESULT,
    "answered": ANSWERED, "expire": EXPIRE, "set_status": SET_STATUS,
    "mark_callback": MARK_CALLBACK, "callback_done": CALLBACK_DONE, "reindex": REINDEX, "snapshot": SNAPSHOT, "route": ROUTE,
}

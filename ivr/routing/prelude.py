"""The opening every router Lua step runs, and the helpers the steps share.

A step's text is its header, :data:`OPENING`, the helpers its body uses (and theirs,
see :func:`needed`) and the body. The text is a template: ``@@`` inside its Lua strings
stands for the routing key base ``<prefix>:{route}:`` and :func:`for_base` fills it in,
so the CORE keys of ``ivr.routing.scripts`` are constants of the compiled script (a Lua
constant costs nothing per call; building the 13 names from KEYS[1] at every call cost
more than the rest of a route step's own Lua). Every one of them carries the ``{route}``
tag of KEYS[1], which is still sent (Redis Cluster routes the step by it) and checked:
a step given another base's KEYS[1] refuses to run.

What each helper does per call matters: Lua builds every local function of a script anew
at each call (about 1,000 instructions each, with its upvalues and their collection):
hence only the helpers a body uses, and those only a rare path uses (a time-out due in
ROUTE, the end of a talk in RELEASE) made inside that path's *lazy region* (a body's
``--@lazy`` ... ``--@end`` lines) instead of at every call. A Lua number handed to
``redis.call`` is formatted with ``%.17g`` (hence ``stamp``, now as the client sent it,
and numbers written as strings), and ``cjson.encode`` of a table costs more than the
few strings of an event (hence ``emit_agent`` / ``emit_queue``).
"""

from __future__ import annotations

import re

# Suffixes of KEYS[1..14] after "<prefix>:{route}:" (the names in ivr.keys.Keys).
CORE_SUFFIXES = ("calls", "waiting", "held", "callbacks", "stats", "handled", "ended", "free:ended", "free:avail",
                 "free:rr", "free:order", "timers", "presence", "roster")
MARK = "@@"  # in a template's Lua strings: the key base

OPENING = (
    "-- KEYS[1] is the only CORE key sent (each argument costs the client time); KEYS[2..14]\n"
    "-- are constants made for the key base this script was loaded for (same {route} slot).\n"
    f"if KEYS[1] ~= '{MARK}{CORE_SUFFIXES[0]}' then\n"
    f"  return redis.error_reply('ERR this router step is for the keys {MARK}*, not ' .. tostring(KEYS[1]))\n"
    "end\n"
    "local declared = KEYS\n"
    "local KEYS = {declared[1]" + "".join(f", '{MARK}{s}'" for s in CORE_SUFFIXES[1:]) + ", declared[2], declared[3]}\n"
    "for i = 4, #declared do KEYS[i + 13] = declared[i] end\n"
    r"""-- ARGV comes as ONE string, the arguments joined by \31, when the client packs each argument
-- in Python (ledger.pack, redis-py without hiredis): every step has at least two arguments,
-- so a single one is always a packed list.
local ARGV = ARGV
if #ARGV == 1 then
  local out, from, s = {}, 1, ARGV[1]
  while true do
    local at = string.find(s, '\31', from, true)
    if not at then out[#out + 1] = string.sub(s, from) break end
    out[#out + 1] = string.sub(s, from, at - 1)
    from = at + 1
  end
  ARGV = out
end
""")

PRELUDE = r"""
local now = tonumber(ARGV[1])
-- now as sent (written as is: a Lua number handed to redis.call is formatted anew)
local stamp = ARGV[1]
local chan = ARGV[2]
local enc = cjson.encode
-- the ops page's events, the JSON put together here ('at': now as sent). state and event
-- are always names written in these scripts; the other strings are encoded.
local function emit_agent(id, state, call, reason)
  redis.call('PUBLISH', chan, '{"type": "agent", "id": ' .. enc(id) .. ', "state": "' .. state .. '", "call": '
    .. enc(call) .. ', "reason": ' .. enc(reason) .. ', "at": ' .. stamp .. '}')
end
-- more: further fields as JSON text, each led by ', '
local function emit_queue(event, sid, queue, more)
  redis.call('PUBLISH', chan, '{"type": "queue", "event": "' .. event .. '", "sid": ' .. enc(sid)
    .. (queue and (', "queue": ' .. enc(queue)) or '') .. (more or '') .. ', "at": ' .. stamp .. '}')
end
local TIMED = {reserved = true, wrap_up = true, paused = true}
-- an agent's score in a day index (fewest calls / least talk today): the day's count (talk:
-- whole seconds) times 1e10 plus the moment their idle time counts from, so the least count
-- comes first, then the longest idle ('ended': since the last call ended, 'avail': since
-- available), then the roster position (the member's prefix)
local function day_score(value, ended, avail, idle)
  local at = tonumber(ended or 0) or 0
  if idle == 'avail' then at = math.max(at, tonumber(avail or 0) or 0) end
  return math.floor(tonumber(value or 0) or 0) * 1e10 + at
end
-- file a free agent (member m, hash key) in the free indexes the rules use (kinds: the
-- roster's '~indexes', e.g. ',ended,order,'), scored by their hash's fields; ord: their roster
-- position for the 'order' index, nil when they are filed there already. Day indexes are the
-- kinds '<hash field>|<idle>' ('calls:2026-12-02|ended'), kept as '@@free:' .. kind.
local function file_free(m, kinds, ord, ended, avail, offered, key)
  if string.find(kinds, ',ended,', 1, true) then redis.call('ZADD', KEYS[8], ended, m) end
  if string.find(kinds, ',avail,', 1, true) then redis.call('ZADD', KEYS[9], avail, m) end
  if string.find(kinds, ',rr,', 1, true) then redis.call('ZADD', KEYS[10], offered, m) end
  if ord then redis.call('ZADD', KEYS[11], ord, m) end
  if string.find(kinds, '|', 1, true) then
    for k in string.gmatch(kinds, '[^,]+') do
      local bar = string.find(k, '|', 1, true)
      if bar then
        redis.call('ZADD', '@@free:' .. k,
          day_score(redis.call('HGET', key, string.sub(k, 1, bar - 1)), ended, avail, string.sub(k, bar + 1)), m)
      end
    end
  end
end
-- take the agent filed as m out of the free indexes
local function unfile(m, kinds)
  if string.find(kinds, ',ended,', 1, true) then redis.call('ZREM', KEYS[8], m) end
  if string.find(kinds, ',avail,', 1, true) then redis.call('ZREM', KEYS[9], m) end
  if string.find(kinds, ',rr,', 1, true) then redis.call('ZREM', KEYS[10], m) end
  redis.call('ZREM', KEYS[11], m)
  if string.find(kinds, '|', 1, true) then
    for k in string.gmatch(kinds, '[^,]+') do
      if string.find(k, '|', 1, true) then redis.call('ZREM', '@@free:' .. k, m) end
    end
  end
end
-- file the agent in the indexes by their hash (roster agents only). Only the free indexes
-- the rules use are kept (roster field '~indexes'); a write is skipped when the membership
-- already matches (writes cost far more than reads inside a script).
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
    file_free(m, kinds, not was_free and ord, ended, avail, f[6] or '0', key)
  elseif was_free then
    unfile(m, kinds)
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
-- extra: further field, value pairs (numbers as strings where they can be)
local function set_agent(key, id, state, call, reason, extra)
  local args = {'state', state, 'since', stamp, 'call', call, 'reason', reason}
  local hb_changed = false
  for i = 1, #extra do
    args[#args + 1] = extra[i]
    if i % 2 == 1 and extra[i] == 'hb' then hb_changed = true end
  end
  redis.call('HSET', key, unpack(args))
  index(key, id, hb_changed)
  emit_agent(id, state, call, reason)
end
local function heard(key, id)  -- a heartbeat
  redis.call('HSET', key, 'hb', stamp)
  redis.call('ZADD', KEYS[13], 'XX', stamp, id)
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
-- deadline: the reservation's end, as sent
local function reserve(key, id, sid, deadline)
  redis.call('HSET', KEYS[3], sid, id)
  set_agent(key, id, 'reserved', sid, '', {'until', deadline, 'offered_at', stamp})
end
-- reserve() for an agent just picked from the free indexes (``member``: their entry there):
-- what index() would do for this one move, without reading back what is known already
-- (free -> reserved: out of the free indexes, onto the timers; presence stays as it was).
-- kinds: the roster's '~indexes' when the step has read it already
local function take(key, id, member, sid, deadline, kinds)
  redis.call('HSET', KEYS[3], sid, id)
  redis.call('HSET', key, 'state', 'reserved', 'since', stamp, 'call', sid, 'reason', '', 'until', deadline,
             'offered_at', stamp)
  unfile(member, kinds or redis.call('HGET', KEYS[14], '~indexes') or '')
  redis.call('ZADD', KEYS[12], deadline, id)
  emit_agent(id, 'reserved', sid, '')
end
-- the agent reserved for a call that ended before it was answered is free again: what
-- set_agent() and index() would do for this one move, with what the step read already
-- (reserved -> available: off the timers, into the free indexes; presence stays as it was,
-- both states count as present). ended, offered: the agent's ended_at, offered_at.
-- Returns false for an agent off the roster in force (a reload meanwhile): the hash is
-- written, and the caller files them the general way (index) and tells the ops page.
local function free_again(key, id, ended, offered)
  redis.call('HSET', key, 'state', 'available', 'since', stamp, 'call', '', 'reason', '', 'until', '0',
             'avail_at', stamp)
  local r = redis.call('HMGET', KEYS[14], id, '~indexes')
  if not r[1] then return false end
  ended = ended or '0'
  file_free(string.format('%06d:', tonumber(r[1])) .. id, r[2] or '', r[1], ended,
            (now < (tonumber(ended) or 0)) and ended or stamp, offered or '0', key)
  redis.call('ZREM', KEYS[12], id)
  emit_agent(id, 'available', '', '')
  return true
end
-- put a call whose reservation fell through back in line at its original arrival
local function requeue(sid)
  redis.call('HDEL', KEYS[3], sid)
  local info = info_of(sid)
  if info and not redis.call('ZSCORE', KEYS[7], sid) then
    redis.call('ZADD', KEYS[2], info.arrived, sid)
    emit_queue('requeued', sid, info.queue)
  end
end
-- an offer nobody answered nor refused in time. A callback request goes back to its place
-- (the agent's app let it pass: expire_one counts that as a missed call, when the roster
-- keeps the policy). A live call goes back in line once; when its next offer lapses too,
-- Twilio has not been heard of it for two reservation timeouts: the call is lost (its caller
-- is gone and the status callback with it) and leaves the router, so no agent is offered a
-- ghost again and again. Should Twilio ask about it after all, the
-- router does not know it and the call flow sends the caller to the fallback number.
local function lapse(sid)
  if redis.call('HEXISTS', KEYS[4], sid) == 1 then requeue(sid) return end
  local raw = redis.call('HGET', KEYS[1], sid)
  if raw and string.find(raw, '"lapsed": 1', 1, true) then
    local info = cjson.decode(raw)
    redis.call('HDEL', KEYS[3], sid)
    redis.call('HDEL', KEYS[1], sid)
    redis.call('ZREM', KEYS[2], sid)
    emit_queue('lost', sid, info.queue)
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
    redis.call('SET', '@@sticky:' .. info.caller_hash, id .. '|' .. stamp, 'EX', math.ceil(window) + 86400)
  end
  redis.call('HINCRBY', key, 'calls:' .. day, '1')
  redis.call('HINCRBYFLOAT', key, 'talk:' .. day, talk)
  redis.call('LPUSH', KEYS[6], (info.queue or '?') .. '|' .. (talk + wrap))
  redis.call('LTRIM', KEYS[6], '0', '499')
  local leaving = redis.call('HGET', key, 'leaving') or ''
  if leaving ~= '' then
    -- they had set themselves offline while the call rang and took it anyway: offline again
    redis.call('HSET', key, 'leaving', '')
    set_agent(key, id, 'offline', '', leaving, {'until', '0', 'ended_at', stamp, 'misses', '0'})
  elseif wrap > 0 then
    set_agent(key, id, 'wrap_up', '', '', {'until', now + wrap, 'ended_at', stamp, 'misses', '0'})
  else
    set_agent(key, id, 'available', '', '', {'until', '0', 'ended_at', stamp, 'avail_at', stamp, 'misses', '0'})
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
    set_agent(key, id, 'offline', '', 'no heartbeat from the agent app; set status available when back', {'until', '0'})
    return 1
  elseif state == 'reserved' and deadline <= now then
    local callback = call ~= '' and redis.call('HEXISTS', KEYS[4], call) == 1
    if callback and cutoff > 0 then
      -- a callback request is a task in the agent's app, not a ringing phone: while the app
      -- is alive (its heartbeat is current: the branch above) the agent may be calling the
      -- caller back, however long that takes, so it stays theirs until callback-done; it
      -- moves on when the app goes silent or they log off. Looked at again a heartbeat
      -- timeout from now.
      redis.call('HSET', key, 'until', now + (now - cutoff))
      index(key, id, false)
      return 0
    end
    local policy = callback and redis.call('HGET', KEYS[14], '~missed')
    if policy then
      -- (no heartbeats tracked) a callback request let pass counts as a missed call: the request
      -- goes back to its place and the agent pauses (offline after max_missed in a row), so
      -- it is not offered straight back to them, again and again, ahead of everyone behind it
      -- (the roster's '~missed': '<missed_pause_s>|<max_missed>' of the rules in force)
      requeue(call)
      local bar = string.find(policy, '|', 1, true)
      local misses = (tonumber(redis.call('HGET', key, 'misses')) or 0) + 1
      if misses >= tonumber(string.sub(policy, bar + 1)) then
        set_agent(key, id, 'offline', '', 'missed ' .. misses .. ' offers in a row; set status available when back',
                  {'misses', misses, 'until', '0'})
      else
        set_agent(key, id, 'paused', '', 'let a callback request pass; back by itself shortly',
                  {'misses', misses, 'until', now + tonumber(string.sub(policy, 1, bar - 1))})
      end
      return 1
    end
    if call ~= '' then lapse(call) end
    set_agent(key, id, 'available', '', 'last offer expired unanswered', {'until', '0', 'avail_at', stamp})
    return 1
  elseif (state == 'wrap_up' or state == 'paused') and deadline <= now then
    set_agent(key, id, 'available', '', '', {'until', '0', 'avail_at', deadline})
    return 1
  end
  return 0
end
-- the agents with a time-out due, found through the indexes (may repeat an id); cutoff_s is
-- the heartbeat cutoff as sent. expire_one() each of them (expire_all).
local function due_ids(cutoff_s)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[12], '-inf', stamp)
  if tonumber(cutoff_s) > 0 then
    local stale = redis.call('ZRANGEBYSCORE', KEYS[13], '-inf', '(' .. cutoff_s)
    for i = 1, #stale do ids[#ids + 1] = stale[i] end
  end
  return ids
end
local function expire_all(prefix, ids, cutoff)
  local changed, seen = 0, {}
  for i = 1, #ids do
    if not seen[ids[i]] then
      seen[ids[i]] = true
      changed = changed + expire_one(prefix .. ids[i], ids[i], cutoff)
    end
  end
  return changed
end
-- make the day index kind ('<field>|<idle>', e.g. 'calls:2026-12-02|ended') from the free
-- agents (the 'order' index) and keep it instead of the same measure's index of an earlier
-- day, which is deleted (once a day, at the first such call). Returns the roster's new
-- '~indexes', or false, changing nothing, when the index of a later day is kept: another
-- worker's clock passed midnight first (the step then reads the free agents one by one).
local function build_day_index(prefix, kind, kept)
  local bar = string.find(kind, '|', 1, true)
  local field, idle = string.sub(kind, 1, bar - 1), string.sub(kind, bar + 1)
  local colon = string.find(field, ':', 1, true)
  local measure, day = string.sub(field, 1, colon), string.sub(field, colon + 1)
  local keep, old = {}, {}
  for k in string.gmatch(kept, '[^,]+') do
    local kb = string.find(k, '|', 1, true)
    if kb and string.sub(k, 1, colon) == measure and string.sub(k, kb + 1) == idle then
      if string.sub(k, colon + 1, kb - 1) > day then return false end
      old[#old + 1] = '@@free:' .. k
    else
      keep[#keep + 1] = k
    end
  end
  for i = 1, #old do redis.call('DEL', old[i]) end
  local key = '@@free:' .. kind
  redis.call('DEL', key)
  local all = redis.call('ZRANGE', KEYS[11], '0', '-1')
  for i = 1, #all do
    local f = redis.call('HMGET', prefix .. string.sub(all[i], 8), field, 'ended_at', 'avail_at')
    redis.call('ZADD', key, day_score(f[1], f[2], f[3], idle), all[i])
  end
  keep[#keep + 1] = kind
  local kinds = ',' .. table.concat(keep, ',') .. ','
  redis.call('HSET', KEYS[14], '~indexes', kinds)
  return kinds
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


CHUNKS = _helpers(PRELUDE)


def needed(body: str, have: frozenset[str] = frozenset({"now", "chan"})) -> set[str]:
    """The names of the prelude's chunks ``body`` uses, directly or through another chunk,
    beyond those in ``have`` (which are defined already)."""
    want, todo = set(have), [body]
    while todo:
        code = re.sub(r"--[^\n]*", "", todo.pop())  # a name in a comment is no use
        for name, chunk in CHUNKS:
            if name not in want and re.search(rf"\b{name}\b", code):
                want.add(name)
                todo.append(chunk)
    return want - have


def _chunks(names: set[str], indent: str = "") -> str:
    text = "".join(chunk for name, chunk in CHUNKS if name in names)
    return "".join(indent + line if line.strip() else line for line in text.splitlines(True))


# A lazy region of a body: from a line "--@lazy" to a line "--@end". The helpers only its
# code uses are made there, when a call gets there, not at every call of the step (a rare
# path's helpers then cost the common path nothing).
_LAZY = re.compile(r"^([ \t]*)--@lazy\n(.*?)^[ \t]*--@end\n", re.M | re.S)


def script(header: str, body: str) -> str:
    """A step's template: its header comment, the opening, the helpers it uses, its body
    (each lazy region with the helpers only it uses)."""
    top = needed(_LAZY.sub("", body))
    have = frozenset(top | {"now", "chan"})

    def region(m: re.Match) -> str:
        return _chunks(needed(m.group(2), have), m.group(1)) + m.group(2)

    return header.strip() + "\n" + OPENING + "\n" + _chunks(top | {"now", "chan"}) + _LAZY.sub(region, body)


def lua_quoted(text: str) -> str:
    """``text`` as it goes between single quotes in Lua source."""
    out = []
    for byte in text.encode():
        if byte in (0x5C, 0x27):  # backslash, quote
            out.append("\\" + chr(byte))
        elif byte < 0x20 or byte > 0x7E:
            out.append(f"\\{byte:03d}")
        else:
            out.append(chr(byte))
    return "".join(out)


def for_base(templates: dict[str, str], base: str) -> dict[str, str]:
    """The steps for the key base ``<prefix>:{route}:`` (the base's text put in for ``@@``)."""
    if "{route}" not in base:
        raise ValueError(f"router keys must carry the {{route}} hash tag, not {base!r}")
    quoted = lua_quoted(base)
    return {name: body.replace(MARK, quoted) for name, body in templates.items()}

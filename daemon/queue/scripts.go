package queue

import "github.com/redis/go-redis/v9"

// scripts holds the Lua scripts; each Queue builds its own (no package
// state). Every key a script touches is passed in KEYS and shares the
// prefix's hash tag, so they are Cluster-safe.
type scripts struct {
	ack, retry, moveDue, claim, prune *redis.Script
}

func newScripts() scripts {
	return scripts{
		ack:     redis.NewScript(ackLua),
		retry:   redis.NewScript(retryLua),
		moveDue: redis.NewScript(moveDueLua),
		claim:   redis.NewScript(claimLua),
		prune:   redis.NewScript(pruneLua),
	}
}

// ackLua: KEYS stream, inflight. ARGV group, kind, then pairs of
// (stream id, job id). Unpacks in chunks to stay under Lua's stack limit.
// Returns how many entries were still pending.
const ackLua = `
local stream, inflight = KEYS[1], KEYS[2]
local group, kind = ARGV[1], ARGV[2]
local acked = 0
local i = 3
while i <= #ARGV do
  local ids, fields = {}, {}
  while i <= #ARGV and #ids < 500 do
    ids[#ids + 1] = ARGV[i]
    fields[#fields + 1] = kind .. ':' .. ARGV[i + 1]
    i = i + 2
  end
  acked = acked + redis.call('XACK', stream, group, unpack(ids))
  redis.call('XDEL', stream, unpack(ids))
  redis.call('HDEL', inflight, unpack(fields))
end
return acked
`

// retryLua: KEYS stream, retry, inflight. ARGV group, stream id, due ms,
// retry member, inflight field, now ms.
const retryLua = `
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
return 1
`

// moveDueLua: KEYS retry, inflight, dead, then one stream per kind.
// ARGV now ms, max, dead max length, stamp ms, then the kinds in KEYS order.
// Returns how many members left the retry set.
const moveDueLua = `
local retry, inflight, dead = KEYS[1], KEYS[2], KEYS[3]
local streams = {}
for i = 4, #KEYS do streams[ARGV[i + 1]] = KEYS[i] end
local due = redis.call('ZRANGEBYSCORE', retry, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, m in ipairs(due) do
  local kind, id, dom = '', '', ''
  local a = string.find(m, '|', 1, true)
  local b = a and string.find(m, '|', a + 1, true)
  if b then
    kind, id, dom = string.sub(m, 1, a - 1), string.sub(m, a + 1, b - 1), string.sub(m, b + 1)
  end
  local s = streams[kind]
  if s and string.match(id, '^%d+$') then
    redis.call('XADD', s, '*', 'id', id, 'domain', dom)
    redis.call('HSET', inflight, kind .. ':' .. id, ARGV[4])
  else
    redis.call('XADD', dead, 'MAXLEN', '~', ARGV[3], '*', 'kind', kind, 'id', id, 'domain', dom,
      'count', 0, 'reason', 'malformed retry member ' .. m, 'time', ARGV[4])
  end
  redis.call('ZREM', retry, m)
end
return #due
`

// claimLua: KEYS stream, dead, inflight. ARGV group, consumer, kind,
// min idle ms, max, max deliveries, dead max length, now ms, and
// optionally the consumer whose pending entries alone are taken.
// Returns {stream id, job id, domain, delivery count, dead 0|1} per entry
// taken; entries already deleted from the stream are only acked.
const claimLua = `
local stream, dead, inflight = KEYS[1], KEYS[2], KEYS[3]
local group, consumer, kind = ARGV[1], ARGV[2], ARGV[3]
local minIdle, maxDel = tonumber(ARGV[4]), tonumber(ARGV[6])
local deadLen, now = ARGV[7], ARGV[8]
local function field(kv, name)
  for i = 1, #kv, 2 do
    if kv[i] == name then return kv[i + 1] end
  end
  return nil
end
local out = {}
local pend
if ARGV[9] then
  pend = redis.call('XPENDING', stream, group, 'IDLE', minIdle, '-', '+', ARGV[5], ARGV[9])
else
  pend = redis.call('XPENDING', stream, group, 'IDLE', minIdle, '-', '+', ARGV[5])
end
for _, p in ipairs(pend) do
  local sid, count = p[1], tonumber(p[4])
  local r = redis.call('XRANGE', stream, sid, sid)
  if #r == 0 then
    redis.call('XACK', stream, group, sid)
  else
    local kv = r[1][2]
    local jid = field(kv, 'id') or ''
    local dom = field(kv, 'domain') or ''
    local reason = nil
    if not string.match(jid, '^%d+$') then
      reason = 'malformed entry'
    elseif count >= maxDel then
      reason = 'delivered ' .. count .. ' times (max ' .. maxDel .. ')'
    end
    if reason then
      redis.call('XADD', dead, 'MAXLEN', '~', deadLen, '*', 'kind', kind, 'id', jid, 'domain', dom,
        'count', count, 'reason', reason, 'time', now)
      redis.call('XACK', stream, group, sid)
      redis.call('XDEL', stream, sid)
      if jid ~= '' then redis.call('HDEL', inflight, kind .. ':' .. jid) end
      out[#out + 1] = {sid, jid, dom, count, 1}
    else
      redis.call('XCLAIM', stream, group, consumer, minIdle, sid)
      out[#out + 1] = {sid, jid, dom, count + 1, 0}
    end
  end
end
return out
`

// pruneLua: KEYS stream. ARGV group, min idle ms. Deletes idle consumers
// without pending entries; returns how many.
const pruneLua = `
local n = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['pending'] == 0 and info['idle'] >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    n = n + 1
  end
end
return n
`

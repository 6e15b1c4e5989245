package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts. Each touches the keys of one hub only (one hash slot, so Redis
// Cluster accepts them) and is idempotent: running it twice — as go-redis does
// when a connection drops after Redis ran it — leaves the state of one run.
// Errors are returned as error replies whose first word the Go side maps to a
// sentinel (LOCKLOST, CONFLICT, LOCKED, NOTFOUND).
//
// A fence is the hash KEYS[fence] {token, owner}: the newest lease issued for a
// task. It has no TTL, so a stale lease stays detectable after its lock lapsed.

// fenceCheck is shared: it refuses the script when ARGV[1] (a token, "0" for
// unfenced) is not the task's newest token.
const fenceCheck = `
local function fenced(fkey, token)
  if token == '0' then return true end
  return redis.call('HGET', fkey, 'token') == token
end
`

// applyScript runs a state.Batch.
// KEYS: fwd, rev, cursors, fence.
// ARGV: token, ndel, nput, ncur, nget, then ndel hub ids, nput (hub id, local id,
// hash) triples, ncur (name, value) pairs, nget hub ids.
// Link values are "localID \0 hash" (local ids cannot hold NUL).
var applyScript = goredis.NewScript(fenceCheck + `
local fwd, rev, cur = KEYS[1], KEYS[2], KEYS[3]
local nd, np, nc, ng = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if nd + np + nc > 0 and not fenced(KEYS[4], ARGV[1]) then
  return redis.error_reply('LOCKLOST fenced write refused: a newer lease exists')
end
local dstart = 6
local pstart = dstart + nd
local cstart = pstart + 3 * np
local gstart = cstart + 2 * nc
local gone = {}
for i = dstart, pstart - 1 do gone[ARGV[i]] = true end
for i = pstart, cstart - 1, 3 do gone[ARGV[i]] = true end
-- Refuse the whole batch before writing when a local id stays linked elsewhere.
for i = pstart, cstart - 1, 3 do
  local r = redis.call('HGET', rev, ARGV[i + 1])
  if r and r ~= ARGV[i] and not gone[r] then
    return redis.error_reply('CONFLICT local id ' .. ARGV[i + 1] .. ' is linked to hub id ' .. r)
  end
end
local function localOf(v)
  return string.sub(v, 1, string.find(v, '\0', 1, true) - 1)
end
local function unlink(h, keep)
  local old = redis.call('HGET', fwd, h)
  if old then
    local l = localOf(old)
    if l ~= keep and redis.call('HGET', rev, l) == h then redis.call('HDEL', rev, l) end
  end
end
for i = dstart, pstart - 1 do
  unlink(ARGV[i], false)
  redis.call('HDEL', fwd, ARGV[i])
end
for i = pstart, cstart - 1, 3 do
  local h, l = ARGV[i], ARGV[i + 1]
  unlink(h, l)
  redis.call('HSET', fwd, h, l .. '\0' .. ARGV[i + 2])
  redis.call('HSET', rev, l, h)
end
for i = cstart, gstart - 1, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', cur, ARGV[i]) else redis.call('HSET', cur, ARGV[i], ARGV[i + 1]) end
end
local out = {}
local n = 0
local i = gstart
while i < gstart + ng do
  local j = math.min(i + 999, gstart + ng - 1)
  local vals = redis.call('HMGET', fwd, unpack(ARGV, i, j))
  for k = 1, #vals do out[n + k] = vals[k] end
  n = n + (j - i + 1)
  i = j + 1
end
return out
`)

// fencedScript runs one write command on KEYS[2] when the fence KEYS[1] allows.
// ARGV: token, command, arguments. The command is chosen by this package only
// (HSET, HDEL, SET).
var fencedScript = goredis.NewScript(fenceCheck + `
if not fenced(KEYS[1], ARGV[1]) then
  return redis.error_reply('LOCKLOST fenced write refused: a newer lease exists')
end
return redis.call(ARGV[2], KEYS[2], unpack(ARGV, 3))
`)

// acquireScript takes a task lock.
// KEYS: lock, fence. ARGV: owner, ttl in ms.
// A retried acquire by the holder extends the lock and returns the same token; a
// new lease gets max(previous + 1, server time in ms).
var acquireScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur ~= ARGV[1] then return redis.error_reply('LOCKED held by another owner') end
  local tok = redis.call('HGET', KEYS[2], 'token')
  if tok then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tok
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tok = tonumber(redis.call('HGET', KEYS[2], 'token') or '0') + 1
if now > tok then tok = now end
local s = string.format('%d', tok)
redis.call('HSET', KEYS[2], 'token', s, 'owner', ARGV[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return s
`)

// renewScript extends a lease that is still the newest of its task.
// KEYS: lock, fence. ARGV: owner, token, ttl in ms.
var renewScript = goredis.NewScript(`
local f = redis.call('HMGET', KEYS[2], 'token', 'owner')
if f[1] ~= ARGV[2] or f[2] ~= ARGV[1] then return redis.error_reply('LOCKLOST a newer lease exists') end
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return redis.error_reply('LOCKLOST held by another owner') end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 'OK'
`)

// releaseScript frees a lock held by the newest lease.
// KEYS: lock, fence. ARGV: owner, token.
var releaseScript = goredis.NewScript(`
local f = redis.call('HMGET', KEYS[2], 'token', 'owner')
if not f[1] then return 'OK' end
if f[1] ~= ARGV[2] or f[2] ~= ARGV[1] then return redis.error_reply('LOCKLOST a newer lease exists') end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 'OK'
`)

// holderScript reads a lock: {owner, pttl, token} or an empty array when free.
// KEYS: lock, fence.
var holderScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then return {} end
return {cur, redis.call('PTTL', KEYS[1]), redis.call('HGET', KEYS[2], 'token') or '0'}
`)

// planStatusScript sets the status and time of a stored plan when its id matches.
// KEYS: plans. ARGV: task, id, status, at.
var planStatusScript = goredis.NewScript(`
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return redis.error_reply('NOTFOUND no plan') end
local p = cjson.decode(raw)
if p.id ~= ARGV[2] then return redis.error_reply('CONFLICT the stored plan is another one') end
p.status = ARGV[3]
p.at = ARGV[4]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(p))
return 'OK'
`)

// attemptScript records one attempt in a throttle counter (state.Attempt): a
// set of attempt ids that expires window after its first one. A resent call
// finds its id already there and answers as the first run did, so a lost
// reply never counts twice.
// KEYS: the counter. ARGV: id, limit, window (ms). Returns {n, admitted}.
var attemptScript = goredis.NewScript(`
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return {redis.call('SCARD', KEYS[1]), 1}
end
local n = redis.call('SCARD', KEYS[1])
if n >= tonumber(ARGV[2]) then return {n, 0} end
redis.call('SADD', KEYS[1], ARGV[1])
if n == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {n + 1, 1}
`)

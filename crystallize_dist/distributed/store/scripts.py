"""The Lua scripts of the Redis run store: a record and its counters change together, in one
atomic step, whatever dies when.

Every call first checks that the run still exists (its manifest): a worker finishing a cell of
a deleted or expired run writes nothing. Every call that writes refreshes the TTL of all of
the run's keys, so no key of a run that is still being worked on expires.
"""

# KEYS: manifest, state, records, counters, attempts, duplicates, status, workers, skipped
#       (the order of constants.run_keys)
# ARGV: put field ('' for none), record, status, condition, now, ttl, start field ('' for
#       none), mode ('' or 'ran': start the put's own cell first - it already ran - and put
#       its record only if the start allows it; ARGV[5] is then when it started, ARGV[9] now),
#       node (the worker node that wrote the record, for its per-node count)
# -> {written (-2 the run is gone, -1 no record written, 0 duplicate, 1 written), attempt,
#     cancelled, recorded}
ADVANCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2, 0, 0, 0} end
local function refresh()
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[6]) end
end
local function duplicate(field)
  redis.call('HINCRBY', KEYS[4], 'duplicates', 1)
  redis.call('HINCRBY', KEYS[6], field, 1)
end
local function put(field, last_at)
  if redis.call('HSETNX', KEYS[3], field, ARGV[2]) == 0 then
    duplicate(field)
    return 0
  end
  redis.call('HSET', KEYS[7], field, ARGV[3] .. '\\t' .. ARGV[10])
  redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
  redis.call('HINCRBY', KEYS[4], ARGV[3] .. ':' .. ARGV[4], 1)
  if ARGV[10] ~= '' then redis.call('HINCRBY', KEYS[4], 'node:' .. ARGV[10], 1) end
  redis.call('HSETNX', KEYS[4], 'first_at', ARGV[5])
  redis.call('HSET', KEYS[4], 'last_at', last_at)
  return 1
end
local function start(field)
  if redis.call('HEXISTS', KEYS[3], field) == 1 then
    duplicate(field)
    return {0, 0, 1}
  end
  if redis.call('HGET', KEYS[2], 'cancelled') == 'true' then
    redis.call('SADD', KEYS[9], field)
    return {0, 1, 0}
  end
  local n = redis.call('HINCRBY', KEYS[5], field, 1)
  redis.call('HINCRBY', KEYS[4], 'attempts', 1)
  redis.call('HSETNX', KEYS[4], 'first_at', ARGV[5])
  return {n, 0, 0}
end
local reply
if ARGV[8] == 'ran' then
  local s = start(ARGV[1])
  if s[1] == 0 then
    reply = {-1, 0, s[2], s[3]}
  else
    reply = {put(ARGV[1], ARGV[9]), s[1], 0, 0}
  end
else
  local written = -1
  if ARGV[1] ~= '' then written = put(ARGV[1], ARGV[5]) end
  if ARGV[7] == '' then
    reply = {written, 0, 0, 0}
  else
    local s = start(ARGV[7])
    reply = {written, s[1], s[2], s[3]}
  end
end
refresh()
return reply
"""

# KEYS: records, counters, attempts, status; ARGV: field, condition
# The counters go down by what the record's write added (its stored status and node), so a
# record altered or corrupted since it was written is still taken back exactly; a deleted
# cell starts again from attempt 1 (resume --retry-failed gives it a fresh budget).
DELETE = """
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local counted = redis.call('HGET', KEYS[4], ARGV[1])
if counted then
  local tab = string.find(counted, '\\t', 1, true)
  local status = string.sub(counted, 1, tab - 1)
  local node = string.sub(counted, tab + 1)
  redis.call('HINCRBY', KEYS[2], status, -1)
  redis.call('HINCRBY', KEYS[2], status .. ':' .. ARGV[2], -1)
  if node ~= '' then redis.call('HINCRBY', KEYS[2], 'node:' .. node, -1) end
  redis.call('HDEL', KEYS[4], ARGV[1])
end
return 1
"""

"""The Lua scripts of the Redis run store: a record and its counters change together, in one
atomic step, whatever dies when."""

# KEYS: records, counters, duplicates, attempts, state, skipped
# ARGV: put field ('' for none), record, status, condition, now, ttl, start field ('' for
#       none), mode ('' or 'ran': start the put's own cell first - it already ran - and put
#       its record only if the start allows it; ARGV[5] is then when it started, ARGV[9] now)
# -> {written (-1 no record written, 0 duplicate, 1 written), attempt, cancelled, recorded}
ADVANCE = """
local function duplicate(field)
  redis.call('HINCRBY', KEYS[2], 'duplicates', 1)
  redis.call('HINCRBY', KEYS[3], field, 1)
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
local function put(field, last_at)
  if redis.call('HSETNX', KEYS[1], field, ARGV[2]) == 0 then
    duplicate(field)
    return 0
  end
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':' .. ARGV[4], 1)
  redis.call('HSETNX', KEYS[2], 'first_at', ARGV[5])
  redis.call('HSET', KEYS[2], 'last_at', last_at)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  return 1
end
local function start(field)
  if redis.call('HEXISTS', KEYS[1], field) == 1 then
    duplicate(field)
    return {0, 0, 1}
  end
  if redis.call('HGET', KEYS[5], 'cancelled') == 'true' then
    redis.call('SADD', KEYS[6], field)
    redis.call('EXPIRE', KEYS[6], ARGV[6])
    return {0, 1, 0}
  end
  local n = redis.call('HINCRBY', KEYS[4], field, 1)
  redis.call('HINCRBY', KEYS[2], 'attempts', 1)
  redis.call('HSETNX', KEYS[2], 'first_at', ARGV[5])
  redis.call('EXPIRE', KEYS[4], ARGV[6])
  return {n, 0, 0}
end
if ARGV[8] == 'ran' then
  local s = start(ARGV[1])
  if s[1] == 0 then return {-1, 0, s[2], s[3]} end
  return {put(ARGV[1], ARGV[9]), s[1], 0, 0}
end
local written = -1
if ARGV[1] ~= '' then written = put(ARGV[1], ARGV[5]) end
if ARGV[7] == '' then return {written, 0, 0, 0} end
local s = start(ARGV[7])
return {written, s[1], s[2], s[3]}
"""

# KEYS: records, counters, attempts; ARGV: field, condition, status of the stored record
# (a deleted cell starts again from attempt 1: resume --retry-failed gives it a fresh budget)
DELETE = """
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  if ARGV[3] == '' then return 1 end  -- a corrupt record: its status is unknown
  redis.call('HINCRBY', KEYS[2], ARGV[3], -1)
  redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':' .. ARGV[2], -1)
  return 1
end
return 0
"""

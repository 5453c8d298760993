"""The Lua scripts of the Redis run store that write many records in one call and that
delete records (see ``scripts.py`` for the stored value and its note)."""

from crystallize_dist.distributed.store.scripts import COMMON

# Many records of one node in one call. ARGV: now, ttl, mode ('ran': each cell already ran
# and is started here - counted - before its record is written, unless it has a record (a
# duplicate) or the run is cancelled (noted as skipped); '': records of started cells), when
# the first of them started, the node, then field, status, record of each cell (its
# condition is its field's part before the last ':').
# -> {-2} when the run is gone; else one number per cell: 'ran' - its attempt (written),
# 0 (duplicate, not written) or -1 (cancelled, not written); '' - 1 written, 0 duplicate.
PUT_MANY = (
    COMMON
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2} end
local now, ran, node = ARGV[1], ARGV[3] == 'ran', ARGV[5]
local cancelled = ran and redis.call('HGET', KEYS[2], 'cancelled') == 'true'
local nid = node_id(node)
local out, counts, started, written = {}, {}, 0, 0
for i = 6, #ARGV, 3 do
  local field = ARGV[i]
  if redis.call('HEXISTS', KEYS[3], field) == 1 then
    duplicate(field)
    out[#out + 1] = 0
  elseif cancelled then
    redis.call('SADD', KEYS[9], field)
    out[#out + 1] = -1
  else
    local n = take_attempts(field)
    if ran then
      n = n + 1
      started = started + 1
    end
    local status = ARGV[i + 1]
    store(field, ARGV[i + 2], status, nid, n)
    local per = status .. ':' .. string.match(field, '^(.*):')
    counts[status] = (counts[status] or 0) + 1
    counts[per] = (counts[per] or 0) + 1
    written = written + 1
    out[#out + 1] = ran and n or 1
  end
end
if started > 0 then
  redis.call('HINCRBY', KEYS[4], 'attempts', started)
  redis.call('HSETNX', KEYS[4], 'first_at', ARGV[4])
end
if written > 0 then
  for name, n in pairs(counts) do redis.call('HINCRBY', KEYS[4], name, n) end
  if node ~= '' then redis.call('HINCRBY', KEYS[4], 'node:' .. node, written) end
  redis.call('HSETNX', KEYS[4], 'first_at', now)
  redis.call('HSET', KEYS[4], 'last_at', now)
end
refresh(ARGV[2])
return out
"""
)

# KEYS: records, counters, attempts, status, node ids; ARGV: field, condition
# The counters go down by what the record's write counted (the note after its text; a
# record written before notes existed has its count in the status hash), so a record whose
# text was altered or corrupted since it was written is still taken back exactly; a deleted
# cell starts again from attempt 1 (resume --retry-failed gives it a fresh budget).
DELETE = """
redis.call('HDEL', KEYS[3], ARGV[1])
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local status, node
local note = string.match(value, '\\31([^\\31]*)$')
if note then
  local nid
  status, nid = string.match(note, '^([^\\t]*)\\t([^\\t]*)\\t')
  if nid and nid ~= '' then node = redis.call('HGET', KEYS[5], '#' .. nid) end
else
  local counted = redis.call('HGET', KEYS[4], ARGV[1])
  if counted then
    local tab = string.find(counted, '\\t', 1, true)
    status = string.sub(counted, 1, tab - 1)
    node = string.sub(counted, tab + 1)
  end
end
if status then
  redis.call('HINCRBY', KEYS[2], status, -1)
  redis.call('HINCRBY', KEYS[2], status .. ':' .. ARGV[2], -1)
  if node and node ~= '' then redis.call('HINCRBY', KEYS[2], 'node:' .. node, -1) end
end
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
"""

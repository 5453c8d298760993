"""The Lua scripts of the Redis run store: a record and its counters change together, in one
atomic step, whatever dies when.

Every call first checks that the run still exists (its manifest): a worker finishing a cell of
a deleted or expired run writes nothing. Every call that writes refreshes the TTL of all of
the run's keys, so no key of a run that is still being worked on expires.

A stored value is the record's text, then ``\\x1f`` (a byte JSON text never holds) and the
store's own note of what its write counted: ``<status>\\t<node number>\\t<attempts>``. The
note is written by the script, never by the worker: deleting a record takes back exactly
what its write counted, whatever has become of its text since, and a cell's attempt count
moves from the attempts hash into its record's note when the record is written (one hash
entry per recorded cell). Nodes are numbered per run in the node ids hash (``<node>`` ->
number, ``#<number>`` -> node).
"""

# KEYS (every script that writes a record): the order of constants.run_keys -
# manifest, state, records, counters, attempts, duplicates, status, workers, skipped, node ids
COMMON = """
local function refresh(ttl)
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
end
local function duplicate(field)
  redis.call('HINCRBY', KEYS[4], 'duplicates', 1)
  redis.call('HINCRBY', KEYS[6], field, 1)
end
local function node_id(node)
  if node == '' then return '' end
  local id = redis.call('HGET', KEYS[10], node)
  if not id then
    id = tostring(redis.call('HINCRBY', KEYS[10], '#', 1))
    redis.call('HSET', KEYS[10], node, id, '#' .. id, node)
  end
  return id
end
-- the cell's attempts so far, taken out of the attempts hash (its record keeps them)
local function take_attempts(field)
  local n = redis.call('HGET', KEYS[5], field)
  if n then redis.call('HDEL', KEYS[5], field) end
  return tonumber(n or '0')
end
local function store(field, text, status, nid, attempts)
  redis.call('HSET', KEYS[3], field, text .. '\\31' .. status .. '\\t' .. nid .. '\\t' .. attempts)
end
"""

# ARGV: put field ('' for none), record, status, condition, now, ttl, start field ('' for
#       none), node (the worker node that wrote the record, for its per-node count)
# -> {written (-2 the run is gone, -1 no record written, 0 duplicate, 1 written), attempt,
#     cancelled, recorded}
ADVANCE = (
    COMMON
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2, 0, 0, 0} end
local function put(field)
  if redis.call('HEXISTS', KEYS[3], field) == 1 then
    duplicate(field)
    return 0
  end
  local status = ARGV[3]
  store(field, ARGV[2], status, node_id(ARGV[8]), take_attempts(field))
  redis.call('HINCRBY', KEYS[4], status, 1)
  redis.call('HINCRBY', KEYS[4], status .. ':' .. ARGV[4], 1)
  if ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[4], 'node:' .. ARGV[8], 1) end
  redis.call('HSETNX', KEYS[4], 'first_at', ARGV[5])
  redis.call('HSET', KEYS[4], 'last_at', ARGV[5])
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
local written = -1
if ARGV[1] ~= '' then written = put(ARGV[1]) end
local reply = {written, 0, 0, 0}
if ARGV[7] ~= '' then
  local s = start(ARGV[7])
  reply = {written, s[1], s[2], s[3]}
end
refresh(ARGV[6])
return reply
"""
)

# ARGV: node, ttl -> the node's number in the run (given the first time it is asked for)
NODE_NUMBER = (
    COMMON
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local id = node_id(ARGV[1])
refresh(ARGV[2])
return tonumber(id)
"""
)

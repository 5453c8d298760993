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
_COMMON = """
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
    _COMMON
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
    _COMMON
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local id = node_id(ARGV[1])
refresh(ARGV[2])
return tonumber(id)
"""
)

# Many records of one node in one call. ARGV: now, ttl, mode ('ran': each cell already ran
# and is started here - counted - before its record is written, unless it has a record (a
# duplicate) or the run is cancelled (noted as skipped); '': records of started cells), when
# the first of them started, the node, then field, status, record of each cell (its
# condition is its field's part before the last ':').
# -> {-2} when the run is gone; else one number per cell: 'ran' - its attempt (written),
# 0 (duplicate, not written) or -1 (cancelled, not written); '' - 1 written, 0 duplicate.
PUT_MANY = (
    _COMMON
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

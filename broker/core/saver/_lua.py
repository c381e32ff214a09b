"""The checkpoint saver's Lua scripts: one round trip for each write, each read, and each
whole-thread retention step.

Layout (key names in ``broker.core.keys``; field names in ``_codec``): per thread, a sorted
set of ``<ns>\\0<checkpoint id>`` members all scored 0 (BYLEX: grouped by namespace, then
ordered by uuid6 time), one hash of everything else (rows, write indexes, writes, channel
values), and a set of the run indexes it wrote to; per run, a set of the checkpoints it
wrote; one registry of threads scored by expiry deadline.
"""

from __future__ import annotations

# The attempt's fence (broker/core/fence.py), when the config carries one: the fence key
# is the KEYS entry after the script's own, the lease token the last ARGV. Returns 0
# (nothing written) once another holder has taken the thread.
_FENCE_FN = """
local function fenced(nkeys)
  return #KEYS > nkeys and redis.call('GET', KEYS[nkeys + 1]) ~= ARGV[#ARGV]
end
"""

# One checkpoint in one step. KEYS: 1 ids, 2 data, 3 the thread's run indexes, 4 thread
# registry, 5 the run's index, 6 the thread's key index in the layout before this one,
# [7 fence]. ARGV: 1 thread id, 2 member, 3 run entry ('' when none), 4 field count,
# fields and values (the row, then the new channel values), [lease token]. The first
# checkpoint a run writes to a thread (and any without a run) registers the thread, with
# its deadline when it expires, and gives the keys that may be new its remaining TTL; the
# thread's other keys keep theirs. Returns 1, 0 when fenced, or -1 (nothing written) when
# the thread has checkpoints in the former layout.
PUT = (
    _FENCE_FN
    + """
if fenced(6) then return 0 end
local new_run = 1
if ARGV[3] ~= '' then
  redis.call('SADD', KEYS[5], ARGV[3])
  new_run = redis.call('SADD', KEYS[3], KEYS[5])
end
local ttl = 0
if new_run == 1 then
  ttl = redis.call('PTTL', KEYS[2])
  if ttl == -2 and redis.call('EXISTS', KEYS[6]) == 1 then
    if ARGV[3] ~= '' then
      redis.call('SREM', KEYS[5], ARGV[3])
      redis.call('SREM', KEYS[3], KEYS[5])
    end
    return -1
  end
  local score = 'inf'
  if ttl > 0 then
    local now = redis.call('TIME')
    score = now[1] * 1000 + math.floor(now[2] / 1000) + ttl
  end
  redis.call('ZADD', KEYS[4], score, ARGV[1])
end
redis.call('ZADD', KEYS[1], 0, ARGV[2])
local n = tonumber(ARGV[4])
redis.call('HSET', KEYS[2], unpack(ARGV, 5, 4 + 2 * n))
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  if ARGV[3] ~= '' then
    redis.call('PEXPIRE', KEYS[3], ttl)
    redis.call('PEXPIRE', KEYS[5], ttl)
  end
end
return 1
"""
)

# A task's writes in one step: a retried task does not change writes already saved;
# special channels (errors, interrupts, resumes) keep only their latest value. The
# checkpoint's write index (tab-separated write ids) lists them, so a read names them.
# KEYS: 1 data, [2 fence]; ARGV: 1 index field, 2 write field prefix, 3 kept count, kept
# write ids and values, then replaced count, replaced ids and values, [lease token].
# Returns 1, or 0 when fenced.
PUT_WRITES = (
    _FENCE_FN
    + """
if fenced(1) then return 0 end
local index = redis.call('HGET', KEYS[1], ARGV[1])
local have, ids, out = {}, {}, {}
if index then
  for w in string.gmatch(index, '[^\\t]+') do have[w] = true; table.insert(ids, w) end
end
local i = 4
for pass = 1, 2 do
  local count = tonumber(ARGV[i - 1])
  for _ = 1, count do
    local w = ARGV[i]
    if not have[w] then
      have[w] = true
      table.insert(ids, w)
      table.insert(out, ARGV[2] .. w); table.insert(out, ARGV[i + 1])
    elseif pass == 2 then
      table.insert(out, ARGV[2] .. w); table.insert(out, ARGV[i + 1])
    end
    i = i + 2
  end
  i = i + 1
end
if #out > 0 then
  table.insert(out, ARGV[1]); table.insert(out, table.concat(ids, '\\t'))
  redis.call('HSET', KEYS[1], unpack(out))
end
return 1
"""
)

# Checkpoints of one namespace with their writes and the channel values they need, in one
# step. KEYS: 1 ids, 2 data.
# ARGV: 1 namespace prefix (escaped namespace, NUL), 2 'page' or 'ids', then for 'page':
# 3 list below this id ('' from the newest), 4 count; for 'ids': the checkpoint ids.
# Returns {ids listed, last id listed, found ids, rows, write indexes, fields, values}
# (fields: the writes and channel values the found rows name).
READ = """
local pre = ARGV[1]
local listed = {}
if ARGV[2] == 'page' then
  local top = '(' .. string.sub(pre, 1, -2) .. '\\1'
  if ARGV[3] ~= '' then top = '(' .. pre .. ARGV[3] end
  local found = redis.call('ZREVRANGEBYLEX', KEYS[1], top, '[' .. pre, 'LIMIT', 0, ARGV[4])
  for j, m in ipairs(found) do listed[j] = string.sub(m, #pre + 1) end
else
  for j = 3, #ARGV do table.insert(listed, ARGV[j]) end
end
local cids, rows, indexes, fields = {}, {}, {}, {}
if #listed == 0 then return {0, '', cids, rows, indexes, fields, {}} end
local names = {}
for _, c in ipairs(listed) do
  table.insert(names, 'c' .. pre .. c); table.insert(names, 'W' .. pre .. c)
end
local got = redis.call('HMGET', KEYS[2], unpack(names))
local seen = {}
for j, c in ipairs(listed) do
  local row = got[2 * j - 1]
  if row then
    local index = got[2 * j] or ''
    table.insert(cids, c); table.insert(rows, row); table.insert(indexes, index)
    for w in string.gmatch(index, '[^\\t]+') do
      table.insert(fields, 'w' .. pre .. c .. '\\0' .. w)
    end
    local nl = string.find(row, '\\n', 1, true)
    for b in string.gmatch(string.sub(row, 1, nl - 1), '[^\\t]+') do
      local f = 'b' .. pre .. b
      if not seen[f] then seen[f] = true; table.insert(fields, f) end
    end
  end
end
local values = {}
if #fields > 0 then values = redis.call('HMGET', KEYS[2], unpack(fields)) end
return {#listed, listed[#listed], cids, rows, indexes, fields, values}
"""

# The thread's namespaces, one ZRANGEBYLEX per namespace however many checkpoints each
# has. KEYS: 1 ids. Returns the escaped namespaces.
NAMESPACES = """
local out, low = {}, '-'
while true do
  local m = redis.call('ZRANGEBYLEX', KEYS[1], low, '+', 'LIMIT', 0, 1)
  if #m == 0 then return out end
  local ns = string.sub(m[1], 1, string.find(m[1], '\\0', 1, true) - 1)
  table.insert(out, ns)
  low = '[' .. ns .. '\\1'
end
"""

# Expires (ARGV[2] ms) or persists (ARGV[2] '') every key of a thread, and scores it in
# the thread registry: a fixed number of keys, plus the index of each run that wrote to
# it. A thread without a TTL has none on any key (they get theirs together), so persisting
# it is one PTTL. KEYS: 1 ids, 2 data, 3 the thread's run indexes, 4 thread registry;
# ARGV: 1 thread id, 2 ttl in ms or ''.
RETENTION = """
if ARGV[2] == '' and redis.call('PTTL', KEYS[2]) < 0 then return end
local keys = redis.call('SMEMBERS', KEYS[3])
for j = 1, 3 do table.insert(keys, KEYS[j]) end
local score = 'inf'
for _, key in ipairs(keys) do
  if ARGV[2] == '' then redis.call('PERSIST', key) else redis.call('PEXPIRE', key, ARGV[2]) end
end
if ARGV[2] ~= '' then
  local now = redis.call('TIME')
  score = now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[2])
end
redis.call('ZADD', KEYS[4], 'XX', score, ARGV[1])
"""

# Deletes every key of a thread (and, in the layout before this one, every key its key
# index lists) and its registry entry. KEYS: 1 ids, 2 data, 3 the thread's run indexes,
# 4 thread registry, 5 the former key index; ARGV: 1 thread id.
DELETE_THREAD = """
for _, j in ipairs({3, 5}) do
  for _, key in ipairs(redis.call('SMEMBERS', KEYS[j])) do redis.call('DEL', key) end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
redis.call('ZREM', KEYS[4], ARGV[1])
"""

"""The Lua of retention: the sweep that forgets expired runs, the backfill of runs that
ended before retention applied, and audit entries that expire with their interrupt.

The TTLs themselves are set by the prelude's ``retain``, inside the step that ends a run.
"""

from __future__ import annotations

# sweep. ARGV: 2 batch. Forgets up to ``batch`` ended runs whose records are due to have
# expired: drops their index entries (runs overall, by status, agent and thread; each
# interrupt by status, agent, thread and type), deletes what is left of their records
# (the TTL has fired, or fires now), and leaves the tombstones. An index that shrank to
# a few entries is rebuilt, so it takes the compact encoding again (Redis keeps a sorted
# set it converted to a skiplist as one). Returns how many runs it forgot.
# Touches: ended runs, the run and interrupt indexes, the records, deadlines, runs due.
SWEEP = """
local due = redis.call('ZRANGEBYSCORE', K_ENDED, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[2]))
local touched = {}
local function drop(key, member)
  redis.call('ZREM', key, member)
  touched[key] = true
end
for _, member in ipairs(due) do
  local e = cjson.decode(member)
  local run_id, agent_id, thread_id, status = e[1], e[2], e[3], e[4]
  for _, key in ipairs({K_RUNS, k_rstatus(status), k_ragent(agent_id), k_rthread(thread_id)}) do
    drop(key, run_id)
  end
  for _, it in ipairs(e[5]) do
    local h = {id = it[1], agent_id = agent_id, thread_id = thread_id, type = it[3]}
    for _, key in ipairs(interrupt_indexes(it[2], h)) do drop(key, it[1]) end
    redis.call('ZREM', K_DEADLINES, it[1])
    redis.call('DEL', k_interrupt(it[1]), k_audit(it[1]), k_audit_decision(it[1]))
    if it[4] and it[4] ~= '' then redis.call('DEL', k_idem(it[1], it[4])) end
  end
  redis.call('DEL', k_run(run_id), k_run_interrupts(run_id), k_run_events(run_id),
    k_run_open(run_id))
  redis.call('ZREM', K_RUNS_DUE, run_id)
  redis.call('ZREM', K_ENDED, member)
end
for key in pairs(touched) do
  local n = redis.call('ZCARD', key)
  if n > 0 and n <= COMPACT_MAX and redis.pcall('OBJECT', 'ENCODING', key) == 'skiplist' then
    redis.call('ZRANGESTORE', K_SCRATCH, key, 0, -1)
    redis.call('RENAME', K_SCRATCH, key)
  end
end
return #due
"""

# Redis's default zset-max-listpack-entries: a sorted set this small can be compact.
COMPACT_MAX = 128

# backfill. ARGV: 2 status, 3 after (seq), 4 batch. Gives the retention of ``retain``
# to runs of that ended status, seq after ``after``, whose records have no TTL (they
# ended before retention applied), as if it started when they last changed. Returns
# {seq of the last run looked at ('' at the end of the index), how many it retained}.
# Touches: runs by status, ended runs, the records of the runs it retains, tombstones.
BACKFILL = """
local rows = redis.call('ZRANGEBYSCORE', k_rstatus(ARGV[2]), '(' .. ARGV[3], '+inf',
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))
local done = 0
for i = 1, #rows, 2 do
  local run_id = rows[i]
  local ttl = redis.call('PTTL', k_run(run_id))
  if ttl == -2 then
    -- nothing left to read its other indexes from
    redis.call('ZREM', k_rstatus(ARGV[2]), run_id)
    redis.call('ZREM', K_RUNS, run_id)
  elseif ttl == -1 then
    local run = hgetall(k_run(run_id))
    if TERMINAL[run.status] then
      retain(run, tonumber(run.updated_ms) or tonumber(NOW))
      done = done + 1
    end
  end
end
local last = ''
if #rows == 2 * tonumber(ARGV[4]) then last = rows[#rows] end
return {last, done}
"""

# audit. ARGV: 2 interrupt id, 3 entry. Appends an entry refused outside the resolve and
# expire steps; the log expires with its interrupt, and an interrupt that no longer
# exists gets none. Returns 1 when it was appended. Touches: the interrupt, its audit.
AUDIT = """
local ttl = redis.call('PTTL', k_interrupt(ARGV[2]))
if ttl == -2 then return 0 end
audit(ARGV[2], ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', k_audit(ARGV[2]), ttl) end
return 1
"""

RETENTION = {
    "sweep": SWEEP.replace("COMPACT_MAX", str(COMPACT_MAX)),
    "backfill": BACKFILL,
    "audit": AUDIT,
}

"""The Lua every transition script shares: records, indexes, events and the steps
(close, mark applied, end run, retain) that several transitions take."""

from __future__ import annotations

# arq's enqueue (a job that exists, or whose result is still kept, is not queued again)
# and the wake-up naming the job, as one Lua function: the queueing script
# (broker/core/jobs.py) and the transitions that queue their run's job in the same step
# (resolve) share it.
QUEUE_JOB = """
local function queue_job(k_job, k_result, k_queue, k_wake, job_id, payload, ttl_ms, score, wake)
  if redis.call('EXISTS', k_job, k_result) > 0 then return 0 end
  redis.call('SET', k_job, payload, 'PX', ttl_ms)
  redis.call('ZADD', k_queue, score, job_id)
  if wake == '1' then redis.call('PUBLISH', k_wake, job_id) end
  return 1
end
"""

PRELUDE = (
    QUEUE_JOB
    + """
local NOW = ARGV[1]
local TERMINAL = {succeeded = true, failed = true, cancelled = true}

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- a retry with an idempotency key gets the kept response back. Touching the key (its
-- TTL unchanged) makes the replay a write, so the caller's WAIT covers the original
-- change too: a replayed 2xx is no less durable than the first.
local function replay(key, prior)
  redis.call('PEXPIRE', key, math.max(redis.call('PTTL', key), 1))
  return prior
end

-- cjson encodes an empty table as an object
local function json_ids(ids)
  if #ids == 0 then return '[]' end
  return cjson.encode(ids)
end

local function json_str(s)
  if s == nil or s == '' then return 'null' end
  return cjson.encode(s)
end

-- One event in the global stream and in its run's log (broker/core/runlog.py) under the
-- SAME id, so one id is a resume cursor in both. Global ids only grow, so a log stays
-- in id order. The log's copy leaves out the run, thread and agent ids, which are the
-- same for every entry of a log: its reader puts them back.
local function emit(run, etype, data)
  local head = '{"type":' .. cjson.encode(etype) .. ',"ts":' .. NOW
  local tail = ',"data":' .. data .. '}'
  local ev = head .. ',"run_id":' .. cjson.encode(run.id) .. ',"thread_id":'
    .. cjson.encode(run.thread_id) .. ',"agent_id":' .. cjson.encode(run.agent_id) .. tail
  local eid = redis.call('XADD', K_EVENTS, 'MAXLEN', '~', MAXLEN_GLOBAL, '*', 'event', ev)
  local log = k_run_events(run.id)
  if redis.call('RPUSH', log, eid .. ' ' .. head .. tail) > MAXLEN_RUN then
    redis.call('LTRIM', log, -MAXLEN_RUN, -1)
  end
  return eid
end

-- appends an entry to the interrupt's capped audit log
local function audit(iid, entry)
  if redis.call('RPUSH', k_audit(iid), entry) > AUDIT_MAX then
    redis.call('LTRIM', k_audit(iid), -AUDIT_MAX, -1)
  end
end

-- the entry of the step that decides the interrupt (resolve, expire): appended to the
-- capped log, and kept apart as well, so no number of refusals after it trims it away
local function audit_decision(iid, entry)
  audit(iid, entry)
  redis.call('SET', k_audit_decision(iid), entry)
end

-- the indexes of an interrupt in a status; a pending one with assignees is in each
-- assignee's index too (an unassigned one costs nothing more)
local function interrupt_indexes(status, h)
  local t = h.type
  if t == nil or t == '' then t = '_' end  -- untyped ones share one type index
  local out = {k_istatus(status), k_iagent(status, h.agent_id), k_ithread(status, h.thread_id),
    k_itype(status, t)}
  if status == 'pending' and h.assignees and h.assignees ~= '' then
    for _, name in ipairs(cjson.decode(h.assignees)) do
      out[#out + 1] = k_iassignee(status, name)
    end
  end
  return out
end

-- whether two JSON lists of names share one
local function any_named(names_json, others_json)
  local set = {}
  for _, name in ipairs(cjson.decode(names_json)) do set[name] = true end
  for _, name in ipairs(cjson.decode(others_json)) do
    if set[name] then return true end
  end
  return false
end

local function move_interrupt(h, from, to, score)
  if from then
    for _, key in ipairs(interrupt_indexes(from, h)) do redis.call('ZREM', key, h.id) end
  end
  for _, key in ipairs(interrupt_indexes(to, h)) do redis.call('ZADD', key, score, h.id) end
end

local function unapplied(h)
  return (h.status == 'resolved' or h.status == 'expired')
    and h.resolution ~= nil and h.resolution ~= '' and h.applied ~= '1'
end

local function open_interrupts(run_id)
  local out = {}
  for _, iid in ipairs(redis.call('ZRANGE', k_run_open(run_id), 0, -1)) do
    local h = hgetall(k_interrupt(iid))
    if h then table.insert(out, h) end
  end
  return out
end

-- the interrupt the deadline pass acts on (expire, escalate), while it is pending; else
-- nil and the reply (its deadline entry dropped: nothing is due for it any more)
local function due_pending(iid)
  local h = hgetall(k_interrupt(iid))
  if not h then
    redis.call('ZREM', K_DEADLINES, iid)
    return nil, {'gone'}
  end
  if h.status ~= 'pending' then
    redis.call('ZREM', K_DEADLINES, iid)
    return nil, {'closed', h.status}
  end
  return h
end

-- the interrupt and its run for a person's change (vote, assign): pending, of an
-- unfinished run, before its deadline; else nil and the refusal, as resolve refuses
local function open_pending(iid)
  local h = hgetall(k_interrupt(iid))
  if not h then return nil, nil, {'not_found'} end
  if h.status ~= 'pending' then return nil, nil, {'conflict', h.status, h.resolution or ''} end
  local run = hgetall(k_run(h.run_id))
  if not run or TERMINAL[run.status] then return nil, nil, {'conflict', 'cancelled', ''} end
  if h.expires_at_ms and h.expires_at_ms ~= '' and tonumber(h.expires_at_ms) <= tonumber(NOW) then
    return nil, nil, {'expired', h.expires_at_ms}
  end
  return h, run
end

-- an answer held in its undo window (docs/design.md, "Undo window"): when it closes
local function held_until(h)
  if h.status ~= 'accepted' then return nil end
  return tonumber(h.held_until_ms)
end

-- the window closed: the held answer becomes the resolution, announced as any is
local function release_held(h)
  local seq = redis.call('INCR', K_SEQ)
  redis.call('HSET', k_interrupt(h.id), 'status', 'resolved', 'updated_ms', NOW,
    'resolved_seq', seq)
  redis.call('HDEL', k_interrupt(h.id), 'held_until_ms', 'held_by', 'held_event')
  move_interrupt(h, 'accepted', 'resolved', seq)
  redis.call('INCR', K_IVERSION)
  emit({id = h.run_id, thread_id = h.thread_id, agent_id = h.agent_id}, 'interrupt.resolved',
    h.held_event)
  h.status = 'resolved'
end

-- when the run is next due for its open interrupts: now for an answer to apply, the
-- earliest close of an undo window for held ones, else nil
local function due_at(run_id)
  local at = nil
  for _, h in ipairs(open_interrupts(run_id)) do
    if unapplied(h) then return tonumber(NOW) end
    local u = held_until(h)
    if u and (at == nil or u < at) then at = u end
  end
  return at
end

-- Whether an attempt may record on the run: it is running, and (when the attempt says
-- which job it is) no later attempt has taken it over since.
local function owns(run, job_id)
  return run ~= nil and run.status == 'running' and (job_id == '' or run.job_id == job_id)
end

-- The lease fence (broker/core/fence.py): an attempt that passes its thread's fence key
-- as KEYS[1] and its lease token as the last ARGV writes only while no other holder has
-- taken the thread since it did.
local function fenced()
  return #KEYS > 0 and redis.call('GET', KEYS[1]) ~= ARGV[#ARGV]
end

local function set_run_status(run, status, fields)
  redis.call('HSET', k_run(run.id), 'status', status, 'updated_ms', NOW, unpack(fields))
  for i = 1, #fields, 2 do run[fields[i]] = fields[i + 1] end
  run.updated_ms = NOW
  if run.status ~= status then
    redis.call('ZREM', k_rstatus(run.status), run.id)
    redis.call('ZADD', k_rstatus(status), tonumber(run.seq) or 0, run.id)
  end
  if TERMINAL[status] then
    -- the thread is free for its next run
    if redis.call('GET', k_thread_active(run.thread_id)) == run.id then
      redis.call('DEL', k_thread_active(run.thread_id))
    end
    redis.call('ZREM', K_RUNS_DUE, run.id)
    redis.call('DEL', k_run_open(run.id))
  end
  run.status = status
end

-- close: an open interrupt the run no longer waits for becomes cancelled (replaced_by:
-- the new record of a question raised again with another fingerprint, or nil)
local function close_interrupt(run, h, replaced_by)
  redis.call('HSET', k_interrupt(h.id), 'status', 'cancelled', 'updated_ms', NOW)
  move_interrupt(h, h.status, 'cancelled', tonumber(h.seq) or 0)
  redis.call('ZREM', K_DEADLINES, h.id)
  redis.call('ZREM', k_run_open(run.id), h.id)
  local extra = ''
  if replaced_by then extra = ',"replaced_by":' .. cjson.encode(replaced_by) end
  emit(run, 'interrupt.cancelled',
    '{"interrupt_id":' .. cjson.encode(h.id) .. ',"type":' .. json_str(h.type) .. extra .. '}')
end

-- mark applied: the graph has had these answers
local function mark_applied(run_id, ids)
  for _, iid in ipairs(ids) do
    redis.call('HSET', k_interrupt(iid), 'applied', '1')
    redis.call('ZREM', k_run_open(run_id), iid)
  end
end

-- retain: an ended run's records (the run, its interrupts, their audit logs and
-- idempotency keys, its event stream) expire RETENTION_MS after ``ended`` (ms), and a
-- tombstone holding the agent id outlives each by TOMBSTONE_MS, so a read can tell an
-- expired record from an unknown id. The ended set keeps, scored by the expiry, what
-- the sweep needs to drop the index entries then: the run's agent, thread and status,
-- and each interrupt's id, status, type and idempotency key (they change no more once
-- the run has ended).
local function retain(run, ended)
  if RETENTION_MS <= 0 then return end
  local ttl = math.max(ended + RETENTION_MS - tonumber(NOW), 1)
  local tomb = ttl + TOMBSTONE_MS
  local items = {}
  for _, iid in ipairs(redis.call('ZRANGE', k_run_interrupts(run.id), 0, -1)) do
    local st = redis.call('HMGET', k_interrupt(iid), 'status', 'type', 'idem_key')
    redis.call('PEXPIRE', k_interrupt(iid), ttl)
    redis.call('PEXPIRE', k_audit(iid), ttl)
    redis.call('PEXPIRE', k_audit_decision(iid), ttl)
    if st[3] then
      -- the winning answer's idempotency key: never kept past its interrupt
      local left = redis.call('PTTL', k_idem(iid, st[3]))
      if left == -1 or left > ttl then redis.call('PEXPIRE', k_idem(iid, st[3]), ttl) end
    end
    if TOMBSTONE_MS > 0 then redis.call('SET', k_gone_interrupt(iid), run.agent_id, 'PX', tomb) end
    table.insert(items, {iid, st[1] or '', st[2] or '', st[3] or ''})
  end
  for _, key in ipairs({k_run(run.id), k_run_interrupts(run.id), k_run_events(run.id)}) do
    redis.call('PEXPIRE', key, ttl)
  end
  if TOMBSTONE_MS > 0 then redis.call('SET', k_gone_run(run.id), run.agent_id, 'PX', tomb) end
  redis.call('ZADD', K_ENDED, tonumber(NOW) + ttl, cjson.encode({run.id, run.agent_id,
    run.thread_id, run.status, items}))
end

-- Ends an unfinished run: its pending interrupts, and answers still held in an undo
-- window, close first, so a client reading the run's stream sees them close before the
-- run ends.
local function end_run(run, status, fields, data)
  local closed = false
  for _, h in ipairs(open_interrupts(run.id)) do
    if h.status == 'pending' or h.status == 'accepted' then
      close_interrupt(run, h)
      redis.call('HDEL', k_interrupt(h.id), 'held_until_ms', 'held_by', 'held_event')
      closed = true
    end
  end
  if closed then redis.call('INCR', K_IVERSION) end
  set_run_status(run, status, fields)
  emit(run, 'run.' .. status, data)
  retain(run, tonumber(NOW))
end
"""
)

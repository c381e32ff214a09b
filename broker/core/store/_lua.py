"""The Lua of the state machine: one script per transition, over a shared prelude.

Each script is compiled once per store with the key builders of broker/core/keys.py and
the stream and audit caps baked in. ARGV[1] is always the caller's clock (ms). Keys a
script derives from a record (its indexes, its run) are built with the key builders;
``Touches`` lists them beside each script.
"""

from __future__ import annotations

from broker.core.store._lua_assignment import ASSIGNMENT
from broker.core.store._lua_escalation import ESCALATION
from broker.core.store._lua_resolve import RESOLVE
from broker.core.store._lua_retention import RETENTION
from broker.core.store._lua_threads import THREADS
from broker.core.store._lua_undo import UNDO
from broker.core.store._lua_votes import VOTES
from broker.core.store._prelude import PRELUDE

# create run. KEYS: 1 idempotency key. ARGV: 2 run id, 3 thread id, 4 agent id, 5 run
# fields (flat JSON list), 6 run.queued data, 7 idempotency payload digest ('' when no
# key), 8 response to keep for a retry, 9 idempotency ttl ms. A retry with the key
# gets {'idempotent', kept response} and starts nothing.
# Touches: run, thread active, runs (all, status, agent, thread), seq, runs due, events.
CREATE_RUN = """
if ARGV[7] ~= '' then
  local prior = redis.call('GET', KEYS[1])
  if prior then return {'idempotent', replay(KEYS[1], prior)} end
end
local run = {id = ARGV[2], thread_id = ARGV[3], agent_id = ARGV[4]}
local active = redis.call('GET', k_thread_active(run.thread_id))
if active then return {'busy', active} end
local seq = redis.call('INCR', K_SEQ)
redis.call('HSET', k_run(run.id), 'seq', seq, unpack(cjson.decode(ARGV[5])))
redis.call('SET', k_thread_active(run.thread_id), run.id)
for _, key in ipairs({K_RUNS, k_rstatus('queued'), k_ragent(run.agent_id),
    k_rthread(run.thread_id)}) do
  redis.call('ZADD', key, seq, run.id)
end
redis.call('ZADD', K_RUNS_DUE, NOW, run.id)
emit(run, 'run.queued', ARGV[6])
if ARGV[7] ~= '' then redis.call('SET', KEYS[1], ARGV[8], 'PX', ARGV[9]) end
return {'ok', tostring(seq)}
"""

# begin attempt. ARGV: 2 run id, 3 the thread's checkpoint id now, 4 job id, 5 lease
# token (with the fence key as KEYS[1]; both optional).
# queued -> running (start), interrupted with unapplied answers -> running (resume),
# running -> running (recovery: phase, base and answers stay those of the attempt that
# died). An answer whose undo window has closed is released (accepted -> resolved) and
# applied; one still in its window is not: with nothing else to apply, {'held', when the
# first window closes} (the run is due then). Returns {'ok', prior status, run hash,
# answer hashes...}, or {'fenced'} when another holder has taken the thread.
# Touches: run, runs by status, run open, its interrupts, runs due, events.
BEGIN_ATTEMPT = """
if fenced() then return {'fenced'} end
local run = hgetall(k_run(ARGV[2]))
if not run then return {'missing'} end
if TERMINAL[run.status] then
  redis.call('ZREM', K_RUNS_DUE, run.id)
  return {'finished', run.status}
end
local prior = run.status
local answers, ids, fields = {}, {}, {}
if prior == 'queued' then
  fields = {'phase', 'start', 'base_checkpoint', ARGV[3], 'applying', '[]'}
elseif prior == 'interrupted' then
  local held = nil
  for _, h in ipairs(open_interrupts(run.id)) do
    local u = held_until(h)
    if u and u <= tonumber(NOW) then
      release_held(h)  -- its undo window closed: this attempt applies it
    elseif u and (held == nil or u < held) then
      held = u
    end
    if unapplied(h) then
      table.insert(answers, redis.call('HGETALL', k_interrupt(h.id)))
      table.insert(ids, h.id)
    end
  end
  if #ids == 0 and held then
    -- answers still in their undo window: due again when the first closes
    redis.call('ZADD', K_RUNS_DUE, held, run.id)
    return {'held', tostring(held)}
  end
  -- a duplicate delivery, or an answer already applied
  if #ids == 0 then return {'idle'} end
  fields = {'phase', 'resume', 'base_checkpoint', ARGV[3], 'applying', json_ids(ids)}
elseif prior == 'running' then
  for _, iid in ipairs(cjson.decode(run.applying or '[]')) do
    local flat = redis.call('HGETALL', k_interrupt(iid))
    if #flat > 0 then table.insert(answers, flat) end
  end
else
  return {'unexpected', prior}
end
local attempts = tostring((tonumber(run.attempts) or 0) + 1)
table.insert(fields, 'job_id')
table.insert(fields, ARGV[4])
table.insert(fields, 'attempts')
table.insert(fields, attempts)
set_run_status(run, 'running', fields)
if prior == 'queued' then
  emit(run, 'run.started', '{}')
elseif prior == 'interrupted' then
  emit(run, 'run.resumed', '{"interrupt_ids":' .. json_ids(ids) .. '}')
end
local flat = {}
for field, value in pairs(run) do
  table.insert(flat, field)
  table.insert(flat, value)
end
local out = {'ok', prior, flat}
for _, flat in ipairs(answers) do table.insert(out, flat) end
return out
"""

# record interrupts. ARGV: 2 run id, 3 job id, 4 applied ids (JSON), 5 the interrupts the
# graph stopped on (JSON list of {lg_id, id, fingerprint, type, fields, deadline, data}),
# 6 lease token (with the fence key as KEYS[1]; both optional).
# An interrupt raised again while its record is open keeps that record, unless it comes
# with another fingerprint (a node that ran again asked something else): then the old
# record closes, its answer (if any) unapplied, and the question is a new record. Open
# ones not raised again close; the rest are new. Returns {'ok', new ids...}.
# Touches: run, runs by status, run open, run interrupts, interrupts and their indexes,
# deadlines, seq, interrupts version, runs due, events.
RECORD_INTERRUPTS = """
local run = hgetall(k_run(ARGV[2]))
if fenced() or not owns(run, ARGV[3]) then return {'not_owner'} end
mark_applied(run.id, cjson.decode(ARGV[4]))
local open = open_interrupts(run.id)
local open_by_lg = {}
for _, h in ipairs(open) do open_by_lg[h.lg_id] = h end
local raised, waiting, new_ids, due, held = {}, {}, {}, false, nil
for _, c in ipairs(cjson.decode(ARGV[5])) do
  raised[c.lg_id] = true
  local h = open_by_lg[c.lg_id]
  if h and (h.fingerprint or '') ~= '' and h.fingerprint ~= c.fingerprint then
    -- never the old answer for the new question (docs/design.md, "Answers bound to
    -- what was shown")
    close_interrupt(run, h, c.id)
    h = nil
  end
  if h then
    if h.status == 'pending' then
      table.insert(waiting, h.id)
    elseif unapplied(h) then
      due = true
    elseif held_until(h) and (held == nil or held_until(h) < held) then
      held = held_until(h)  -- an answer in its undo window
    end
  else
    local seq = redis.call('INCR', K_SEQ)
    redis.call('HSET', k_interrupt(c.id), 'seq', seq, unpack(c.fields))
    redis.call('ZADD', k_run_interrupts(run.id), seq, c.id)
    redis.call('ZADD', k_run_open(run.id), seq, c.id)
    move_interrupt({id = c.id, agent_id = run.agent_id, thread_id = run.thread_id, type = c.type,
      assignees = c.assignees}, nil, 'pending', seq)
    if c.deadline > 0 then redis.call('ZADD', K_DEADLINES, c.deadline, c.id) end
    emit(run, 'interrupt.created', c.data)
    table.insert(new_ids, c.id)
  end
end
for _, h in ipairs(open) do
  -- the graph moved past it without an answer (e.g. an edited state)
  if not raised[h.lg_id] then close_interrupt(run, h) end
end
redis.call('INCR', K_IVERSION)
set_run_status(run, 'interrupted', {'applying', '[]'})
if due then
  redis.call('ZADD', K_RUNS_DUE, 'LT', NOW, run.id)
elseif held then
  redis.call('ZADD', K_RUNS_DUE, held, run.id)
else
  redis.call('ZREM', K_RUNS_DUE, run.id)
end
for _, iid in ipairs(new_ids) do table.insert(waiting, iid) end
emit(run, 'run.interrupted', '{"interrupt_ids":' .. json_ids(waiting) .. '}')
local out = {'ok'}
for _, iid in ipairs(new_ids) do table.insert(out, iid) end
return out
"""

# record finish. ARGV: 2 run id, 3 job id, 4 status (succeeded or failed), 5 applied ids
# (JSON), 6 run fields (flat JSON list: output or error), 7 event data, 8 lease token
# (with the fence key as KEYS[1]; both optional).
# Touches: run, runs by status, thread active, run open, open interrupts and their
# indexes, deadlines, interrupts version, runs due, events; and (retain) the TTL of the
# run's records, their tombstones, ended runs.
RECORD_FINISH = """
local run = hgetall(k_run(ARGV[2]))
if fenced() or not owns(run, ARGV[3]) then return {'not_owner'} end
mark_applied(run.id, cjson.decode(ARGV[5]))
local fields = cjson.decode(ARGV[6])
table.insert(fields, 'applying')
table.insert(fields, '[]')
end_run(run, ARGV[4], fields, ARGV[7])
return {'ok'}
"""

# cancel (or fail from outside the attempt). ARGV: 2 run id, 3 status (cancelled or
# failed), 4 run fields (flat JSON list), 5 event data. Returns {'ok', job id} so the
# caller can stop the attempt executing it. Touches: as record finish.
CANCEL = """
local run = hgetall(k_run(ARGV[2]))
if not run then return {'missing'} end
if TERMINAL[run.status] then return {'finished', run.status} end
local fields = cjson.decode(ARGV[4])
table.insert(fields, 'cancel_requested')
table.insert(fields, '1')
end_run(run, ARGV[3], fields, ARGV[5])
return {'ok', run.job_id or ''}
"""

# expire: the deadline passed with no answer. With a default, it is recorded as the
# resolution and the run is due, as a person's answer would be; otherwise the run ends
# (failed or cancelled) in the same step. A person's answer racing this finds the
# status no longer pending (or the deadline past), so exactly one wins.
# ARGV: 2 interrupt id, 3 resolution ('' when none), 4 run end status ('' when it
# resumes), 5 event data, 6 audit entry, 7 run fields when it ends (flat JSON list),
# 8 run end event data. Returns {'ok', run id, job id}.
# Touches: the interrupt and its indexes, its run (as record finish), seq, deadlines,
# interrupts version, runs due, events, audit, audit decision.
EXPIRE = """
local iid = ARGV[2]
local h, gone = due_pending(iid)
if not h then return gone end
if not h.expires_at_ms or h.expires_at_ms == '' or tonumber(h.expires_at_ms) > tonumber(NOW) then
  return {'not_due'}
end
local run = hgetall(k_run(h.run_id)) or {id = h.run_id, thread_id = h.thread_id,
  agent_id = h.agent_id}
local seq = redis.call('INCR', K_SEQ)
redis.call('HSET', k_interrupt(iid), 'status', 'expired', 'updated_ms', NOW, 'resolved_seq', seq)
if ARGV[3] ~= '' then
  redis.call('HSET', k_interrupt(iid), 'resolution', ARGV[3])
  redis.call('ZADD', K_RUNS_DUE, 'LT', NOW, run.id)
else
  redis.call('ZREM', k_run_open(run.id), iid)
end
move_interrupt(h, 'pending', 'expired', seq)
redis.call('INCR', K_IVERSION)
redis.call('ZREM', K_DEADLINES, iid)
emit(run, 'interrupt.expired', ARGV[5])
audit_decision(iid, ARGV[6])
if ARGV[4] ~= '' and run.status and not TERMINAL[run.status] then
  local fields = cjson.decode(ARGV[7])
  table.insert(fields, 'cancel_requested')
  table.insert(fields, '1')
  end_run(run, ARGV[4], fields, ARGV[8])
end
return {'ok', run.id, run.job_id or ''}
"""

# Appends one event (a message or tool-call delta) to the global and run streams.
# ARGV: 2 run id, 3 thread id, 4 agent id, 5 event type, 6 event data.
EMIT = """
return emit({id = ARGV[2], thread_id = ARGV[3], agent_id = ARGV[4]}, ARGV[5], ARGV[6])
"""

TRANSITIONS = {
    "create_run": CREATE_RUN,
    "begin_attempt": BEGIN_ATTEMPT,
    "record_interrupts": RECORD_INTERRUPTS,
    "record_finish": RECORD_FINISH,
    "cancel": CANCEL,
    "resolve": RESOLVE,
    "expire": EXPIRE,
    **ASSIGNMENT,
    **VOTES,
    **ESCALATION,
    **UNDO,
    "emit": EMIT,
    **RETENTION,
    **THREADS,
}


def compile_script(
    body: str,
    key_defs: str,
    *,
    maxlen_global: int,
    maxlen_run: int,
    audit_max: int,
    retention_ms: int = 0,
    tombstone_ms: int = 0,
) -> str:
    """One transition's full source: key builders, caps, the prelude, then its body."""
    caps = (
        f"local MAXLEN_GLOBAL = {int(maxlen_global)}\n"
        f"local MAXLEN_RUN = {int(maxlen_run)}\n"
        f"local AUDIT_MAX = {int(audit_max)}\n"
        f"local RETENTION_MS = {int(retention_ms)}\n"
        f"local TOMBSTONE_MS = {int(tombstone_ms)}\n"
    )
    return f"{key_defs}\n{caps}{PRELUDE}\n{body}"

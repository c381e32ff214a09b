"""The Lua of resolve: one answer taken for a pending interrupt (broker/core/channel.py).

It checks, in one step, everything that can have changed since the caller's own checks
(the status, the run, the deadline, the assignees, the fingerprint), records the
answer, and queues the run's job; with an undo window it holds the answer as accepted
instead (docs/design.md, "Undo window").
"""

from __future__ import annotations

# resolve. KEYS: 1 idempotency key, 2 single-use nonce key. ARGV: 2 interrupt id,
# 3 resolution, 4 event data, 5 response to keep for a retry, 6 idempotency payload
# digest ('' when no key), 7 idempotency ttl ms, 8 audit entry, 9 nonce ('' when none),
# 10 nonce ttl ms, 11 idempotency key digest ('' when none; kept on the interrupt, so the
# key expires with it once its run ends), 12 the answerer's names (JSON list; '' when
# it may answer whoever is assigned): an interrupt with assignees takes the answer only
# if one of them is still among its assignees now (a reassignment may have come between
# the caller's check and this step); 13 the fingerprint the answer is bound to ('' when
# none): the interrupt takes it only if it still has that one; and the run's job, queued
# in the same step when ARGV 14 names it: KEYS 3-6 its key, its result's key, the queue,
# the wake channel; ARGV 14 job id, 15 the job as arq serializes it, 16 its ttl ms, 17
# "1" to wake (ARGV 14-17 are '' when no job is queued). With an undo window, ARGV 18
# when it closes (ms; '' when none), 19 who may withdraw the answer, 20 the
# interrupt.accepted event data: the interrupt is held as accepted (ARGV 4, the
# interrupt.resolved event, is kept for the window's close) and its job is queued for
# then.
# Touches: the interrupt and its indexes, its run, seq, deadlines, interrupts version,
# runs due, events, audit, audit decision, and the job.
RESOLVE = """
local iid = ARGV[2]
if ARGV[6] ~= '' then
  local prior = redis.call('GET', KEYS[1])
  if prior then return {'idempotent', replay(KEYS[1], prior)} end
end
local h = hgetall(k_interrupt(iid))
if not h then return {'not_found'} end
if ARGV[9] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then return {'used'} end
if h.status ~= 'pending' then return {'conflict', h.status, h.resolution or ''} end
-- an interrupt of a run that has ended takes no answer (closing them is the same step)
if TERMINAL[redis.call('HGET', k_run(h.run_id), 'status')] then
  return {'conflict', 'cancelled', ''}
end
if h.expires_at_ms and h.expires_at_ms ~= '' and tonumber(h.expires_at_ms) <= tonumber(NOW) then
  return {'expired', h.expires_at_ms}
end
if ARGV[12] ~= '' and h.assignees and not any_named(h.assignees, ARGV[12]) then
  return {'not_assignee'}
end
if ARGV[13] ~= '' and (h.fingerprint or '') ~= ARGV[13] then
  return {'fingerprint_mismatch', h.fingerprint or ''}
end
local seq = redis.call('INCR', K_SEQ)
local run = {id = h.run_id, thread_id = h.thread_id, agent_id = h.agent_id}
local due = NOW
if ARGV[18] and ARGV[18] ~= '' then
  -- held in its undo window: the resume is queued for when the window closes
  due = ARGV[18]
  redis.call('HSET', k_interrupt(iid), 'status', 'accepted', 'resolution', ARGV[3],
    'updated_ms', NOW, 'held_until_ms', due, 'held_by', ARGV[19], 'held_event', ARGV[4])
  move_interrupt(h, 'pending', 'accepted', seq)
  emit(run, 'interrupt.accepted', ARGV[20])
else
  redis.call('HSET', k_interrupt(iid), 'status', 'resolved', 'resolution', ARGV[3],
    'updated_ms', NOW, 'resolved_seq', seq)
  move_interrupt(h, 'pending', 'resolved', seq)
  emit(run, 'interrupt.resolved', ARGV[4])
end
redis.call('INCR', K_IVERSION)
redis.call('ZADD', K_RUNS_DUE, 'LT', due, h.run_id)
redis.call('ZREM', K_DEADLINES, iid)
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[7])
  redis.call('HSET', k_interrupt(iid), 'idem_key', ARGV[11])
end
if ARGV[9] ~= '' then redis.call('SET', KEYS[2], iid, 'PX', ARGV[10]) end
audit_decision(iid, ARGV[8])
if ARGV[14] and ARGV[14] ~= '' then
  queue_job(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[14], ARGV[15], ARGV[16], due, ARGV[17])
end
return {'ok'}
"""

"""The Lua of the undo window (docs/design.md, "Undo window").

An answer to an interrupt with an undo window is held as ``accepted`` by resolve, with
its run's job queued for when the window closes. Withdraw puts it back to ``pending``
while the window is open; begin attempt releases it (``release_held`` in the prelude)
once the window has closed. Both check the status and the time in one step, so of a
withdrawal and the window's close exactly one wins, whatever the processes' clocks.
"""

from __future__ import annotations

# withdraw. KEYS: 1 the run's job, 2 its result, 3 the queue. ARGV: 2 interrupt id,
# 3 who withdraws, 4 '1' when they may withdraw anyone's answer, 5 audit entry,
# 6 interrupt.withdrawn event data, 7 the deadline to restore (ms; '' when none), 8 the
# job id. Returns {'ok'}, or why not: 'not_found', {'not_held', status} (a run that
# ended closed it), {'window_closed', when} (the window, or the interrupt's deadline,
# passed), 'not_author'.
# Touches: the interrupt and its indexes, its run's open interrupts, seq, deadlines,
# interrupts version, runs due, events, audit, audit decision, and the job.
WITHDRAW = """
local iid = ARGV[2]
local h = hgetall(k_interrupt(iid))
if not h then return {'not_found'} end
local until_ms = held_until(h)
if not until_ms then return {'not_held', h.status} end
if until_ms <= tonumber(NOW) then return {'window_closed', h.held_until_ms} end
-- past the interrupt's deadline the answer stands: pending again, it could only expire
local expires = tonumber(h.expires_at_ms or '')
if expires and expires <= tonumber(NOW) then return {'window_closed', h.expires_at_ms} end
if ARGV[4] ~= '1' and h.held_by ~= ARGV[3] then return {'not_author'} end
redis.call('HSET', k_interrupt(iid), 'status', 'pending', 'updated_ms', NOW)
redis.call('HDEL', k_interrupt(iid), 'resolution', 'held_until_ms', 'held_by', 'held_event',
  'idem_key')
-- a retry of the withdrawn answer's request is a new answer, not a replay of it
if h.idem_key and h.idem_key ~= '' then redis.call('DEL', k_idem(iid, h.idem_key)) end
move_interrupt(h, 'accepted', 'pending', tonumber(h.seq) or 0)
redis.call('INCR', K_IVERSION)
if ARGV[7] ~= '' then redis.call('ZADD', K_DEADLINES, ARGV[7], iid) end
-- the resume it queued goes; the run stays due only for what else it holds
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[8])
local at = due_at(h.run_id)
if at then
  redis.call('ZADD', K_RUNS_DUE, at, h.run_id)
else
  redis.call('ZREM', K_RUNS_DUE, h.run_id)
end
emit({id = h.run_id, thread_id = h.thread_id, agent_id = h.agent_id}, 'interrupt.withdrawn',
  ARGV[6])
audit(iid, ARGV[5])
redis.call('DEL', k_audit_decision(iid))
return {'ok'}
"""

UNDO = {"withdraw": WITHDRAW}

"""The Lua of escalation ladders: one intermediate step of a waiting interrupt's ladder.

The last step of a ladder, when it ends the wait, is the interrupt's expiry and is run
by the expire transition; this script runs the steps before it (broker/core/escalation.py).
"""

from __future__ import annotations

from broker.core.store._lua_assignment import REASSIGN

# escalate: the interrupt's next intermediate step is due. ARGV: 2 interrupt id, 3 the
# index of the step the caller read as next (a step runs once: a pass that read an
# older state finds 'stale'), 4 the event's data and 5 the audit entry (JSON objects, to
# which the step adds who is assigned, or was). A 'remind' step emits
# interrupt.reminded; an 'assign' step reassigns as the assign transition does (watchers
# kept) and emits interrupt.assigned. Either way the deadlines set scores the interrupt
# by the step after (or its expiry, or drops it when it has neither) in the same step.
# Like resolve and expire, it moves only a pending interrupt of an unfinished run
# before its expiry: of a person's answer and a step, whichever runs first holds, and a
# step never runs after an answer ('closed'). Returns {'ok', kind}, or 'gone',
# 'closed', 'stale', 'not_due', 'expired' (the expiry is due: the caller expires it).
# Touches: the interrupt and its assignee indexes, deadlines, interrupts version,
# events, audit.
ESCALATE = (
    REASSIGN
    + """
local iid = ARGV[2]
local h, gone = due_pending(iid)
if not h then return gone end
local run = hgetall(k_run(h.run_id))
if not run or TERMINAL[run.status] then return {'closed', 'cancelled'} end
local done = tonumber(h.escalation_next or '0')
if done ~= tonumber(ARGV[3]) then return {'stale'} end
local steps = cjson.decode(h.escalation or '[]')
local step = steps[done + 1]
if not step or step.at_ms > tonumber(NOW) then return {'not_due'} end
if h.expires_at_ms and h.expires_at_ms ~= '' and tonumber(h.expires_at_ms) <= tonumber(NOW) then
  return {'expired'}
end
local kind = 'remind'
local watchers = h.watchers or ''
local head = '{"watchers":' .. (h.watchers or '[]') .. ','
if step.assign then
  kind = 'assign'
  reassign(h, run, cjson.encode(step.assign), watchers, head .. string.sub(ARGV[4], 2),
    head .. string.sub(ARGV[5], 2))
else
  local who = '{"assignees":' .. (h.assignees or '[]') .. ',' .. string.sub(head, 2)
  redis.call('HSET', k_interrupt(iid), 'updated_ms', NOW)
  redis.call('INCR', K_IVERSION)
  emit(run, 'interrupt.reminded', who .. string.sub(ARGV[4], 2))
  audit(iid, who .. string.sub(ARGV[5], 2))
end
redis.call('HSET', k_interrupt(iid), 'escalation_next', done + 1)
local after = steps[done + 2]
if after then
  redis.call('ZADD', K_DEADLINES, string.format('%d', after.at_ms), iid)
elseif h.expires_at_ms and h.expires_at_ms ~= '' then
  redis.call('ZADD', K_DEADLINES, h.expires_at_ms, iid)
else
  redis.call('ZREM', K_DEADLINES, iid)
end
return {'ok', kind}
"""
)

ESCALATION = {"escalate": ESCALATE}

"""The Lua of assignment: who may answer a pending interrupt changes.

The assignee indexes themselves are kept by the prelude's ``interrupt_indexes``: a
pending interrupt with assignees is in each assignee's index, and leaves them in the
step that moves it out of pending (resolve, expire, close).
"""

from __future__ import annotations

# Who may answer a pending interrupt ``h`` of the unfinished ``run`` changes: assignees
# and watchers (each a JSON list, '' for none) replace its own; the interrupt leaves the
# indexes of its previous assignees and enters those of the new ones; the event's data
# and the audit entry (JSON objects) get the previous assignees added. Shared by assign
# and the escalation step that reassigns (broker/core/store/_lua_escalation.py).
REASSIGN = """
local function reassign(h, run, assignees, watchers, event, entry)
  local iid = h.id
  local previous = h.assignees or '[]'
  local score = tonumber(h.seq) or 0
  if h.assignees then
    for _, name in ipairs(cjson.decode(h.assignees)) do
      redis.call('ZREM', k_iassignee('pending', name), iid)
    end
  end
  for field, names in pairs({assignees = assignees, watchers = watchers}) do
    if names == '' then
      redis.call('HDEL', k_interrupt(iid), field)
    else
      redis.call('HSET', k_interrupt(iid), field, names)
    end
  end
  if assignees ~= '' then
    for _, name in ipairs(cjson.decode(assignees)) do
      redis.call('ZADD', k_iassignee('pending', name), score, iid)
    end
  end
  redis.call('HSET', k_interrupt(iid), 'updated_ms', NOW)
  redis.call('INCR', K_IVERSION)
  local prev = '{"previous_assignees":' .. previous .. ','
  emit(run, 'interrupt.assigned', prev .. string.sub(event, 2))
  audit(iid, prev .. string.sub(entry, 2))
end
"""

# assign: who may answer a pending interrupt changes. ARGV: 2 interrupt id, 3 assignees
# (JSON list, '' for none), 4 watchers (likewise), 5 the event's data and 6 the audit
# entry, each a JSON object to which the step adds the previous assignees. Returns
# {'ok', the interrupt's hash}, or why not as resolve does ('not_found', 'conflict',
# 'expired').
# Touches: the interrupt and its assignee indexes, interrupts version, events, audit.
ASSIGN = (
    REASSIGN
    + """
local iid = ARGV[2]
local h, run, refused = open_pending(iid)
if not h then return refused end
reassign(h, run, ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return {'ok', redis.call('HGETALL', k_interrupt(iid))}
"""
)

ASSIGNMENT = {"assign": ASSIGN}

"""The Lua of votes: an interrupt decided by several people (broker/core/rules.py).

One vote is one step: it checks that the interrupt is pending, that the voter may vote
now (the quorum's group, or the chain's current step), and has not voted yet; appends
the vote to the interrupt's ``votes``; and when the vote meets the rule, resolves the
interrupt and queues its run's job in that same step, exactly as resolve does. Once
resolved the interrupt takes no vote, so exactly one vote decides.
"""

from __future__ import annotations

# vote. KEYS 1-4 (when ARGV 14 names the job): the job's key, its result's key, the
# queue, the wake channel. ARGV: 2 interrupt id, 3 the vote (a JSON object with
# "vote": bool and "by": the person or null), 4 the voter's subject ('' for a principal
# answering on a person's behalf, whose answer decides), 5 the voter's names (JSON list;
# '' for that principal: no step or group applies to it), 6 how many votes the caller
# saw (the vote and the decision below were made for that list: another count returns
# {'stale'} and the caller reads again), 7 '1' when this vote decides, 8 the resolution
# then, 9 the interrupt.voted event data, 10 the interrupt.resolved event data, 11 the
# vote's audit entry, 12 the decision's audit entry, 13 the fingerprint the answer is
# bound to ('' when none), 14 job id, 15 the job as arq serializes it, 16 its ttl ms,
# 17 "1" to wake. Returns {'voted'} or {'decided'}, or why not: as resolve
# ('not_found', 'conflict', 'expired', 'not_assignee', 'fingerprint_mismatch'), or
# 'already_voted', 'not_your_turn' (with the current step), 'not_eligible', 'stale'.
# Touches: the interrupt and (decided) its indexes, its run, seq, deadlines, interrupts
# version, runs due, events, audit, audit decision, and the job.
VOTE = """
local iid = ARGV[2]
local h, run, refused = open_pending(iid)
if not h then return refused end
if ARGV[5] ~= '' and h.assignees and not any_named(h.assignees, ARGV[5]) then
  return {'not_assignee'}
end
if ARGV[13] ~= '' and (h.fingerprint or '') ~= ARGV[13] then
  return {'fingerprint_mismatch', h.fingerprint or ''}
end
local rule = cjson.decode(h.rule)
local votes = {}
if h.votes then votes = cjson.decode(h.votes) end
local approvals = 0
for _, v in ipairs(votes) do
  if ARGV[4] ~= '' and type(v.by) == 'table' and v.by.sub == ARGV[4] then
    return {'already_voted'}
  end
  if v.vote == true then approvals = approvals + 1 end
end
if ARGV[5] ~= '' then
  local mine = {}
  for _, name in ipairs(cjson.decode(ARGV[5])) do mine[name] = true end
  if rule.chain then
    local step = rule.chain[approvals + 1]
    if not step or not mine[step] then return {'not_your_turn', step or ''} end
  elseif not mine[rule.of] then
    return {'not_eligible'}
  end
end
if #votes ~= tonumber(ARGV[6]) then return {'stale'} end
local list = '[' .. ARGV[3] .. ']'
if h.votes and #votes > 0 then list = string.sub(h.votes, 1, -2) .. ',' .. ARGV[3] .. ']' end
redis.call('HSET', k_interrupt(iid), 'votes', list, 'updated_ms', NOW)
redis.call('INCR', K_IVERSION)
emit(run, 'interrupt.voted', ARGV[9])
audit(iid, ARGV[11])
if ARGV[7] ~= '1' then return {'voted'} end
local seq = redis.call('INCR', K_SEQ)
redis.call('HSET', k_interrupt(iid), 'status', 'resolved', 'resolution', ARGV[8],
  'resolved_seq', seq)
move_interrupt(h, 'pending', 'resolved', seq)
redis.call('ZADD', K_RUNS_DUE, 'LT', NOW, h.run_id)
redis.call('ZREM', K_DEADLINES, iid)
emit(run, 'interrupt.resolved', ARGV[10])
audit_decision(iid, ARGV[12])
if ARGV[14] and ARGV[14] ~= '' then
  queue_job(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[14], ARGV[15], ARGV[16], NOW, ARGV[17])
end
return {'decided'}
"""

VOTES = {"vote": VOTE}

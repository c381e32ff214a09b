"""Lua scripts for the state changes that must be atomic across several keys.

Each script is the only writer of the transition it names; indexes move in the same
step as the record they point to.
"""

from __future__ import annotations

# KEYS: 1 run hash, 2 thread active, 3 runs, 4 runs by status(queued), 5 runs by agent,
#       6 runs by thread, 7 seq, 8 runs due, 9 events, 10 run events
# ARGV: 1 run_id, 2 thread_id, 3 flat run fields (json array), 4 now_ms, 5 event json,
#       6 maxlen global, 7 maxlen run
CREATE_RUN = """
local active = redis.call('GET', KEYS[2])
if active then return {'busy', active} end
local seq = redis.call('INCR', KEYS[7])
local fields = cjson.decode(ARGV[3])
redis.call('HSET', KEYS[1], 'seq', seq, unpack(fields))
redis.call('SET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
redis.call('ZADD', KEYS[4], seq, ARGV[1])
redis.call('ZADD', KEYS[5], seq, ARGV[1])
redis.call('ZADD', KEYS[6], seq, ARGV[1])
redis.call('ZADD', KEYS[8], ARGV[4], ARGV[1])
local eid = redis.call('XADD', KEYS[9], 'MAXLEN', '~', ARGV[6], '*', 'event', ARGV[5])
redis.call('XADD', KEYS[10], 'MAXLEN', '~', ARGV[7], eid, 'event', ARGV[5])
return {'ok', tostring(seq)}
"""

# KEYS: 1 interrupt hash, 2-5 pending indexes (all, agent, thread, type),
#       6-9 resolved indexes (all, agent, thread, type), 10 interrupts version,
#       11 runs due, 12 events, 13 run events, 14 idempotency key, 15 run hash, 16 seq,
#       17 audit log, 18 single-use nonce key, 19 deadlines
# ARGV: 1 resolution json, 2 now_ms, 3 run_id, 4 event json, 5 response json,
#       6 idempotency payload digest ('' when no key), 7 idempotency ttl ms,
#       8 unused, 9 maxlen global, 10 maxlen run, 11 interrupt id,
#       12 audit entry json, 13 audit maxlen, 14 nonce ('' when none), 15 nonce ttl ms
RESOLVE = """
if ARGV[6] ~= '' then
  local prior = redis.call('GET', KEYS[14])
  if prior then return {'idempotent', prior} end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
if ARGV[14] ~= '' and redis.call('EXISTS', KEYS[18]) == 1 then return {'used'} end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' then
  return {'conflict', status, redis.call('HGET', KEYS[1], 'resolution') or ''}
end
-- an interrupt of a run that has ended takes no answer (closing them is the same step)
local run_status = redis.call('HGET', KEYS[15], 'status')
if run_status == 'succeeded' or run_status == 'failed' or run_status == 'cancelled' then
  return {'conflict', 'cancelled', ''}
end
local exp = redis.call('HGET', KEYS[1], 'expires_at_ms')
if exp and exp ~= '' and tonumber(exp) <= tonumber(ARGV[2]) then
  return {'expired', exp}
end
local seq = redis.call('INCR', KEYS[16])
redis.call('HSET', KEYS[1], 'status', 'resolved', 'resolution', ARGV[1],
  'updated_ms', ARGV[2], 'resolved_seq', seq)
for i = 2, 5 do redis.call('ZREM', KEYS[i], ARGV[11]) end
for i = 6, 9 do redis.call('ZADD', KEYS[i], seq, ARGV[11]) end
redis.call('INCR', KEYS[10])
redis.call('HINCRBY', KEYS[15], 'answers', 1)
redis.call('ZADD', KEYS[11], 'NX', ARGV[2], ARGV[3])
local eid = redis.call('XADD', KEYS[12], 'MAXLEN', '~', ARGV[9], '*', 'event', ARGV[4])
redis.call('XADD', KEYS[13], 'MAXLEN', '~', ARGV[10], eid, 'event', ARGV[4])
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[14], ARGV[5], 'PX', ARGV[7])
end
if ARGV[14] ~= '' then
  redis.call('SET', KEYS[18], ARGV[11], 'PX', ARGV[15])
end
redis.call('ZREM', KEYS[19], ARGV[11])
redis.call('RPUSH', KEYS[17], ARGV[12])
redis.call('LTRIM', KEYS[17], -tonumber(ARGV[13]), -1)
return {'ok'}
"""

# The deadline passed with no answer: the interrupt becomes expired in one step, and
# when a default answer is declared it is recorded as the resolution and the run is
# marked due, exactly as a person's answer would be. A human answer racing this
# script finds the status no longer pending (or the deadline past), so one wins.
# KEYS: 1 interrupt hash, 2-5 pending indexes, 6-9 expired indexes, 10 interrupts version,
#       11 runs due, 12 events, 13 run events, 14 run hash, 15 seq, 16 deadlines,
#       17 audit log
# ARGV: 1 interrupt id, 2 now_ms, 3 resolution json ('' when none is applied),
#       4 event json, 5 maxlen global, 6 maxlen run, 7 run id, 8 audit entry json,
#       9 audit maxlen
EXPIRE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[16], ARGV[1])
  return {'gone'}
end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' then
  redis.call('ZREM', KEYS[16], ARGV[1])
  return {'closed', status}
end
local exp = redis.call('HGET', KEYS[1], 'expires_at_ms')
if not exp or exp == '' or tonumber(exp) > tonumber(ARGV[2]) then return {'not_due'} end
local seq = redis.call('INCR', KEYS[15])
redis.call('HSET', KEYS[1], 'status', 'expired', 'updated_ms', ARGV[2], 'resolved_seq', seq)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'resolution', ARGV[3])
  redis.call('HINCRBY', KEYS[14], 'answers', 1)
  redis.call('ZADD', KEYS[11], 'NX', ARGV[2], ARGV[7])
end
for i = 2, 5 do redis.call('ZREM', KEYS[i], ARGV[1]) end
for i = 6, 9 do redis.call('ZADD', KEYS[i], seq, ARGV[1]) end
redis.call('INCR', KEYS[10])
redis.call('ZREM', KEYS[16], ARGV[1])
local eid = redis.call('XADD', KEYS[12], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[4])
redis.call('XADD', KEYS[13], 'MAXLEN', '~', ARGV[6], eid, 'event', ARGV[4])
redis.call('RPUSH', KEYS[17], ARGV[8])
redis.call('LTRIM', KEYS[17], -tonumber(ARGV[9]), -1)
return {'ok'}
"""

# Appends one event to the global stream and to its run's stream under the SAME id, so
# one id is a resume cursor in both. Global ids only grow, so the run stream accepts it.
# KEYS: 1 events, 2 run events; ARGV: 1 event json, 2 maxlen global, 3 maxlen run
EMIT = """
local eid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], eid, 'event', ARGV[1])
return eid
"""

# Acquire-or-renew and release of a lock held under a random token.
RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
